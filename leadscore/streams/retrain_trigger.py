"""When to retrain, and running it off the event loop: the worker's retrain controller.

Three triggers (docs/drift.md): a drift report at or above ``retrain_on_drift``;
``retrain_min_new_labels`` labelled outcomes since the last retrain; every
``retrain_interval_s``. A retrain runs ``python -m leadscore.jobs.retrain`` in a child
process (training is CPU-bound and must never run on a loop that serves traffic),
under a Redis lock so that of many workers only one retrains at a time, and not again
within ``retrain_cooldown_s`` of the last automatic start (a persisting alert would
otherwise retrain on every window).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from typing import Any

import orjson
from redis.asyncio import Redis

from leadscore.infra.closed_loop_store import RELEASE_LOCK, ClosedLoopKeys
from leadscore.models.monitoring.report import level_at_least
from leadscore.schemas.learning import DriftEvent
from leadscore.settings import Settings

log = logging.getLogger(__name__)

#: After a retrain that trained nothing (too few labels), the next may start this soon.
SKIPPED_RETRY_S = 60.0


class RetrainController:
    """Decides when to retrain and runs it in a child process, one at a time across workers."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        keys = ClosedLoopKeys(settings.redis_prefix)
        self.lock_key = keys.lock
        self.labels_key = keys.new_labels
        self.last_key = keys.last_started
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.running: asyncio.Task[dict[str, Any]] | None = None
        self.last_decision: dict[str, Any] | None = None
        # A retrain that was asked for but trained nothing (too few labels): asked again as
        # labels arrive, once the short retry wait has passed.
        self.pending: tuple[str, str] | None = None

    async def on_drift(self, event: DriftEvent) -> None:
        """A drift report: retrain if it reaches ``retrain_on_drift``."""
        if level_at_least(event.level, self.settings.retrain_on_drift):
            features = ", ".join(event.report.get("persistent_features", [])[:8])
            detail = f"{event.level} drift on model {event.model_version} ({event.id}): {features}"
            perf = event.performance or {}
            if perf.get("level", "none") != "none":
                detail += f"; performance {perf['level']}"
            await self.request("drift", detail)

    async def on_labels(self, n: int) -> None:
        """``n`` more labelled outcomes: retrain once enough have come since the last retrain."""
        total = await self.redis.incrby(self.labels_key, n)
        threshold = self.settings.retrain_min_new_labels
        if threshold and total >= threshold:
            await self.request("labels", f"{total} labelled outcomes since the last retrain")
        elif self.pending is not None:
            await self._retry_pending()

    async def _retry_pending(self) -> None:
        assert self.pending is not None
        trigger, detail = self.pending
        if await self.request(trigger, detail):
            self.pending = None

    async def on_tick(self) -> None:
        """The schedule: retrain every ``retrain_interval_s``; retry a retrain that lacked labels."""
        if self.pending is not None:
            await self._retry_pending()
        interval = self.settings.retrain_interval_s
        if not interval:
            return
        last = await self.redis.get(self.last_key)
        if last is None:  # first tick: start the clock, do not retrain at start-up
            await self.redis.set(self.last_key, time.time(), nx=True)
            return
        if time.time() - float(last) >= interval:
            await self.request("schedule", f"every {interval:.0f} s")

    async def request(self, trigger: str, detail: str) -> bool:
        """Start a retrain unless one runs, the cooldown holds, or retraining is off."""
        s = self.settings
        if not s.retrain_enabled:
            return False
        if self.running is not None and not self.running.done():
            return False
        last = await self.redis.get(self.last_key)
        if last is not None and time.time() - float(last) < s.retrain_cooldown_s:
            log.debug("retrain (%s) not started: within the cooldown", trigger)
            return False
        token = f"{self.owner}:{time.time()}"
        if not await self.redis.set(
            self.lock_key, token, nx=True, ex=int(s.retrain_timeout_s) + 60
        ):
            return False
        await self.redis.set(self.last_key, time.time())
        await self.redis.set(self.labels_key, 0)
        log.warning("retraining (%s): %s", trigger, detail)
        self.running = asyncio.create_task(self._run(trigger, detail, token), name="retrain")
        return True

    async def _run(self, trigger: str, detail: str, token: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "leadscore.jobs.retrain", "--trigger", trigger, "--detail", detail,
                "--lock-token", token,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                out, err = await asyncio.wait_for(
                    process.communicate(), self.settings.retrain_timeout_s
                )
            except (TimeoutError, asyncio.CancelledError):
                process.kill()
                await process.wait()
                raise
            decision = _last_json(out) or {
                "outcome": "failed",
                "reason": f"retrain exited with status {process.returncode}: {err.decode(errors='replace')[-500:]}",
            }
            self.last_decision = decision
            if decision.get("outcome") == "skipped":
                self.pending = (trigger, detail)
                # Nothing was trained (too few labels): try again within a minute, not after
                # the whole cooldown, or an early alert would block retraining for an hour.
                retry_at = time.time() + min(self.settings.retrain_cooldown_s, SKIPPED_RETRY_S)
                await self.redis.set(self.last_key, retry_at - self.settings.retrain_cooldown_s)
            log.warning(
                "retrain (%s) ended in %.1f s: %s, %s", trigger, time.perf_counter() - started,
                decision.get("outcome"), decision.get("reason"),
            )  # fmt: skip
            return decision
        except TimeoutError:
            log.error("retrain (%s) killed after %.0f s", trigger, self.settings.retrain_timeout_s)
            return {"outcome": "failed", "reason": "timed out"}
        finally:
            await self.redis.eval(RELEASE_LOCK, 1, self.lock_key, token)


def _last_json(out: bytes) -> dict[str, Any] | None:
    for line in reversed(out.decode(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                decision: dict[str, Any] = orjson.loads(line)
                return decision
            except orjson.JSONDecodeError:
                continue
    return None
