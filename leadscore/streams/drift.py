"""The drift agent: ``leads.features.v1`` + ``leads.training.v1`` → windows → ``models.drift.v1``.

It runs in its own consumer group (``<app_id>-drift``), beside the scoring agent in
``leadscore worker``, so a slow test never holds up
scoring and its offsets are its own. With several workers each agent gets some
partitions: a partition's leads are a hash-sample of all leads, so each agent's windows
are a fair sample of the traffic.

Per model version (:class:`~leadscore.models.monitoring.monitor.DriftMonitor`): tumbling
windows of distinct leads, a live baseline, KS/χ² tests with the false-alarm guards.
Per version too, a sliding window of labelled outcomes (ROC-AUC, Brier, ...) that raises
a performance alert when the model gets worse. Every tested window is published, kept
in Redis for the API (``GET /v1/drift``) and, at or above ``retrain_on_drift``, asks the
:class:`~leadscore.streams.retrain_trigger.RetrainController` for a retrain.

Offsets are committed as records are read: a crash loses at most the open window's rows
(a sample), never a published report; the baseline and persistence state of each
version are saved in Redis after every window, so a restart continues where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

import faust
import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from redis.asyncio import Redis

from leadscore.infra.closed_loop_store import KEPT_DRIFT_EVENTS, ClosedLoopKeys
from leadscore.infra.kafka.client import client_options, new_consumer, stop_consumer
from leadscore.infra.redis_store import connect
from leadscore.infra.retry import Backoff, forever
from leadscore.models.features.vector import FEATURE_NAMES, FEATURE_SPEC_VERSION
from leadscore.models.monitoring.drift import DriftConfig
from leadscore.models.monitoring.monitor import ClosedWindow, DriftMonitor, WindowBuffer, utc
from leadscore.models.monitoring.performance import PerformanceWindow
from leadscore.models.monitoring.report import ALERT_LEVELS, DriftReport
from leadscore.schemas.learning import DriftEvent, FeatureSample, TrainingExample
from leadscore.settings import Settings
from leadscore.streams.context import WorkerContext
from leadscore.streams.retrain_trigger import RetrainController

log = logging.getLogger(__name__)

#: Model versions whose windows are kept open at once (a swap interleaves two for a while).
MAX_VERSIONS = 3


def attach_drift(app: faust.App, worker: WorkerContext) -> None:
    """The drift agent and the retrain triggers, as one task of the worker."""
    settings = worker.settings

    @app.task
    async def watch_drift() -> None:
        """Test windows of scored vectors and labelled outcomes; retrain when they say so."""
        redis = connect(settings.redis_url, max_connections=8)
        controller = RetrainController(settings, redis)
        agent = DriftAgent(
            settings, redis, on_alert=controller.on_drift, on_labels=controller.on_labels
        )
        ticker = asyncio.create_task(_tick(controller))
        try:
            await agent.run()
        finally:
            ticker.cancel()


async def _tick(controller: RetrainController) -> None:
    """The retrain schedule, checked every 30 s."""
    while True:
        try:
            await controller.on_tick()
        except Exception as exc:  # Redis down: the schedule waits
            log.warning("retrain schedule check failed (%r)", exc)
        await asyncio.sleep(30.0)


def drift_config(settings: Settings) -> DriftConfig:
    k, m = settings.drift_persistence
    return DriftConfig(
        min_window=min(200, settings.drift_window_size),
        alpha=settings.drift_alpha,
        ks_min_effect=settings.drift_ks_min_effect,
        psi_min_effect=settings.drift_psi_min_effect,
        persistence_k=k,
        persistence_m=m,
    )


class DriftAgent:
    """Consume scored vectors and labelled outcomes; publish one report per tested window.

    Args:
        settings: topics, window sizes, guards.
        redis: where reports, monitor state and performance summaries are kept.
        on_alert: called with each published :class:`DriftEvent` (the retrain trigger).
        on_labels: called with the number of labelled outcomes read in each poll.
    """

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        *,
        on_alert: Any = None,
        on_labels: Any = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = ClosedLoopKeys(settings.redis_prefix)
        self.config = drift_config(settings)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.on_alert = on_alert
        self.on_labels = on_labels
        self.monitors: OrderedDict[str, tuple[DriftMonitor, WindowBuffer]] = OrderedDict()
        self.performance: dict[str, PerformanceWindow] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift")
        self.stats = {"samples": 0, "labels": 0, "windows": 0, "invalid": 0, "cpu_ms": 0.0}
        self._producer: AIOKafkaProducer | None = None

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled, reconnecting with back-off after a broker outage."""
        await forever(
            lambda healthy: self._consume(),
            "drift agent",
            retry_on=(Exception,),
            backoff=Backoff(0.5, 30.0),
            log=log,
        )

    async def _consume(self) -> None:
        s = self.settings
        consumer = new_consumer(
            s,
            s.features_topic,
            s.training_topic,
            group_id=f"{s.app_id}-drift",
            auto_offset_reset="earliest",
            auto_commit_interval_ms=1000,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_poll_interval_ms=max(10_000, int(s.broker_rebalance_timeout_s * 1000)),
            session_timeout_ms=int(s.broker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.broker_heartbeat_interval_s * 1000),
            rebalance_timeout_ms=int(s.broker_rebalance_timeout_s * 1000),
        )
        producer = AIOKafkaProducer(**client_options(s), acks="all", linger_ms=5)
        try:  # each start inside its try: a start that fails must close its client too
            await producer.start()
            self._producer = producer
            try:
                await consumer.start()
                while True:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                    for tp, records in batches.items():
                        if tp.topic == s.training_topic:
                            await self._labels(records)
                        else:
                            await self._samples(records)
            finally:
                await stop_consumer(consumer)
        finally:
            self._producer = None
            await producer.stop()

    # --- labelled outcomes ------------------------------------------------------------------

    async def _labels(self, records: list[Any]) -> None:
        touched: set[str] = set()
        n = 0
        for record in records:
            try:
                example = TrainingExample.model_validate_json(record.value or b"")
            except ValidationError as exc:
                self._invalid(record, exc)
                continue
            window = self.performance.get(example.model_version)
            if window is None:
                window = self.performance[example.model_version] = await self._restore_performance(
                    example.model_version
                )
            window.add(example.probability, example.label)
            touched.add(example.model_version)
            n += 1
        self.stats["labels"] += n
        if touched:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(
                self.keys.performance,
                mapping={v: orjson.dumps(self.performance[v].summary()) for v in touched},
            )
            for v in touched:  # the rows too: a restarted agent continues the window
                pipe.set(
                    self.keys.performance_state(v), orjson.dumps(self.performance[v].to_dict())
                )
            await pipe.execute()
        if n and self.on_labels is not None:
            await self.on_labels(n)

    # --- scored vectors ---------------------------------------------------------------------

    async def _samples(self, records: list[Any]) -> None:
        closed: list[tuple[str, ClosedWindow]] = []
        for record in records:
            try:
                sample = FeatureSample.model_validate_json(record.value or b"")
            except ValidationError as exc:
                self._invalid(record, exc)
                continue
            if sample.feature_spec_version != FEATURE_SPEC_VERSION or len(sample.features) != len(
                FEATURE_NAMES
            ):
                self._invalid(record, "another feature definition")
                continue
            self.stats["samples"] += 1
            _, buffer = await self._monitor(sample.model_version)
            window = buffer.add(
                sample.lead_id,
                np.asarray(sample.features, dtype=np.float64),
                sample.probability,
                sample.event_time.timestamp(),
            )
            if window is not None:
                closed.append((sample.model_version, window))
        for version, window in closed:
            await self._test(version, window)

    async def _restore_performance(self, version: str) -> PerformanceWindow:
        size, drop = self.settings.performance_window, self.settings.performance_auc_drop
        raw = await self.redis.get(self.keys.performance_state(version))
        if raw is not None:
            try:
                return PerformanceWindow.from_dict(orjson.loads(raw), size, drop)
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                log.warning(
                    "drift: saved performance of model %s unusable (%r); starting over",
                    version,
                    exc,
                )
        return PerformanceWindow(size, drop)

    async def _monitor(self, version: str) -> tuple[DriftMonitor, WindowBuffer]:
        entry = self.monitors.get(version)
        if entry is None:
            monitor = await self._restore(version)
            s = self.settings
            buffer = WindowBuffer(s.drift_window_size, min_span_s=s.drift_window_min_days * 86400)
            entry = self.monitors[version] = (monitor, buffer)
            while len(self.monitors) > MAX_VERSIONS:
                old, _ = self.monitors.popitem(last=False)
                log.info("drift: no longer watching model %s", old)
        self.monitors.move_to_end(version)
        return entry

    async def _restore(self, version: str) -> DriftMonitor:
        raw = cast(bytes | None, await self.redis.get(self.keys.state(version)))
        if raw is not None:
            try:
                monitor = DriftMonitor.from_bytes(
                    raw, FEATURE_NAMES, self.config, self.settings.drift_baseline_windows
                )
                log.info("drift: model %s resumes after %d windows", version, monitor.windows_seen_)
                return monitor
            except Exception as exc:  # a damaged state only costs a new baseline
                log.warning(
                    "drift: saved state of model %s unusable (%r); new baseline", version, exc
                )
        return DriftMonitor(
            version, FEATURE_NAMES, self.config, self.settings.drift_baseline_windows
        )

    async def _test(self, version: str, window: ClosedWindow) -> None:
        monitor, _ = self.monitors[version]
        loop = asyncio.get_running_loop()

        def run() -> tuple[DriftReport, bytes, float]:
            started = time.thread_time()
            report = monitor.test(window)
            state = monitor.to_bytes()
            return report, state, (time.thread_time() - started) * 1000

        report, state, cpu_ms = await loop.run_in_executor(self.executor, run)
        self.stats["windows"] += 1
        self.stats["cpu_ms"] += cpu_ms
        performance = self.performance.get(version)
        perf = performance.summary() if performance is not None else None
        level = report.level
        if perf is not None and ALERT_LEVELS.index(perf["level"]) > ALERT_LEVELS.index(level):
            level = perf["level"]
        event = DriftEvent(
            type="drift.window" if report.tested else "drift.baseline",
            id=f"dr_{uuid.uuid4().hex}",
            model_version=version,
            agent=self.name,
            level=level,
            window_index=report.window_index,
            n_rows=report.n_rows,
            window_start=utc(window.start),
            window_end=utc(window.end),
            report=report.to_dict(),
            performance=perf,
            cpu_ms=round(cpu_ms, 3),
            at=datetime.now(UTC),
        )
        body = orjson.dumps(event.model_dump(mode="json"))
        assert self._producer is not None
        await self._producer.send_and_wait(self.settings.drift_topic, body, key=version.encode())
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.state(version), state)
        pipe.lpush(self.keys.events, body)
        pipe.ltrim(self.keys.events, 0, KEPT_DRIFT_EVENTS - 1)
        pipe.hset(self.keys.latest, version, body)
        await pipe.execute()
        if level != "none":
            log.warning(
                "drift %s on model %s (window %d of %d leads): %s", level, version,
                report.window_index, report.n_rows, ", ".join(report.persistent_features[:8]) or report.reason,
            )  # fmt: skip
        if self.on_alert is not None:
            await self.on_alert(event)

    def _invalid(self, record: Any, why: Any) -> None:
        # Our own records: a bad one is a bug or a foreign producer; skip it, say where.
        self.stats["invalid"] += 1
        log.warning(
            "drift agent skips %s:%d@%d: %s", record.topic, record.partition, record.offset, why
        )
