"""Per-key rate limits on a real ``leadscore api``: 429 with Retry-After, per key, then back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from api_harness import drop_redis_keys, make_keys, running_api
from websockets.sync.client import connect as ws_connect
from worker_harness import create_topics, worker_settings

from leadscore.infra.embedded.addresses import free_port
from leadscore.settings import Settings

pytestmark = pytest.mark.integration

RATE, BURST = 2.0, 5.0


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str], Settings]]:
    root = tmp_path_factory.mktemp("api-limits")
    settings = worker_settings(
        f"t-api-limits-{uuid.uuid4().hex[:8]}.", kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url, model_dir=root / "models", api_port=free_port(),
        api_jobs_dir=root / "jobs", api_rate_limit=RATE, api_rate_burst=BURST,
    )  # fmt: skip
    asyncio.run(create_topics(settings))
    try:
        with running_api(settings, root / "api.log") as url:
            yield url, make_keys(settings, ("read", "admin")), settings
    finally:
        drop_redis_keys(settings)


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_go_on(
    api: tuple[str, dict[str, str], Settings],
) -> None:
    url, keys, _ = api
    with httpx.Client(base_url=url, timeout=30) as client:

        def get(scope: str) -> httpx.Response:
            return client.get("/v1/models", headers={"X-API-Key": keys[scope]})

        answers = [get("read") for _ in range(int(BURST) + 3)]
        statuses = [a.status_code for a in answers]
        assert statuses[: int(BURST)] == [200] * int(BURST), statuses
        refused = answers[-1]
        assert refused.status_code == 429, statuses
        assert refused.headers["retry-after"] == "1"
        error = refused.json()["error"]
        assert error["code"] == "rate_limited" and "LEADSCORE_API_RATE_LIMIT" in error["message"]
        assert get("admin").status_code == 200  # another key has its own bucket
        assert client.get("/healthz").status_code == 200  # open routes are not limited
        time.sleep(1.0 / RATE + 0.1)
        assert get("read").status_code == 200  # a token came back


def test_a_websocket_over_the_rate_is_refused_with_the_reason(
    api: tuple[str, dict[str, str], Settings],
) -> None:
    url, keys, _ = api
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(int(BURST) + 1):
            client.get("/v1/models", headers={"X-API-Key": keys["read"]})
    with ws_connect(f"{url.replace('http', 'ws')}/v1/stream?api_key={keys['read']}") as conn:
        message = conn.recv(timeout=10)
        assert "rate_limited" in str(message)
