"""A retrain's bookkeeping: the lock that lets one run at a time, and its decision's record.

The decision is kept in Redis (``retrain:decisions``, newest first) and published on
``models.events.v1`` as ``model.retrain_decided``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from leadscore.infra.closed_loop_store import KEPT_DECISIONS, RELEASE_LOCK, ClosedLoopKeys
from leadscore.infra.model_events import ModelEventPublishError, publish_model_event
from leadscore.schemas.models import RetrainDecided
from leadscore.settings import Settings

__all__ = ["RetrainLock", "finish_record", "now_iso"]


class RetrainLock:
    """The Redis lock ``retrain:lock``: one retrain at a time, whoever starts it."""

    def __init__(self, settings: Settings, token: str | None) -> None:
        import redis

        self.client = redis.Redis.from_url(settings.redis_url)
        self.key = ClosedLoopKeys(settings.redis_prefix).lock
        self.ttl = int(settings.retrain_timeout_s) + 60
        self.given = token is not None
        self.token = token or f"{uuid.uuid4().hex}"

    def acquire(self) -> bool:
        if self.given:
            return True
        return bool(self.client.set(self.key, self.token, nx=True, ex=self.ttl))

    def holder(self) -> str:
        value = self.client.get(self.key)
        if not value:
            return "lock just released"
        holder = value.decode(errors="replace") if isinstance(value, bytes) else value
        return f"lock held by {holder}"

    def release(self) -> None:
        try:
            self.client.eval(RELEASE_LOCK, 1, self.key, self.token)
        finally:
            self.client.close()


def finish_record(
    settings: Settings, record: dict[str, Any], started: float, publish: bool
) -> None:
    """Stamp the decision record's end; with ``publish``, keep it in Redis and publish it.

    A failed announcement does not raise: it is noted in the record (``announce_warning``).
    """
    record["finished_at"] = now_iso()
    record["seconds"] = round(time.perf_counter() - started, 2)
    if not publish:
        return
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    try:
        key = ClosedLoopKeys(settings.redis_prefix).decisions
        client.lpush(key, orjson.dumps(record))
        client.ltrim(key, 0, KEPT_DECISIONS - 1)
    finally:
        client.close()

    event = RetrainDecided(
        id=f"me_{uuid.uuid4().hex}",
        version=record.get("candidate") or record.get("champion") or "none",
        reason=str(record.get("reason", ""))[:2000],
        at=datetime.now(UTC),
        outcome=record["outcome"],
        decision=record,
    )
    try:
        asyncio.run(publish_model_event(settings, event))
    except ModelEventPublishError as exc:
        record["announce_warning"] = str(exc)


def now_iso() -> str:
    """The time now (UTC, ISO 8601), as a decision record stamps it."""
    return datetime.now(UTC).isoformat()
