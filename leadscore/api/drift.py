"""Drift reports, the champion's live performance and retraining: what the closed loop keeps in Redis.

The drift agent writes the reports and performance summaries
(:class:`~leadscore.streams.drift_agent.DriftKeys`); every retrain appends its decision
(:func:`~leadscore.jobs.retrain.decisions_key`). These routes only read them, except
``POST /v1/models/retrain``, which starts a retrain as an API job.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.infra.access import ApiKey
from leadscore.jobs.retrain import decisions_key
from leadscore.schemas.api import Job
from leadscore.streams.drift_agent import DriftKeys

log = logging.getLogger(__name__)

router = APIRouter()


def _decoded(values: list[bytes], where: str) -> list[Any]:
    """JSON values; one that does not decode is left out (and logged), not a 500."""
    out = []
    for raw in values:
        try:
            out.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            log.warning("an undecodable value in %s was left out: %r", where, raw[:80])
    return out


def _decoded_hash(mapping: dict[bytes, bytes], where: str) -> dict[str, Any]:
    out = {}
    for field, raw in sorted(mapping.items()):
        try:
            out[field.decode()] = orjson.loads(raw)
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            log.warning("an undecodable value in %s (%r) was left out", where, field[:80])
    return out


@router.get(
    "/v1/drift",
    tags=["drift"],
    summary="The latest drift report per model version, and the newest reports",
    responses=_AUTH,
)
async def drift_reports(
    request: Request,
    limit: int = Query(
        20, ge=0, le=500, description="newest reports to list (0: only the latest per model)"
    ),
    key: ApiKey = Depends(require_scope("read")),
) -> dict[str, Any]:
    """``latest``: model version -> its newest ``models.drift.v1`` event (level, window,
    per-feature statistics); ``events``: the newest ``limit`` events of every model, newest first."""
    ctx = request.app.state.ctx
    keys = DriftKeys(ctx.settings.redis_prefix)
    pipe = ctx.redis.pipeline(transaction=False)  # one round trip
    pipe.hgetall(keys.latest)
    if limit:  # LRANGE 0 -1 would read the whole list only to drop it
        pipe.lrange(keys.events, 0, limit - 1)
    latest, *events = await pipe.execute()
    return {
        "latest": _decoded_hash(latest, keys.latest),
        "events": _decoded(events[0], keys.events) if limit else [],
    }


@router.get(
    "/v1/drift/performance",
    tags=["drift"],
    summary="Each model version's metrics over its sliding window of labelled outcomes",
    responses=_AUTH,
)
async def drift_performance(
    request: Request, key: ApiKey = Depends(require_scope("read"))
) -> dict[str, Any]:
    """``performance``: model version -> ``window`` (accuracy, precision, recall, F1, ROC-AUC,
    Brier over the latest labelled outcomes), ``baseline``, ``level``, ``labels_seen``."""
    ctx = request.app.state.ctx
    where = DriftKeys(ctx.settings.redis_prefix).performance
    return {"performance": _decoded_hash(await ctx.redis.hgetall(where), where)}


@router.get(
    "/v1/models/retraining",
    tags=["models"],
    summary="Retrain decisions (promoted, rejected, skipped, failed), newest first",
    responses=_AUTH,
)
async def retrain_decisions(
    request: Request,
    limit: int = Query(20, ge=1, le=200),
    key: ApiKey = Depends(require_scope("read")),
) -> dict[str, Any]:
    """Each decision: trigger, detail, the training and holdout spans, both models' holdout
    metrics, the margin, the candidate version, the outcome and its reason, timings."""
    ctx = request.app.state.ctx
    where = decisions_key(ctx.settings)
    return {"decisions": _decoded(await ctx.redis.lrange(where, 0, limit - 1), where)}


@router.post(
    "/v1/models/retrain",
    status_code=202,
    response_model=Job,
    tags=["models"],
    summary="Retrain from leads.training.v1 behind the champion/challenger gate, as a job",
    responses=_AUTH,
)
async def models_retrain(request: Request, key: ApiKey = Depends(require_scope("admin"))) -> Any:
    """The same run as ``leadscore retrain`` (trigger ``api``): the job's ``result`` is the
    decision, also listed by ``GET /v1/models/retraining``."""
    ctx = request.app.state.ctx
    detail = f"requested through the API by {key.name}"
    job = await ctx.jobs.submit("retrain", {"detail": detail}, key.name)
    return {k: v for k, v in job.items() if k != "params"}
