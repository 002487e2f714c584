"""``leadscore api`` serves the built dashboard at ``/`` and leaves every API path alone.

A real API process (real Redis and broker, as every API test) pointed at a built-looking
directory (``LEADSCORE_DASHBOARD_DIR``), and one with no build at all.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_harness import drop_redis_keys, make_keys, running_api
from worker_harness import create_topics, worker_settings

from leadscore.infra.embedded.addresses import free_port

pytestmark = pytest.mark.integration

INDEX = "<!doctype html><html><body><div id=root></div><script src=/assets/app.3f2a.js></script></body></html>"


def serve(
    kafka_bootstrap: str, redis_url: str, root: Path, dashboard: Path | None
) -> Iterator[tuple[str, dict[str, str]]]:
    settings = worker_settings(
        f"t-api-dash-{uuid.uuid4().hex[:8]}.", kafka_bootstrap=kafka_bootstrap, redis_url=redis_url,
        model_dir=root / "models", api_port=free_port(), api_jobs_dir=root / "jobs",
        dashboard_dir=dashboard,
    )  # fmt: skip
    asyncio.run(create_topics(settings))
    try:
        with running_api(settings, root / "api.log") as url:
            yield url, make_keys(settings)
    finally:
        drop_redis_keys(settings)


@pytest.fixture(scope="module")
def built(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("api-dashboard")
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "app.3f2a.js").write_text("console.log('leadscore')")
    (root / "secret.txt").write_text("outside the build")
    yield from serve(kafka_bootstrap, redis_url, root, dist)


def test_the_dashboard_is_served_at_the_root_with_its_routes_and_assets(
    built: tuple[str, dict[str, str]],
) -> None:
    url, _ = built
    with httpx.Client(base_url=url, timeout=30) as client:
        root = client.get("/")
        assert root.status_code == 200 and root.text == INDEX
        assert root.headers["content-type"].startswith("text/html")
        assert root.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in root.headers["content-security-policy"]
        assert root.headers["x-content-type-options"] == "nosniff"
        # a dashboard route survives a reload
        route = client.get("/leads/acme-42")
        assert route.status_code == 200 and route.text == INDEX
        asset = client.get("/assets/app.3f2a.js")
        assert asset.status_code == 200 and "leadscore" in asset.text
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "javascript" in asset.headers["content-type"]
        # nothing outside the build, and a missing file is a 404, not the page
        assert client.get("/assets/gone.js").status_code == 404
        assert client.get("/%2e%2e/secret.txt").status_code == 404
        assert "outside" not in client.get("/../secret.txt").text
        # control characters in the path: a 400 that says why, with or without a key
        for odd in (
            "/%00index.html",
            "/assets/app%00.js",
            "/leads/a%01b",
            "/%7f",
            "/v1/leads/x%00",
        ):
            response = client.get(odd)
            assert response.status_code == 400, (odd, response.status_code)
            assert response.json()["error"]["code"] == "invalid_path"


def test_api_paths_are_not_taken_by_the_dashboard(built: tuple[str, dict[str, str]]) -> None:
    url, keys = built
    with httpx.Client(base_url=url, timeout=30) as client:
        missing = client.get("/v1/no-such-thing", headers={"X-API-Key": keys["read"]})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert client.post("/leads/acme-42").status_code in (404, 405)  # only GET is the page's
        assert client.post("/leads/acme-42").headers["content-type"].startswith("application/json")
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/openapi.json").json()["info"]["title"] == "leadscore"
        assert client.get("/docs").status_code == 200
        assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_without_a_build_the_root_says_where_it_looks(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    for url, _ in serve(kafka_bootstrap, redis_url, tmp_path, tmp_path / "no-build"):
        with httpx.Client(base_url=url, timeout=30) as client:
            page = client.get("/")
            assert page.status_code == 200 and "LEADSCORE_DASHBOARD_DIR" in page.text
            assert client.get("/v1/leads/top").status_code == 401  # the API is as it was
