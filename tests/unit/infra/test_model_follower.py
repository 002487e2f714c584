"""``stop_consumer``: aiokafka's own cancellation from ``stop()`` must not end a reconnect loop.

aiokafka 0.14's ``consumer.stop()`` can raise, after a lost connection, the
``CancelledError`` of its own fetch task. Raised from the ``finally`` of a listener, it
escaped the model-event listener's ``except (KafkaError, OSError, ...)`` and ended its
restart loop for good after a broker blip. No network: the consumer is a stand-in.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from leadscore.infra import model_events
from leadscore.infra.kafka.client import stop_consumer
from leadscore.infra.model_events import ModelFollower, follow_model_events
from leadscore.settings import Settings

pytestmark = [pytest.mark.timeout(10)]


async def _await_own_cancelled_task() -> None:
    """What aiokafka 0.14's ``stop()`` can do: cancel its fetch task, then await it."""
    fetch = asyncio.create_task(asyncio.sleep(3600))  # sleeping between fetch retries
    await asyncio.sleep(0)
    fetch.cancel()
    await fetch  # its CancelledError reaches whoever called stop()


class _LostConsumer:
    """A consumer whose connection is gone: ``topics()`` fails, ``stop()`` raises a cancellation.

    Args:
        options: the aiokafka options it was built with (ignored).
    """

    def __init__(self, **options: Any) -> None:
        self.started = 0
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        """Connect (always works)."""
        self.started += 1

    async def topics(self) -> set[str]:
        """Refresh metadata: the broker went away."""
        raise KafkaConnectionError("connection to the broker lost")

    async def stop(self) -> None:
        """Stop, raising the fetch task's ``CancelledError`` into the caller."""
        self.stopped.set()
        await _await_own_cancelled_task()


async def test_the_stand_in_raises_a_cancellation_from_stop_as_aiokafka_can() -> None:
    with pytest.raises(asyncio.CancelledError):
        await _LostConsumer().stop()
    assert not cast(asyncio.Task[None], asyncio.current_task()).cancelling()


async def test_a_cancellation_from_stop_is_swallowed_when_the_caller_is_not_cancelled() -> None:
    consumer = _LostConsumer()
    await stop_consumer(cast(AIOKafkaConsumer, consumer))  # returns: no CancelledError
    assert consumer.stopped.is_set()


async def test_a_cancellation_of_the_caller_during_stop_is_passed_on() -> None:
    entered = asyncio.Event()

    class SlowStop:
        async def stop(self) -> None:
            entered.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(stop_consumer(cast(AIOKafkaConsumer, SlowStop())))
    await asyncio.wait_for(entered.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_the_model_event_listener_restarts_after_stop_raises_a_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumers: list[_LostConsumer] = []

    def lost_consumer(settings: Settings, *topics: str, **options: Any) -> _LostConsumer:
        consumers.append(_LostConsumer(**options))
        return consumers[-1]

    monkeypatch.setattr(model_events, "new_consumer", lost_consumer)
    follower = cast(ModelFollower, object())  # never reached: the listener fails before it syncs
    listener = asyncio.create_task(follow_model_events(Settings(), follower))
    try:
        await asyncio.wait_for(_first_stop(consumers), 1)
        for _ in range(3):
            await asyncio.sleep(0)  # let the listener's task run past its finally
        # Before the fix the CancelledError from stop() ended the task here; now the
        # KafkaConnectionError reaches the restart loop, which waits 1 s and starts over.
        assert not listener.done(), "the model-event listener stopped for good"
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener


async def _first_stop(consumers: list[_LostConsumer]) -> None:
    """Return once the listener built its first consumer and stopped it."""
    while not consumers:  # noqa: ASYNC110 (the list is filled by a patched constructor)
        await asyncio.sleep(0.001)
    await consumers[0].stopped.wait()
