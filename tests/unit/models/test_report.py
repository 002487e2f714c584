"""The evaluation report: metrics against sklearn, lift/calibration sums, JSON, rendering."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from leadscore.models.training.report import (
    REQUIRED_CV_METRICS,
    SCALAR_METRICS,
    ReportError,
    check_report,
    choose_threshold,
    evaluate,
    fold_summary,
    write_json,
)
from leadscore.models.training.report_render import render


def scores(n: int = 1003, seed: int = 0, skill: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Labels with base rate ~0.3 and probabilities that rank them with some skill."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(1.5 * latent - 1.0)))).astype(np.int64)
    p = 1 / (1 + np.exp(-(skill * latent + rng.normal(scale=1.0, size=n) - 1.0)))
    return y, p


def assert_plain_json(value: Any) -> None:
    """Only dict/list/str/int/float/bool/None, no NaN, no numpy types."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)
        if type(value) is float:
            assert math.isfinite(value)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_scalar_metrics_match_sklearn(threshold: float) -> None:
    y, p = scores()
    m = evaluate(y, p, threshold=threshold, majority_class=0)
    pred = (p >= threshold).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["majority_accuracy"] == pytest.approx(np.mean(y == 0))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["base_rate"] == pytest.approx(y.mean())
    assert m["threshold"] == threshold and m["rows"] == len(y)
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    assert m["confusion"] == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    assert set(SCALAR_METRICS) <= set(m)
    assert_plain_json(m)


def test_majority_class_defaults_to_majority_of_y() -> None:
    y = np.array([1, 1, 1, 0])
    p = np.array([0.9, 0.2, 0.8, 0.1])
    assert evaluate(y, p)["majority_accuracy"] == 0.75
    assert evaluate(y, p, majority_class=0)["majority_accuracy"] == 0.25


def test_lift_by_decile_sums_and_order() -> None:
    y, p = scores()
    m = evaluate(y, p)
    lift = m["lift_by_decile"]
    assert [r["decile"] for r in lift] == list(range(1, 11))
    assert sum(r["rows"] for r in lift) == len(y)
    assert sum(r["share"] for r in lift) == pytest.approx(1.0)
    assert sum(r["positives"] for r in lift) == pytest.approx(y.sum())
    assert lift[-1]["cumulative_capture"] == 1.0
    captures = [r["cumulative_capture"] for r in lift]
    assert captures == sorted(captures)
    for upper, lower in zip(lift, lift[1:]):
        assert upper["min_score"] >= lower["max_score"]  # highest scores first
    for r in lift:
        assert r["rate"] == pytest.approx(r["positives"] / r["rows"])
        assert r["lift"] == pytest.approx(r["rate"] / y.mean())
    # by hand: the top decile is the 101 highest-scored rows (1003 = 3 * 101 + 7 * 100)
    top = np.argsort(-p, kind="stable")[:101]
    assert lift[0]["rows"] == 101 and lift[0]["positives"] == y[top].sum()
    assert lift[0]["cumulative_capture"] == pytest.approx(y[top].sum() / y.sum())
    assert lift[0]["lift"] > 1.5  # the scores have skill


def test_lift_ties_are_shared_not_ordered_by_row() -> None:
    """Equal scores must not hand the top decile to whichever rows come first."""
    y = np.array([1] * 30 + [0] * 70)
    p = np.full(100, 0.3)
    for r in evaluate(y, p)["lift_by_decile"]:
        assert r["positives"] == pytest.approx(3.0)
        assert r["lift"] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    y2, p2 = scores(n=200, seed=2)
    p2 = np.round(p2, 1)  # many ties
    perm = rng.permutation(len(y2))
    a, b = evaluate(y2, p2)["lift_by_decile"], evaluate(y2[perm], p2[perm])["lift_by_decile"]
    for ra, rb in zip(a, b):
        assert ra["positives"] == pytest.approx(rb["positives"])


