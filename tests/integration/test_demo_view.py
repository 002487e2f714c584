"""The demo's live view rides through a Redis that stops answering, and says so meanwhile."""

from __future__ import annotations

import asyncio

import pytest
from rich.console import Console

from leadscore.demo_view import _refresh_or_say, _render, _View
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.redis_store import ScoreStore, connect

pytestmark = pytest.mark.integration


def test_a_redis_that_does_not_answer_is_shown_not_fatal(redis_url: str) -> None:
    async def run() -> None:
        view = _View()
        dead = ScoreStore(connect(f"redis://127.0.0.1:{free_port()}/0"), "t-demo-view:")
        await _refresh_or_say(view, dead)  # no exception: the demo goes on
        assert view.problem.startswith("Redis does not answer since")
        console = Console(record=True, width=200)
        console.print(_render(view, rate=300.0))
        assert "Redis does not answer" in console.export_text()
        await dead.client.aclose()

        live = ScoreStore(connect(redis_url), "t-demo-view:")
        await _refresh_or_say(view, live)
        assert view.problem == "" and view.top == []
        await live.client.aclose()

    asyncio.run(run())
