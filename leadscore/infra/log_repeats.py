"""Repeated log lines from libraries, once a minute with a count.

While the broker is down aiokafka logs ``Unable connect to "host:port"`` at ERROR on every
reconnection attempt of every client, a line a second or more for as long as the outage
lasts. :func:`quiet_repeats` puts a :class:`RepeatFilter` on its loggers: the first of a
kind of line goes through, the same line again within a minute is counted instead, and
the next one after that minute says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: The loggers of the Kafka client that repeat themselves during an outage. A filter on a
#: logger sees only what is logged on that logger itself (not on its children): each one.
KAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.admin.client",
    "aiokafka.client",
    "aiokafka.cluster",
    "aiokafka.conn",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.subscription_state",
    "aiokafka.helpers",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)


class RepeatFilter(logging.Filter):
    """Let a line through once per ``every_s`` (per logger, level and text); count the rest.

    Examples:
        >>> now = [0.0]
        >>> f = RepeatFilter(every_s=60.0, clock=lambda: now[0])
        >>> def line(msg):
        ...     r = logging.LogRecord("aiokafka", logging.ERROR, "", 0, msg, (), None)
        ...     return r.getMessage() if f.filter(r) else None
        >>> [line("Unable connect"), line("Unable connect"), line("other")]
        ['Unable connect', None, 'other']
        >>> now[0] = 61.0
        >>> line("Unable connect")
        'Unable connect (and 1 more like it in the last 61 s)'
    """

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # -> (logged at, left out)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        key = (record.name, record.levelno, text)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.every_s:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if len(self._seen) > 1000:  # many different lines: start over rather than grow
            self._seen.clear()
        self._seen[key] = (now, 0)
        if seen is not None and seen[1]:
            record.msg = f"{text} (and {seen[1]} more like it in the last {now - seen[0]:.0f} s)"
            record.args = ()
        return True


_installed: set[str] = set()


def quiet_repeats(names: tuple[str, ...] = KAFKA_LOGGERS) -> None:
    """Put one :class:`RepeatFilter` on each of these loggers (once per process)."""
    for name in names:
        if name not in _installed:
            logging.getLogger(name).addFilter(RepeatFilter())
            _installed.add(name)