def test_calibration_matches_sklearn_uniform_bins() -> None:
    y, p = scores(seed=3)
    p[:3] = [0.0, 0.1, 1.0]  # edges: 0.1 belongs to the first bin, as in sklearn
    cal = evaluate(y, p)["calibration"]
    assert cal["binning"] == "uniform" and len(cal["bins"]) == 10
    bins = cal["bins"]
    assert sum(b["count"] for b in bins) == len(y)
    assert [b["lower"] for b in bins] == pytest.approx(np.arange(10) / 10)
    full = [b for b in bins if b["count"]]
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    assert [b["observed_rate"] for b in full] == pytest.approx(observed)
    assert [b["mean_predicted"] for b in full] == pytest.approx(predicted)
    ece = sum(b["count"] * abs(b["observed_rate"] - b["mean_predicted"]) for b in full) / len(y)
    assert cal["ece"] == pytest.approx(ece)


def test_calibration_empty_bins_are_none() -> None:
    cal = evaluate(np.array([0, 1, 1]), np.array([0.05, 0.95, 0.91]))["calibration"]
    assert [b["count"] for b in cal["bins"]] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert cal["bins"][1]["mean_predicted"] is None and cal["bins"][1]["observed_rate"] is None
    assert cal["ece"] == pytest.approx((0.05 + 2 * (1 - 0.93)) / 3)


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_is_nan_safe(label: int) -> None:
    y = np.full(25, label)
    p = np.linspace(0.0, 1.0, 25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero or undefined-metric warnings
        m = evaluate(y, p)
    assert m["roc_auc"] is None and m["pr_auc"] is None
    assert m["base_rate"] == label and m["majority_accuracy"] == 1.0
    assert sum(r["rows"] for r in m["lift_by_decile"]) == 25
    if label == 0:
        assert all(r["lift"] is None for r in m["lift_by_decile"])
        assert all(r["cumulative_capture"] is None for r in m["lift_by_decile"])
        assert m["f1"] == 0.0
    else:
        assert m["lift_by_decile"][-1]["cumulative_capture"] == 1.0
    assert_plain_json(m)
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize(
    "y, p",
    [
        ([0, 2], [0.1, 0.2]),
        ([0, 1], [0.1, 1.2]),
        ([0, 1], [0.1, float("nan")]),
        ([0, 1], [0.1]),
        ([], []),
    ],
)
def test_bad_scores_raise(y: list[float], p: list[float]) -> None:
    with pytest.raises(ValueError):
        evaluate(np.array(y), np.array(p))


def test_fold_summary_means_and_std() -> None:
    folds = [evaluate(*scores(n=300, seed=s)) for s in range(4)]
    summary = fold_summary(folds)
    assert set(summary) == set(SCALAR_METRICS) | {"std"}
    for name in SCALAR_METRICS:
        values = [f[name] for f in folds]
        assert summary[name] == pytest.approx(np.mean(values))
        assert summary["std"][name] == pytest.approx(np.std(values))
    assert_plain_json(summary)


def test_fold_summary_skips_nan_and_none_folds() -> None:
    folds = [
        {"accuracy": 0.5, "roc_auc": None},
        {"accuracy": 0.7, "roc_auc": float("nan")},
        {"accuracy": 0.9, "roc_auc": 0.8},
    ]
    summary = fold_summary(folds)
    assert summary["accuracy"] == pytest.approx(0.7)
    assert summary["roc_auc"] == 0.8 and summary["std"]["roc_auc"] == 0.0
    all_missing = fold_summary([{"roc_auc": None}, {"roc_auc": None}])
    assert all_missing == {"roc_auc": None, "std": {"roc_auc": None}}
    with pytest.raises(ValueError, match="fold 1 lacks"):
        fold_summary([{"accuracy": 0.5, "f1": 0.1}, {"accuracy": 0.5}])
    with pytest.raises(ValueError):
        fold_summary([])


def test_choose_threshold_hand_example() -> None:
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    # flag p >= 0.9: F1 2/3; >= 0.8: 1/2; >= 0.7: 4/5; >= 0.3: 2/3; >= 0.2: 4/7
    assert choose_threshold(y, p) == 0.7
    assert choose_threshold(y, p, rule="0.5") == 0.5
    # F1 ties (2/3 at 0.9 and at 0.6): the higher threshold flags fewer rows
    assert choose_threshold(np.array([1, 0, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6])) == 0.9


def test_choose_threshold_maximizes_f1_against_brute_force() -> None:
    y, p = scores(n=400, seed=5)
    p = np.round(p, 2)  # ties between rows
    chosen = choose_threshold(y, p)
    best = max(f1_score(y, (p >= t).astype(int)) for t in np.unique(p))
    assert f1_score(y, (p >= chosen).astype(int)) == pytest.approx(best)
    assert chosen in p


def test_choose_threshold_rejects_bad_rule_and_no_positives() -> None:
    with pytest.raises(ValueError, match="rule must be one of"):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), rule="youden")
    with pytest.raises(ValueError, match="positive"):
        choose_threshold(np.array([0, 0]), np.array([0.2, 0.8]))


