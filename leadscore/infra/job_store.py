"""Background jobs of the API (training, file scoring) as records in Redis.

- ``P job:<id>``  the job (JSON: kind, status, progress, stage, message, result, times, owner)
- ``P jobs``      sorted set: job id -> creation time, for listing newest first

Any API replica can answer for any job; the process that started it updates it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import redis.asyncio as aioredis


def _now() -> str:
    return datetime.now(UTC).isoformat()


class JobStore:
    """Creates, updates and reads job records."""

    def __init__(self, client: aioredis.Redis, prefix: str = "leadscore:") -> None:
        self.client = client
        self.prefix = prefix
        self.index_key = f"{prefix}jobs"

    def key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    async def create(
        self, kind: str, created_by: str | None, params: dict[str, Any]
    ) -> dict[str, Any]:
        job_id = f"job_{secrets.token_hex(8)}"
        job = {
            "id": job_id,
            "kind": kind,
            "status": "queued",
            "progress": 0.0,
            "stage": "queued",
            "message": "",
            "created_at": _now(),
            "finished_at": None,
            "result": None,
            "created_by": created_by,
            "params": params,
        }
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key(job_id), orjson.dumps(job))
        pipe.zadd(self.index_key, {job_id: datetime.now(UTC).timestamp()})
        await pipe.execute()
        return job

    async def update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        job = await self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        job.update(changes)
        if changes.get("status") in ("succeeded", "failed"):
            job["finished_at"] = _now()
        await self.client.set(self.key(job_id), orjson.dumps(job))
        return job

    async def get(self, job_id: str) -> dict[str, Any] | None:
        raw = await self.client.get(self.key(job_id))
        return orjson.loads(raw) if raw is not None else None

    async def list(self, limit: int = 50) -> list[dict[str, Any]]:
        ids = cast(list[bytes | str], await self.client.zrevrange(self.index_key, 0, limit - 1))
        if not ids:
            return []
        rows = await self.client.mget(
            [self.key(i.decode() if isinstance(i, bytes) else i) for i in ids]
        )
        return [orjson.loads(r) for r in rows if r is not None]
