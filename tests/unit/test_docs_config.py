"""docs/configuration.md lists every setting of leadscore/settings.py with its real default.

Run this file as a script to print a fresh table to paste into the page:

    .venv/bin/python tests/unit/test_docs_config.py
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from annotated_types import Ge, Gt, Le
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from leadscore.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DOC = ROOT / "docs" / "configuration.md"
#: Files that name settings: every LEADSCORE_* variable in them must exist.
FILES_NAMING_SETTINGS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "docker-compose.yml",
    ROOT / "deploy" / "README.md",
    ROOT / "deploy" / "leadscore.env.example",
    ROOT / "deploy" / "leadscore-worker.service",
]
#: LEADSCORE_* variables that are not settings: read by the test suite, by the dashboard's
#: development server (docs/dashboard.md), or where to find a binary (s3rver: read by
#: leadscore/infra/embedded/binaries.py before any settings exist).
NOT_SETTINGS = {
    "LEADSCORE_TEST_KAFKA",
    "LEADSCORE_TEST_DASHBOARD_DIR",
    "LEADSCORE_API",
    "LEADSCORE_S3RVER",
}


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables that set a field, in the order they are looked up."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"LEADSCORE_{name.upper()}"]


def default_text(field: FieldInfo) -> str:
    """The default as it would be written in the environment (``not set`` for none)."""
    value: Any = field.default
    if value is None:
        return "not set"
    if isinstance(value, tuple):
        value = ",".join(str(part) for part in value)
    return f"`{value}`"


def limits_text(field: FieldInfo) -> str:
    words = []
    for item in field.metadata:
        if isinstance(item, Ge):
            words.append(f"≥ {item.ge}")
        elif isinstance(item, Gt):
            words.append(f"> {item.gt}")
        elif isinstance(item, Le):
            words.append(f"≤ {item.le}")
        elif getattr(item, "pattern", None):
            words.append(f"matches `{item.pattern}`".replace("|", "\\|"))  # keep the table intact
    return ", ".join(words)


def table() -> str:
    """The settings table, one row per field, in the order of settings.py."""
    lines = ["| variable | default | limits | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        variables = " or ".join(f"`{env}`" for env in env_names(name, field))
        cells = (variables, default_text(field), limits_text(field), field.description or "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def documented_rows() -> dict[str, list[str]]:
    """First variable named in each settings row of the page -> the row's cells.

    A settings row is a table row whose first cell starts with a variable in backticks.
    """
    rows = {}
    for line in CONFIG_DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        first = cells[0].split("`")[1]
        rows[first] = cells
    return rows


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(name: str) -> None:
    field = Settings.model_fields[name]
    variables = env_names(name, field)
    rows = documented_rows()
    assert variables[0] in rows, (
        f"setting {name!r} ({variables[0]}) is missing from docs/configuration.md; "
        "print the table with `python tests/unit/test_docs_config.py` and add its row"
    )
    cells = rows[variables[0]]
    for variable in variables:
        assert f"`{variable}`" in cells[0], f"the row of {name!r} should name {variable}"
    assert cells[1] == default_text(field), (
        f"docs/configuration.md gives {variables[0]} the default {cells[1]}, "
        f"settings.py says {default_text(field)}"
    )


def test_the_page_documents_no_setting_that_does_not_exist() -> None:
    known = {env_names(name, field)[0] for name, field in Settings.model_fields.items()}
    unknown = sorted(set(documented_rows()) - known)
    assert not unknown, f"docs/configuration.md documents settings that do not exist: {unknown}"


@pytest.mark.parametrize("path", FILES_NAMING_SETTINGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_and_deploy_files_name_only_real_settings(path: Path) -> None:
    known = {env for name, field in Settings.model_fields.items() for env in env_names(name, field)}
    named = set(re.findall(r"\bLEADSCORE_[A-Z0-9_]+", path.read_text()))
    unknown = sorted(named - known - NOT_SETTINGS)
    assert not unknown, f"{path.relative_to(ROOT)} names variables that are not settings: {unknown}"


if __name__ == "__main__":
    print(table())