MODEL_NAMES = (
    "ensemble_rf40_gb40_lr20",
    "hist_gradient_boosting_in_place_of_gb_ensemble",
    "random_forest_depth_capped",
    "logistic_regression",
    "lightgbm_default",
)


def realistic_report(raw_nan: bool = False) -> dict[str, Any]:
    """A report shaped like the trainer's, from scored (not fitted) synthetic models."""
    y, _ = scores(n=1500, seed=11)
    folds = np.arange(len(y)) % 5
    models = []
    for i, name in enumerate(MODEL_NAMES):
        _, p = scores(n=1500, seed=11, skill=2.5 - 0.3 * i)
        per_fold = [evaluate(y[folds == k], p[folds == k], majority_class=0) for k in range(5)]
        time_split = None
        if i == 0:
            time_split = {
                "scheme": "rolling_origin_purged",
                "folds": 2,
                "skipped": [{"fold": 0, "reason": "12 training rows before the purged cut"}],
                **fold_summary(per_fold[:2]),
            }
        models.append(
            {
                "name": name,
                "description": f"candidate {i}: " + "a long description of the model " * 3,
                "cv": fold_summary(per_fold),
                "time_split": time_split,
                "oof": evaluate(y, p, threshold=choose_threshold(y, p), majority_class=0),
                "fit_seconds": 1.5 + i,
            }
        )
    if raw_nan:
        models[3]["cv"]["roc_auc"] = float("nan")
        models[3]["cv"]["std"]["roc_auc"] = np.float64("nan")
        models[3]["fit_seconds"] = np.float32(2.5)
    return {
        "data": {
            "source": "artifacts/simulated_leads.parquet",
            "rows": int(len(y)),
            "positives": int(y.sum()),
            "positive_rate": float(y.mean()),
            "features": 24,
            "cv": {"scheme": "stratified_group_kfold", "folds": 5},
        },
        "columns": [
            {"column": "email_domain", "decision": "dropped", "reason": "free text"},
            {"column": "converted_at", "decision": "dropped", "reason": "leaks the label " * 9},
        ],
        "warnings": ["column [converted_at] is known only after the outcome: dropped (leak)"],
        "models": models,
        "chosen": {
            "name": MODEL_NAMES[0],
            "reason": "best mean PR-AUC in cross-validation; within one std of the others "
            "on Brier, and the time-ordered check agrees",
            "threshold": models[0]["oof"]["threshold"],
        },
        "feature_importance": [
            {"feature": f"feature_{k}_with_a_fairly_long_name", "importance": 0.3 / (k + 1)}
            for k in range(15)
        ],
    }


def rendered(report: dict[str, Any]) -> str:
    console = Console(record=True, width=100, force_terminal=False)
    render(report, console)
    return console.export_text()


