"""`leadscore demo` end to end: embedded servers, worker, traffic, live view; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from model_cache import ModelCache

from leadscore.api.dashboard import find_dashboard
from leadscore.infra.redis_store import ScoreStore
from leadscore.settings import Settings

pytestmark = pytest.mark.timeout(240)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _wait_for(predicate, timeout_s: float, what: str, output: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(
        f"timed out after {timeout_s:.0f} s waiting for {what}; demo output:\n{output.read_text()[-4000:]}"
    )


def _demo_totals(output: Path) -> dict[str, int]:
    """The counters the demo's view shows ("processed", "score changes"), read from its Redis."""
    found = re.search(r"REDIS_URL=(\S+)", output.read_text())
    if found is None:
        return {}

    async def read() -> dict[str, int]:
        client = aioredis.Redis.from_url(found.group(1))
        try:
            return await ScoreStore(client, Settings().redis_prefix).stats()
        finally:
            await client.aclose()

    return asyncio.run(read())


def _demo_env(tmp_path: Path, model_cache: ModelCache) -> dict[str, str]:
    """The demo's environment: a small trained model, no outside servers (embedded ones)."""
    models = tmp_path / "models"
    model_cache.registry(models, leads=600, folds=2, search="none", compare=("ensemble",), seed=1)
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "REDIS_URL")}
    return env | {"LEADSCORE_MODEL_DIR": str(models), "COLUMNS": "160", "PYTHONUNBUFFERED": "1"}


def _run_demo(
    cwd: Path, env: dict[str, str], output: Path, until: Callable[[], bool], what: str
) -> str:
    """``leadscore demo`` in ``cwd`` until it is ready and ``until()``; then Ctrl-C. Its output,
    once it has exited with status 0."""
    with open(output, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "leadscore", "demo", "--rate", "300", "--leads", "200"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(
            lambda: "where to look" in output.read_text(), 120, "the worker to be ready", output
        )
        _wait_for(until, 60, what, output)
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = output.read_text()
    assert demo.returncode == 0, text[-4000:]
    return text


def test_demo_runs_the_loop_and_ctrl_c_stops_every_process(
    tmp_path: Path, model_cache: ModelCache
) -> None:
    env = _demo_env(tmp_path, model_cache)
    output = tmp_path / "demo.out"
    # Traffic flows through the worker until the view's counters pass what is checked
    # below (the view reads them once more after Ctrl-C, so its last lines show them).
    text = _run_demo(
        tmp_path,
        env,
        output,
        lambda: (
            (totals := _demo_totals(output)).get("events", 0) > 500 and totals.get("scores", 0) > 0
        ),
        "over 500 processed events and a score change",
    )

    pids = [int(p) for p in re.findall(r"\(pid (\d+)", text)]
    # tansu (and s3rver, keeping its data), redis-server, worker, API
    assert len(pids) >= 4, f"expected the servers', worker's and API's pids in:\n{text[-4000:]}"
    assert not [pid for pid in pids if _alive(pid)], "a child outlived the demo"

    processed = [int(n.replace(",", "")) for n in re.findall(r"processed\s+([\d,]+)", text)]
    changes = [int(n.replace(",", "")) for n in re.findall(r"score changes\s+([\d,]+)", text)]
    assert processed and processed[-1] > 500, text[-4000:]
    assert changes and changes[-1] > 0
    assert "top leads" in text and "stopped" in text
    assert (tmp_path / "artifacts" / "demo" / "worker.log").stat().st_size > 0
    key = re.search(r"export KEY=(lsk_\S+)", text)
    assert key and re.search(r"API at http://127\.0\.0\.1:\d+ \(pid", text), text[-4000:]
    if find_dashboard(None) is not None:  # built (make test builds it first)
        assert re.search(
            rf"dashboard:\s+http://127\.0\.0\.1:\d+/#key={re.escape(key.group(1))}", text
        ), text[-4000:]
    else:
        assert "dashboard:  not built" in text


def test_a_second_demo_continues_with_the_same_leads_and_keys(
    tmp_path: Path, model_cache: ModelCache
) -> None:
    """The embedded servers keep their data in artifacts/demo/data: a rerun finds it all."""
    env = _demo_env(tmp_path, model_cache)

    first_out = tmp_path / "first.out"
    seen: dict[str, int] = {}

    def scored() -> bool:
        seen.update(_demo_totals(first_out))  # read while its Redis runs
        return seen.get("scores", 0) > 0

    first = _run_demo(tmp_path, env, first_out, scored, "scores")
    if "in memory (no Node.js" in first:
        if os.environ.get("CI") == "true":
            pytest.fail("the demo's broker kept its data in memory: s3rver is not installed")
        pytest.skip("no s3rver (Node.js): the demo's broker keeps its data in memory")
    assert "its data in artifacts/demo/data/broker" in first, first[-3000:]
    first_key = re.search(r"export KEY=(lsk_\S+)", first)
    assert first_key is not None
    events_then = seen["events"]

    second_out = tmp_path / "second.out"

    def continued() -> bool:
        totals = _demo_totals(second_out)
        base = re.search(r"API at (http://127\.0\.0\.1:\d+)", second_out.read_text())
        if base is None or totals.get("events", 0) <= events_then:
            return False
        answer = httpx.get(
            f"{base.group(1)}/v1/leads/top?limit=5", headers={"X-API-Key": first_key.group(1)}
        )
        return answer.status_code == 200 and len(answer.json()["leads"]) == 5

    _run_demo(
        tmp_path,
        env,
        second_out,
        continued,
        "the first demo's counters, leads and key in the second",
    )
