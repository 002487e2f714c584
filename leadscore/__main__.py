"""``python -m leadscore`` runs the CLI."""

from leadscore.cli import main

main()
