"""`leadscore demo` end to end: embedded servers, worker, traffic, live view; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from model_cache import ModelCache

from leadscore.api.dashboard import find_dashboard

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


def test_demo_runs_the_loop_and_ctrl_c_stops_every_process(
    tmp_path: Path, model_cache: ModelCache
) -> None:
    models = tmp_path / "models"
    model_cache.registry(models, leads=600, folds=2, search="none", compare=("ensemble",), seed=1)
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "REDIS_URL")}
    env |= {"LEADSCORE_MODEL_DIR": str(models), "COLUMNS": "160", "PYTHONUNBUFFERED": "1"}
    output = tmp_path / "demo.out"
    with open(output, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "leadscore", "demo", "--rate", "300", "--leads", "200"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(
            lambda: "where to look" in output.read_text(), 120, "the worker to be ready", output
        )
        time.sleep(12)  # traffic flows through the worker for a while
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = output.read_text()
    assert demo.returncode == 0, text[-4000:]

    pids = [int(p) for p in re.findall(r"\(pid (\d+)", text)]
    assert len(pids) == 4, f"expected tansu, redis-server, worker and API pids in:\n{text[-4000:]}"
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
