"""Personal data over HTTP: ``DELETE /v1/leads/{lead_id}``, ``GET /v1/erasures/{erasure_id}``
and ``GET /v1/leads/{lead_id}/export``.

The erasure itself is the worker's (:mod:`leadscore.jobs.erase`); the API asks, waits a
little, and answers 200 with the receipt if it completed meanwhile, else 202 with the
receipt and where to follow it. The export is :func:`leadscore.infra.privacy.export.export_lead`'s
document, the same that ``leadscore export`` prints: personal data, never cached by anyone
(``Cache-Control: no-store``, on the 404 too).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.infra.access import ApiKey
from leadscore.infra.privacy.erasure import (
    UnknownLeadsError,
    lead_ids_of,
    request_erasure,
    wait_for_erasure,
)
from leadscore.infra.privacy.export import export_lead, unknown_lead_message
from leadscore.schemas.privacy import ErasureReceipt
from leadscore.schemas.subject_access import SubjectAccessExport

router = APIRouter()

#: How long ``DELETE /v1/leads/{id}`` waits for the erasure before it answers 202.
WAIT_S = 10.0
#: The scope personal-data operations need (``admin`` keys have it too).
PRIVACY_SCOPE = "privacy"
#: Neither the browser nor a proxy may keep a copy of an export.
NO_STORE = {"Cache-Control": "no-store"}


@router.delete(
    "/v1/leads/{lead_id}",
    tags=["privacy"],
    summary="Erase a lead everywhere leadscore keeps it (200 when done, 202 while it runs)",
    responses={
        **_AUTH,
        202: {"description": "accepted; follow GET /v1/erasures/{erasure_id}"},
        404: {"description": "the lead is unknown; nothing was erased"},
    },
)
async def erase_lead(
    lead_id: str,
    request: Request,
    response: Response,
    reason: str | None = Query(None, max_length=500, description="why (kept on the receipt)"),
    key: ApiKey = Depends(require_scope(PRIVACY_SCOPE)),
) -> ErasureReceipt:
    ctx = request.app.state.ctx
    try:
        receipt = await request_erasure(
            ctx.settings, ctx.redis, [lead_id], requested_by=key.id, reason=reason
        )
    except UnknownLeadsError as exc:
        raise ApiError(404, "unknown_lead", str(exc)) from exc
    receipt = await wait_for_erasure(ctx.settings, ctx.redis, receipt.id, timeout_s=WAIT_S)
    ctx.cache.forget(lead_id)
    receipt = _as_seen(receipt, ctx.settings.api_cache_ttl_s)
    if receipt.status != "done":
        response.status_code = 202
        response.headers["Location"] = f"/v1/erasures/{receipt.id}"
    return receipt


@router.get(
    "/v1/erasures/{erasure_id}",
    tags=["privacy"],
    summary="An erasure's receipt: its status, who asked, when, why and what was removed",
    responses={**_AUTH, 404: {"description": "no such erasure"}},
)
async def erasure(
    erasure_id: str, request: Request, key: ApiKey = Depends(require_scope(PRIVACY_SCOPE))
) -> ErasureReceipt:
    ctx = request.app.state.ctx
    receipt = await lead_ids_of(ctx.settings, ctx.redis).receipt(erasure_id)
    if receipt is None:
        raise ApiError(404, "unknown_erasure", f"no erasure {erasure_id!r}")
    return _as_seen(receipt, ctx.settings.api_cache_ttl_s)


def _as_seen(receipt: ErasureReceipt, cache_ttl_s: float) -> ErasureReceipt:
    """``done`` only once no API process can still serve a cached score of the leads."""
    if receipt.completed_at is None:
        return receipt
    if time.time() < receipt.completed_at.timestamp() + cache_ttl_s:
        update: dict[str, Any] = {
            "status": "pending",
            "detail": "erased; waiting for API caches to expire",
        }
        return receipt.model_copy(update=update)
    return receipt


@router.get(
    "/v1/leads/{lead_id}/export",
    tags=["privacy"],
    summary="Everything leadscore holds about a lead, as one JSON document (subject access)",
    responses={**_AUTH, 404: {"description": "leadscore holds nothing about the lead"}},
)
async def export(
    lead_id: str,
    request: Request,
    response: Response,
    key: ApiKey = Depends(require_scope(PRIVACY_SCOPE)),
) -> SubjectAccessExport:
    ctx = request.app.state.ctx
    document = await export_lead(ctx.settings, ctx.redis, lead_id)
    if document is None:
        raise ApiError(404, "unknown_lead", unknown_lead_message(lead_id), headers=NO_STORE)
    response.headers.update(NO_STORE)
    return document
