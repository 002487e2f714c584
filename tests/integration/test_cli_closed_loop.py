"""``leadscore retrain`` and ``leadscore drift`` against the real broker and Redis.

The commands read ``Settings()`` from the environment, set here per test. ``retrain``
runs in-process (CliRunner): skipped on an empty training topic, a decision with both
models' holdout metrics on a small simulated training set, exit status 1 when the
broker cannot be reached. ``drift`` prints what the drift agent keeps in Redis, put
there directly in the agent's shapes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.infra.closed_loop_store import ClosedLoopKeys
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.launch import settings_env
from leadscore.infra.scorer import load_scorer
from leadscore.models.batch.replay import replay
from leadscore.models.registry.store import ModelRegistry
from leadscore.schemas.learning import DriftEvent
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import simulate

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(180)]

runner = CliRunner()


def use(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``Settings()`` in the command equal ``settings``."""
    for key in list(os.environ):
        if key.startswith("LEADSCORE_") or key in ("KAFKA_BOOTSTRAP", "REDIS_URL"):
            monkeypatch.delenv(key)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, name_prefix: str, tmp_path: Path) -> Any:
    values = Settings(
        kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, redis_prefix=name_prefix,
        model_dir=tmp_path / "models", training_topic=f"{name_prefix}leads.training.v1",
        model_events_topic=f"{name_prefix}models.events.v1", retrain_folds=2, retrain_search="none",
        retrain_min_labels=100, min_training_labels=0, retrain_training_set="outcomes",
    )  # fmt: skip
    yield values
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name_prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


