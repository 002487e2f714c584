"""The `leadscore` command: help for every command, file simulation, training, the model registry commands, clear errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.models.features.vector import FEATURE_NAMES, N_FEATURES
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.training.ensemble import LeadScoringEnsemble

runner = CliRunner()
COMMANDS = (
    "worker",
    "train",
    "score",
    "models",
    "retrain",
    "drift",
    "simulate",
    "tail",
    "topics",
    "demo",
)


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


def test_simulate_to_a_file_then_train_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, truth, models = tmp_path / "events.jsonl", tmp_path / "truth.csv", tmp_path / "models"
    monkeypatch.setenv("LEADSCORE_MODEL_DIR", str(models))
    result = runner.invoke(
        app,
        [
            "simulate",
            "--out",
            str(events),
            "--truth",
            str(truth),
            "--leads",
            "700",
            "--days",
            "120",
            "--seed",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = events.read_text().splitlines()
    assert len(lines) > 1000 and json.loads(lines[0])["specversion"] == "1.0"
    with open(truth) as f:
        assert len(list(csv.DictReader(f))) == 700

    result = runner.invoke(
        app, ["train", "--events", str(events), "--folds", "2", "--search", "none", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    registry = ModelRegistry(models)
    (version,) = registry.list()
    assert registry.champion() == version
    manifest = registry.manifest(version)
    assert manifest.n_rows > 0 and "roc_auc" in json.dumps(manifest.metrics)


def test_train_refuses_unusable_input_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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


# --- leadscore models ----------------------------------------------------------------------------

#: Nothing listens here: connecting is refused at once, so announcements fail fast.
NO_BROKER = "127.0.0.1:1"


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A registry of three small models, nothing promoted: (directory, versions oldest first).

    Their metrics use three layouts: cross-validated, a holdout with means, none.
    """
    root = tmp_path_factory.mktemp("registry") / "models"
    registry = ModelRegistry(root)
    layouts = [
        {"cv": {"roc_auc": 0.812, "accuracy": 0.734}},
        {"holdout": {"roc_auc": {"mean": 0.9, "std": 0.01}}, "accuracy": 0.75},
        {},
    ]
    for seed, metrics in enumerate(layouts):
        rng = np.random.default_rng(seed)
        X = rng.poisson(1.5, size=(200, N_FEATURES)).astype(float)
        y = (X[:, 0] + rng.normal(size=200) > 2).astype(int)
        registry.save(
            LeadScoringEnsemble(
                rf_params={"n_estimators": 5, "max_depth": 3},
                gb_params={"n_estimators": 10},
                random_state=seed,
            )
            .fit(X, y)
            .compile(FEATURE_NAMES),
            kind="lead_events",
            pipeline=None,
            report=None,
            metrics=metrics,
            training_window=None,
            n_rows=len(X),
            class_balance={"positive_rate": float(y.mean())},
            params=None,
            reference_sample=X[:20],
        )
    return root, registry.list()


