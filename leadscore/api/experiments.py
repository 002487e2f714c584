"""A/B experiments: create a draft record of a challenger against the champion, list, show."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.api.handlers import in_thread, request_context
from leadscore.infra.access import ApiKey
from leadscore.models.registry.store import ModelRegistry
from leadscore.schemas.api import Experiment, ExperimentRequest

router = APIRouter()


@router.post(
    "/v1/experiments",
    status_code=201,
    response_model=Experiment,
    tags=["experiments"],
    summary="Create an A/B test record of a challenger against the champion",
    responses={**_AUTH, 404: {"description": "no such model"}, 409: {"description": "name taken"}},
)
async def experiments_create(
    body: ExperimentRequest, request: Request, key: ApiKey = Depends(require_scope("admin"))
) -> Any:
    """Records the experiment as a draft. Assigning leads to arms and the statistics are
    not done yet (a later release); the record is what they will read."""
    ctx = request_context(request)
    registry = ModelRegistry(ctx.settings.model_dir)
    versions = set(await in_thread(registry.list))
    champion = body.champion or await in_thread(registry.champion)
    for role, version in (("challenger", body.challenger), ("champion", champion)):
        if version is not None and version not in versions:
            raise ApiError(404, "unknown_model", f"the {role} {version!r} is not in the registry")
    if body.challenger == champion:
        raise ApiError(
            422, "invalid_experiment", "the challenger is the champion: nothing to compare"
        )
    experiment = {
        "id": body.name,
        "name": body.name,
        "champion": champion,
        "challenger": body.challenger,
        "traffic": body.traffic,
        "description": body.description,
        "status": "draft",
        "created_at": datetime.now(UTC).isoformat(),
        "created_by": key.name,
    }
    if not await ctx.experiments.create(experiment):
        raise ApiError(409, "experiment_exists", f"an experiment named {body.name!r} exists")
    return experiment


@router.get("/v1/experiments", tags=["experiments"], summary="Every experiment", responses=_AUTH)
async def experiments_list(
    request: Request, key: ApiKey = Depends(require_scope("read"))
) -> dict[str, Any]:
    return {"experiments": await request_context(request).experiments.list()}


@router.get(
    "/v1/experiments/{experiment_id}",
    response_model=Experiment,
    tags=["experiments"],
    summary="One experiment",
    responses={**_AUTH, 404: {"description": "no such experiment"}},
)
async def experiments_show(
    experiment_id: str, request: Request, key: ApiKey = Depends(require_scope("read"))
) -> Any:
    experiment = await request_context(request).experiments.get(experiment_id)
    if experiment is None:
        raise ApiError(404, "unknown_experiment", f"no experiment {experiment_id!r}")
    return experiment
