"""WebSocket fan-out of ``leads.scores.v1`` (being built; see issue 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from leadscore.settings import Settings

router = APIRouter(tags=["stream"])


class ScoreFeed:
    """Consumes ``leads.scores.v1`` and hands every event to listeners."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.connected = True

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self.listeners.append(listener)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {}
