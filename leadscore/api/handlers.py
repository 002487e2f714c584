"""What route handlers share: the request's API context, and blocking work run off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request


def request_context(request: Request) -> Any:
    """The :class:`~leadscore.api.app.ApiContext` of the app serving ``request``."""
    return request.app.state.ctx


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Registry work touches the disk (and promotion talks to Kafka): keep it off the loop."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))
