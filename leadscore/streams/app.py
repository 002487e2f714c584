"""The Faust worker: one app, and one module per agent, each with its topic and table.

- :mod:`~leadscore.streams.scoring`: input topics → ``lead_state`` table → score events,
  Redis and the closed loop's topics (``score_leads``);
- :mod:`~leadscore.streams.webhooks`: ``leads.scores.v1`` → webhook queues → receivers;
- :mod:`~leadscore.streams.model_swap`: ``models.events.v1`` → the champion, swapped live;
- :mod:`~leadscore.streams.drift`: drift windows in their own consumer group → retraining.

Faust stays in this package; the agents hand their work to :mod:`leadscore.models` and
:mod:`leadscore.infra`.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust

from leadscore.infra.model_events import ModelFollower
from leadscore.infra.scorer import load_scorer
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.scoring.scorer import Scorer
from leadscore.settings import Settings
from leadscore.streams.broker_watch import attach_broker_watch
from leadscore.streams.context import WorkerContext
from leadscore.streams.drift import attach_drift
from leadscore.streams.model_swap import attach_model_following
from leadscore.streams.retention import attach_retention
from leadscore.streams.scoring import attach_scoring
from leadscore.streams.tansu_compat import install_tansu_compat
from leadscore.streams.webhooks import attach_webhooks


def create_app(settings: Settings, scorer: Scorer | None = None) -> faust.App:
    """Build the Faust app with its topics, table and agents.

    Args:
        settings: configuration.
        scorer: the scorer to start with; loaded from the registry when not given.
    """
    install_tansu_compat()
    # The scorer the agents use; swapped between micro-batches on a models.events.v1
    # message, or by the registry poll (leadscore.streams.model_swap).
    models = ModelFollower(
        ModelRegistry(settings.model_dir),
        lambda version: load_scorer(settings, version),
        scorer or load_scorer(settings),
    )
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.005,
        web_enabled=False,
    )
    worker = WorkerContext(settings, models)
    attach_scoring(app, worker)
    attach_webhooks(app, worker)
    attach_model_following(app, worker)
    attach_broker_watch(app, worker)
    attach_retention(app, worker)
    if settings.drift_enabled:
        attach_drift(app, worker)
    app.leadscore_models = models  # type: ignore[attr-defined]
    app.leadscore_fetch_max_wait_ms = settings.fetch_max_wait_ms  # type: ignore[attr-defined]
    return app


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials for SASL and/or SSL, or ``None`` for plaintext."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl_context = ssl.create_default_context() if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)
