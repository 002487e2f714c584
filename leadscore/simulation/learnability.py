"""How learnable the simulated signal is: point-in-time snapshots and plain classifiers.

Run it: ``python -m leadscore.simulation.learnability --leads 5000 --seed 7``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import N_FEATURES, to_vector
from leadscore.schemas.events import ACTIVITY_TYPES, lead_event_adapter
from leadscore.simulation.config import DAY_S, SimConfig
from leadscore.simulation.files import iso_or_empty
from leadscore.simulation.leads import LeadTruth
from leadscore.simulation.simulator import simulate_with_truth


def snapshot_dataset(
    events: Iterable[Mapping[str, Any]],
    truth: Iterable[LeadTruth],
    *,
    end: datetime,
    horizon_days: float = 30.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One point-in-time feature vector per lead, labelled "converts within the horizon".

    For each lead, pick one of its activity events before its outcome uniformly
    at random (as the stream would score at every event), apply the lead's events
    up to it to a fresh :class:`~leadscore.models.features.state.LeadState`, and take the
    vector. The label is 1 when the lead converts within ``horizon_days`` after that
    moment. Leads whose horizon reaches past ``end`` without an outcome are skipped
    (their label is not known yet), as are leads with no activity before the outcome.

    Returns:
        ``(X, y, lead_ids)``: an ``(n, N_FEATURES)`` matrix, 0/1 labels and the leads.
    """
    by_lead: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_lead.setdefault(event["subject"], []).append(event)
    rng = np.random.default_rng(seed)
    end_t = end.timestamp()
    horizon_s = horizon_days * DAY_S
    rows: list[np.ndarray] = []
    labels: list[int] = []
    ids: list[str] = []
    for lead in truth:
        lead_events = by_lead.get(lead.lead_id, [])
        outcome_iso = iso_or_empty(lead.outcome_time) or "~"  # "~" sorts after every time
        candidates = [
            i
            for i, e in enumerate(lead_events)
            if e["type"] in ACTIVITY_TYPES and e["time"] < outcome_iso
        ]
        if not candidates:
            continue
        pick = candidates[int(rng.integers(len(candidates)))]
        state = LeadState(lead.lead_id)
        for e in lead_events[: pick + 1]:
            apply_event(state, lead_event_adapter.validate_python(e))
        snap_t = state.last_event_t or 0.0
        if lead.converted and lead.outcome_time is not None:
            label = int(lead.outcome_time.timestamp() - snap_t <= horizon_s)
        elif snap_t + horizon_s > end_t and lead.outcome is None:
            continue  # censored: we cannot know yet
        else:
            label = 0
        rows.append(to_vector(state))
        labels.append(label)
        ids.append(lead.lead_id)
    x = np.vstack(rows) if rows else np.zeros((0, N_FEATURES))
    return x, np.array(labels, dtype=np.int64), ids


def measure_learnability(
    config: SimConfig, *, horizon_days: float = 30.0, test_fraction: float = 0.3, seed: int = 0
) -> dict[str, float]:
    """Simulate, snapshot, fit plain classifiers, and report held-out ROC-AUC.

    Fits scikit-learn's ``HistGradientBoostingClassifier`` (defaults) and a
    ``LogisticRegression`` on ``log1p`` features, on a random split by lead.

    Returns:
        ``leads``, ``events``, ``conversion_rate`` (observed within the span),
        ``snapshots``, ``positive_rate``, ``auc_hgb``, ``auc_logreg``, ``seconds``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    started = time.perf_counter()
    if config.start is None:
        raise ValueError("measure_learnability needs config.start (a fixed, reproducible span)")
    events, truth = simulate_with_truth(config)
    end = datetime.fromtimestamp(config.start.timestamp() + config.span_days * DAY_S, UTC)
    x, y, _ = snapshot_dataset(events, truth, end=end, horizon_days=horizon_days, seed=seed)
    rng = np.random.default_rng(seed)
    test = rng.random(len(y)) < test_fraction
    hgb = HistGradientBoostingClassifier(random_state=seed).fit(x[~test], y[~test])
    logreg = make_pipeline(
        FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=2_000)
    ).fit(x[~test], y[~test])
    return {
        "leads": float(len(truth)),
        "events": float(len(events)),
        "conversion_rate": float(np.mean([t.converted for t in truth])),
        "snapshots": float(len(y)),
        "positive_rate": float(y.mean()),
        "auc_hgb": float(roc_auc_score(y[test], hgb.predict_proba(x[test])[:, 1])),
        "auc_logreg": float(roc_auc_score(y[test], logreg.predict_proba(x[test])[:, 1])),
        "seconds": time.perf_counter() - started,
    }


if __name__ == "__main__":  # python -m leadscore.simulation.learnability --leads 5000 --seed 7
    import argparse

    parser = argparse.ArgumentParser(description="Measure how learnable the simulated signal is.")
    parser.add_argument("--leads", type=int, default=5_000)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=0.15, help="base conversion rate")
    args = parser.parse_args()
    report = measure_learnability(
        SimConfig(
            n_leads=args.leads,
            start=datetime(2026, 1, 5, tzinfo=UTC),
            span_days=args.days,
            seed=args.seed,
            base_conversion_rate=args.rate,
        ),
        seed=args.seed,
    )
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
