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

It runs in its own process (the worker's :class:`~leadscore.streams.retrain.RetrainController`
starts ``python -m leadscore.retraining``), never on an event loop that serves traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError
from rich.console import Console

from leadscore.models.features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from leadscore.models.performance import binary_metrics
from leadscore.models.registry import ModelRegistry
from leadscore.models.training import InsufficientDataError, TrainConfig, TrainingData, train
from leadscore.schemas.learning import TrainingExample
from leadscore.settings import Settings

__all__ = ["decisions_key", "gate", "load_examples", "retrain_job"]

#: Decisions kept in Redis.
KEPT_DECISIONS = 200
#: Fewest of each class in the holdout for a comparison worth making.
MIN_HOLDOUT_PER_CLASS = 10
REFERENCE_ROWS = 500


def decisions_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}retrain:decisions"


def load_examples(settings: Settings) -> tuple[list[TrainingExample], int]:
    """The examples on the training topic (deduplicated by id), and how many were unusable."""
    from leadscore.streams.kafka import read_topic

    values = asyncio.run(read_topic(settings, settings.training_topic))
    examples: dict[str, TrainingExample] = {}
    bad = 0
    for value in values:
        try:
            example = TrainingExample.model_validate_json(value)
        except ValidationError:
            bad += 1
            continue
        if example.feature_spec_version != FEATURE_SPEC_VERSION or len(example.features) != len(FEATURE_NAMES):
            bad += 1
            continue
        examples[example.id] = example
    return sorted(examples.values(), key=lambda e: (e.outcome_time, e.id)), bad


def gate(candidate: dict[str, Any], champion: dict[str, Any] | None, margin: float) -> tuple[bool, str]:
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
        "started_at": _now(),
        "margin": settings.retrain_margin,
    }
    registry = ModelRegistry(settings.model_dir)
    champion_version = registry.champion()
    record["champion"] = champion_version
    lock = _RetrainLock(settings, lock_token) if publish else None
    if lock is not None and not lock.acquire():
        record.update(outcome="skipped", reason=f"another retrain is running ({lock.holder()})")
        _finish(settings, record, started, publish)
        return record
    try:
        if examples is None:
            examples, bad = load_examples(settings)
            record["unusable_examples"] = bad
        outcome = _retrain(settings, list(examples), record, registry, console)
    except Exception as exc:  # recorded and published, then re-raised for the exit status
        record.update(outcome="failed", reason=f"{type(exc).__name__}: {exc}")
        _finish(settings, record, started, publish)
        raise
    finally:
        if lock is not None:
            lock.release()
    record["outcome"] = outcome
    _finish(settings, record, started, publish)
    return record


class _RetrainLock:
    """The Redis lock ``retrain:lock``: one retrain at a time, whoever starts it."""

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, settings: Settings, token: str | None) -> None:
        import redis

        self.client = redis.Redis.from_url(settings.redis_url)
        self.key = f"{settings.redis_prefix}retrain:lock"
        self.ttl = int(settings.retrain_timeout_s) + 60
        self.given = token is not None
        self.token = token or f"{uuid.uuid4().hex}"

    def acquire(self) -> bool:
        if self.given:
            return True
        return bool(self.client.set(self.key, self.token, nx=True, ex=self.ttl))

    def holder(self) -> str:
        value = self.client.get(self.key)
        return f"lock held by {value.decode(errors='replace')}" if value else "lock just released"

    def release(self) -> None:
        try:
            self.client.eval(self._RELEASE, 1, self.key, self.token)
        finally:
            self.client.close()


