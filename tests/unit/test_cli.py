"""The `leadscore` command: help for every command, file simulation, training from a file, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.models.registry import ModelRegistry

runner = CliRunner()
COMMANDS = ("worker", "train", "simulate", "tail", "topics", "demo")


def test_help_lists_and_explains_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) > 5


def test_bad_configuration_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_GRADE_THRESHOLDS", "high,medium,low")
    result = runner.invoke(app, ["topics"])
    assert result.exit_code == 2
    assert "LEADSCORE_GRADE_THRESHOLDS" in result.output


def test_simulate_to_a_file_then_train_on_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events, truth, models = tmp_path / "events.jsonl", tmp_path / "truth.csv", tmp_path / "models"
    monkeypatch.setenv("LEADSCORE_MODEL_DIR", str(models))
    result = runner.invoke(
        app, ["simulate", "--out", str(events), "--truth", str(truth), "--leads", "700", "--days", "120", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    lines = events.read_text().splitlines()
    assert len(lines) > 1000 and json.loads(lines[0])["specversion"] == "1.0"
    with open(truth) as f:
        assert len(list(csv.DictReader(f))) == 700

    result = runner.invoke(app, ["train", "--events", str(events), "--cv-folds", "2", "--seed", "4"])
    assert result.exit_code == 0, result.output
    registry = ModelRegistry(models)
    (version,) = registry.list()
    assert registry.champion() == version
    manifest = registry.manifest(version)
    assert manifest.n_rows > 0 and "roc_auc" in json.dumps(manifest.metrics)


def test_train_refuses_unusable_input_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_MODEL_DIR", str(tmp_path / "models"))
    missing = runner.invoke(app, ["train", "--events", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.output

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"specversion": "1.0", "type": "lead.page_viewed"}\n')
    result = runner.invoke(app, ["train", "--events", str(garbage)])
    assert result.exit_code == 1
    assert "cannot train" in result.output
    assert ModelRegistry(tmp_path / "models").list() == []


def test_truth_without_out_is_refused() -> None:
    result = runner.invoke(app, ["simulate", "--truth", "t.csv"])
    assert result.exit_code == 2 and "--truth needs --out" in result.output
