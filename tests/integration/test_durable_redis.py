"""``leadscore redis --data-dir``: a real redis-server whose data survives kill -9 of it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.integration


def start(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The command as a user runs it; its process and the REDIS_URL it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "leadscore", "redis", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()  # blocks until it is ready
    assert line.startswith("REDIS_URL=redis://127.0.0.1:"), (line, log.read_text()[-2000:])
    return process, line.removeprefix("REDIS_URL=")


def server_pid(url: str) -> int:
    return int(redis.Redis.from_url(url).info("server")["process_id"])


def test_every_acknowledged_write_survives_kill_9_and_the_address_stays(tmp_path: Path) -> None:
    data, log = tmp_path / "redis-data", tmp_path / "redis.log"
    process, url = start(data, log)
    client = redis.Redis.from_url(url)
    for i in range(2000):  # each acknowledged before the next
        client.set(f"k{i}", i)
    client.hset("h", mapping={"a": "1", "b": "2"})
    pid = server_pid(url)
    os.kill(process.pid, signal.SIGKILL)  # the command...
    os.kill(pid, signal.SIGKILL)  # ...and the server, both at once, no goodbye
    process.wait(timeout=10)
    client.close()

    again, same_url = start(data, log)
    try:
        assert same_url == url  # the directory remembers its port
        client = redis.Redis.from_url(url)
        assert client.dbsize() == 2001
        assert [int(v) for v in client.mget([f"k{i}" for i in range(2000)])] == list(range(2000))
        assert client.hgetall("h") == {b"a": b"1", b"b": b"2"}
        client.close()
    finally:
        started = time.monotonic()
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
