"""Model management: list and show versions, promote, roll back, train (as a job)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.api.handlers import in_thread, request_context
from leadscore.api.jobs import job_body
from leadscore.api.limits import CONTROL_CHARACTER
from leadscore.infra.access import ApiKey
from leadscore.infra.model_admin import (
    ModelCommandError,
    list_models,
    promote_model,
    rollback_model,
    show_model,
)
from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.store import ModelRegistry
from leadscore.schemas.api import Job, PromoteRequest, RollbackRequest, TrainRequest

router = APIRouter()


@router.get(
    "/v1/models", tags=["models"], summary="Every model version, oldest first", responses=_AUTH
)
async def models_list(
    request: Request,
    segment: str | None = Query(
        None, max_length=100, description="e.g. 'table'; default: the stream's"
    ),
    key: ApiKey = Depends(require_scope("read")),
) -> dict[str, Any]:
    ctx = request_context(request)
    try:
        rows = await in_thread(list_models, ctx.settings, segment=segment)
    except ValueError as exc:
        raise ApiError(422, "invalid_segment", str(exc)) from exc
    return {
        "champion": next((r.version for r in rows if r.champion), None),
        "serving": ctx.models.scorer.version,
        "models": [
            {
                "version": r.version,
                "created_at": r.created_at,
                "kind": r.kind,
                "variant": r.variant,
                "n_rows": r.n_rows,
                "roc_auc": r.roc_auc,
                "accuracy": r.accuracy,
                "champion": r.champion,
                "problem": r.problem,
            }
            for r in rows
        ],
    }


@router.get(
    "/v1/models/{version}",
    tags=["models"],
    summary="A model's manifest: metrics, parameters, features, training window",
    responses={**_AUTH, 404: {"description": "no such version"}},
)
async def models_show(
    version: str, request: Request, key: ApiKey = Depends(require_scope("read"))
) -> dict[str, Any]:
    ctx = request_context(request)
    _check_version(version)
    try:
        manifest = await in_thread(show_model, ctx.settings, version)
    except ModelCommandError as exc:
        raise ApiError(404, "unknown_model", str(exc)) from exc
    report = await in_thread(_report, ctx.settings.model_dir, version)
    return {"manifest": manifest, "report": report}


def _check_version(version: str) -> None:
    """A 404 for what cannot be a version name, before it reaches a file path."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", version):
        raise ApiError(404, "unknown_model", f"no model version {version!r}")


def _report(model_dir: Path, version: str) -> dict[str, Any] | None:
    try:
        return ModelRegistry(model_dir).report(version)
    except (RegistryError, OSError, ValueError):  # a damaged report: the manifest still answers
        return None


def _change_body(change: Any) -> dict[str, Any]:
    event = change.event
    return {
        "champion": event.version,
        "previous": event.previous,
        "segment": event.segment,
        "changed": change.changed,
        "announced": change.announce_error is None,
        "announce_error": change.announce_error,
        "event_id": event.id,
    }


@router.post(
    "/v1/models/{version}/promote",
    tags=["models"],
    summary="Make a version the champion; every worker and API process swaps to it",
    responses={
        **_AUTH,
        404: {"description": "no such version"},
        409: {"description": "cannot be promoted"},
    },
)
async def models_promote(
    version: str,
    request: Request,
    body: PromoteRequest | None = None,
    key: ApiKey = Depends(require_scope("admin")),
) -> dict[str, Any]:
    ctx = request_context(request)
    body = body or PromoteRequest()
    _check_version(version)
    reason = body.reason or f"promoted through the API by {key.name}"
    try:
        change = await in_thread(
            promote_model, ctx.settings, version, segment=body.segment, reason=reason
        )
    except ModelCommandError as exc:
        status = 404 if "no model" in str(exc).lower() or "not found" in str(exc).lower() else 409
        raise ApiError(
            status, "unknown_model" if status == 404 else "cannot_promote", str(exc)
        ) from exc
    except ValueError as exc:
        raise ApiError(422, "invalid_segment", str(exc)) from exc
    await ctx.models.sync("promoted through the API")
    return _change_body(change)


@router.post(
    "/v1/models/rollback",
    tags=["models"],
    summary="Restore the previous champion",
    responses={**_AUTH, 409: {"description": "there is no previous champion"}},
)
async def models_rollback(
    request: Request,
    body: RollbackRequest | None = None,
    key: ApiKey = Depends(require_scope("admin")),
) -> dict[str, Any]:
    ctx = request_context(request)
    body = body or RollbackRequest()
    reason = body.reason or f"rolled back through the API by {key.name}"
    try:
        change = await in_thread(rollback_model, ctx.settings, segment=body.segment, reason=reason)
    except ModelCommandError as exc:
        raise ApiError(409, "nothing_to_roll_back", str(exc)) from exc
    except ValueError as exc:
        raise ApiError(422, "invalid_segment", str(exc)) from exc
    await ctx.models.sync("rolled back through the API")
    return _change_body(change)


@router.post(
    "/v1/models/train",
    status_code=202,
    response_model=Job,
    tags=["models"],
    summary="Train a model as a background job (poll GET /v1/jobs/{id})",
    responses={**_AUTH, 422: {"description": "invalid request"}},
)
async def models_train(
    body: TrainRequest, request: Request, key: ApiKey = Depends(require_scope("admin"))
) -> Any:
    ctx = request_context(request)
    args = body.model_dump()
    if body.source == "events_file":
        if not body.events_path:
            raise ApiError(422, "invalid_request", "source 'events_file' needs 'events_path'")
        args["events_path"] = str(training_file(Path(ctx.settings.api_data_dir), body.events_path))
    else:
        args["events_path"] = None
    if body.variant is not None and not re.fullmatch(r"[a-z_]{1,50}", body.variant):
        raise ApiError(422, "invalid_request", f"unknown variant {body.variant!r}")
    job = await ctx.jobs.submit("train", args, key.name)
    return job_body(job)


def training_file(root: Path, name: str) -> Path:
    """The training file ``name`` names inside ``root``, the API's data directory.

    Nothing outside ``root`` is read, whatever the name (``..``, an absolute path, a
    symbolic link out of it), and the answer for such a name never depends on what exists
    out there: it cannot be used to probe the host's files.

    Raises:
        ApiError: 422 ``invalid_path`` (a control character), ``outside_data_dir`` or
            ``no_such_file`` (inside the directory, where the caller may look).
    """
    where = f"LEADSCORE_API_DATA_DIR ({root})"
    if CONTROL_CHARACTER.search(name):
        raise ApiError(422, "invalid_path", "events_path holds a control character")
    outside = ApiError(
        422,
        "outside_data_dir",
        f"events_path must name a file inside {where}, relative to it; nothing else is read",
    )
    base = root.resolve()
    # First by the name alone (so nothing outside is even looked at), then with its links.
    if not Path(os.path.normpath(base / name)).is_relative_to(base):
        raise outside
    try:
        path = (base / name).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, an odd name
        raise outside from exc
    if not path.is_relative_to(base) or path == base:
        raise outside
    if not path.is_file():
        relative = path.relative_to(base)
        raise ApiError(422, "no_such_file", f"no file {str(relative)!r} in {where}")
    return path
