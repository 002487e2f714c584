"""``leadscore api`` as a process, beside a real worker, on the real broker and Redis.

One worker and one API process serve the whole module (group joins take ~10 s on
Tansu). Checked here: the API scores a lead exactly as the stream did (from the stored
state and from the same events in the body), every protected route refuses a missing
or under-scoped key, admin calls are audited, the seed's aliases answer like their
``/v1`` twins, model management and jobs work, and a schemathesis run over the OpenAPI
spec finds no server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from api_harness import drop_redis_keys, make_keys, running_api
from model_cache import ModelCache
from worker_harness import WorkerProcess, create_topics, wait_all_committed, worker_settings

from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.kafka.publish import publish
from leadscore.jobs.train import train_job
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]


@dataclass
class Stack:
    settings: Settings
    url: str
    keys: dict[str, str]  # scope -> key
    api_log: Path
    events: list[dict[str, Any]]

    def client(self, scope: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    model_cache: ModelCache,
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("api")
    model_dir = root / "models"
    # a registry of this module's own (the tests train, promote and roll back in it)
    model_cache.registry(
        model_dir, leads=600, folds=2, search="none", compare=("ensemble",), seed=1
    )
    port = free_port()
    settings = worker_settings(
        f"t-api-{uuid.uuid4().hex[:8]}.",
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=model_dir,
        api_port=port,
        api_jobs_dir=root / "jobs",
        api_data_dir=root / "data",
    )
    asyncio.run(create_topics(settings))
    events = list(
        Simulator(
            SimConfig(n_leads=40, span_days=20, seed=3, start=datetime(2025, 3, 1, tzinfo=UTC))
        ).events()
    )
    worker = WorkerProcess(settings, root / "worker.log")
    try:
        # the API starts while the worker joins its group (neither needs the other to start)
        with running_api(settings, root / "api.log", ready_timeout_s=150) as url:
            asyncio.run(worker.wait_ready())
            keys = make_keys(settings)

            async def feed() -> None:
                await publish(events, settings)
                await wait_all_committed(settings, workers=[worker])

            asyncio.run(feed())
            yield Stack(settings, url, keys, root / "api.log", events)
    finally:
        worker.stop()
        drop_redis_keys(settings)


def _strip_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_times(v) for k, v in value.items() if k not in ("scored_at", "uptime_s")}
    if isinstance(value, list):
        return [_strip_times(v) for v in value]
    return value


# --- scoring -------------------------------------------------------------------------------------


def test_the_api_scores_a_lead_exactly_as_the_stream_did(stack: Stack) -> None:
    with stack.client("score") as client:
        top = client.get("/v1/leads/top", params={"limit": 5}).json()
        assert top["total"] > 0 and len(top["leads"]) == min(5, top["total"])
        scores = [row["score"] for row in top["leads"]]
        assert scores == sorted(scores, reverse=True)
        lead = top["leads"][0]["lead_id"]
        published = client.get(f"/v1/leads/{lead}/score").json()

        # from the state the worker stored
        stored = client.post("/v1/score", json={"lead_id": lead})
        assert stored.status_code == 200, stored.text
        body = stored.json()
        assert body["scored_from"] == "stored_state"
        assert body["probability"] == pytest.approx(published["probability"], abs=1e-6)
        assert body["score"] == published["score"] and body["grade"] == published["grade"]
        assert body["model_version"] == published["model_version"]
        assert [r["feature"] for r in body["reasons"]] == [
            r["feature"] for r in published["reasons"]
        ]

        # from the same events in the body: the stream's own state-building code
        own = [
            e
            for e in stack.events
            if e["subject"] == lead
            and not e["type"].startswith(("lead.converted", "lead.disqualified"))
        ]
        profile: dict[str, Any] = {}
        profile_time = None
        activities = []
        for event in own:
            if event["type"] == "lead.profile_updated":
                profile.update(event["data"])
                profile_time = event["time"]
            else:
                activities.append(
                    {
                        "type": event["type"],
                        "time": event["time"],
                        "id": event["id"],
                        "data": event["data"],
                    }
                )
        request = {"lead_id": lead, "activities": activities}
        if profile:
            request |= {"profile": profile, "profile_time": profile_time}
        fresh = client.post("/v1/score", json=request)
        assert fresh.status_code == 200, fresh.text
        if sum(e["type"] == "lead.profile_updated" for e in own) <= 1:
            # one profile update: the body is exactly the lead's history
            assert fresh.json()["probability"] == pytest.approx(published["probability"], abs=1e-6)
        assert fresh.json()["scored_from"] == "request"

        history = client.get(f"/v1/leads/{lead}/history").json()
        assert history["scores"][0]["id"] == published["id"]
        detail = client.get(f"/v1/leads/{lead}").json()
        assert detail["state"]["lead_id"] == lead and "seen_ids" not in detail["state"]


def test_batch_scores_each_lead_and_reports_the_ones_it_cannot(stack: Stack) -> None:
    with stack.client("score") as client:
        lead = client.get("/v1/leads/top", params={"limit": 1}).json()["leads"][0]["lead_id"]
        single = client.post("/v1/score", json={"lead_id": lead}).json()
        response = client.post(
            "/v1/score/batch",
            json={
                "leads": [{"lead_id": lead}, {"lead_id": "nobody-here"}, *[{"lead_id": lead}] * 10]
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert [e["index"] for e in body["errors"]] == [1] and body["errors"][0][
            "code"
        ] == "unknown_lead"
        assert len(body["results"]) == 11
        assert {r["probability"] for r in body["results"]} == {single["probability"]}
        too_many = client.post(
            "/v1/score/batch",
            json={"leads": [{"lead_id": lead}] * (stack.settings.api_max_batch + 1)},
        )
        assert (
            too_many.status_code == 413
            and "LEADSCORE_API_MAX_BATCH" in too_many.json()["error"]["message"]
        )


def test_bad_input_gets_a_4xx_that_says_what_is_wrong(stack: Stack) -> None:
    with stack.client("score") as client:
        bad = client.post(
            "/v1/score",
            json={
                "lead_id": "x",
                "activities": [
                    {"type": "lead.page_viewed", "time": "2026-01-01T00:00:00Z", "data": {}}
                ],
            },
        )
        assert bad.status_code == 422 and "activities[0].data.url" in bad.json()["error"]["message"]
        naive = client.post(
            "/v1/score",
            json={
                "lead_id": "x",
                "activities": [{"type": "lead.email_opened", "time": "2026-01-01T00:00:00"}],
            },
        )
        assert naive.status_code == 422 and "activities.0.time" in naive.json()["error"]["message"]
        unknown_type = client.post(
            "/v1/score",
            json={
                "lead_id": "x",
                "activities": [{"type": "lead.teleported", "time": "2026-01-01T00:00:00Z"}],
            },
        )
        assert unknown_type.status_code == 422
        not_json = client.post(
            "/v1/score", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422 and not_json.json()["error"]["code"] == "invalid_request"
        assert client.get("/v1/leads/nobody/score").status_code == 404
        assert client.get("/v1/nothing-here").json()["error"]["code"] == "not_found"


# --- dashboard data: activity, distribution, trends -------------------------------------------------


def test_a_leads_activity_lists_its_events_newest_first_by_read_order(stack: Stack) -> None:
    with stack.client("read") as client:
        lead = client.get("/v1/leads/top", params={"limit": 1}).json()["leads"][0]["lead_id"]
        own = {e["id"]: e for e in stack.events if e["subject"] == lead}
        body = client.get(f"/v1/leads/{lead}/activity").json()
        assert body["lead_id"] == lead
        ids = [e["id"] for e in body["events"]]
        assert len(ids) == len(set(ids)) == min(len(own), 50) and set(ids) <= set(own)
        for row in body["events"]:
            assert row["type"] == own[row["id"]]["type"]
        two = client.get(f"/v1/leads/{lead}/activity", params={"limit": 2}).json()["events"]
        assert two == body["events"][:2]
        missing = client.get("/v1/leads/nobody/activity")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_lead"
        assert client.get(f"/v1/leads/{lead}/activity", params={"limit": 0}).status_code == 422


def test_the_distribution_counts_every_lead_in_the_bin_and_grade_of_its_score(stack: Stack) -> None:
    with stack.client("read") as client:
        board = client.get("/v1/leads/top", params={"limit": 1000}).json()
        body = client.get("/v1/leads/distribution", params={"bins": 10}).json()
        assert body["total"] == board["total"] == len(board["leads"]) > 0
        assert body["thresholds"] == {"A": 80, "B": 60, "C": 40}
        scores = [row["score"] for row in board["leads"]]
        assert [b["count"] for b in body["bins"]] == [
            sum(b["from"] <= s < b["to"] or (b["to"] == 100 and s == 100) for s in scores)
            for b in body["bins"]
        ]
        assert body["grades"] == {
            g: sum(row["grade"] == g for row in board["leads"]) for g in "ABCD"
        }
        default = client.get("/v1/leads/distribution").json()
        assert len(default["bins"]) == 20 and default["bins"][0] == {
            "from": 0,
            "to": 5,
            "count": default["bins"][0]["count"],
        }
        assert sum(b["count"] for b in default["bins"]) == body["total"]
        for bins in (0, 101):
            bad = client.get("/v1/leads/distribution", params={"bins": bins})
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_trends_merge_the_workers_buckets_and_refuse_bad_ranges(stack: Stack) -> None:
    with stack.client("read") as client:
        daily = client.get("/v1/trends").json()
        assert daily["bucket_s"] == 86_400 and len(daily["buckets"]) == 30
        scored = client.get("/v1/metrics/performance").json()["stream"]["totals"]["scores"]
        # The simulated events span 20 days: the default 30 days up to the newest hold them all.
        assert daily["totals"]["scores"] == sum(b["scores"] for b in daily["buckets"]) == scored
        for bucket in daily["buckets"]:
            assert sum(bucket["bins"]) == sum(bucket["grades"].values()) == bucket["scores"]
        outcomes = daily["totals"]["outcomes"]
        assert sum(o["n"] for o in outcomes.values()) == daily["totals"]["overall"]["n"]
        weekly = client.get("/v1/trends", params={"bucket": "week"}).json()
        assert weekly["totals"] == daily["totals"]  # both ranges hold every bucket
        assert all(datetime.fromisoformat(b["start"]).weekday() == 0 for b in weekly["buckets"])
        first = daily["buckets"][0]["start"]
        hourly = client.get(
            "/v1/trends", params={"bucket": "hour", "since": first, "until": daily["until"]}
        ).json()
        assert hourly["totals"] == daily["totals"]
        assert len(hourly["buckets"]) == 24 * 30

        for params, code in (
            ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "invalid_range"),
            ({"since": "2026-01-01T00:00:00"}, "invalid_range"),  # no timezone
            (
                {
                    "since": "2000-01-01T00:00:00Z",
                    "until": "2026-01-01T00:00:00Z",
                    "bucket": "hour",
                },
                "invalid_range",
            ),
            ({"bucket": "minute"}, "invalid_request"),
        ):
            bad = client.get("/v1/trends", params=params)
            assert bad.status_code == 422, (params, bad.text)
            assert bad.json()["error"]["code"] == code, bad.json()


# --- access ----------------------------------------------------------------------------------------

#: Every route and the scope it needs (a new route must be added here, or the test fails).
EXPECTED_SCOPE = {
    ("POST", "/v1/score"): "score",
    ("POST", "/v1/score/batch"): "score",
    ("POST", "/v1/score/batch/file"): "score",
    ("GET", "/v1/leads/top"): "read",
    ("GET", "/v1/leads/{lead_id}"): "read",
    ("GET", "/v1/leads/{lead_id}/score"): "read",
    ("GET", "/v1/leads/{lead_id}/history"): "read",
    ("GET", "/v1/leads/{lead_id}/activity"): "read",
    ("GET", "/v1/leads/distribution"): "read",
    ("GET", "/v1/trends"): "read",
    ("GET", "/v1/metrics/performance"): "read",
    ("GET", "/v1/models"): "read",
    ("GET", "/v1/models/{version}"): "read",
    ("POST", "/v1/models/{version}/promote"): "admin",
    ("POST", "/v1/models/rollback"): "admin",
    ("POST", "/v1/models/train"): "admin",
    ("GET", "/v1/models/retraining"): "read",
    ("POST", "/v1/models/retrain"): "admin",
    ("GET", "/v1/drift"): "read",
    ("GET", "/v1/drift/performance"): "read",
    ("GET", "/v1/jobs"): "read",
    ("GET", "/v1/jobs/{job_id}"): "read",
    ("GET", "/v1/jobs/{job_id}/result"): "read",
    ("POST", "/v1/experiments"): "admin",
    ("GET", "/v1/experiments"): "read",
    ("GET", "/v1/experiments/{experiment_id}"): "read",
    ("GET", "/v1/audit"): "admin",
    ("GET", "/v1/whoami"): "read",
    ("POST", "/ai/scoring/score/single"): "score",
    ("POST", "/ai/scoring/score/batch"): "score",
    ("GET", "/ai/scoring/score/{lead_id}"): "read",
    ("GET", "/ai/scoring/performance/metrics"): "read",
    ("POST", "/ai/scoring/model/train"): "admin",
    ("POST", "/ai/scoring/abtest/create"): "admin",
    ("DELETE", "/v1/leads/{lead_id}"): "privacy",
    ("GET", "/v1/leads/{lead_id}/export"): "privacy",
    ("GET", "/v1/erasures/{erasure_id}"): "privacy",
}
OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
_WEAKER = {
    "read": [],
    "score": ["read"],
    "privacy": ["read", "score"],
    "admin": ["read", "score", "privacy"],
}


def _protected_routes(spec: dict[str, Any]) -> dict[tuple[str, str], str]:
    routes = {}
    for path, methods in spec["paths"].items():
        for method in methods:
            key = (method.upper(), path)
            if key in OPEN:
                continue
            if path.startswith("/v1/webhooks"):
                routes[key] = "admin"  # every webhook route is admin
            else:
                routes[key] = EXPECTED_SCOPE.get(key, "UNLISTED")
    return routes


def test_every_protected_route_refuses_a_missing_or_under_scoped_key(stack: Stack) -> None:
    with stack.client(None) as anonymous:
        spec = anonymous.get("/openapi.json").json()
        routes = _protected_routes(spec)
        assert "UNLISTED" not in routes.values(), [k for k, v in routes.items() if v == "UNLISTED"]
        for (method, path), scope in routes.items():
            url = path.replace("{", "").replace("}", "")  # e.g. /v1/leads/lead_id/score
            refused = anonymous.request(method, url)
            assert refused.status_code == 401, (method, path, refused.text)
            assert refused.json()["error"]["code"] == "unauthenticated"
            wrong = anonymous.request(
                method, url, headers={"X-API-Key": "lsk_000000000000_not-a-real-key"}
            )
            assert wrong.status_code == 401, (method, path)
            for weaker in _WEAKER[scope]:
                response = anonymous.request(
                    method, url, headers={"Authorization": f"Bearer {stack.keys[weaker]}"}
                )
                assert response.status_code == 403, (method, path, weaker, response.text)
                assert f"needs '{scope}'" in response.json()["error"]["message"]
        for method, path in OPEN:
            assert anonymous.request(method, path).status_code == 200


def test_whoami_names_the_calling_key_and_what_it_may_do(stack: Stack) -> None:
    for scope, allows in (
        ("read", (True, False, False)),
        ("score", (True, True, False)),
        ("admin", (True, True, True)),
    ):
        with stack.client(scope) as client:
            body = client.get("/v1/whoami").json()
        assert body["name"] == f"test-{scope}" and body["scopes"] == [scope]
        assert tuple(body["allows"][s] for s in ("read", "score", "admin")) == allows
        assert body["allows"]["privacy"] == (scope == "admin")
        assert "key_hash" not in body and stack.keys[scope] not in str(body)


def test_admin_calls_are_audited_with_who_what_and_outcome(stack: Stack) -> None:
    with stack.client("admin") as admin, stack.client("read") as reader:
        assert reader.post("/v1/models/rollback").status_code == 403
        created = admin.post(
            "/v1/experiments", json={"name": f"exp-{uuid.uuid4().hex[:6]}", "challenger": "nope"}
        )
        assert created.status_code == 404
        entries = admin.get("/v1/audit", params={"limit": 20}).json()
    denied = next(e for e in entries if e["path"] == "/v1/models/rollback")
    assert (
        denied["key_name"] == "test-read"
        and denied["status"] == 403
        and denied["outcome"].startswith("denied")
    )
    failed = next(e for e in entries if e["path"] == "/v1/experiments")
    assert (
        failed["key_name"] == "test-admin"
        and failed["method"] == "POST"
        and failed["status"] == 404
    )


# --- aliases ---------------------------------------------------------------------------------------


def test_the_seed_aliases_answer_like_their_v1_twins(stack: Stack) -> None:
    with stack.client("admin") as client:
        lead = client.get("/v1/leads/top", params={"limit": 1}).json()["leads"][0]["lead_id"]
        pairs = [
            ("POST", "/ai/scoring/score/single", "/v1/score", {"lead_id": lead}),
            (
                "POST",
                "/ai/scoring/score/batch",
                "/v1/score/batch",
                {"leads": [{"lead_id": lead}, {"lead_id": "none"}]},
            ),
            ("GET", f"/ai/scoring/score/{lead}", f"/v1/leads/{lead}/score", None),
            ("POST", "/ai/scoring/score/single", "/v1/score", {"lead_id": 3}),  # an error, alike
        ]
        for method, alias, twin, body in pairs:
            a = client.request(method, alias, json=body)
            b = client.request(method, twin, json=body)
            assert a.status_code == b.status_code, (alias, a.text, b.text)
            assert _strip_times(a.json()) == _strip_times(b.json()), alias
        metrics = client.get("/ai/scoring/performance/metrics")
        assert (
            metrics.status_code == 200
            and metrics.json().keys() == client.get("/v1/metrics/performance").json().keys()
        )
        a = client.post(
            "/ai/scoring/abtest/create", json={"name": "dup-check", "challenger": "missing"}
        )
        b = client.post("/v1/experiments", json={"name": "dup-check", "challenger": "missing"})
        assert a.status_code == b.status_code == 404 and a.json() == b.json()
        a = client.post("/ai/scoring/model/train", json={"leads": 5})
        b = client.post("/v1/models/train", json={"leads": 5})
        assert a.status_code == b.status_code == 422


def _raw_post(url: str, key: str, head: bytes, body: Iterator[bytes]) -> bytes:
    """POST with hand-made framing; what the server answered (sending stops if it closes)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(
            b"POST /v1/score HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {key}\r\n".encode() + head + b"\r\n"
        )  # fmt: skip
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in body:
                conn.sendall(chunk)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while data := conn.recv(65536):
                answer += data
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
        return answer