def test_render_shows_every_model_within_100_columns() -> None:
    report = realistic_report()
    text = rendered(report)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    for name in MODEL_NAMES:
        assert name in text
    for expected in (
        "artifacts/simulated_leads.parquet",
        "ROC-AUC",
        "PR-AUC",
        "Brier",
        "log-loss",
        "fit s",
        "chosen:",
        "best mean PR-AUC",
        "time-ordered check (rolling_origin_purged, 2 folds scored, 1 skipped)",
        "lift by decile",
        "calibration (equal-width bins), ECE",
        "confusion at threshold",
        "actual 1",
        "top 10 of 15 feature importances",
        "feature_0_with_a_fairly_long_name",
        "warning: column [converted_at] is known only after the outcome",
    ):
        assert expected in text, expected
    model_rows = [line for line in lines if line.lstrip().startswith(("* ", *MODEL_NAMES[1:]))]
    assert model_rows, text
    cv = report["models"][0]["cv"]
    assert f"{cv['pr_auc']:.3f}" in text and f"±{cv['std']['pr_auc']:.3f}" in text


def test_render_handles_nan_none_and_json_round_trip(tmp_path: Path) -> None:
    report = realistic_report(raw_nan=True)
    report["models"][1]["oof"] = None
    text = rendered(report)
    assert "n/a" in text and max(len(line) for line in text.splitlines()) <= 100
    path = tmp_path / "report.json"
    write_json(report, path)
    text2 = rendered(json.loads(path.read_text()))
    assert text2 == text


def test_write_json_nan_to_null_pretty_and_atomic(tmp_path: Path) -> None:
    report = realistic_report(raw_nan=True)
    path = tmp_path / "out" / "report.json"
    write_json(report, path)
    raw = path.read_text()
    assert '"roc_auc": null' in raw and "NaN" not in raw
    assert raw.startswith('{\n  "data"')  # indented
    loaded = json.loads(raw)
    assert_plain_json(loaded)
    assert loaded["models"][3]["fit_seconds"] == 2.5
    assert [m["name"] for m in loaded["models"]] == list(MODEL_NAMES)
    for model in loaded["models"]:
        assert set(REQUIRED_CV_METRICS) <= set(model["cv"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]  # no temp file


def test_write_json_refuses_a_broken_report_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    report = realistic_report()
    del report["models"][2]["cv"]["pr_auc"]
    with pytest.raises(ReportError, match=r"models'\]\[2\].*pr_auc"):
        write_json(report, path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_check_report_names_the_problem() -> None:
    report = realistic_report()
    check_report(report)
    report["chosen"]["name"] = "xgboost"
    with pytest.raises(ReportError, match="'xgboost', not one of the compared models"):
        check_report(report)
    with pytest.raises(ReportError, match="lacks 'models'"):
        check_report({"data": {}, "chosen": {}})
    with pytest.raises(ReportError, match="empty"):
        check_report({"data": {}, "models": [], "chosen": {}})


def test_fewer_rows_than_deciles() -> None:
    m = evaluate(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.4, 0.1]))
    lift = m["lift_by_decile"]
    assert [r["rows"] for r in lift] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert [r["positives"] for r in lift[:4]] == [1.0, 0.0, 1.0, 0.0]
    assert lift[4]["rate"] is None and lift[4]["lift"] is None and lift[4]["min_score"] is None
    assert lift[-1]["cumulative_capture"] == 1.0
    assert_plain_json(m)


def test_render_minimal_report() -> None:
    """Only the contract's minimum: no oof, time split, columns, importances or warnings."""
    report = {
        "data": {"source": "leads.csv", "rows": 10, "positives": 4},
        "models": [{"name": "logreg", "cv": dict.fromkeys(REQUIRED_CV_METRICS, 0.5)}],
        "chosen": {"name": "logreg", "reason": "the only one", "threshold": 0.5},
    }
    text = rendered(report)
    assert "logreg" in text and "time-ordered check: not run" in text
    assert "the only one" in text
