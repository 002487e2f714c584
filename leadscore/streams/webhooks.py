"""Webhooks: ``leads.scores.v1`` → per-subscription queues in Redis → signed POSTs to receivers.

``queue_webhooks`` matches each batch of score events to the subscriptions and queues
them in Redis (offsets commit once queued); ``deliver_webhooks`` sends what is due,
signed and retried, and dead-letters what runs out of attempts. The logic is in
:mod:`leadscore.infra.webhooks` (docs/webhooks.md); these only feed it.
"""

from __future__ import annotations

import faust

from leadscore.infra.webhooks.worker import WebhookWorker
from leadscore.streams.context import WorkerContext, input_record, micro_batches


def attach_webhooks(app: faust.App, worker: WorkerContext) -> None:
    """The scores topic, the ``queue_webhooks`` agent and the delivery task."""
    s = worker.settings
    webhooks = WebhookWorker(
        s,
        lambda topic, key, value: app.producer.send_and_wait(topic, key, value, None, None, None),
    )
    scores_topic = app.topic(
        s.scores_topic, key_type=bytes, value_type=bytes, partitions=s.topic_partitions
    )

    @app.agent(scores_topic)
    async def queue_webhooks(stream: faust.StreamT[bytes]) -> None:
        """Queue each score event for the subscriptions it passes; offsets commit once queued."""
        async for events in micro_batches(stream, s):
            await webhooks.queue([input_record(event) for event in events])

    @app.task
    async def deliver_webhooks() -> None:
        """Send queued deliveries, signed, retried; dead-letter what runs out of attempts."""
        await webhooks.deliver_forever()
