"""Start a worker process: create the topics, build the Faust app, run it until stopped."""

from __future__ import annotations

import asyncio

from faust import Worker

from leadscore.infra.kafka.client import ensure_topics
from leadscore.settings import Settings
from leadscore.streams.app import create_app
from leadscore.streams.broker_watch import STOP_REASON


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    """Run the worker in this process until SIGTERM/SIGINT (then exit).

    Raises:
        NoModelError: the registry has no model to score with.
        TopicsLostError: the broker lost the records this worker had read (it stopped).
    """
    # Faust runs on the thread's current loop: create topics on that same loop first.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    app = create_app(settings)
    try:
        Worker(app, loglevel=loglevel, loop=loop).execute_from_commandline()
    except SystemExit:
        reason = getattr(app, STOP_REASON, None)
        if reason is not None:  # the broker lost its topics: said once in the log already
            raise reason from None
        raise
