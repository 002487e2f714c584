"""`leadscore train --data` on a table it has never seen, `leadscore score`, and the refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.models.registry.store import ModelRegistry

runner = CliRunner()
FAST = ["--folds", "2", "--search", "none"]


def write_crm_export(path: Path, rows: int = 600, *, seed: int = 0) -> None:
    """A made-up CRM export: ids, numbers with gaps, free-text categories, a yes/no target."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["Lead ID", "Employees", "Industry", "Source", "Web Visits", "Demo", "Converted"]
        )
        for i in range(rows):
            visits = int(rng.poisson(3))
            demo = rng.random() < 0.2
            industry = rng.choice(["SaaS", "Retail", "Banking", "Other", ""])
            logit = -2.2 + 0.35 * visits + 1.5 * demo + (0.8 if industry == "SaaS" else 0.0)
            converted = rng.random() < 1 / (1 + np.exp(-logit))
            size = "" if rng.random() < 0.1 else str(int(rng.lognormal(4, 1.5)))
            w.writerow([f"L{i:05d}", size, industry, rng.choice(["web", "event", "list"]), visits,
                        "yes" if demo else "no", "Yes" if converted else "No"])  # fmt: skip


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("LEADSCORE_MODEL_DIR", str(root))
    return root


def test_train_on_a_new_table_then_score_a_file(tmp_path: Path, models: Path) -> None:
    data, report = tmp_path / "export.csv", tmp_path / "report.json"
    write_crm_export(data)
    result = runner.invoke(
        app,
        ["train", "--data", str(data), "--target", "Converted", "--id-column", "Lead ID",
         "--report", str(report), *FAST],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # it says what it did with each column
    for column in ("Employees", "Industry", "Source", "Web Visits", "Demo"):
        assert column in result.output
    saved = json.loads(report.read_text())
    names = [m["name"] for m in saved["models"]]
    assert "ensemble" in names and "lgbm_default" in names and "logistic_regression" in names
    for model in saved["models"]:
        assert {"accuracy", "roc_auc", "pr_auc", "brier", "f1"} <= set(model["cv"])
    assert saved["chosen"]["name"] in names and saved["chosen"]["reason"]

    registry = ModelRegistry(models)
    version = registry.champion(segment="table")
    assert version is not None and registry.champion_history() == []  # the stream's is untouched
    assert registry.manifest(version).kind == "table"
    assert registry.report(version)["chosen"] == saved["chosen"]

    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", str(data), "--out", str(out), "--id-column", "Lead ID"])
    assert result.exit_code == 0, result.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 600 and rows[0]["Lead ID"] == "L00000"
    assert {r["grade"] for r in rows} <= {"A", "B", "C", "D"}
    assert all(0 <= int(r["score"]) <= 100 and r["reason_1"] for r in rows)
    # the same score as the model gives the same row through the one-record path
    loaded = registry.load(version)
    with data.open() as f:
        first = next(csv.DictReader(f))
    p = loaded.model.predict_proba(loaded.pipeline.transform_one(first)[None, :])[0, 1]
    assert float(rows[0]["probability"]) == pytest.approx(p, abs=1e-6)


def test_a_leaking_column_is_named(tmp_path: Path, models: Path) -> None:
    data = tmp_path / "leaky.csv"
    write_crm_export(data)
    rows = list(csv.reader(data.open()))
    rows[0].append("Days To Close")
    for row in rows[1:]:
        row.append("12" if row[6] == "Yes" else "")  # only known once the deal closed
    with data.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    result = runner.invoke(app, ["train", "--data", str(data), "--target", "Converted", *FAST])
    assert result.exit_code == 0, result.output
    assert "Days To Close" in result.output and "--drop" in result.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_target", "Converted"),
        ("one_class", "one class"),
        ("few_rows", "rows"),
    ],
)
def test_a_file_it_cannot_use_is_refused_with_a_reason(
    tmp_path: Path, models: Path, change: str, message: str
) -> None:
    data = tmp_path / "bad.csv"
    write_crm_export(data, rows=30 if change == "few_rows" else 300)
    rows = list(csv.reader(data.open()))
    if change == "no_target":
        rows = [r[:-1] for r in rows]
    if change == "one_class":
        rows = [rows[0]] + [[*r[:-1], "No"] for r in rows[1:]]
    with data.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    result = runner.invoke(app, ["train", "--data", str(data), "--target", "Converted", *FAST])
    assert result.exit_code == 1, result.output
    assert "cannot train" in result.output and message in result.output
    assert not models.exists() or not ModelRegistry(models).list()


def test_score_without_a_table_model_says_how_to_get_one(tmp_path: Path, models: Path) -> None:
    data = tmp_path / "export.csv"
    write_crm_export(data, rows=60)
    result = runner.invoke(app, ["score", str(data), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 1
    assert "leadscore train --data" in result.output


def test_a_table_model_is_kept_out_of_the_streams_segment(tmp_path: Path, models: Path) -> None:
    data = tmp_path / "export.csv"
    write_crm_export(data, rows=300)
    assert (
        runner.invoke(app, ["train", "--data", str(data), "--target", "Converted", *FAST]).exit_code
        == 0
    )
    registry = ModelRegistry(models)
    (version,) = registry.list()

    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "table" in listed.output
    assert f"* {version}" not in listed.output  # the default segment has no champion yet

    result = runner.invoke(app, ["models", "promote", version])
    assert result.exit_code == 1
    assert "--segment table" in result.output
    assert registry.champion_history() == []


def test_numeric_forces_a_column_with_thousands_separators(tmp_path: Path, models: Path) -> None:
    data, report = tmp_path / "export.csv", tmp_path / "r.json"
    write_crm_export(data, rows=300)
    rows = list(csv.reader(data.open()))
    rows[0].append("Deal Size")
    rows[1:] = [[*r, f"{1000 + 37 * i:,}"] for i, r in enumerate(rows[1:])]
    with data.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    args = ["train", "--data", str(data), "--target", "Converted", "--report", str(report), *FAST]
    assert runner.invoke(app, [*args, "--numeric", "Deal Size"]).exit_code == 0
    columns = {c["name"]: c for c in json.loads(report.read_text())["columns"]}
    assert columns["Deal Size"]["kind"] == "numeric"


def test_compare_limits_the_candidates_and_a_bad_name_is_refused(
    tmp_path: Path, models: Path
) -> None:
    data, report = tmp_path / "export.csv", tmp_path / "r.json"
    write_crm_export(data, rows=300)
    args = ["train", "--data", str(data), "--target", "Converted", "--report", str(report), *FAST]
    result = runner.invoke(app, [*args, "--compare", "ensemble, lgbm_default"])
    assert result.exit_code == 0, result.output
    assert [m["name"] for m in json.loads(report.read_text())["models"]] == [
        "ensemble",
        "lgbm_default",
    ]
    bad = runner.invoke(app, [*args, "--compare", "ensemble,xgboost"])
    assert bad.exit_code == 1 and "xgboost" in bad.output
