"""The whole loop in a real worker: outcomes → training topic, drift alert → retrain → swap.

One worker on the real broker and Redis, starting with an empty registry (the rules
prior scores), fed a simulated history with a market shift. Its drift agent must raise an
alert, the alert must start a retrain in a child process, the retrain must read the
examples the same worker wrote to ``leads.training.v1``, and after the promotion the
worker must score new events with the new model, without a restart.

The gate itself (promote only if better) is tested in ``test_retraining.py``; here the
margin is -1 so that any trained candidate is promoted and the wiring is what is tested.
The detection delay and the false-alarm rate are measured in ``test_closed_loop_inputs.py``
and ``benchmarks/drift_loop.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from leadscore.infra.closed_loop_store import ClosedLoopKeys
from leadscore.infra.kafka.publish import publish
from leadscore.simulation.config import Shift, SimConfig
from leadscore.simulation.simulator import Simulator
from tests.integration.worker_harness import (
    create_topics,
    read_to_end,
    running_worker,
    wait_all_committed,
    wait_until,
    worker_settings,
)

pytestmark = pytest.mark.integration


async def test_a_drift_alert_retrains_and_the_worker_swaps_to_the_promoted_model(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    prefix = f"loop{datetime.now(UTC).strftime('%H%M%S%f')}."
    settings = worker_settings(
        prefix,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=tmp_path / "models",
        drift_window_size=150,
        drift_baseline_windows=2,
        retrain_on_drift="low",
        retrain_min_new_labels=0,
        retrain_min_labels=200,
        retrain_folds=2,
        retrain_search="none",
        retrain_cooldown_s=15.0,
        retrain_margin=-1.0,
        retrain_horizon_days=7.0,  # snapshots (the default training set) labelled within a week
        model_variant="ensemble",
    )
    now = datetime.now(UTC)
    config = SimConfig(
        n_leads=2000,
        span_days=60,
        max_life_days=20,
        seed=11,
        shift=Shift(at=now - timedelta(days=30)),
    )
    events = list(Simulator(config).events(now=now))
    outcomes = sum(e["type"] in ("lead.converted", "lead.disqualified") for e in events)
    assert outcomes >= 350, "the simulation must give the retrain enough labels"
    await create_topics(settings)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        async with running_worker(settings, tmp_path / "worker.log") as worker:
            await publish(events, settings)
            await wait_all_committed(settings, workers=[worker], timeout_s=300)

            async def decisions() -> list[dict[str, Any]]:
                return [
                    orjson.loads(r)
                    for r in await redis.lrange(
                        ClosedLoopKeys(settings.redis_prefix).decisions, 0, -1
                    )
                ]

            found = await wait_until(
                "a promoted retrain", decisions,
                lambda ds: any(d.get("outcome") == "promoted" for d in ds),
                timeout_s=240, workers=[worker], poll_s=1.0,
            )  # fmt: skip
            promoted = next(d for d in found if d["outcome"] == "promoted")
            assert promoted["trigger"] == "drift"
            assert "drift on model rules-" in promoted["detail"]  # the alert named the prior
            assert promoted["examples"]["n"] >= 200
            assert promoted["training_set"].startswith(settings.features_topic)  # snapshots
            assert promoted["snapshots"]["n"] > promoted["examples"]["n"]
            assert (
                promoted["holdout"]["n"] > 0
                and promoted["metrics"]["candidate"]["roc_auc"] is not None
            )
            version = promoted["candidate"]

            # The alert that started it is on models.drift.v1 and in Redis.
            drift = [
                orjson.loads(r.value)
                for r in await read_to_end(kafka_bootstrap, [settings.drift_topic], 1)
            ]
            assert any(
                d["level"] != "none" and d["model_version"].startswith("rules-") for d in drift
            )
            # The examples it trained on were written by this worker, point in time.
            examples = [
                orjson.loads(r.value)
                for r in await read_to_end(
                    kafka_bootstrap, [settings.training_topic], settings.topic_partitions
                )
            ]
            assert len({e["lead_id"] for e in examples}) == len({e["id"] for e in examples}) >= 200
            assert all(
                e["feature_time"] is None or e["feature_time"] <= e["outcome_time"]
                for e in examples
            )

            # The worker swaps without a restart: new events are scored by the new champion.
            # The decision reaches Redis as soon as the pointer moved and the event went out,
            # while the worker is still loading the model (about a second), and 40 leads'
            # events are scored in one batch: published then, they were all scored by the
            # rules prior before the swap. The swap is logged once the new scorer is in
            # place (ModelFollower.sync), so every batch that starts after the line uses it.
            await wait_until(
                "the worker's swap to the promoted model", lambda: _log_of(worker),
                lambda text: f"model {version} replaces" in text, timeout_s=60, workers=[worker],
            )  # fmt: skip
            later = SimConfig(n_leads=40, span_days=2, seed=12, run_id="after")
            new_events = list(Simulator(later).events(now=datetime.now(UTC)))
            new_leads = {e["subject"] for e in new_events}
            await publish(new_events, settings)

            async def versions() -> dict[str, set[str]]:
                """Lead -> the model versions of its score events, for the new leads."""
                records = await read_to_end(
                    kafka_bootstrap, [settings.scores_topic], settings.topic_partitions
                )
                seen: dict[str, set[str]] = {}
                for r in records:
                    if r.key.startswith(b"after"):
                        score = orjson.loads(r.value)
                        seen.setdefault(score["lead_id"], set()).add(score["model_version"])
                return seen

            scored = await wait_until(
                "scores of every new lead", versions, lambda seen: set(seen) == new_leads,
                timeout_s=120, workers=[worker], poll_s=1.0,
            )  # fmt: skip
            assert {v for vs in scored.values() for v in vs} == {version}
    finally:
        await redis.aclose()


async def _log_of(worker: Any) -> str:
    return worker.log_text()