def test_a_body_over_the_cap_is_refused_before_it_is_read(stack: Stack) -> None:
    limit = stack.settings.api_max_body_bytes
    key = stack.keys["score"]
    # A declared length over the cap: answered at once, with no body sent at all.
    answer = _raw_post(stack.url, key, f"Content-Length: {100 * limit}\r\n".encode(), iter(()))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer and b"LEADSCORE_API_MAX_BODY_BYTES" in answer
    # Chunked, no length: cut off once the bytes pass the cap (the rest is never read).
    chunk = b"[" + b" " * 65534 + b"\n"
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    answer = _raw_post(
        stack.url,
        key,
        b"Transfer-Encoding: chunked\r\n",
        iter([framed] * (limit // len(chunk) + 8)),
    )
    assert answer.startswith(b"HTTP/1.1 413") and b"body_too_large" in answer, answer[:200]
    with stack.client("score") as client:
        assert client.get("/healthz").status_code == 200
        under = client.post("/v1/score", content=b"{" + b" " * (limit // 2) + b"}")
        assert under.status_code == 422 and under.json()["error"]["code"] == "invalid_request"
    assert "Traceback" not in stack.api_log.read_text()


# --- models and jobs -------------------------------------------------------------------------------


def test_training_files_come_only_from_the_data_directory(stack: Stack, tmp_path: Path) -> None:
    """No file outside LEADSCORE_API_DATA_DIR is read, and no answer tells what exists there."""
    data = Path(stack.settings.api_data_dir)
    data.mkdir(parents=True, exist_ok=True)
    (data / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in stack.events))
    (tmp_path / "secret.jsonl").write_bytes((data / "events.jsonl").read_bytes())
    (data / "escape").symlink_to(tmp_path / "secret.jsonl")
    (data / "dir").symlink_to(tmp_path)

    def train(path: str) -> httpx.Response:
        with stack.client("admin") as client:
            return client.post(
                "/v1/models/train",
                json={"source": "events_file", "events_path": path, "folds": 2, "search": "none"},
            )

    outside = [
        "/etc/passwd",
        "/etc/no-such-file",
        "../" * 12 + "etc/passwd",
        "../" * 12 + "etc/no-such-file",
        str(tmp_path / "secret.jsonl"),
        "escape",
        "dir/secret.jsonl",
        "missing/../../secret.jsonl",
        ".",
    ]
    answers = [train(path) for path in outside]
    assert {a.status_code for a in answers} == {422}, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1, "the answer depends on what exists outside"
    assert answers[0].json()["error"]["code"] == "outside_data_dir"
    odd = train("events\x00.jsonl")
    assert odd.status_code == 422 and odd.json()["error"]["code"] == "invalid_path", odd.text
    missing = train("nope.jsonl")
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "no_such_file"
    assert "Traceback" not in stack.api_log.read_text()

    accepted = train("events.jsonl")
    assert accepted.status_code == 202, accepted.text
    with stack.client("admin") as client:
        deadline = time.monotonic() + 180
        while (job := client.get(f"/v1/jobs/{accepted.json()['id']}").json())["status"] not in (
            "succeeded",
            "failed",
        ) and time.monotonic() < deadline:
            time.sleep(1)
    assert job["status"] in ("succeeded", "failed"), job
    assert "No such file" not in job["message"] and "not found" not in job["message"], job


def test_models_can_be_listed_trained_promoted_and_rolled_back(stack: Stack) -> None:
    with stack.client("admin") as client:
        listing = client.get("/v1/models").json()
        first = listing["champion"]
        assert first is not None and listing["serving"] == first
        shown = client.get(f"/v1/models/{first}").json()
        assert shown["manifest"]["version"] == first and "reference_sample" not in shown["manifest"]
        assert client.get("/v1/models/does-not-exist").status_code == 404

        job = client.post(
            "/v1/models/train", json={"leads": 300, "folds": 2, "search": "none", "seed": 5}
        )
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        deadline = time.monotonic() + 240
        while True:
            state = client.get(f"/v1/jobs/{job_id}").json()
            if state["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert state["status"] == "succeeded", state
        new = state["result"]["version"]
        assert (
            client.get("/v1/jobs/" + job_id + "/result").status_code == 404
        )  # a train job has no file

        promoted = client.post(f"/v1/models/{new}/promote", json={"reason": "test"})
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["champion"] == new and promoted.json()["previous"] == first
        assert client.get("/v1/models").json()["serving"] == new  # this process swapped already
        rolled = client.post("/v1/models/rollback")
        assert rolled.status_code == 200 and rolled.json()["champion"] == first
        assert client.get("/v1/models").json()["serving"] == first

        experiment = client.post(
            "/v1/experiments",
            json={"name": f"e-{uuid.uuid4().hex[:6]}", "challenger": new, "traffic": 0.2},
        )
        assert experiment.status_code == 201, experiment.text
        assert experiment.json()["champion"] == first and experiment.json()["status"] == "draft"
        again = client.post(
            "/v1/experiments", json={"name": experiment.json()["name"], "challenger": new}
        )
        assert again.status_code == 409


def test_a_table_file_is_scored_as_a_job_and_downloaded(stack: Stack, tmp_path: Path) -> None:
    rows = ["id,employees,industry,visits,converted"]
    for i in range(300):
        rows.append(
            f"c{i},{10 + i * 7},{['saas', 'retail', 'bank'][i % 3]},{i % 17},{'yes' if (i % 17) > 9 else 'no'}"
        )
    table = tmp_path / "crm.csv"
    table.write_text("\n".join(rows) + "\n")
    with stack.client(
        "score"
    ) as client:  # no table model yet: refused at upload, not by a failed job
        stream_model = client.get("/v1/models").json()["champion"]
        for form in ({}, {"model": stream_model} if stream_model else {}):
            refused = client.post(
                "/v1/score/batch/file",
                files={"file": ("crm.csv", b"id\n1\n", "text/csv")},
                data=form,
            )
            assert (
                refused.status_code == 409 and refused.json()["error"]["code"] == "no_table_model"
            ), refused.text
            assert "leadscore train --data" in refused.json()["error"]["message"]
    train_job(
        stack.settings, table=_table_spec(table), folds=2, search="none", compare=("ensemble",)
    )
    with stack.client("score") as client:
        with table.open("rb") as handle:
            job = client.post(
                "/v1/score/batch/file",
                files={"file": ("crm.csv", handle, "text/csv")},
                data={"id_column": "id", "reasons": "2"},
            )
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        deadline = time.monotonic() + 120
        while (state := client.get(f"/v1/jobs/{job_id}").json())["status"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        assert state["status"] == "succeeded", state
        assert state["result"]["rows"] == 300
        result = client.get(f"/v1/jobs/{job_id}/result")
        assert result.status_code == 200 and result.headers["content-type"].startswith("text/csv")
        lines = result.text.splitlines()
        assert (
            lines[0].split(",")[:4] == ["id", "score", "grade", "probability"] and len(lines) == 301
        )
        wrong = client.post(
            "/v1/score/batch/file", files={"file": ("x.exe", b"MZ", "application/octet-stream")}
        )
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "unsupported_file"


def _table_spec(path: Path) -> Any:
    from leadscore.jobs.train import TableSpec

    return TableSpec(path=path, target="converted", id_column="id")


# --- operations ------------------------------------------------------------------------------------


def test_health_readiness_metrics_and_performance(stack: Stack) -> None:
    with stack.client("read") as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["checks"]["redis"] == "ok"
        deadline = time.monotonic() + 15  # the worker's heartbeat says it every 5 s
        while "last batch" not in ready["checks"]["workers"] and time.monotonic() < deadline:
            time.sleep(0.5)
            ready = client.get("/readyz").json()
        assert ready["checks"]["workers"].startswith("1 alive, last batch "), ready
        performance = client.get("/v1/metrics/performance").json()
        assert performance["stream"]["totals"]["events"] >= len(stack.events)
        assert performance["model"]["metrics"]["roc_auc"] > 0.5
        text = client.get("/metrics").text
        assert (
            "leadscore_api_request_seconds_bucket" in text
            and "leadscore_worker_events_total" in text
            and "leadscore_workers_alive 1" in text
        )


# --- the OpenAPI spec, fuzzed ----------------------------------------------------------------------


def test_schemathesis_finds_no_server_error(stack: Stack, tmp_path: Path) -> None:
    st = shutil.which("st", path=os.path.dirname(sys.executable)) or shutil.which(
        "schemathesis", path=os.path.dirname(sys.executable)
    )
    assert st, "schemathesis is a test dependency"
    command = [
        st, "run", f"{stack.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--header", f"Authorization: Bearer {stack.keys['admin']}",
        # starting jobs (training, file scoring) would fill the machine with processes
        "--exclude-path-regex", r"(/train$|/retrain$|/batch/file$|/promote$|/rollback$)",
        "--max-examples", "25",
        "--seed", "1",
        "--no-color",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) >= 20, output[-3000:]  # the spec was really exercised
