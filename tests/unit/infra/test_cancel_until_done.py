"""cancel_until_done ends a task even when one cancellation is lost (Python 3.11's wait_for)."""

from __future__ import annotations

import asyncio

from leadscore.infra.webhooks.delivery import cancel_until_done


async def test_a_lost_cancellation_is_sent_again() -> None:
    swallowed = 0

    async def loop_that_loses_one_cancel() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed == 0:  # what 3.11's wait_for can do when the inner call completes
                    swallowed += 1
                    continue
                raise

    task = asyncio.create_task(loop_that_loses_one_cancel())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_until_done(task, retry_s=0.05), timeout=2)
    assert task.cancelled() and swallowed == 1


async def test_a_task_that_already_ended_is_left_alone() -> None:
    task = asyncio.create_task(asyncio.sleep(0))
    await task
    await cancel_until_done(task)
    assert task.done() and not task.cancelled()
