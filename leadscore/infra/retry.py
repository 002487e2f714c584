"""Riding through outages: the one retry-with-backoff loop every consumer and writer uses.

Two shapes cover every long-running part of leadscore:

- :func:`until_done` runs one piece of work (a batch's Redis write, queueing a batch of
  webhooks) until it succeeds: the caller's offsets are committed only after it returns,
  so an outage waits here and loses nothing.
- :func:`forever` runs a loop that should never end (a consumer of a topic): when it
  raises, it is started again after a pause, and the pause grows while failures repeat.

Both back off from a short first pause to a cap, doubling, and log an outage once: its
first failure (what failed, when the next try is), then at most one line a minute with
the count of failed tries so far, then one line when it works again. Cancellation always
passes straight through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Backoff", "Outage", "forever", "until_done"]

_T = TypeVar("_T")

_log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Pauses that double from ``first_s`` up to ``max_s``; :meth:`reset` after a success.

    Examples:
        >>> b = Backoff(0.5, 2.0)
        >>> [b.next() for _ in range(4)]
        [0.5, 1.0, 2.0, 2.0]
        >>> b.reset(); b.next()
        0.5
    """

    first_s: float
    max_s: float
    _next_s: float = field(init=False)

    def __post_init__(self) -> None:
        self._next_s = self.first_s

    def next(self) -> float:
        """The pause to take now; the one after it is twice as long (up to ``max_s``)."""
        pause = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return pause

    def reset(self) -> None:
        """Start again from ``first_s`` (call it once things work again)."""
        self._next_s = self.first_s


async def until_done(
    attempt: Callable[[], Awaitable[_T]],
    what: str,
    *,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    backoff: Backoff | None = None,
    log: logging.Logger = _log,
) -> _T:
    """Run ``attempt`` until it returns, pausing (0.2 s doubling to 10 s) after each failure.

    Args:
        attempt: the work; called again from the start after a failure.
        what: what it does, for the log ("write scores to Redis").
        retry_on: the errors that mean "try again" (an outage); others propagate.
        backoff: the pauses (default: 0.2 s doubling up to 10 s).
        log: the logger of the caller's module.
    """
    backoff = backoff or Backoff(0.2, 10.0)
    outage = Outage(log, f"could not {what}", "retrying")
    while True:
        try:
            result = await attempt()
        except retry_on as exc:
            pause = backoff.next()
            outage.failed(exc, pause)
            await asyncio.sleep(pause)
        else:
            outage.over()
            return result


async def forever(
    run: Callable[[Callable[[], None]], Awaitable[None]],
    what: str,
    *,
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff,
    log: logging.Logger = _log,
    on_failure: Callable[[BaseException], None] | None = None,
) -> None:
    """Run ``run`` and start it again whenever it fails with one of ``retry_on``.

    ``run`` gets a callable to call once it is healthy again (connected, positioned): the
    pauses start over from the shortest. When ``run`` returns, so does this.

    Args:
        run: the loop; ``run(healthy)``.
        what: what stopped, for the log ("score feed on leads.scores.v1").
        retry_on: the errors that mean "start again" (an outage); others propagate.
        backoff: the pauses between starts.
        log: the logger of the caller's module.
        on_failure: called with each failure before the pause (e.g. to count it).
    """
    outage = Outage(log, f"{what} failed", "starting again")

    def healthy() -> None:
        backoff.reset()
        outage.over()

    while True:
        try:
            await run(healthy)
            return
        except retry_on as exc:
            if on_failure is not None:
                on_failure(exc)
            pause = backoff.next()
            outage.failed(exc, pause)
            await asyncio.sleep(pause)


@dataclass
class Outage:
    """The log of one outage: its first failure, a line a minute with the count, its end.

    Examples:
        >>> import logging, sys
        >>> log = logging.getLogger("doc"); log.propagate = False
        >>> log.addHandler(logging.StreamHandler(sys.stdout)); log.setLevel(logging.INFO)
        >>> now = [0.0]
        >>> outage = Outage(log, "feed failed", "starting again", clock=lambda: now[0])
        >>> for t in (0, 1, 3, 7, 70):
        ...     now[0] = t; outage.failed(OSError("refused"), 1.0)
        feed failed (OSError('refused')); starting again in 1.0 s
        feed failed (OSError('refused')); still failing: 5 tries in 70 s; starting again in 1.0 s
        >>> now[0] = 71; outage.over()
        feed failed: works again after 5 failed tries in 71 s
    """

    log: logging.Logger
    what: str  # "score feed on leads.scores.v1 failed", "could not write scores to Redis"
    then: str  # "retrying", "starting again"
    every_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    started: float = 0.0
    last_logged: float = 0.0

    def failed(self, exc: BaseException, pause: float) -> None:
        now = self.clock()
        self.failures += 1
        if self.failures == 1:
            self.started = self.last_logged = now
            self.log.warning("%s (%r); %s in %.1f s", self.what, exc, self.then, pause)
        elif now - self.last_logged >= self.every_s:
            self.last_logged = now
            self.log.warning(
                "%s (%r); still failing: %d tries in %.0f s; %s in %.1f s",
                self.what, exc, self.failures, now - self.started, self.then, pause,
            )  # fmt: skip
        else:
            self.log.debug("%s (%r); %s in %.1f s", self.what, exc, self.then, pause)

    def over(self) -> None:
        if self.failures:
            self.log.warning(
                "%s: works again after %d failed tries in %.0f s",
                self.what, self.failures, self.clock() - self.started,
            )  # fmt: skip
        self.failures = 0