@pytest.fixture
def models_dir(
    three_versions: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh copy of the three-version registry, configured for the CLI, with no broker."""
    root = tmp_path / "models"
    shutil.copytree(three_versions[0], root)
    monkeypatch.setenv("LEADSCORE_MODEL_DIR", str(root))
    monkeypatch.setenv("KAFKA_BOOTSTRAP", NO_BROKER)
    return root


def test_models_list_shows_metrics_of_every_layout_and_marks_the_champion(
    models_dir: Path, three_versions: tuple[Path, list[str]]
) -> None:
    v1, v2, v3 = three_versions[1]
    ModelRegistry(models_dir).promote(v2)
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = {line[2:].split()[0]: line for line in result.output.splitlines()[1:-1]}
    assert lines[v1].split()[-2:] == ["0.812", "0.734"]
    assert lines[v2].startswith("*") and lines[v2].split()[-2:] == ["0.900", "0.750"]
    assert lines[v3].split()[-2:] == ["-", "-"] and "200" in lines[v3]
    assert not lines[v1].startswith("*") and not lines[v3].startswith("*")


def test_models_list_survives_an_unreadable_manifest(
    models_dir: Path, three_versions: tuple[Path, list[str]]
) -> None:
    broken = "20200101T000000Z-abcdef"
    shutil.copytree(models_dir / three_versions[1][0], models_dir / broken)
    (models_dir / broken / "manifest.json").write_text('{"version": "truncated')
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert f"{broken}  unreadable manifest" in result.output
    assert all(version in result.output for version in three_versions[1])


def test_models_show_prints_the_manifest_without_the_reference_sample(
    models_dir: Path, three_versions: tuple[Path, list[str]]
) -> None:
    v1 = three_versions[1][0]
    short = runner.invoke(app, ["models", "show", v1])
    assert short.exit_code == 0, short.output
    manifest = json.loads(short.stdout)
    assert manifest["version"] == v1 and manifest["metrics"]["cv"]["roc_auc"] == 0.812
    assert "reference_sample" not in manifest
    full = json.loads(runner.invoke(app, ["models", "show", v1, "--full"]).stdout)
    assert len(full["reference_sample"]) == 20


def test_an_unknown_version_is_refused_with_the_newest_ones(
    models_dir: Path, three_versions: tuple[Path, list[str]]
) -> None:
    versions = three_versions[1]
    for command in (["show"], ["promote"]):
        result = runner.invoke(app, ["models", *command, "20990101T000000Z-abcdef"])
        assert result.exit_code == 1, result.output
        assert "no model version '20990101T000000Z-abcdef'" in result.output
        assert ", ".join(reversed(versions)) in result.output
    assert not (models_dir / "champion.json").exists()


def test_promote_changes_the_pointer_even_when_the_broker_is_down(
    models_dir: Path, three_versions: tuple[Path, list[str]]
) -> None:
    v1, v2, v3 = three_versions[1]
    result = runner.invoke(app, ["models", "promote", v1, "--reason", "first"])
    assert result.exit_code == 3, result.output  # changed, not announced
    assert f"{v1} is the champion (was {v3})" in result.output
    assert "the registry is changed, but the announcement failed" in result.output
    assert "within LEADSCORE_MODEL_POLL_S" in result.output
    assert f"`leadscore models promote {v1}`" in result.output
    assert ModelRegistry(models_dir).champion() == v1

    again = runner.invoke(app, ["models", "promote", v1])
    assert again.exit_code == 3 and f"{v1} already was the champion" in again.output


def test_rollback_restores_the_previous_champion_and_says_how_to_reannounce(
    models_dir: Path, three_versions: tuple[Path, list[str]]
) -> None:
    v1, v2, _ = three_versions[1]
    registry = ModelRegistry(models_dir)
    registry.promote(v1)
    registry.promote(v2)
    result = runner.invoke(app, ["models", "rollback", "--reason", "bad scores"])
    assert result.exit_code == 3, result.output
    assert f"{v1} is the champion again (was {v2})" in result.output
    # Running rollback again would go one further back: re-announce with promote.
    assert f"`leadscore models promote {v1}`" in result.output
    assert registry.champion() == v1

    nothing = runner.invoke(app, ["models", "rollback"])
    assert nothing.exit_code == 1, nothing.output
    assert "no previous champion" in nothing.output and "promote" in nothing.output
    assert registry.champion() == v1


def test_a_model_workers_would_refuse_is_not_promoted(
    models_dir: Path, three_versions: tuple[Path, list[str]]
) -> None:
    v1 = three_versions[1][0]
    with open(models_dir / v1 / "model.npz", "ab") as model_file:
        model_file.write(b"tampered")
    result = runner.invoke(app, ["models", "promote", v1])
    assert result.exit_code == 1, result.output
    assert f"model {v1} cannot be used, so it was not promoted" in result.output
    assert "checksum" in result.output
    assert not (models_dir / "champion.json").exists()


def test_segments_have_their_own_champion(
    models_dir: Path, three_versions: tuple[Path, list[str]]
) -> None:
    v1, _, v3 = three_versions[1]
    result = runner.invoke(app, ["models", "promote", v1, "--segment", "eu"])
    assert result.exit_code == 3, result.output
    assert f"{v1} is the champion of segment eu" in result.output
    assert "--segment eu`" in result.output
    registry = ModelRegistry(models_dir)
    assert registry.champion(segment="eu") == v1 and registry.champion() == v3
    listed = runner.invoke(app, ["models", "list", "--segment", "eu"])
    assert f"* {v1}" in listed.output and "champion of the segment eu" in listed.output

    bad = runner.invoke(app, ["models", "promote", v1, "--segment", "eu west"])
    assert bad.exit_code == 2 and "segment must match" in bad.output