def _retrain(
    settings: Settings,
    examples: list[TrainingExample],
    record: dict[str, Any],
    registry: ModelRegistry,
    console: Console,
) -> str:
    examples = examples[-settings.retrain_max_examples :]
    n = len(examples)
    y = np.array([e.label for e in examples], dtype=np.int64)
    record["examples"] = {"n": n, "positives": int(y.sum())}
    if n < settings.retrain_min_labels:
        record["reason"] = f"{n} labelled outcomes; a retrain needs retrain_min_labels={settings.retrain_min_labels}"
        return "skipped"
    X = np.array([e.features for e in examples], dtype=np.float64)
    times = np.array([e.outcome_time.timestamp() for e in examples])
    leads = np.array([e.lead_id for e in examples])
    cut = int(round(n * (1 - settings.retrain_holdout_fraction)))
    y_hold = y[cut:]
    record["training"] = _span(examples[:cut], y[:cut])
    record["holdout"] = _span(examples[cut:], y_hold)
    if min(int(y_hold.sum()), int(len(y_hold) - y_hold.sum())) < MIN_HOLDOUT_PER_CLASS:
        record["reason"] = (
            f"the holdout ({len(y_hold)} most recent outcomes) has {int(y_hold.sum())} conversions; "
            f"the comparison needs {MIN_HOLDOUT_PER_CLASS} of each class"
        )
        return "skipped"
    variant = settings.model_variant if settings.model_variant != "auto" else "ensemble"
    data = TrainingData(
        X=X[:cut], y=y[:cut], feature_names=FEATURE_NAMES, groups=leads[:cut], times=times[:cut],
        source=f"{settings.training_topic}: {cut} outcomes before the holdout",
    )
    config = TrainConfig(
        folds=settings.retrain_folds, search=settings.retrain_search, variant=variant, compare=(variant,)
    )
    fit_started = time.perf_counter()
    try:
        result = train(data, config)
    except InsufficientDataError as exc:
        record["reason"] = f"could not train: {exc}"
        return "skipped"
    record["train_seconds"] = round(time.perf_counter() - fit_started, 2)

    X_hold = X[cut:]
    candidate = binary_metrics(y_hold, result.model.predict_proba(X_hold)[:, 1])
    champion = None
    try:
        from leadscore.streams.app import load_scorer

        scorer = load_scorer(settings)
        champion = binary_metrics(y_hold, scorer.probabilities(X_hold))
        record["champion_scored_as"] = scorer.version
    except Exception as exc:  # no usable champion: the candidate is judged alone
        record["champion_error"] = repr(exc)
    record["metrics"] = {"candidate": candidate, "champion": champion}
    promote, reason = gate(candidate, champion, settings.retrain_margin)
    record["reason"] = reason

    report = result.report
    report["gate"] = {k: record.get(k) for k in ("trigger", "holdout", "metrics", "margin", "champion")}
    report["gate"]["decision"] = "promoted" if promote else "rejected"
    report["gate"]["reason"] = reason
    chosen = next(m for m in report["models"] if m["name"] == result.variant)
    rng = np.random.default_rng(0)
    sample = X[np.sort(rng.choice(n, min(REFERENCE_ROWS, n), replace=False))]
    manifest = registry.save(
        result.model,
        kind="lead_events",
        pipeline=None,
        report=report,
        metrics={
            "variant": result.variant,
            "cv": chosen["cv"],
            "cv_scheme": report["data"]["cv"],
            "holdout": candidate,
            "champion_holdout": champion,
            "gate": "promoted" if promote else "rejected",
        },
        training_window=(examples[0].outcome_time, examples[cut - 1].outcome_time),
        n_rows=cut,
        class_balance={"negative": float(cut - y[:cut].sum()), "positive": float(y[:cut].sum())},
        params=result.params,
        reference_sample=sample,
        source=data.source,
    )
    record["candidate"] = manifest.version
    console.print(f"retrain {record['id']}: candidate {manifest.version}: {reason}")
    if promote:
        from leadscore.jobs import promote_job

        change = promote_job(settings, manifest.version, reason=f"retrain ({record['trigger']}): {reason}")
        if change.announce_error:
            record["announce_warning"] = change.announce_error
        return "promoted"
    return "rejected"


def _span(examples: Sequence[TrainingExample], y: np.ndarray) -> dict[str, Any]:
    return {
        "n": len(examples),
        "positives": int(y.sum()),
        "from": examples[0].outcome_time.isoformat() if examples else None,
        "to": examples[-1].outcome_time.isoformat() if examples else None,
    }


def _finish(settings: Settings, record: dict[str, Any], started: float, publish: bool) -> None:
    record["finished_at"] = _now()
    record["seconds"] = round(time.perf_counter() - started, 2)
    if not publish:
        return
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    try:
        key = decisions_key(settings)
        client.lpush(key, orjson.dumps(record))
        client.ltrim(key, 0, KEPT_DECISIONS - 1)
    finally:
        client.close()
    from leadscore.schemas.models import RetrainDecided
    from leadscore.streams.model_events import ModelEventPublishError, publish_model_event

    event = RetrainDecided(
        id=f"me_{uuid.uuid4().hex}",
        version=record.get("candidate") or record.get("champion") or "none",
        reason=str(record.get("reason", ""))[:2000],
        at=datetime.now(timezone.utc),
        outcome=record["outcome"],
        decision=record,
    )
    try:
        asyncio.run(publish_model_event(settings, event))
    except ModelEventPublishError as exc:
        record["announce_warning"] = str(exc)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m leadscore.retraining [--trigger T] [--detail D]``: one retrain; the decision as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m leadscore.retraining")
    parser.add_argument("--trigger", default="manual")
    parser.add_argument("--detail", default="")
    parser.add_argument("--lock-token", default=None, help="the retrain lock is held with this token")
    args = parser.parse_args(argv)
    console = Console(file=io.StringIO())
    try:
        record = retrain_job(
            Settings(), trigger=args.trigger, detail=args.detail, console=console, lock_token=args.lock_token
        )
    except Exception as exc:
        sys.stdout.write(orjson.dumps({"outcome": "failed", "reason": repr(exc)}).decode() + "\n")
        return 1
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
