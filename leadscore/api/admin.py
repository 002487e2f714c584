"""Model management, jobs (training, file scoring), experiments and the audit log."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.infra.access import AccessError, ApiKey
from leadscore.infra.model_admin import (
    ModelCommandError,
    list_models,
    promote_model,
    rollback_model,
    show_model,
)
from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.store import TABLE_SEGMENT, ModelRegistry
from leadscore.schemas.api import (
    AuditEntry,
    Experiment,
    ExperimentRequest,
    Job,
    PromoteRequest,
    RollbackRequest,
    TrainRequest,
)

router = APIRouter()

_UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".parquet")


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Registry work touches the disk (and promotion talks to Kafka): keep it off the loop."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


# --- the caller ----------------------------------------------------------------------------------


@router.get(
    "/v1/whoami",
    tags=["keys"],
    summary="The calling key: id, name and what it may do",
    responses=_AUTH,
)
async def whoami(key: ApiKey = Depends(require_scope("read"))) -> dict[str, Any]:
    """What a client (the dashboard's sign-in) needs to know about its own key, never the key."""
    return {
        **key.public(),
        "allows": {scope: key.allows(scope) for scope in ("read", "score", "admin")},
    }


# --- models ------------------------------------------------------------------------------------


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
    ctx = _ctx(request)
    try:
        rows = await _in_thread(list_models, ctx.settings, segment=segment)
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
    ctx = _ctx(request)
    _check_version(version)
    try:
        manifest = await _in_thread(show_model, ctx.settings, version)
    except ModelCommandError as exc:
        raise ApiError(404, "unknown_model", str(exc)) from exc
    report = await _in_thread(_report, ctx.settings.model_dir, version)
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
    ctx = _ctx(request)
    body = body or PromoteRequest()
    _check_version(version)
    reason = body.reason or f"promoted through the API by {key.name}"
    try:
        change = await _in_thread(
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
    ctx = _ctx(request)
    body = body or RollbackRequest()
    reason = body.reason or f"rolled back through the API by {key.name}"
    try:
        change = await _in_thread(rollback_model, ctx.settings, segment=body.segment, reason=reason)
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
    ctx = _ctx(request)
    args = body.model_dump()
    if body.source == "events_file":
        if not body.events_path:
            raise ApiError(422, "invalid_request", "source 'events_file' needs 'events_path'")
        path = Path(body.events_path)
        if not path.is_absolute():
            path = Path(ctx.settings.api_jobs_dir) / path
        if not path.is_file():
            raise ApiError(422, "no_such_file", f"no events file at {path} on the API host")
        args["events_path"] = str(path)
    else:
        args["events_path"] = None
    if body.variant is not None and not re.fullmatch(r"[a-z_]{1,50}", body.variant):
        raise ApiError(422, "invalid_request", f"unknown variant {body.variant!r}")
    job = await ctx.jobs.submit("train", args, key.name)
    return _job(job)


# --- jobs --------------------------------------------------------------------------------------


def _job(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k != "params"}


def _table_model_problem(model_dir: Path, version: str | None) -> str | None:
    """Why a file cannot be scored with ``version`` (default: the table champion), or ``None``:
    said at upload, before a job is made, rather than by a failed job."""
    registry = ModelRegistry(model_dir)
    chosen = version or registry.champion(segment=TABLE_SEGMENT)
    train = (
        "train one on a table of your leads: `leadscore train --data leads.csv --target converted`"
    )
    if chosen is None:
        return f"there is no model to score files with; {train}"
    try:
        kind = registry.manifest(chosen).kind
    except (RegistryError, OSError) as exc:
        return f"model {chosen} cannot be used: {exc}"
    if kind == "table":
        return None
    if version:
        return f"model {chosen} scores lead events, not table rows; pass a table model's version, or {train}"
    return f"there is no table model (the stream's model {chosen} scores lead events, not table rows); {train}"


@router.post(
    "/v1/score/batch/file",
    status_code=202,
    response_model=Job,
    tags=["scoring"],
    summary="Score a CSV/TSV/Parquet file as a job; download the result when it is done",
    responses={
        **_AUTH,
        413: {"description": "the file is too large"},
        422: {"description": "not a table"},
    },
)
async def score_file(
    request: Request,
    file: UploadFile = File(
        ..., description="CSV, TSV (optionally .gz) or Parquet, one lead per row"
    ),
    id_column: str | None = Form(None, description="copied into the output"),
    reasons: int = Form(3, ge=0, le=20, description="reasons per row"),
    model: str | None = Form(
        None, description="model version (default: the 'table' segment's champion)"
    ),
    key: ApiKey = Depends(require_scope("score")),
) -> Any:
    """Scores a table with a model trained by ``leadscore train --data`` (the same as
    ``leadscore score``). The output CSV has the id column, score, grade, probability and
    the top reasons, in the input's row order."""
    ctx = _ctx(request)
    name = (file.filename or "upload.csv").lower()
    suffix = next((s for s in _UPLOAD_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise ApiError(
            422,
            "unsupported_file",
            f"{file.filename!r}: upload a {', '.join(_UPLOAD_SUFFIXES)} file",
        )
    problem = await _in_thread(_table_model_problem, ctx.settings.model_dir, model)
    if problem is not None:
        raise ApiError(409, "no_table_model", problem)
    job = await ctx.jobs.store.create(
        "score_file",
        key.name,
        {"file": file.filename, "id_column": id_column, "reasons": reasons, "model": model},
    )
    directory = ctx.jobs.job_dir(job["id"])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"input{suffix}"
    limit = ctx.settings.api_max_upload_bytes
    size = 0
    with path.open("wb") as out:
        while chunk := await file.read(1 << 20):
            size += len(chunk)
            if size > limit:
                out.close()
                path.unlink(missing_ok=True)
                await ctx.jobs.store.update(job["id"], status="failed", message="file too large")
                raise ApiError(
                    413,
                    "file_too_large",
                    f"the file is over {limit:,} bytes (LEADSCORE_API_MAX_UPLOAD_BYTES)",
                )
            out.write(chunk)
    args = {
        "path": str(path),
        "out": str(directory / "scored.csv"),
        "id_column": id_column,
        "reasons": reasons,
        "version": model,
    }
    await ctx.jobs.submit("score_file", args, key.name, job=job)
    return _job(job)


@router.get("/v1/jobs", tags=["jobs"], summary="Recent jobs, newest first", responses=_AUTH)
async def jobs_list(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    key: ApiKey = Depends(require_scope("read")),
) -> dict[str, Any]:
    return {"jobs": [_job(j) for j in await _ctx(request).jobs.store.list(limit)]}


@router.get(
    "/v1/jobs/{job_id}",
    response_model=Job,
    tags=["jobs"],
    summary="A job's status and progress",
    responses={**_AUTH, 404: {"description": "no such job"}},
)
async def jobs_show(
    job_id: str, request: Request, key: ApiKey = Depends(require_scope("read"))
) -> Any:
    job = await _ctx(request).jobs.store.get(job_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"no job {job_id!r}")
    return _job(job)


@router.get(
    "/v1/jobs/{job_id}/result",
    tags=["jobs"],
    summary="Download a finished file-scoring job's CSV",
    response_class=FileResponse,
    responses={
        **_AUTH,
        404: {"description": "no such job"},
        409: {"description": "not finished"},
        200: {"content": {"text/csv": {}}},
    },
)
async def jobs_result(
    job_id: str, request: Request, key: ApiKey = Depends(require_scope("read"))
) -> Any:
    ctx = _ctx(request)
    job = await ctx.jobs.store.get(job_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"no job {job_id!r}")
    if job["kind"] != "score_file":
        raise ApiError(
            404,
            "no_result_file",
            f"job {job_id} is a {job['kind']} job: its result is in GET /v1/jobs/{job_id}",
        )
    if job["status"] != "succeeded":
        raise ApiError(
            409,
            "not_finished",
            f"job {job_id} is {job['status']}"
            + (f": {job['message']}" if job.get("message") else ""),
        )
    path = ctx.jobs.job_dir(job_id) / "scored.csv"
    if not path.is_file():
        raise ApiError(
            404,
            "result_gone",
            f"the result of job {job_id} is not on this API host "
            "(LEADSCORE_API_JOBS_DIR must be shared by every replica)",
        )
    return FileResponse(path, media_type="text/csv", filename=f"{job_id}-scored.csv")


# --- experiments -------------------------------------------------------------------------------


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
    ctx = _ctx(request)
    registry = ModelRegistry(ctx.settings.model_dir)
    versions = set(await _in_thread(registry.list))
    champion = body.champion or await _in_thread(registry.champion)
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
    return {"experiments": await _ctx(request).experiments.list()}


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
    experiment = await _ctx(request).experiments.get(experiment_id)
    if experiment is None:
        raise ApiError(404, "unknown_experiment", f"no experiment {experiment_id!r}")
    return experiment


# --- audit -------------------------------------------------------------------------------------


@router.get(
    "/v1/audit",
    response_model=list[AuditEntry],
    tags=["operations"],
    summary="The audit log of admin calls, newest first",
    responses=_AUTH,
)
async def audit_log(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    before: str | None = Query(
        None, pattern=r"^\d+-\d+$", description="an entry id: older entries only"
    ),
    key: ApiKey = Depends(require_scope("admin")),
) -> Any:
    try:
        return await _ctx(request).audit.read(limit, before)
    except AccessError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
