"""With Redis down, the API says so (503, Retry-After) instead of failing with a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from leadscore.api.app import create_app
from leadscore.infra.embedded.addresses import free_port
from leadscore.settings import Settings

pytestmark = (
    pytest.mark.slow
)  # the Redis client retries with backoff before giving up (~1.5 s a call)


def test_redis_down_is_a_503_that_says_what_is_unreachable(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = Settings(
        redis_url=dead, kafka_bootstrap=f"127.0.0.1:{free_port()}", model_dir=tmp_path / "models",
        api_jobs_dir=tmp_path / "jobs",
    )  # fmt: skip
    with TestClient(
        create_app(settings, follow_models=False), raise_server_exceptions=False
    ) as client:
        response = client.get("/v1/leads/top", headers={"X-API-Key": "lsk_0123456789ab_secret"})
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        body = response.json()["error"]
        assert (
            body["code"] == "unavailable"
            and "Redis" in body["message"]
            and dead not in body["message"]
        )
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith(
            "unreachable"
        )
        assert ready.headers["retry-after"] == "5"
