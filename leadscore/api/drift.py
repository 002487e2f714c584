"""Drift reports, the champion's live performance and retraining: what the closed loop keeps in Redis.

The drift agent writes the reports and performance summaries, every retrain appends its
decision (:mod:`leadscore.infra.closed_loop_store`). These routes only read them, except
``POST /v1/models/retrain``, which starts a retrain as an API job.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.infra.access import ApiKey
from leadscore.infra.closed_loop_store import ClosedLoopKeys, read_closed_loop
from leadscore.schemas.api import Job

router = APIRouter()


def _keys(request: Request) -> ClosedLoopKeys:
    return ClosedLoopKeys(request.app.state.ctx.settings.redis_prefix)


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
    view = await read_closed_loop(ctx.redis, _keys(request), latest=True, events=limit)
    return {"latest": view.latest, "events": view.events}


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
    view = await read_closed_loop(request.app.state.ctx.redis, _keys(request), performance=True)
    return {"performance": view.performance}


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
    view = await read_closed_loop(request.app.state.ctx.redis, _keys(request), decisions=limit)
    return {"decisions": view.decisions}


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
