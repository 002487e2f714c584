"""The FastAPI app of ``leadscore api``: wiring, lifespan, health, readiness and ``/metrics``.

Stateless: everything it serves is in Redis (scores, history, keys, audit, jobs,
subscriptions), in the model registry (``LEADSCORE_MODEL_DIR``, shared by every replica)
or on Kafka (score events for the WebSocket feed and the score cache). Run as many
replicas as needed behind a load balancer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadscore.api import (
    access,
    aliases,
    drift,
    experiments,
    insights,
    jobs,
    models,
    performance,
    privacy,
    scores,
    webhooks,
)
from leadscore.api.auth import KeyVerifier, audit_admin_call_of
from leadscore.api.cache import ScoreCache
from leadscore.api.dashboard import dashboard_response, find_dashboard
from leadscore.api.errors import RETRY_LATER, error_body, install_error_handlers
from leadscore.api.job_runner import JobRunner
from leadscore.api.limits import CONTROL_CHARACTER, BodyLimit, RateLimiter, send_error
from leadscore.api.observability import ApiMetrics, ThroughputSampler, prometheus_text
from leadscore.api.request_bodies import install_body_schemas
from leadscore.api.websocket import endpoint as stream
from leadscore.infra.access import AuditLog, KeyStore
from leadscore.infra.experiment_store import ExperimentStore
from leadscore.infra.heartbeats import read_workers
from leadscore.infra.job_store import JobStore
from leadscore.infra.model_events import ModelFollower, follow_model_events
from leadscore.infra.privacy.crypto import Keyring
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.lead_ids import LeadIds
from leadscore.infra.redis_store import ScoreStore, connect
from leadscore.infra.scorer import load_scorer
from leadscore.models.registry.store import ModelRegistry
from leadscore.settings import Settings

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
    limiter: RateLimiter
    feed: Any = None  # leadscore.api.websocket.endpoint.ScoreFeed
    started_at: float = field(default_factory=time.time)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def create_app(settings: Settings, *, follow_models: bool = True) -> FastAPI:
    """The API app for ``settings``.

    Args:
        settings: configuration.
        follow_models: listen on ``models.events.v1`` and poll the registry, so a promotion
            reaches this process without a restart (off only in tests without a broker).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        client = connect(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            retries=1,  # fail fast: the answer is a 503 with Retry-After
            connect_timeout_s=1.0,
        )
        store = ScoreStore(
            client,
            settings.redis_prefix,
            settings.history_length,
            keyring=Keyring.from_settings(settings),
        )
        keys = KeyStore(client, settings.redis_prefix)
        scorer = await loop.run_in_executor(None, load_scorer, settings, None)
        models = ModelFollower(
            ModelRegistry(settings.model_dir),
            lambda version: load_scorer(settings, version),
            scorer,
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
            limiter=RateLimiter(settings.api_rate_limit, settings.api_rate_burst),
        )
        app.state.ctx = ctx
        refs = LeadRefs.from_settings(settings)
        ids = LeadIds(
            client,
            settings.redis_prefix,
            plain_topics=refs.plain_topics,
            cache_size=100_000,
            refs=refs,
        )
        ctx.feed = stream.ScoreFeed(settings, ids)
        ctx.feed.add_listener(ctx.cache.on_score)
        await ctx.feed.start()
        ctx.tasks.append(asyncio.create_task(ctx.throughput.run(), name="throughput-sampler"))
        if follow_models:
            ctx.tasks.append(
                asyncio.create_task(follow_model_events(settings, models), name="model-events")
            )
            ctx.tasks.append(
                asyncio.create_task(_poll_models(models, settings.model_poll_s), name="model-poll")
            )
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it
        # out of the collector's full passes, which paused requests ~155 ms every 30-60 s
        # under load. Objects freed by reference counting (a swapped-out model) still go.
        gc.collect()
        gc.freeze()
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
            "includes read), `privacy` (erase and export a lead; includes read), `admin` (models, "
            "experiments, webhooks, audit; includes all). "
            'Errors are JSON: `{"error": {"code", "message", "details"}}`.'
        ),
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_body_schemas(app)

    app.add_middleware(
        BodyLimit,
        max_body_bytes=settings.api_max_body_bytes,
        max_upload_bytes=settings.api_max_upload_bytes,
    )
    app.add_middleware(MeasureAndAudit)  # outermost: it also times and counts the 413s

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
        status = "ready" if ready else "not ready"
        if checks["redis"] == "ok":
            # Workers are not the API's dependency (it serves without them), but a reader of
            # /readyz must not believe leads are being scored when nothing processes them.
            workers = await read_workers(ctx.redis, ctx.settings.redis_prefix)
            checks["workers"] = workers.describe()
            if ready and workers.alive == 0:
                status = "ready, but no worker is alive: nothing is being scored"
        body = {"status": status, "checks": checks}
        if not ready:
            return JSONResponse(
                {**body, **error_body("not_ready", "a dependency is not ready")},
                503,
                headers=RETRY_LATER,
            )
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

    app.include_router(insights.router)  # before scores: /v1/leads/distribution is not a {lead_id}
    app.include_router(scores.router)
    app.include_router(privacy.router)
    app.include_router(performance.router)
    app.include_router(drift.router)  # before models: /v1/models/retraining is not a {version}
    app.include_router(access.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(experiments.router)
    app.include_router(webhooks.router)
    app.include_router(stream.router)
    app.include_router(aliases.router)
    _serve_dashboard(app, find_dashboard(settings.dashboard_dir))
    return app


def _serve_dashboard(app: FastAPI, root: Any) -> None:
    """A GET that no API route answers goes to the built dashboard (leadscore.api.dashboard)."""
    # install_error_handlers put an async handler here (the JSON error body)
    json_http = cast(
        Callable[[Request, StarletteHTTPException], Awaitable[Response]],
        app.exception_handlers[StarletteHTTPException],
    )

    @app.exception_handler(StarletteHTTPException)
    async def _dashboard_or_json(request: Request, exc: StarletteHTTPException) -> Response:
        if (
            exc.status_code == 404
            and exc.detail == "Not Found"
            and request.method in ("GET", "HEAD")
        ):
            response = dashboard_response(root, request.url.path.lstrip("/"))
            if response is not None:
                return response
        return await json_http(request, exc)


class MeasureAndAudit:
    """Times every HTTP request (``Server-Timing``, Prometheus, the latency summary) and writes
    the audit entry of admin and personal-data calls once their status is known.

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware)
    cost ~1 ms of CPU per request here and a hop through the event loop, which under load
    showed up as queueing inside the measured server time (docs/performance.md).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = _refuse_odd_path if CONTROL_CHARACTER.search(scope.get("path", "")) else self.app
        started = time.perf_counter()
        status = 500

        async def send_timed(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed_ms:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_timed)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            asgi_app = scope.get("app")
            ctx = getattr(asgi_app.state, "ctx", None) if asgi_app else None
            if ctx is not None:
                ctx.metrics.observe(scope["method"], path, status, elapsed)
                state = scope.get("state") or {}
                key = state.get("audit_key")
                if key is not None:
                    await audit_admin_call_of(ctx, scope, key, status)


async def _refuse_odd_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """400 for a path with a control character (``/%00index.html``), before any route sees it."""
    message = "the URL path holds a control character (%00-%1F or %7F); no resource has one"
    await send_error(send, 400, "invalid_path", message)


async def _poll_models(models: ModelFollower, interval_s: float) -> None:
    """The safety net under the model-events listener, as in the worker."""
    while True:
        await asyncio.sleep(interval_s)
        await models.sync("registry poll")
