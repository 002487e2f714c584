"""train_model: grouped CV, the purged time split, honest baselines, picklable for an executor."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from leadscore.models.dataset import TrainingSet
from leadscore.models.ensemble import LeadScoringEnsemble
from leadscore.models.features import DAY_S, N_FEATURES
from leadscore.models.training import InsufficientDataError, classification_metrics, train_model

SMALL = dict(rf_n_estimators=10, gb_n_estimators=15, rf_min_samples_leaf=3)


def make_set(
    n_leads: int = 150, per_lead: int = 3, seed: int = 0, days: float = 200.0
) -> TrainingSet:
    """Leads with a latent intent; a lead's rows share it (so they must share a fold)."""
    rng = np.random.default_rng(seed)
    intent = rng.normal(size=n_leads)
    lead_of_row = np.repeat(np.arange(n_leads), per_lead)
    n = len(lead_of_row)
    X = rng.poisson(1.0, size=(n, N_FEATURES)).astype(float)
    X[:, 0] += rng.poisson(np.exp(intent[lead_of_row]))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(1.5 * intent[lead_of_row] - 1.2)))).astype(
        np.int64
    )
    times = 1.7e9 + rng.uniform(0, days * DAY_S, size=n)
    return TrainingSet(
        X=X,
        y=y,
        lead_ids=np.array([f"lead-{i}" for i in lead_of_row], dtype=object),
        snapshot_times=times,
        horizon_days=30.0,
        as_of=float(times.max() + 30 * DAY_S),
    )


def test_metrics_shape_baseline_and_progress() -> None:
    ts = make_set()
    calls: list[tuple[str, int, int]] = []
    model, metrics = train_model(
        ts, seed=0, cv_folds=4, time_folds=2, params=SMALL, progress=lambda *a: calls.append(a)
    )
    assert isinstance(model, LeadScoringEnsemble) and model.rf_n_estimators == 10
    assert model.random_state == 0
    assert calls == [
        ("cv", 1, 7),
        ("cv", 2, 7),
        ("cv", 3, 7),
        ("cv", 4, 7),
        ("time_split", 5, 7),
        ("time_split", 6, 7),
        ("fit", 7, 7),
    ]
    cv = metrics["cv"]
    assert cv["scheme"] == "stratified_group_kfold" and cv["folds"] == 4
    for name in (
        "accuracy",
        "majority_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
    ):
        assert math.isfinite(cv[name]) and math.isfinite(cv["std"][name])
    assert cv["roc_auc"] > 0.6
    assert cv["majority_accuracy"] == pytest.approx(1 - ts.y.mean(), abs=0.08)
    assert metrics["n_rows"] == len(ts) and metrics["n_leads"] == 150
    assert metrics["time_split"]["scheme"] == "rolling_origin_purged"
    assert metrics["time_split"]["folds"] + len(metrics["time_split"]["skipped"]) == 2
    json.dumps(metrics)  # ready for a manifest


def test_seeded() -> None:
    ts = make_set(80)
    _, a = train_model(ts, seed=3, cv_folds=3, time_folds=0, params=SMALL)
    _, b = train_model(ts, seed=3, cv_folds=3, time_folds=0, params=SMALL)
    assert a["cv"] == b["cv"]


def test_time_split_trains_only_on_labels_known_at_the_cut() -> None:
    # Every snapshot is within one horizon of the start: no training row's label is known
    # at any cut, so every time fold must be skipped rather than peek.
    ts = make_set(days=25.0)
    _, metrics = train_model(ts, seed=0, cv_folds=3, time_folds=2, params=SMALL)
    assert metrics["time_split"]["folds"] == 0
    assert all("training rows" in s["reason"] for s in metrics["time_split"]["skipped"])


def test_too_few_outcomes_is_a_clear_error() -> None:
    ts = make_set(40)
    y = np.zeros_like(ts.y)
    y[ts.lead_ids == "lead-1"] = 1
    few = TrainingSet(X=ts.X, y=y, lead_ids=ts.lead_ids, snapshot_times=ts.snapshot_times)
    with pytest.raises(InsufficientDataError, match="class 1 appears in only 1 leads"):
        train_model(few, seed=0, params=SMALL)
    with pytest.raises(InsufficientDataError, match="both classes"):
        train_model(
            TrainingSet(
                X=ts.X,
                y=np.zeros_like(ts.y),
                lead_ids=ts.lead_ids,
                snapshot_times=ts.snapshot_times,
            ),
            seed=0,
        )
    with pytest.raises(TypeError):
        train_model(ts, seed=0, params={"no_such_param": 1})


def test_arguments_and_results_cross_a_process_boundary() -> None:
    ts = make_set(60)
    pickle.loads(pickle.dumps((train_model, ts)))
    model, metrics = train_model(ts, seed=0, cv_folds=3, time_folds=0, params=SMALL)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(ts.X), model.predict_proba(ts.X))


def test_classification_metrics_on_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, p, majority_class=0)
    assert m["accuracy"] == 0.5 and m["majority_accuracy"] == 0.5
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["roc_auc"] == 0.75
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert math.isnan(
        classification_metrics(np.zeros(3), np.full(3, 0.2), majority_class=0)["roc_auc"]
    )
