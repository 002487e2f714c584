"""Start a worker process: create the topics, build the Faust app, run it until stopped."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable

from faust import Worker as FaustWorker

from leadscore.infra.kafka.client import ensure_topics
from leadscore.settings import Settings
from leadscore.streams.app import create_app
from leadscore.streams.broker_watch import STOP_REASON, TOPICS_LOST_EXIT

log = logging.getLogger(__name__)

#: Exit status when the shutdown deadline cut a stop short.
SHUTDOWN_CUT_EXIT = 1


class Worker(FaustWorker):
    """Faust's worker, with a deadline on the stop that SIGTERM or Ctrl-C begins.

    Named ``Worker`` like Faust's: its log lines (``[^Worker]: Ready``) carry the class name.
    """

    def __init__(self, *args: object, deadline: Callable[[], None], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._start_deadline = deadline

    def _on_sigint(self) -> None:
        self._start_deadline()
        super()._on_sigint()

    def _on_sigterm(self) -> None:
        self._start_deadline()
        super()._on_sigterm()


def shutdown_deadline(timeout_s: float, exit_code: Callable[[], int]) -> Callable[[], None]:
    """A function that, called on a stop signal, ends the process ``timeout_s`` later if it
    has not ended by then.

    Stopping waits for the broker (the last commit, the producer's flush) and for Redis;
    with either away it would wait for ever. Cutting it short loses nothing: what was not
    committed is read again by the next worker, and repeats change nothing.
    """
    started = threading.Event()

    def cut_short() -> None:
        log.warning(
            "stopping took more than %.0f s (the broker or Redis is unreachable?): exiting now; "
            "input not committed yet is read again on restart", timeout_s,
        )  # fmt: skip
        logging.shutdown()
        os._exit(exit_code())

    def start() -> None:
        if not started.is_set():
            started.set()
            timer = threading.Timer(timeout_s, cut_short)
            timer.daemon = True
            timer.start()

    return start


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

    def exit_code() -> int:
        return TOPICS_LOST_EXIT if getattr(app, STOP_REASON, None) else SHUTDOWN_CUT_EXIT

    deadline = shutdown_deadline(settings.shutdown_timeout_s, exit_code)
    try:
        Worker(app, loglevel=loglevel, loop=loop, deadline=deadline).execute_from_commandline()
    except SystemExit:
        reason = getattr(app, STOP_REASON, None)
        if reason is not None:  # the broker lost its topics: said once in the log already
            raise reason from None
        raise
