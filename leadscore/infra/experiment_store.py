"""A/B experiment records in Redis (``P experiments``: hash id -> JSON).

The records only; a lead's arm (a pure function of its id and the experiment's) and the
sequential statistics of a result are in :mod:`leadscore.models.experiments`.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis


class ExperimentStore:
    def __init__(self, client: aioredis.Redis, prefix: str = "leadscore:") -> None:
        self.client = client
        self.key = f"{prefix}experiments"

    async def create(self, experiment: dict[str, Any]) -> bool:
        """Store a new experiment; ``False`` if one with its id exists."""
        return bool(await self.client.hsetnx(self.key, experiment["id"], orjson.dumps(experiment)))

    async def get(self, experiment_id: str) -> dict[str, Any] | None:
        raw = await self.client.hget(self.key, experiment_id)
        return orjson.loads(raw) if raw is not None else None

    async def list(self) -> list[dict[str, Any]]:
        raw = await self.client.hgetall(self.key)
        return sorted((orjson.loads(v) for v in raw.values()), key=lambda e: e["created_at"])
