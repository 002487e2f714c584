"""The FastAPI app of ``leadscore api``: wiring, lifespan, health, readiness and ``/metrics``.

Stateless: everything it serves is in Redis (scores, history, keys, audit, jobs,
subscriptions), in the model registry (``LEADSCORE_MODEL_DIR``, shared by every replica)
or on Kafka (score events for the WebSocket feed and the score cache). Run as many
replicas as needed behind a load balancer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from leadscore.api.auth import KeyVerifier, audit_admin_call
from leadscore.api.cache import ScoreCache
from leadscore.api.errors import error_body, install_error_handlers
from leadscore.api.observability import ApiMetrics, ThroughputSampler, prometheus_text
from leadscore.api.jobs import JobRunner
from leadscore.infra.access import AuditLog, KeyStore
from leadscore.infra.experiment_store import ExperimentStore
from leadscore.infra.job_store import JobStore
from leadscore.infra.redis_store import ScoreStore, connect
from leadscore.models.registry import ModelRegistry
from leadscore.settings import Settings
from leadscore.streams.app import load_scorer
from leadscore.streams.model_events import ModelFollower, follow_model_events

log = logging.getLogger(__name__)

API_VERSION = "1"


@dataclass
class ApiContext:
    """What every route needs; one per API process (``app.state.ctx``)."""

    settings: Settings
    redis: aioredis.Redis
    store: ScoreStore
    keys: KeyStore
    verifier: KeyVerifier
    audit: AuditLog
    models: ModelFollower
    cache: ScoreCache
    metrics: ApiMetrics
    throughput: ThroughputSampler
    jobs: JobRunner
    experiments: ExperimentStore
    feed: Any = None  # leadscore.api.stream.ScoreFeed
    started_at: float = field(default_factory=time.time)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def create_app(settings: Settings, *, follow_models: bool = True) -> FastAPI:
    """The API app for ``settings``.

    Args:
        settings: configuration.
        follow_models: listen on ``models.events.v1`` and poll the registry, so a promotion
            reaches this process without a restart (off only in tests without a broker).
    """
    from leadscore.api import admin, aliases, scores, stream, webhooks

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        client = connect(settings.redis_url)
        store = ScoreStore(client, settings.redis_prefix, settings.history_length)
        keys = KeyStore(client, settings.redis_prefix)
        scorer = await loop.run_in_executor(None, load_scorer, settings, None)
        models = ModelFollower(
            ModelRegistry(settings.model_dir), lambda version: load_scorer(settings, version), scorer
        )
        ctx = ApiContext(
            settings=settings,
            redis=client,
            store=store,
            keys=keys,
            verifier=KeyVerifier(keys, settings.api_key_cache_s),
            audit=AuditLog(client, settings.redis_prefix, settings.audit_max_entries),
            models=models,
            cache=ScoreCache(store, settings.api_cache_ttl_s),
            metrics=ApiMetrics(),
            throughput=ThroughputSampler(store),
            jobs=JobRunner(settings, JobStore(client, settings.redis_prefix)),
            experiments=ExperimentStore(client, settings.redis_prefix),
        )
        app.state.ctx = ctx
        ctx.feed = stream.ScoreFeed(settings)
        ctx.feed.add_listener(ctx.cache.on_score)
        await ctx.feed.start()
        ctx.tasks.append(asyncio.create_task(ctx.throughput.run(), name="throughput-sampler"))
        if follow_models:
            ctx.tasks.append(asyncio.create_task(follow_model_events(settings, models), name="model-events"))
            ctx.tasks.append(asyncio.create_task(_poll_models(models, settings.model_poll_s), name="model-poll"))
        log.info("leadscore api ready: model %s", models.scorer.version)
        try:
            yield
        finally:
            for task in ctx.tasks:
                task.cancel()
            for task in ctx.tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task
            await ctx.jobs.stop()
            await ctx.feed.stop()
            await client.aclose()

    app = FastAPI(
        title="leadscore",
        version=API_VERSION,
        summary="Real-time lead scores with their reasons, model management, webhooks and a live feed.",
        description=(
            "Authenticate with an API key (`leadscore keys create`) in `Authorization: Bearer <key>` "
            "or `X-API-Key`. Scopes: `read` (scores, history, metrics), `score` (score leads; "
            "includes read), `admin` (models, experiments, webhooks, audit; includes both). "
            "Errors are JSON: `{\"error\": {\"code\", \"message\", \"details\"}}`."
        ),
        lifespan=lifespan,
    )
    install_error_handlers(app)

    @app.middleware("http")
    async def measure_and_audit(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - started
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        ctx = getattr(request.app.state, "ctx", None)
        if ctx is not None:
            ctx.metrics.observe(request.method, path, response.status_code, elapsed)
            await audit_admin_call(request, response.status_code)
        response.headers["Server-Timing"] = f"app;dur={elapsed * 1000:.3f}"
        return response

    @app.get("/healthz", tags=["operations"], summary="The process is up (no dependencies checked)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Ready to serve: Redis answers, the broker answers, a model is loaded",
        responses={503: {"description": "a dependency is not ready; the body says which"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        ctx: ApiContext = request.app.state.ctx
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(ctx.redis.ping(), 2.0)
            checks["redis"] = "ok"
        except Exception as exc:  # a readiness probe reports, it does not crash
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        checks["broker"] = "ok" if ctx.feed is not None and ctx.feed.connected else "not connected"
        checks["model"] = ctx.models.scorer.version
        ready = checks["redis"] == "ok" and checks["broker"] == "ok"
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        if not ready:
            return JSONResponse({**body, **error_body("not_ready", "a dependency is not ready")}, 503)
        return JSONResponse(body)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus exposition: API, WebSocket feed and worker counters",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics(request: Request) -> Response:
        ctx: ApiContext = request.app.state.ctx
        body = await prometheus_text(ctx)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(scores.router)
    app.include_router(admin.router)
    app.include_router(webhooks.router)
    app.include_router(stream.router)
    app.include_router(aliases.router)
    return app


async def _poll_models(models: ModelFollower, interval_s: float) -> None:
    """The safety net under the model-events listener, as in the worker."""
    while True:
        await asyncio.sleep(interval_s)
        await models.sync("registry poll")
