"""The embedded broker and Redis: they serve real clients and never outlive their parent."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from leadscore.infra.embedded.servers import EmbeddedKafka, EmbeddedRedis, embedded_services
from leadscore.infra.errors import ServiceExitedError

pytestmark = pytest.mark.usefixtures("embedded_binaries")

_RECEIVE_TIMEOUT_S = 10.0


def _gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs: absent, or every thread of it exited (unreaped zombie).

    The main thread of a SIGKILLed multithreaded process turns zombie before the other
    threads have exited and released its sockets, so all threads are checked.
    """
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return True
    for thread in threads:
        try:
            stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
        except FileNotFoundError:
            continue  # this thread just exited
        if stat.rpartition(")")[2].split()[0] not in ("Z", "X"):
            return False
    return True


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _port_released(port: int) -> bool:
    """Nothing listens on ``port`` and a new server could bind it."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        server.bind(("127.0.0.1", port))
        server.listen()
    return True


async def test_embedded_servers_serve_clients_then_leave_nothing_behind(name_prefix: str) -> None:
    topic = f"{name_prefix}roundtrip"

    with embedded_services() as services:
        assert services.kafka is not None and services.redis is not None
        servers: list[EmbeddedKafka | EmbeddedRedis] = [services.kafka, services.redis]
        pids = [server.pid for server in servers]
        ports = [server.port for server in servers]
        workdirs = [server.log_path.parent for server in servers]

        producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"hello", key=b"lead-1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=services.kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), _RECEIVE_TIMEOUT_S)
        finally:
            await consumer.stop()
        client = aioredis.Redis.from_url(services.redis_url)
        try:
            await client.set(f"{name_prefix}k", b"v")
            stored = await client.get(f"{name_prefix}k")
        finally:
            await client.aclose()

    assert (record.key, record.value) == (b"lead-1", b"hello")
    assert stored == b"v"
    assert all(pid is not None and _gone(pid) for pid in pids)
    assert all(_port_released(port) for port in ports)
    assert not any(workdir.exists() for workdir in workdirs)


def test_given_addresses_are_checked_and_nothing_is_started(
    kafka_bootstrap: str, redis_url: str
) -> None:
    with embedded_services(kafka_bootstrap, redis_url, timeout_s=10) as services:
        assert (services.kafka_bootstrap, services.redis_url) == (kafka_bootstrap, redis_url)
        assert services.kafka is None and services.redis is None


@pytest.fixture
def prefix_is_empty_afterwards(redis_url: str, name_prefix: str) -> Iterator[None]:
    """Set up before ``redis_client``, so this check runs after its cleanup."""
    yield
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{name_prefix}*")) == []
    finally:
        client.close()


async def test_redis_client_deletes_the_tests_keys_afterwards(
    prefix_is_empty_afterwards: None, redis_client: aioredis.Redis, name_prefix: str
) -> None:
    await redis_client.set(f"{name_prefix}score:lead-1", b"42")
    await redis_client.zadd(f"{name_prefix}leaderboard", {"lead-1": 42})

    assert await redis_client.exists(f"{name_prefix}score:lead-1", f"{name_prefix}leaderboard") == 2


@pytest.mark.parametrize("server_class", [EmbeddedKafka, EmbeddedRedis])
def test_a_taken_port_fails_start_with_the_server_log(
    server_class: type[EmbeddedKafka] | type[EmbeddedRedis], tmp_path: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = server_class(port=port, workdir=tmp_path, startup_timeout_s=10)

        with pytest.raises(ServiceExitedError, match="in use") as info:
            server.start()

    assert info.value.log_path == tmp_path / f"{server.name}.log"
    assert not server.running


# The parent of a broker in the tests below; it waits for a line on stdin (or a signal).
# argv: workdir, how the parent ends.
_PARENT_SCRIPT = """
import sys
from pathlib import Path
from leadscore.infra.embedded.servers import EmbeddedKafka

kafka = EmbeddedKafka(workdir=Path(sys.argv[1]))
kafka.start()
print(kafka.pid, kafka.port, flush=True)
if sys.argv[2] == "ctrl-c":
    with kafka:  # already started; stopped on the way out
        sys.stdin.readline()
else:
    sys.stdin.readline()  # then exit without stop(): the atexit hook stops the broker
"""


def _read_broker_address(parent: subprocess.Popen[str], timeout_s: float = 30) -> tuple[int, int]:
    """The ``pid port`` line the parent script prints once its broker answers."""
    assert parent.stdout is not None and parent.stderr is not None
    ready, _, _ = select.select([parent.stdout], [], [], timeout_s)
    line = parent.stdout.readline() if ready else ""
    if not line:
        parent.kill()
        pytest.fail(f"the parent script reported no broker; its stderr:\n{parent.stderr.read()}")
    pid, port = line.split()
    return int(pid), int(port)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("ending", ["sigkill", "ctrl-c", "exit-without-stop"])
def test_the_broker_does_not_outlive_its_parent(ending: str, tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT_SCRIPT, str(tmp_path), ending],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a program in a terminal
    )
    try:
        broker_pid, broker_port = _read_broker_address(parent)
        assert not _gone(broker_pid)
        assert os.getpgid(broker_pid) == broker_pid  # own group: a terminal's Ctrl-C misses it

        if ending == "sigkill":
            parent.kill()
        elif ending == "ctrl-c":
            os.killpg(parent.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        else:
            parent.communicate("go on\n", timeout=10)
        parent.wait(timeout=10)

        assert _eventually(lambda: _gone(broker_pid)), f"broker {broker_pid} outlived its parent"
        assert _eventually(lambda: _port_released(broker_port))
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
