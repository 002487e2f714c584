"""Model following: swap to the champion as soon as ``models.events.v1`` announces a change.

Every worker reads the whole model-events topic itself (no group) and, as a safety net,
polls the registry's champion pointer; either way the new model is loaded off the event
loop and takes over between micro-batches (:class:`~leadscore.infra.model_events.ModelFollower`).
"""

from __future__ import annotations

import faust

from leadscore.infra.model_events import follow_model_events
from leadscore.streams.context import WorkerContext


def attach_model_following(app: faust.App, worker: WorkerContext) -> None:
    """The model-events listener and the registry poll."""
    models = worker.models

    @app.task
    async def follow_model_events_topic() -> None:
        """Swap models as soon as models.events.v1 announces a change (each worker reads all)."""
        await follow_model_events(worker.settings, models)

    @app.timer(interval=worker.settings.model_poll_s)
    async def poll_champion() -> None:
        """The safety net: catch a champion change whose event never arrived."""
        await models.sync("registry poll")