async def publish_training_set(settings: Settings, n_leads: int) -> int:
    """Create the topics; publish the training examples of a small simulated run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(settings.training_topic, num_partitions=2, replication_factor=1),
            NewTopic(settings.model_events_topic, num_partitions=1, replication_factor=1),
        ])  # fmt: skip
    finally:
        await admin.close()
    if not n_leads:
        return 0
    rules = load_scorer(Settings(model_dir=settings.model_dir / "none"))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    config = SimConfig(n_leads=n_leads, span_days=40, seed=6, start=start, max_life_days=30)
    examples = [e for batch in replay(simulate(config), rules) for e in batch.examples]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                settings.training_topic,
                key=e.lead_id.encode(),
                value=orjson.dumps(e.model_dump(mode="json")),
            )
            for e in examples
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(examples)


def test_retrain_on_an_empty_topic_is_skipped_with_exit_status_0(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(publish_training_set(settings, 0))
    use(settings, monkeypatch)
    result = runner.invoke(app, ["retrain", "--detail", "ticket 42"])
    assert result.exit_code == 0, result.output
    assert "(manual): SKIPPED" in result.output
    assert "0 labelled outcomes; a retrain needs retrain_min_labels=100" in result.output
    assert "why:       ticket 42" in result.output

    as_json = runner.invoke(app, ["retrain", "--json"])
    assert as_json.exit_code == 0, as_json.output
    record = json.loads(as_json.output)
    assert record["outcome"] == "skipped" and record["trigger"] == "manual"
    client = redis.Redis.from_url(settings.redis_url)
    try:
        assert [
            orjson.loads(d)["id"]
            for d in client.lrange(ClosedLoopKeys(settings.redis_prefix).decisions, 0, -1)
        ][0] == record["id"]
    finally:
        client.close()


def test_retrain_prints_the_decision_with_both_models_on_the_holdout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = asyncio.run(publish_training_set(settings, 1500))
    assert n > 300
    use(settings, monkeypatch)
    result = runner.invoke(app, ["retrain"])
    assert result.exit_code == 0, result.output
    outcome = re.search(r"\(manual\): (PROMOTED|REJECTED)", result.output)
    assert outcome, result.output
    assert f"examples:  {n:,} labelled outcomes" in result.output
    candidate = re.search(r"candidate +([0-9.]+) +([0-9.]+) +([0-9.]+) +(\S+)", result.output)
    champion = re.search(r"champion +([0-9.]+) +([0-9.]+) +([0-9.]+) +(rules-\S+)", result.output)
    assert candidate and champion, result.output  # the champion is the rules prior (empty registry)
    version = candidate.group(4)
    assert version in ModelRegistry(settings.model_dir).list()
    assert re.search(r"took [0-9.]+ s \(training [0-9.]+ s\)", result.output)


def test_retrain_that_fails_exits_1_and_says_why(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}), monkeypatch)
    result = runner.invoke(app, ["retrain"])
    assert result.exit_code == 1, result.output
    assert "retrain failed:" in result.output
    client = redis.Redis.from_url(settings.redis_url)
    try:
        (raw,) = client.lrange(ClosedLoopKeys(settings.redis_prefix).decisions, 0, -1)
    finally:
        client.close()
    assert orjson.loads(raw)["outcome"] == "failed"


def test_drift_prints_level_model_window_and_the_top_features(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    features = [
        {"feature": name, "test": test, "statistic": stat, "p_value": p, "adjusted_p": p * 40, "effect": stat,
         "drifted": stat > 0.1, "persistent": stat > 0.2, "large": stat > 0.25}
        for name, test, stat, p in [("email_open_rate", "ks", 0.31, 1.5e-12), ("industry", "psi", 0.22, 3e-6),
                                    ("web_visits_7d", "ks", 0.04, 0.41)]
    ]  # fmt: skip
    event = DriftEvent(
        type="drift.window", id="drift-1", model_version="20260301T000000Z-abc123", agent="host:1", level="high",
        window_index=7, n_rows=1000, at=datetime(2026, 3, 1, 12, tzinfo=UTC),
        report={"level": "high", "reason": "2 features drift persistently", "features": features,
                "score": {"test": "ks", "statistic": 0.18, "p_value": 2e-9, "drifted": True}},
    )  # fmt: skip
    summary = {
        "window": {"n": 500, "roc_auc": 0.74, "brier": 0.141, "accuracy": 0.8, "f1": 0.55},
        "baseline": {"roc_auc": 0.86}, "level": "high", "labels_seen": 2400,
    }  # fmt: skip
    keys = ClosedLoopKeys(settings.redis_prefix)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        client.hset(keys.latest, event.model_version, orjson.dumps(event.model_dump(mode="json")))
        client.hset(keys.performance, event.model_version, orjson.dumps(summary))
        client.lpush(ClosedLoopKeys(settings.redis_prefix).decisions, orjson.dumps(
            {"id": "rt_1", "trigger": "drift", "outcome": "promoted", "candidate": "20260301T120000Z-def456",
             "reason": "candidate ROC-AUC 0.8100 beats the champion 0.7400", "finished_at": "2026-03-01T12:05:00"}
        ))  # fmt: skip
    finally:
        client.close()
    use(settings, monkeypatch)

    result = runner.invoke(app, ["drift", "--top", "2"])

    assert result.exit_code == 0, result.output
    out = result.output
    assert "model 20260301T000000Z-abc123: drift HIGH in window 7 (1,000 leads)" in out
    assert re.search(r"email_open_rate +ks +0\.3100 +1\.50e-12 +6\.00e-11 +persistent", out), out
    assert re.search(r"industry +psi +0\.2200 +3\.00e-06", out), out
    assert "web_visits_7d" not in out  # --top 2: the two most drifting only
    assert "score distribution: ks 0.1800, p 2.00e-09, drifting" in out
    assert "ROC-AUC 0.7400 (baseline 0.8600)" in out and "alert high" in out
    assert re.search(r"drift +promoted +20260301T120000Z-def456 +candidate ROC-AUC 0\.8100", out), (
        out
    )


def test_drift_before_any_report(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    use(settings, monkeypatch)
    result = runner.invoke(app, ["drift"])
    assert result.exit_code == 0, result.output
    assert "no drift reports yet" in result.output


def test_train_from_the_training_topic(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    n = asyncio.run(publish_training_set(settings, 1500))
    use(settings, monkeypatch)
    result = runner.invoke(app, ["train", "--training-topic", "--folds", "2", "--search", "none",
                                 "--variant", "ensemble", "--compare", "ensemble"])  # fmt: skip
    assert result.exit_code == 0, result.output
    registry = ModelRegistry(settings.model_dir)
    version = registry.champion()
    assert version is not None
    manifest = registry.manifest(version)
    assert manifest.n_rows == n
    assert manifest.source == f"{settings.training_topic}: {n} outcomes"
    assert manifest.training_window is not None  # outcome times: validated in time order

    both = runner.invoke(app, ["train", "--training-topic", "--events", str(Path(__file__))])
    assert both.exit_code == 2 and "one of --data, --events and --training-topic" in both.output
