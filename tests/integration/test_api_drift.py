"""``GET /v1/drift``, ``/v1/drift/performance``, ``/v1/models/retraining`` and ``POST /v1/models/retrain``.

``leadscore api`` runs as a process on the real broker and Redis. The drift agent's and
the retrainer's records are put into Redis directly, in the shapes they write (a
``DriftEvent``, a ``PerformanceWindow.summary()``, a decision record), so the GET routes
are checked against known content; the POST starts a real retrain job, which finds the
training topic empty and is skipped.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis
from api_harness import drop_redis_keys, make_keys, running_api
from worker_harness import create_topics, worker_settings

from leadscore.infra.closed_loop_store import ClosedLoopKeys
from leadscore.infra.embedded.addresses import free_port
from leadscore.schemas.learning import DriftEvent
from leadscore.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(180)]

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Api:
    settings: Settings
    url: str
    keys: dict[str, str]

    def client(self, scope: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.keys[scope]}, timeout=30)


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api-drift")
    settings = worker_settings(
        f"t-api-drift-{uuid.uuid4().hex[:8]}.",
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=root / "models",  # empty: the rules prior serves
        api_port=free_port(),
        api_jobs_dir=root / "jobs",
        training_topic=f"t-api-drift-{uuid.uuid4().hex[:8]}.leads.training.v1",
    )
    asyncio.run(create_topics(settings))  # the training topic too: it exists, and is empty
    try:
        with running_api(settings, root / "api.log") as url:
            yield Api(settings, url, make_keys(settings))
    finally:
        drop_redis_keys(settings)


def drift_event(version: str, index: int, level: str) -> DriftEvent:
    feature = {
        "feature": "email_open_rate", "test": "ks", "statistic": 0.31, "p_value": 1e-12,
        "adjusted_p": 4e-11, "effect": 0.31, "drifted": True, "persistent": True, "large": True,
    }  # fmt: skip
    return DriftEvent(
        type="drift.window", id=f"drift-{version}-{index}", model_version=version, agent="host:1",
        level=level, window_index=index, n_rows=1000, at=AT,
        report={"window_index": index, "n_rows": 1000, "tested": True, "level": level, "reason": "",
                "persistent_features": ["email_open_rate"], "features": [feature], "score": None},
    )  # fmt: skip


def put(
    settings: Settings,
    events: list[DriftEvent],
    performance: dict[str, Any],
    decisions: list[dict[str, Any]],
) -> None:
    """Write what the drift agent and the retrainer write (lists newest first, as they LPUSH)."""
    keys = ClosedLoopKeys(settings.redis_prefix)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        client.delete(
            keys.events,
            keys.latest,
            keys.performance,
            ClosedLoopKeys(settings.redis_prefix).decisions,
        )
        for event in events:  # oldest first
            body = orjson.dumps(event.model_dump(mode="json"))
            client.lpush(keys.events, body)
            client.hset(keys.latest, event.model_version, body)
        if performance:
            client.hset(
                keys.performance, mapping={v: orjson.dumps(s) for v, s in performance.items()}
            )
        for decision in decisions:
            client.lpush(ClosedLoopKeys(settings.redis_prefix).decisions, orjson.dumps(decision))
    finally:
        client.close()


def test_drift_reports_latest_per_model_and_newest_first(api: Api) -> None:
    events = [
        drift_event("m1", 1, "none"),
        drift_event("m1", 2, "medium"),
        drift_event("m2", 1, "high"),
    ]
    put(api.settings, events, {}, [])
    with api.client("read") as client:
        body = client.get("/v1/drift").json()
        assert set(body["latest"]) == {"m1", "m2"}
        assert (
            body["latest"]["m1"]["id"] == "drift-m1-2" and body["latest"]["m1"]["level"] == "medium"
        )
        assert body["latest"]["m2"]["report"]["features"][0]["statistic"] == 0.31
        assert [e["id"] for e in body["events"]] == ["drift-m2-1", "drift-m1-2", "drift-m1-1"]
        assert DriftEvent.model_validate(body["events"][0]) == events[-1]
        assert [e["id"] for e in client.get("/v1/drift", params={"limit": 1}).json()["events"]] == [
            "drift-m2-1"
        ]
        only_latest = client.get("/v1/drift", params={"limit": 0}).json()
        assert only_latest["events"] == [] and set(only_latest["latest"]) == {"m1", "m2"}
        assert client.get("/v1/drift", params={"limit": 501}).status_code == 422


def test_drift_routes_answer_empty_before_the_agent_wrote_anything(api: Api) -> None:
    put(api.settings, [], {}, [])
    with api.client("read") as client:
        assert client.get("/v1/drift").json() == {"latest": {}, "events": []}
        assert client.get("/v1/drift/performance").json() == {"performance": {}}
        assert client.get("/v1/models/retraining").json() == {"decisions": []}


def test_performance_per_model_version(api: Api) -> None:
    summary = {
        "window": {"n": 500, "accuracy": 0.81, "precision": 0.6, "recall": 0.5, "f1": 0.55,
                   "roc_auc": 0.74, "brier": 0.14},
        "baseline": {"roc_auc": 0.86}, "level": "high", "labels_seen": 2400, "auc_drop_threshold": 0.05,
    }  # fmt: skip
    put(api.settings, [], {"m1": summary, "m2": {**summary, "level": "none"}}, [])
    with api.client("read") as client:
        body = client.get("/v1/drift/performance").json()
    assert body == {"performance": {"m1": summary, "m2": {**summary, "level": "none"}}}


def test_retrain_decisions_newest_first(api: Api) -> None:
    decisions = [
        {"id": f"rt_{i}", "outcome": o, "reason": f"r{i}"}
        for i, o in enumerate(["skipped", "rejected", "promoted"])
    ]
    put(api.settings, [], {}, decisions)
    with api.client("read") as client:
        body = client.get("/v1/models/retraining").json()
        assert [d["id"] for d in body["decisions"]] == ["rt_2", "rt_1", "rt_0"]
        assert body["decisions"][0] == decisions[-1]
        assert [d["id"] for d in client.get("/v1/models/retraining", params={"limit": 2}).json()["decisions"]] == [
            "rt_2", "rt_1",
        ]  # fmt: skip
        # a version named "retraining" would be GET /v1/models/{version}: the route is matched first
        assert client.get("/v1/models/retraining").status_code == 200


def test_scopes(api: Api) -> None:
    anonymous = httpx.Client(base_url=api.url, timeout=30)
    for method, path in [("GET", "/v1/drift"), ("GET", "/v1/drift/performance"),
                         ("GET", "/v1/models/retraining"), ("POST", "/v1/models/retrain")]:  # fmt: skip
        assert anonymous.request(method, path).status_code == 401, path
    with api.client("score") as client:  # score includes read, not admin
        assert client.get("/v1/drift").status_code == 200
        assert client.post("/v1/models/retrain").status_code == 403


def test_a_retrain_job_on_an_empty_training_topic_is_skipped(api: Api) -> None:
    put(api.settings, [], {}, [])
    with api.client("admin") as client:
        started = client.post("/v1/models/retrain")
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["kind"] == "retrain" and job["status"] in ("queued", "running")
        deadline = time.monotonic() + 90
        while (job := client.get(f"/v1/jobs/{job['id']}").json())["status"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "succeeded", job
        decision = job["result"]
        assert decision["outcome"] == "skipped" and decision["trigger"] == "api"
        assert decision["detail"] == "requested through the API by test-admin"
        assert decision["reason"].startswith(
            "0 labelled outcomes; a retrain needs retrain_min_labels="
        )
        listed = client.get("/v1/models/retraining").json()["decisions"]
        assert [d["id"] for d in listed] == [decision["id"]]
        audit = client.get("/v1/audit", params={"limit": 20}).json()
        assert any(e["path"] == "/v1/models/retrain" and e["status"] == 202 for e in audit), audit
