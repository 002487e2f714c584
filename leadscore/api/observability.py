"""What the API measures: request latency, worker throughput, Prometheus exposition."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from leadscore.infra.heartbeats import read_workers
from leadscore.infra.redis_store import ScoreStore

log = logging.getLogger(__name__)

#: Latency buckets (s): fine below 10 ms, where single scoring lives.
_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)


class ApiMetrics:
    """Request counts and latencies per route, for ``/metrics`` and ``/v1/metrics/performance``."""

    def __init__(self, recent: int = 4096) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadscore_api_requests",
            "API requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadscore_api_request_seconds", "server time per request", ["method", "route"],
            buckets=_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._recent: dict[str, deque[float]] = {}
        self._size = recent

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        key = f"{method} {route}"
        window = self._recent.get(key)
        if window is None:
            window = self._recent[key] = deque(maxlen=self._size)
        window.append(seconds)

    def latency_summary(self) -> dict[str, dict[str, float]]:
        """p50/p95/p99 (ms) of the last requests per route, with how many they are."""
        out = {}
        for key, window in sorted(self._recent.items()):
            values = np.fromiter(window, dtype=np.float64) * 1000.0
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            out[key] = {
                "requests": len(values),
                "p50_ms": round(float(p50), 3),
                "p95_ms": round(float(p95), 3),
                "p99_ms": round(float(p99), 3),
            }
        return out


class ThroughputSampler:
    """Samples the workers' counters in Redis to give rates (events/s, scores/s).

    Args:
        store: the score store (its ``stats`` hash is what every worker adds to).
        interval_s: how often to sample.
        window_s: the span rates are measured over.
    """

    def __init__(self, store: ScoreStore, interval_s: float = 2.0, window_s: float = 60.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self._samples: deque[tuple[float, dict[str, int]]] = deque(
            maxlen=int(window_s / interval_s) + 1
        )

    async def sample(self) -> dict[str, int]:
        stats = await self.store.stats()
        self._samples.append((time.monotonic(), stats))
        return stats

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # Redis down: /readyz says so; keep sampling
                log.debug("could not sample worker counters: %r", exc)
            await asyncio.sleep(self.interval_s)

    def rates(self) -> dict[str, float | None]:
        """Per-second rate of each counter over the sampled window (``None`` until two samples)."""
        if len(self._samples) < 2:
            return {}
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        span = t1 - t0
        if span <= 0:
            return {}
        return {name: round((value - first.get(name, 0)) / span, 2) for name, value in last.items()}

    @property
    def window_s(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        return self._samples[-1][0] - self._samples[0][0]


def _line(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> str:
    rows = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    rows += [f"{name}{labels} {value}" for labels, value in samples]
    return "\n".join(rows) + "\n"


async def prometheus_text(ctx: Any) -> bytes:
    """The exposition: this process's metrics plus the workers' counters (from Redis)."""
    parts = [generate_latest(ctx.metrics.registry).decode()]
    try:
        stats = await ctx.store.stats()
        workers = await read_workers(ctx.redis, ctx.settings.redis_prefix)
    except Exception:  # Redis down: expose what this process knows
        stats, workers = {}, None
    if workers is not None:
        parts.append(
            _line("leadscore_workers_alive", "gauge",
                  "workers whose heartbeat is in Redis (seen in the last 15 s)",
                  [("", workers.alive)])
        )  # fmt: skip
        if workers.last_batch_s is not None:
            parts.append(
                _line("leadscore_worker_last_batch_age_seconds", "gauge",
                      "seconds since any worker last processed a batch",
                      [("", round(workers.last_batch_s, 3))])
            )  # fmt: skip
    for name, value in sorted(stats.items()):
        parts.append(
            _line(
                f"leadscore_worker_{name}_total",
                "counter",
                f"worker counter '{name}', summed over every worker",
                [("", value)],
            )
        )
    scorer = ctx.models.scorer
    parts.append(
        _line(
            "leadscore_api_model_info",
            "gauge",
            "the model this API process scores with",
            [(f'{{version="{scorer.version}"}}', 1)],
        )
    )
    cache = ctx.cache
    parts.append(
        _line(
            "leadscore_api_score_cache_hits_total",
            "counter",
            "latest-score cache hits",
            [("", cache.hits)],
        )
    )
    parts.append(
        _line(
            "leadscore_api_score_cache_misses_total",
            "counter",
            "latest-score cache misses",
            [("", cache.misses)],
        )
    )
    feed = ctx.feed
    if feed is not None:
        for name, value in sorted(feed.stats().items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                parts.append(
                    _line(
                        f"leadscore_api_feed_{name}",
                        "gauge",
                        f"WebSocket feed: {name}",
                        [("", value)],
                    )
                )
    return "".join(parts).encode()
