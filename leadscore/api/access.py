"""The calling key (``/v1/whoami``) and the audit log of admin and personal-data calls
(``/v1/audit``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.api.handlers import request_context
from leadscore.infra.access import SCOPES, AccessError, ApiKey
from leadscore.schemas.api import AuditEntry

router = APIRouter()


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
        "allows": {scope: key.allows(scope) for scope in SCOPES},
    }


@router.get(
    "/v1/audit",
    response_model=list[AuditEntry],
    tags=["operations"],
    summary="The audit log of admin and personal-data calls, newest first",
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
        return await request_context(request).audit.read(limit, before)
    except AccessError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
