"""Jobs: score an uploaded file as a job, list jobs, follow one, download its result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.api.handlers import in_thread, request_context
from leadscore.infra.access import ApiKey
from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.store import TABLE_SEGMENT, ModelRegistry
from leadscore.schemas.api import Job

router = APIRouter()

_UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".parquet")


def job_body(job: dict[str, Any]) -> dict[str, Any]:
    """A job record as the API shows it: everything but its parameters."""
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
    ctx = request_context(request)
    name = (file.filename or "upload.csv").lower()
    suffix = next((s for s in _UPLOAD_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise ApiError(
            422,
            "unsupported_file",
            f"{file.filename!r}: upload a {', '.join(_UPLOAD_SUFFIXES)} file",
        )
    problem = await in_thread(_table_model_problem, ctx.settings.model_dir, model)
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
    return job_body(job)


@router.get("/v1/jobs", tags=["jobs"], summary="Recent jobs, newest first", responses=_AUTH)
async def jobs_list(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    key: ApiKey = Depends(require_scope("read")),
) -> dict[str, Any]:
    return {"jobs": [job_body(j) for j in await request_context(request).jobs.store.list(limit)]}


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
    job = await request_context(request).jobs.store.get(job_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"no job {job_id!r}")
    return job_body(job)


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
    ctx = request_context(request)
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
