"""When a failed webhook delivery is tried again: exponential delays to a horizon, with jitter."""

from __future__ import annotations

import math
import random

#: Each retry waits between (1 - JITTER) and 1 times its nominal delay: spreads the retries
#: of many deliveries that failed together, and never pushes the last one past the horizon.
JITTER = 0.2


def retry_delays(max_attempts: int, first_retry_s: float, horizon_s: float) -> list[float]:
    """Nominal seconds to wait after each failed attempt: exponential, summing to the horizon.

    The delays grow by one common ratio so that the first retry waits ``first_retry_s``
    and the last attempt falls ``horizon_s`` after the first. When even equal delays of
    ``first_retry_s`` would overrun the horizon, they are all ``horizon_s / retries``; a
    single retry waits the whole horizon.

    Args:
        max_attempts: attempts in all, the first included (``max_attempts - 1`` delays).
        first_retry_s: wait before the first retry.
        horizon_s: seconds from the first attempt to the last.

    Examples:
        >>> [round(d, 1) for d in retry_delays(4, 1.0, 7.0)]
        [1.0, 2.0, 4.0]
        >>> retry_delays(3, 10.0, 4.0), retry_delays(2, 1.0, 60.0), retry_delays(1, 1.0, 60.0)
        ([2.0, 2.0], [60.0], [])
    """
    retries = max_attempts - 1
    if retries <= 0:
        return []
    if retries == 1 or first_retry_s * retries >= horizon_s:
        return [horizon_s / retries] * retries

    def total(ratio: float) -> float:
        return sum(first_retry_s * ratio**k for k in range(retries))

    low, high = 1.0, 2.0
    while total(high) < horizon_s:
        high *= 2.0
    for _ in range(100):  # bisection to float precision
        middle = (low + high) / 2.0
        if total(middle) < horizon_s:
            low = middle
        else:
            high = middle
    ratio = (low + high) / 2.0
    return [first_retry_s * ratio**k for k in range(retries)]


def jittered(delay_s: float, rng: random.Random) -> float:
    """``delay_s`` less up to :data:`JITTER` of it, at random.

    Examples:
        >>> 8.0 <= jittered(10.0, random.Random(0)) <= 10.0
        True
    """
    return delay_s * (1.0 - JITTER * rng.random())


def next_attempt_delay(
    round_attempts: int, delays: list[float], rng: random.Random
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` when the attempts are used up.

    Args:
        round_attempts: attempts made so far in this round (1 after the first failure).
        delays: :func:`retry_delays` of the settings.
        rng: the jitter's random source.
    """
    if round_attempts > len(delays):
        return None
    return jittered(delays[round_attempts - 1], rng)


def retry_delays_summary(delays: list[float]) -> str:
    """The schedule in words, for logs and docs (``5s, 16s, 52s, ...``).

    Examples:
        >>> retry_delays_summary([0.245, 5.0, 16.2, 3600.0])
        '0.24s, 5s, 16s, 1h0m'
    """
    words = []
    for delay in delays:
        if delay < 60:
            words.append(f"{delay:.2g}s" if delay < 10 else f"{math.floor(delay + 0.5)}s")
        elif delay < 3600:
            words.append(f"{int(delay // 60)}m{int(delay % 60)}s")
        else:
            words.append(f"{int(delay // 3600)}h{int(delay % 3600 // 60)}m")
    return ", ".join(words)
