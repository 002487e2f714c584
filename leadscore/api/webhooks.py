"""Webhook subscriptions: create, list, update, delete, test-fire, delivery log, replay.

Every route needs the ``admin`` scope. The worker does the delivering
(:mod:`leadscore.infra.webhooks.worker`); these routes read and change what it works from in
Redis (:mod:`leadscore.infra.webhooks.store`). Payload, headers and verification:
docs/webhooks.md.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.infra.access import ApiKey
from leadscore.infra.webhooks.errors import WebhookSecretError, WebhookUrlError
from leadscore.infra.webhooks.http import address_policy, check_url, fire_test_event
from leadscore.infra.webhooks.signing import generate_secret, secret_key
from leadscore.infra.webhooks.store import WebhookStore
from leadscore.schemas.webhooks import (
    Delivery,
    DeliveryList,
    DeliveryRecord,
    DeliveryStatus,
    ReplayResult,
    Webhook,
    WebhookCreate,
    WebhookList,
    WebhookSubscription,
    WebhookTestResult,
    WebhookUpdate,
    WebhookUpdated,
    WebhookWithSecret,
)

router = APIRouter(tags=["webhooks"])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the admin scope"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such subscription"}}
_BAD_URL: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "the body is not valid, or the URL is refused (malformed, does not resolve, "
        "or resolves to a private, loopback or link-local address)"
    }
}
#: Most deliveries one "replay all" call queues again.
_MAX_REPLAY = 1000


def _store(request: Request) -> WebhookStore:
    ctx = request.app.state.ctx
    return WebhookStore(ctx.redis, ctx.settings.redis_prefix, ctx.settings.webhook_log_ttl_s)


async def _subscription(store: WebhookStore, webhook_id: str) -> WebhookSubscription:
    sub = await store.subscription(webhook_id)
    if sub is None:
        raise ApiError(
            404,
            "unknown_webhook",
            f"no webhook subscription {webhook_id!r} (GET /v1/webhooks lists them)",
        )
    return sub


async def _check_url(request: Request, url: str) -> None:
    settings = request.app.state.ctx.settings
    try:
        await check_url(
            url, address_policy(settings), timeout_s=min(settings.webhook_timeout_s, 5.0)
        )
    except WebhookUrlError as exc:
        raise ApiError(
            422, "invalid_url", str(exc), [{"field": "url", "problem": str(exc)}]
        ) from exc


def _check_secret(secret: str) -> None:
    try:
        secret_key(secret)
    except WebhookSecretError as exc:
        raise ApiError(
            422, "invalid_secret", str(exc), [{"field": "secret", "problem": str(exc)}]
        ) from exc


def _public(sub: WebhookSubscription) -> dict[str, Any]:
    return sub.model_dump(exclude={"secret"})


def _delivery(record: DeliveryRecord) -> Delivery:
    return Delivery.model_validate(record.model_dump(exclude={"body"}))


@router.post(
    "/v1/webhooks",
    response_model=WebhookWithSecret,
    status_code=201,
    summary="Subscribe a URL to score changes (the signing secret is shown only here)",
    responses={**_AUTH, **_BAD_URL},
)
async def create_webhook(
    body: WebhookCreate, request: Request, key: ApiKey = Depends(require_scope("admin"))
) -> WebhookWithSecret:
    """Every score change that passes the filters is POSTed to ``url``, signed with the
    secret (Standard Webhooks). Give a ``whsec_`` secret, or get one generated. Only events
    scored after this call are delivered."""
    await _check_url(request, body.url)
    if body.secret is not None:
        _check_secret(body.secret)
    now = datetime.now(UTC)
    sub = WebhookSubscription(
        id="wh_" + secrets.token_hex(8),
        url=body.url,
        description=body.description,
        filters=body.filters,
        enabled=body.enabled,
        secret=body.secret or generate_secret(),
        created_at=now,
        updated_at=now,
    )
    await _store(request).save_subscription(sub)
    return WebhookWithSecret(**_public(sub), secret=sub.secret)


@router.get(
    "/v1/webhooks",
    response_model=WebhookList,
    summary="List the webhook subscriptions (without their secrets)",
    responses=_AUTH,
)
async def list_webhooks(
    request: Request, key: ApiKey = Depends(require_scope("admin"))
) -> WebhookList:
    """Oldest first."""
    subs = await _store(request).subscriptions()
    return WebhookList(webhooks=[Webhook(**_public(sub)) for sub in subs])


@router.get(
    "/v1/webhooks/{webhook_id}",
    response_model=Webhook,
    summary="One webhook subscription (without its secret)",
    responses={**_AUTH, **_NOT_FOUND},
)
async def get_webhook(
    webhook_id: str, request: Request, key: ApiKey = Depends(require_scope("admin"))
) -> Webhook:
    """Its URL, filters, state and times; the secret is never shown again."""
    return Webhook(**_public(await _subscription(_store(request), webhook_id)))


@router.patch(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookUpdated,
    summary="Change a subscription: URL, filters, pause/resume, secret",
    responses={**_AUTH, **_NOT_FOUND, **_BAD_URL},
)
async def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    request: Request,
    key: ApiKey = Depends(require_scope("admin")),
) -> WebhookUpdated:
    """Only the fields given change. ``enabled: false`` pauses: new events are not queued
    and queued ones wait until it is enabled again. A new secret (given, or generated with
    ``rotate_secret``) signs every attempt from now on, queued deliveries included, and is
    answered once."""
    store = _store(request)
    sub = await _subscription(store, webhook_id)
    if body.secret is not None and body.rotate_secret:
        raise ApiError(422, "invalid_request", "give either 'secret' or 'rotate_secret', not both")
    changes: dict[str, Any] = body.model_dump(
        exclude_unset=True, exclude={"rotate_secret", "secret"}
    )
    for field in ("url", "filters", "enabled"):
        if field in changes and changes[field] is None:
            raise ApiError(
                422, "invalid_request", f"'{field}' cannot be null; leave it out to keep it"
            )
    if body.url is not None and body.url != sub.url:
        await _check_url(request, body.url)
    new_secret: str | None = None
    if body.secret is not None:
        _check_secret(body.secret)
        new_secret = body.secret
    elif body.rotate_secret:
        new_secret = generate_secret()
    if new_secret is not None:
        changes["secret"] = new_secret
    if "filters" in changes:
        changes["filters"] = body.filters
    updated = sub.model_copy(update={**changes, "updated_at": datetime.now(UTC)})
    await store.save_subscription(updated)
    return WebhookUpdated(**_public(updated), secret=new_secret)


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a subscription, its queued deliveries and its delivery log",
    responses={**_AUTH, **_NOT_FOUND},
)
async def delete_webhook(
    webhook_id: str, request: Request, key: ApiKey = Depends(require_scope("admin"))
) -> Response:
    """Queued deliveries are not sent; dead ones can no longer be replayed."""
    if not await _store(request).delete_subscription(webhook_id):
        raise ApiError(404, "unknown_webhook", f"no webhook subscription {webhook_id!r}")
    return Response(status_code=204)


@router.post(
    "/v1/webhooks/{webhook_id}/test",
    response_model=WebhookTestResult,
    summary="Send one signed sample event now and report what the receiver answered",
    responses={**_AUTH, **_NOT_FOUND},
)
async def send_test_event(
    webhook_id: str, request: Request, key: ApiKey = Depends(require_scope("admin"))
) -> WebhookTestResult:
    """A sample ``lead.score_changed`` (lead ``sample-lead``, webhook-id ``test_...``), signed
    like every delivery and sent once from this API process: not queued, retried or logged.
    A receiver that fails gives ``delivered: false`` with the reason, not an error status."""
    sub = await _subscription(_store(request), webhook_id)
    return await fire_test_event(sub, request.app.state.ctx.settings)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    summary="The delivery log: each event's attempts, status codes, errors and next retry",
    responses={**_AUTH, **_NOT_FOUND, 422: {"description": "a bad cursor or status"}},
)
async def list_deliveries(
    webhook_id: str,
    request: Request,
    status: DeliveryStatus | None = Query(
        None, description="only pending, delivered or dead ones (dead: kept until replayed)"
    ),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(
        None, max_length=200, description="next_cursor of the previous page"
    ),
    key: ApiKey = Depends(require_scope("admin")),
) -> DeliveryList:
    """Newest first. Delivered deliveries stay ``LEADSCORE_WEBHOOK_LOG_TTL_S`` seconds;
    dead ones until replayed or the subscription is deleted."""
    store = _store(request)
    await _subscription(store, webhook_id)
    try:
        records, next_cursor = await store.deliveries(
            webhook_id, limit=limit, cursor=cursor, status=status
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_cursor", str(exc)) from exc
    return DeliveryList(deliveries=[_delivery(r) for r in records], next_cursor=next_cursor)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}",
    response_model=Delivery,
    summary="One delivery with all its attempts",
    responses={**_AUTH, 404: {"description": "no such subscription or delivery"}},
)
async def get_delivery(
    webhook_id: str,
    delivery_id: str,
    request: Request,
    key: ApiKey = Depends(require_scope("admin")),
) -> Delivery:
    """Every attempt (time, duration, status code or error), the status and the next retry."""
    store = _store(request)
    await _subscription(store, webhook_id)
    record = await store.delivery(webhook_id, delivery_id)
    if record is None:
        raise ApiError(
            404, "unknown_delivery", f"subscription {webhook_id} has no delivery {delivery_id!r}"
        )
    return _delivery(record)


async def _replay(store: WebhookStore, webhook_id: str, record: DeliveryRecord) -> int:
    again = record.model_copy(
        update={
            "status": "pending",
            "round_attempts": 0,
            "next_attempt_at": None,
            "replays": record.replays + 1,
        }
    )
    return await store.replay(webhook_id, again)


@router.post(
    "/v1/webhooks/{webhook_id}/deliveries/replay",
    response_model=ReplayResult,
    status_code=202,
    summary="Queue every dead (failed) delivery of the subscription again",
    responses={**_AUTH, **_NOT_FOUND},
)
async def replay_dead(
    webhook_id: str, request: Request, key: ApiKey = Depends(require_scope("admin"))
) -> ReplayResult:
    """Oldest first, up to 1,000 per call (call again for more). Each gets a full set of
    attempts again and keeps its webhook-id."""
    store = _store(request)
    await _subscription(store, webhook_id)
    replayed = []
    for delivery_id in await store.dead_ids(webhook_id, _MAX_REPLAY):
        record = await store.delivery(webhook_id, delivery_id)
        if record is not None and await _replay(store, webhook_id, record) == 1:
            replayed.append(delivery_id)
    return ReplayResult(replayed=replayed)


@router.post(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
    response_model=Delivery,
    status_code=202,
    summary="Queue one delivered or dead delivery again",
    responses={
        **_AUTH,
        404: {"description": "no such subscription or delivery"},
        409: {"description": "the delivery is still pending"},
    },
)
async def replay_delivery(
    webhook_id: str,
    delivery_id: str,
    request: Request,
    key: ApiKey = Depends(require_scope("admin")),
) -> Delivery:
    """The delivery goes behind what its lead has queued, with a full set of attempts and
    the same webhook-id (receivers that already have it drop it)."""
    store = _store(request)
    await _subscription(store, webhook_id)
    record = await store.delivery(webhook_id, delivery_id)
    if record is None:
        raise ApiError(
            404, "unknown_delivery", f"subscription {webhook_id} has no delivery {delivery_id!r}"
        )
    outcome = await _replay(store, webhook_id, record)
    if outcome == 0:
        raise ApiError(
            409,
            "delivery_pending",
            f"delivery {delivery_id} is still pending: it is queued already",
        )
    if outcome == -1:
        raise ApiError(
            404, "unknown_delivery", f"subscription {webhook_id} has no delivery {delivery_id!r}"
        )
    replayed = await store.delivery(webhook_id, delivery_id)
    return _delivery(replayed or record)
