"""``leadscore api`` as a child process for integration tests, with keys and clean-up.

Used beside a worker from :mod:`worker_harness`: both children are configured only
through the environment (``worker_env``), so they see exactly the test's settings.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from worker_harness import WorkerProcess, worker_env

from leadscore.infra.access import KeyStore
from leadscore.infra.embedded.processes import spawn_child
from leadscore.settings import Settings

#: Import, load the model, connect the feed: a few seconds; more on a loaded machine.
API_READY_TIMEOUT_S = 60.0


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the API exited {process.returncode}:\n{log.read_text()[-3000:]}", pytrace=False
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"the API was not ready in {timeout_s:.0f} s:\n{log.read_text()[-3000:]}", pytrace=False
    )


@contextmanager
def running_api(
    settings: Settings,
    log_path: Path,
    *,
    loglevel: str = "warning",
    ready_timeout_s: float = API_READY_TIMEOUT_S,
) -> Iterator[str]:
    """A ready ``leadscore api`` on ``settings.api_port``; yields its base URL; stopped after."""
    process = spawn_child(
        [sys.executable, "-m", "leadscore", "api", "--loglevel", loglevel],
        log_path,
        worker_env(settings),
        Path.cwd(),
    )
    try:
        url = f"http://127.0.0.1:{settings.api_port}"
        _wait_ready(url, process, log_path, ready_timeout_s)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def make_keys(
    settings: Settings, scopes: Iterable[str] = ("read", "score", "privacy", "admin")
) -> dict[str, str]:
    """One API key per scope, named ``test-<scope>``: scope -> key."""

    async def make() -> dict[str, str]:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            store = KeyStore(client, settings.redis_prefix)
            return {scope: (await store.create(f"test-{scope}", [scope]))[0] for scope in scopes}
        finally:
            await client.aclose()

    return asyncio.run(make())


def drop_redis_keys(settings: Settings) -> None:
    """Delete every Redis key under ``settings.redis_prefix`` (the server may be shared)."""

    async def drop() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            keys = [
                k async for k in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000)
            ]
            if keys:
                await client.unlink(*keys)
        finally:
            await client.aclose()

    asyncio.run(drop())


@dataclass
class Stack:
    """A worker and an API process on one test's settings, with a key per scope."""

    settings: Settings
    api_url: str
    keys: dict[str, str]  # scope -> API key
    worker: WorkerProcess
    api_log: Path

    def api(self, scope: str = "admin") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.keys[scope]}"},
            timeout=30,
        )

    def describe(self) -> str:
        return f"{self.worker.describe()}\n\nAPI log {self.api_log}:\n{self.api_log.read_text()[-3000:]}"
