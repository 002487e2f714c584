"""Retraining from labelled outcomes, behind a champion/challenger gate: ``leadscore retrain``.

One run (docs/drift.md):

1. read ``leads.training.v1`` to its end; keep the latest ``retrain_max_examples``
   examples of the current feature definition (one per lead: its first outcome);
2. hold out the most recent ``retrain_holdout_fraction`` of them by outcome time;
3. train a candidate on the rest (time-ordered cross-validation, the usual search);
4. score the holdout with the candidate and with the current champion (or the rules
   prior it stands in for); promote the candidate only if its ROC-AUC beats the
   champion's by ``retrain_margin``, else keep it in the registry, rejected, with the
   reason;
5. record the decision (Redis list ``retrain:decisions``, newest first) and publish it on
   ``models.events.v1`` (``model.retrain_decided``; a promotion also ``model.promoted``).

It runs in its own process (the worker's :class:`~leadscore.streams.retrain_trigger.RetrainController`
starts ``python -m leadscore.jobs.retrain``), never on an event loop that serves traffic.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from rich.console import Console

from leadscore.infra.model_admin import promote_model
from leadscore.infra.scorer import load_scorer
from leadscore.jobs.retrain_decision import RetrainLock, finish_record, now_iso
from leadscore.jobs.training_examples import load_examples, load_samples
from leadscore.models.features.vector import FEATURE_NAMES
from leadscore.models.monitoring.performance import binary_metrics
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.training.candidates import TrainConfig
from leadscore.models.training.folds import InsufficientDataError, TrainingData
from leadscore.models.training.snapshots import snapshot_set
from leadscore.models.training.train import train
from leadscore.schemas.learning import FeatureSample, TrainingExample
from leadscore.settings import Settings

__all__ = ["gate", "retrain_job"]

#: Fewest of each class in the holdout for a comparison worth making.
MIN_HOLDOUT_PER_CLASS = 10
REFERENCE_ROWS = 500


def gate(
    candidate: dict[str, Any], champion: dict[str, Any] | None, margin: float
) -> tuple[bool, str]:
    """Promote or not, and why, from both models' holdout metrics.

    Examples:
        >>> gate({"roc_auc": 0.80, "brier": 0.1}, {"roc_auc": 0.78, "brier": 0.1}, 0.005)
        (True, 'candidate ROC-AUC 0.8000 beats the champion 0.7800 by 0.0200 >= margin 0.005')
        >>> gate({"roc_auc": 0.78, "brier": 0.1}, {"roc_auc": 0.78, "brier": 0.1}, 0.005)[0]
        False
    """
    cand = candidate.get("roc_auc")
    if cand is None:
        return False, "the holdout has too few of one class for a ROC-AUC"
    if champion is None or champion.get("roc_auc") is None:
        return True, f"no champion to compare with; candidate ROC-AUC {cand:.4f}"
    champ = champion["roc_auc"]
    gain = cand - champ
    if gain >= margin:
        return True, (
            f"candidate ROC-AUC {cand:.4f} beats the champion {champ:.4f} by {gain:.4f} >= margin {margin}"
        )
    return False, (
        f"candidate ROC-AUC {cand:.4f} vs champion {champ:.4f}: gain {gain:+.4f} is below the "
        f"margin {margin}; the champion stays"
    )


def retrain_job(
    settings: Settings,
    *,
    trigger: str = "manual",
    detail: str = "",
    examples: Sequence[TrainingExample] | None = None,
    samples: Sequence[FeatureSample] | None = None,
    console: Console | None = None,
    publish: bool = True,
    lock_token: str | None = None,
) -> dict[str, Any]:
    """Train a candidate on recent outcomes and promote it only if it beats the champion.

    Args:
        settings: registry, topics, the ``retrain_*`` options.
        trigger: why (``drift``, ``labels``, ``schedule``, ``manual``), for the record.
        detail: more on why (e.g. the drift event id and its features).
        examples: use these instead of reading the training topic.
        samples: with ``retrain_training_set=snapshots``, use these scored vectors instead of
            reading the features topic.
        publish: record the decision in Redis and publish it on ``models.events.v1``; also
            take the Redis retrain lock, so that one retrain runs at a time across workers,
            the API and the CLI (a retrain that finds it held ends ``skipped``).
        lock_token: the lock is already held with this token (the worker's controller took
            it before starting this process); it is released at the end.

    Returns:
        the decision record (``outcome``: promoted, rejected or skipped).
    """
    console = console or Console(stderr=True)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "id": f"rt_{uuid.uuid4().hex[:16]}",
        "trigger": trigger,
        "detail": detail,
        "started_at": now_iso(),
        "margin": settings.retrain_margin,
    }
    registry = ModelRegistry(settings.model_dir)
    champion_version = registry.champion()
    record["champion"] = champion_version
    lock = RetrainLock(settings, lock_token) if publish else None
    if lock is not None and not lock.acquire():
        record.update(outcome="skipped", reason=f"another retrain is running ({lock.holder()})")
        finish_record(settings, record, started, publish)
        return record
    try:
        if examples is None:
            examples, bad = load_examples(settings)
            record["unusable_examples"] = bad
        outcome = _retrain(settings, list(examples), record, registry, console, samples)
    except Exception as exc:  # recorded and published, then re-raised for the exit status
        record.update(outcome="failed", reason=f"{type(exc).__name__}: {exc}")
        finish_record(settings, record, started, publish)
        raise
    finally:
        if lock is not None:
            lock.release()
    record["outcome"] = outcome
    finish_record(settings, record, started, publish)
    return record


def _retrain(
    settings: Settings,
    examples: list[TrainingExample],
    record: dict[str, Any],
    registry: ModelRegistry,
    console: Console,
    samples: Sequence[FeatureSample] | None = None,
) -> str:
    labels = examples  # every outcome labels snapshots, whatever rows are kept
    examples = examples[-settings.retrain_max_examples :]
    n_outcomes = len(examples)
    record["examples"] = {"n": n_outcomes, "positives": sum(e.label for e in examples)}
    if n_outcomes < settings.retrain_min_labels:
        record["reason"] = (
            f"{n_outcomes} labelled outcomes; a retrain needs retrain_min_labels={settings.retrain_min_labels}"
        )
        return "skipped"
    rows = _rows(
        settings,
        examples if settings.retrain_training_set == "outcomes" else labels,
        samples,
        record,
    )
    X, y, leads, times, horizon_s = rows
    n = len(y)
    if settings.retrain_training_set == "snapshots":
        # The holdout is the latest share of snapshot times; a training row whose horizon
        # reaches into it is dropped (its label was decided there).
        cut_t = float(np.quantile(times, 1 - settings.retrain_holdout_fraction)) if n else 0.0
        train_idx = np.flatnonzero(times + horizon_s <= cut_t)[-settings.retrain_max_examples :]
        hold_idx = np.flatnonzero(times >= cut_t)
    else:
        cut = int(round(n * (1 - settings.retrain_holdout_fraction)))
        train_idx, hold_idx = np.arange(cut), np.arange(cut, n)
    y_hold = y[hold_idx]
    record["training"] = _span(times[train_idx], y[train_idx])
    record["holdout"] = _span(times[hold_idx], y_hold)
    if min(int(y_hold.sum()), int(len(y_hold) - y_hold.sum())) < MIN_HOLDOUT_PER_CLASS:
        record["reason"] = (
            f"the holdout ({len(y_hold)} most recent rows) has {int(y_hold.sum())} conversions; "
            f"the comparison needs {MIN_HOLDOUT_PER_CLASS} of each class"
        )
        return "skipped"
    variant = settings.model_variant if settings.model_variant != "auto" else "ensemble"
    data = TrainingData(
        X=X[train_idx], y=y[train_idx], feature_names=FEATURE_NAMES, groups=leads[train_idx],
        # Outcomes: time-ordered folds. Snapshots: folds by lead (a 30-day purge at every
        # time cut leaves no usable folds in a few weeks of rows); the holdout is in time.
        times=times[train_idx] if settings.retrain_training_set == "outcomes" else None,
        source=f"{record['training_set']}: {len(train_idx)} rows before the holdout",
    )  # fmt: skip
    config = TrainConfig(
        folds=settings.retrain_folds,
        search=settings.retrain_search,
        variant=variant,
        compare=(variant,),
    )
    fit_started = time.perf_counter()
    try:
        result = train(data, config)
    except InsufficientDataError as exc:
        record["reason"] = f"could not train: {exc}"
        return "skipped"
    record["train_seconds"] = round(time.perf_counter() - fit_started, 2)

    X_hold = X[hold_idx]
    candidate = binary_metrics(y_hold, result.model.predict_proba(X_hold)[:, 1])
    champion = None
    try:
        scorer = load_scorer(settings)
        champion = binary_metrics(y_hold, scorer.probabilities(X_hold))
        record["champion_scored_as"] = scorer.version
    except Exception as exc:  # no usable champion: the candidate is judged alone
        record["champion_error"] = repr(exc)
    record["metrics"] = {"candidate": candidate, "champion": champion}
    promote, reason = gate(candidate, champion, settings.retrain_margin)
    record["reason"] = reason

    report = result.report
    report["gate"] = {
        k: record.get(k)
        for k in ("trigger", "training_set", "holdout", "metrics", "margin", "champion")
    }
    report["gate"]["decision"] = "promoted" if promote else "rejected"
    report["gate"]["reason"] = reason
    chosen = next(m for m in report["models"] if m["name"] == result.variant)
    rng = np.random.default_rng(0)
    sample = X[np.sort(rng.choice(n, min(REFERENCE_ROWS, n), replace=False))]
    train_t = times[train_idx]
    manifest = registry.save(
        result.model,
        kind="lead_events",
        pipeline=None,
        report=report,
        metrics={
            "variant": result.variant,
            "cv": chosen["cv"],
            "cv_scheme": report["data"]["cv"],
            "training_set": record["training_set"],
            "holdout": candidate,
            "champion_holdout": champion,
            "gate": "promoted" if promote else "rejected",
        },
        training_window=(_utc(float(train_t.min())), _utc(float(train_t.max()))),
        n_rows=len(train_idx),
        class_balance={
            "negative": float(len(train_idx) - y[train_idx].sum()),
            "positive": float(y[train_idx].sum()),
        },
        params=result.params,
        reference_sample=sample,
        source=data.source,
    )
    record["candidate"] = manifest.version
    console.print(f"retrain {record['id']}: candidate {manifest.version}: {reason}")
    if promote:
        change = promote_model(
            settings, manifest.version, reason=f"retrain ({record['trigger']}): {reason}"
        )
        if change.announce_error:
            record["announce_warning"] = change.announce_error
        return "promoted"
    return "rejected"


def _rows(
    settings: Settings,
    examples: list[TrainingExample],
    samples: Sequence[FeatureSample] | None,
    record: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(X, y, leads, times, horizon_s) in time order, from the training set the settings name."""
    if settings.retrain_training_set == "outcomes":
        record["training_set"] = f"{settings.training_topic} (vectors just before the outcome)"
        return (
            np.array([e.features for e in examples], dtype=np.float64).reshape(
                -1, len(FEATURE_NAMES)
            ),
            np.array([e.label for e in examples], dtype=np.int64),
            np.array([e.lead_id for e in examples], dtype=object),
            np.array([e.outcome_time.timestamp() for e in examples]),
            0.0,
        )
    if samples is None:
        samples = load_samples(settings)
    horizon_s = settings.retrain_horizon_days * 86_400.0
    outcomes: dict[str, tuple[float, int]] = {
        e.lead_id: (e.outcome_time.timestamp(), e.label) for e in examples
    }
    snaps = snapshot_set(
        ((s.lead_id, s.event_time.timestamp(), s.features) for s in samples),
        outcomes, n_features=len(FEATURE_NAMES), horizon_s=horizon_s,
    )  # fmt: skip
    record["training_set"] = (
        f"{settings.features_topic} snapshots, one per lead per day, labelled by "
        f"{settings.training_topic} within {settings.retrain_horizon_days:g} days"
    )
    record["snapshots"] = {
        "n": len(snaps),
        "positives": int(snaps.y.sum()),
        "samples": len(samples),
    }
    return snaps.X, snaps.y, snaps.leads, snaps.times, horizon_s


def _span(times: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return {
        "n": int(y.size),
        "positives": int(y.sum()),
        "from": _utc(float(times.min())).isoformat() if times.size else None,
        "to": _utc(float(times.max())).isoformat() if times.size else None,
    }


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m leadscore.jobs.retrain [--trigger T] [--detail D]``: one retrain; the decision as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m leadscore.jobs.retrain")
    parser.add_argument("--trigger", default="manual")
    parser.add_argument("--detail", default="")
    parser.add_argument(
        "--lock-token", default=None, help="the retrain lock is held with this token"
    )
    args = parser.parse_args(argv)
    console = Console(file=io.StringIO())
    try:
        record = retrain_job(
            Settings(),
            trigger=args.trigger,
            detail=args.detail,
            console=console,
            lock_token=args.lock_token,
        )
    except Exception as exc:
        sys.stdout.write(orjson.dumps({"outcome": "failed", "reason": repr(exc)}).decode() + "\n")
        return 1
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
