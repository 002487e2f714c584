"""``python -m leadscore.cli`` runs the CLI, as ``python -m leadscore`` does."""

from leadscore.cli import main

main()
