"""WebSocket feed settings (docs/websocket.md), mixed into :class:`leadscore.settings.Settings`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class FeedSettings(BaseSettings):
    """How the API's live score feed queues, replays and compresses events."""

    ws_queue_size: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="score events queued per WebSocket connection; "
        "when full the oldest is dropped and the client gets a 'dropped' message",
    )
    ws_max_clients: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="WebSocket connections per API process; more are refused with close code 1013",
    )
    ws_replay_size: int = Field(
        10_000,
        ge=0,
        le=10_000_000,
        description="recent score events each API process keeps "
        "in memory to resume reconnecting clients; older positions are read back from the topic",
    )
    ws_resume_max_events: int = Field(
        100_000,
        ge=0,
        description="most score events one resume reads back from the topic; "
        "a position further back is 'too old'",
    )
    ws_compression: bool = Field(
        False,
        description="permessage-deflate on /v1/stream: about 3x the CPU per message for "
        "smaller frames; off unless clients are on slow links",
    )
