"""Scoring and reading scores: ``/v1/score``, ``/v1/score/batch``, ``/v1/leads/...``.

(``/v1/leads/distribution`` is in :mod:`leadscore.api.insights`.)

``POST /v1/score`` builds the lead's state with the stream's own code
(:func:`leadscore.models.features.state.apply_event` over validated events) and scores it with
the same :class:`~leadscore.models.scoring.scorer.Scorer`, so a lead gets the stream's score.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.api.request_bodies import parse_off_loop, request_body_of
from leadscore.infra.access import ApiKey
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import to_matrix
from leadscore.models.privacy.minimise import DEFAULT_KEEP, minimised, parse_keep
from leadscore.models.scoring.events import explained_score, score_response
from leadscore.models.scoring.scorer import Scorer, to_score
from leadscore.schemas.api import (
    BatchScoreError,
    BatchScoreRequest,
    BatchScoreResponse,
    Leaderboard,
    LeaderboardEntry,
    ScoreHistory,
    ScoreRequest,
    ScoreResponse,
)
from leadscore.schemas.events import lead_event_adapter

router = APIRouter()

#: Rows scored inline on the event loop; bigger batches go to a thread (the engine
#: releases the GIL), so one big request never stalls the others.
_INLINE_ROWS = 8
#: Activities turned into lead states inline; a body with more is built in a thread (pure
#: Python, so it shares the GIL, but the event loop gets its turn every few milliseconds
#: instead of waiting seconds for 10,000 activities).
_INLINE_ACTIVITIES = 256

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "the lead is unknown"}}


class _LeadError(Exception):
    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def build_state(request: ScoreRequest, keep: tuple[str, ...] = DEFAULT_KEEP) -> LeadState:
    """The lead's state from a request body, built as the worker builds it from events
    (URLs cleaned with the kept parameters ``keep``, as the worker cleans them).

    Raises:
        _LeadError: an activity is not a valid event of its type (the message names it).
    """
    state = LeadState(request.lead_id)
    events: list[Any] = []
    latest = None
    for i, activity in enumerate(request.activities):
        raw = {
            "specversion": "1.0",
            "id": activity.id or f"api-{i}",
            "source": "leadscore-api",
            "subject": request.lead_id,
            "type": activity.type,
            "time": activity.time,
            "data": activity.data,
        }
        try:
            event = minimised(lead_event_adapter.validate_python(raw), keep)
        except ValidationError as exc:
            problems = "; ".join(
                f"activities[{i}].{'.'.join(str(p) for p in e['loc'][1:]) or 'data'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            raise _LeadError(
                "invalid_activity", f"activity {i} ({activity.type}) is not valid: {problems}"
            ) from exc
        events.append(event)
        latest = event.time if latest is None or event.time > latest else latest
    if request.profile is not None:
        events.append(
            lead_event_adapter.validate_python(
                {
                    "specversion": "1.0",
                    "id": "api-profile",
                    "source": "leadscore-api",
                    "subject": request.lead_id,
                    "type": "lead.profile_updated",
                    "time": request.profile_time or latest or datetime.now(UTC),
                    "data": request.profile,
                }
            )
        )
    events.sort(key=lambda e: e.time)  # event time, as the worker's state ends up
    for event in events:
        apply_event(state, event, dedupe_window=max(256, len(events)))
    return state


async def _states(
    ctx: Any, requests: list[ScoreRequest]
) -> list[tuple[LeadState, str] | _LeadError]:
    """Each request's state: from its body, or stored by the worker (one MGET for all)."""
    out: list[tuple[LeadState, str] | _LeadError] = []
    stored_ids = [r.lead_id for r in requests if r.profile is None and not r.activities]
    stored = dict(zip(stored_ids, await ctx.store.states_many(stored_ids)))
    bodies = [r for r in requests if r.profile is not None or r.activities]
    keep = parse_keep(ctx.settings.url_keep_params)
    if sum(len(r.activities) for r in bodies) > _INLINE_ACTIVITIES:
        built = iter(
            await asyncio.get_running_loop().run_in_executor(None, _build_all, bodies, keep)
        )
    else:
        built = iter(_build_all(bodies, keep))
    for request in requests:
        if request.profile is not None or request.activities:
            out.append(next(built))
            continue
        data = stored.get(request.lead_id)
        if data is None:
            out.append(_LeadError(
                "unknown_lead",
                f"lead {request.lead_id!r} has no state yet: send its 'profile' and "
                "'activities' in the body, or publish its events to the input topics first",
                404,
            ))  # fmt: skip
            continue
        out.append((LeadState.from_dict({"seen_ids": [], **data}), "stored_state"))
    return out


def _build_all(
    requests: list[ScoreRequest], keep: tuple[str, ...]
) -> list[tuple[LeadState, str] | _LeadError]:
    out: list[tuple[LeadState, str] | _LeadError] = []
    for request in requests:
        try:
            out.append((build_state(request, keep), "request"))
        except _LeadError as exc:
            out.append(exc)
    return out


def _score_states(
    scorer: Scorer, states: list[tuple[LeadState, str]], now: datetime
) -> list[ScoreResponse]:
    """One model call for all states; the same numbers the worker would publish."""
    if not states:
        return []
    x = to_matrix([state for state, _ in states])
    explanations = scorer.explain(x)
    return [
        score_response(
            explained_score(scorer, explanation, row, explanation.probability, state.last_points),
            lead_id=state.lead_id,
            previous_score=state.score,
            scored_from=source,
            scored_at=now,
        )
        for row, (state, source), explanation in zip(x, states, explanations)
    ]


def _batch_json(
    scorer: Scorer, rows: list[tuple[LeadState, str]], now: datetime, errors: list[BatchScoreError]
) -> bytes:
    results = _score_states(scorer, rows, now)
    return (
        BatchScoreResponse(model_version=scorer.version, results=results, errors=errors)
        .model_dump_json()
        .encode()
    )


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    tags=["scoring"],
    summary="Score one lead now, with its explanation",
    responses={**_AUTH, **_NOT_FOUND, 422: {"description": "the body is not valid"}},
)
async def score_one(
    body: ScoreRequest, request: Request, key: ApiKey = Depends(require_scope("score"))
) -> ScoreResponse:
    """Score a lead from its profile and activities, or (body with only ``lead_id``) from
    the state the worker keeps for it. Nothing is published or stored: the stream stays the
    one writer of scores."""
    ctx = request.app.state.ctx
    (state,) = await _states(ctx, [body])
    if isinstance(state, _LeadError):
        raise ApiError(state.status, state.code, state.message)
    scorer = ctx.models.scorer
    (response,) = _score_states(scorer, [state], datetime.now(UTC))
    return response


@router.post(
    "/v1/score/batch",
    response_model=BatchScoreResponse,
    tags=["scoring"],
    summary="Score many leads in one call",
    responses={**_AUTH, 413: {"description": "more leads than LEADSCORE_API_MAX_BATCH"}},
    openapi_extra=request_body_of(BatchScoreRequest),
)
async def score_batch(
    request: Request, key: ApiKey = Depends(require_scope("score"))
) -> BatchScoreResponse | Response:
    """Score up to ``LEADSCORE_API_MAX_BATCH`` leads with one model call. A lead that cannot
    be scored (unknown id, invalid activity) is listed in ``errors``; the others are scored.
    For files, use ``POST /v1/score/batch/file``."""
    ctx = request.app.state.ctx
    body = await parse_off_loop(request, BatchScoreRequest, items="leads")
    limit = ctx.settings.api_max_batch
    if len(body.leads) > limit:
        raise ApiError(
            413, "batch_too_large",
            f"{len(body.leads)} leads in one batch; at most {limit} (LEADSCORE_API_MAX_BATCH). "
            "Split it, or upload a file to POST /v1/score/batch/file",
        )  # fmt: skip
    states = await _states(ctx, body.leads)
    good = [(i, s) for i, s in enumerate(states) if not isinstance(s, _LeadError)]
    errors = [
        BatchScoreError(index=i, lead_id=body.leads[i].lead_id, code=s.code, message=s.message)
        for i, s in enumerate(states)
        if isinstance(s, _LeadError)
    ]
    scorer = ctx.models.scorer
    now = datetime.now(UTC)
    rows = [s for _, s in good]
    if len(rows) <= _INLINE_ROWS:
        results = _score_states(scorer, rows, now)
        return BatchScoreResponse(model_version=scorer.version, results=results, errors=errors)
    # Scored and serialized in a thread: turning 1,000 explained scores into JSON on the
    # event loop would stall every other request for a tenth of a second.
    loop = asyncio.get_running_loop()
    payload = await loop.run_in_executor(None, _batch_json, scorer, rows, now, errors)
    return Response(payload, media_type="application/json")


@router.get(
    "/v1/leads/top",
    response_model=Leaderboard,
    tags=["leads"],
    summary="The leaderboard: leads by score, best first, paginated",
    responses=_AUTH,
)
async def top_leads(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
    key: ApiKey = Depends(require_scope("read")),
) -> Leaderboard:
    ctx = request.app.state.ctx
    rows, total = await asyncio.gather(ctx.store.top(limit, offset), ctx.store.count())
    events = await ctx.store.latest_many([lead_id for lead_id, _ in rows])
    leads = []
    for rank, ((lead_id, points), event) in enumerate(zip(rows, events), start=offset + 1):
        event = event or {}
        leads.append(
            LeaderboardEntry(
                rank=rank,
                lead_id=lead_id,
                score=event.get("score", to_score(points / 100.0)),
                probability=round(points / 100.0, 6),
                grade=event.get("grade"),
                model_version=event.get("model_version"),
                scored_at=event.get("scored_at"),
            )
        )
    return Leaderboard(total=total, offset=offset, limit=limit, leads=leads)


@router.get(
    "/v1/leads/{lead_id}/score",
    tags=["leads"],
    summary="A lead's latest published score, with its reasons",
    responses={
        **_AUTH,
        **_NOT_FOUND,
        200: {"description": "the latest score event (leads.scores.v1)"},
    },
)
async def latest_score(
    lead_id: str, request: Request, key: ApiKey = Depends(require_scope("read"))
) -> dict[str, Any]:
    ctx = request.app.state.ctx
    event: dict[str, Any] | None = await ctx.cache.latest(lead_id)
    if event is None:
        raise ApiError(404, "unknown_lead", f"lead {lead_id!r} has no published score yet")
    return event


@router.get(
    "/v1/leads/{lead_id}/history",
    response_model=ScoreHistory,
    tags=["leads"],
    summary="A lead's published scores over time, newest first, with their reasons",
    responses={**_AUTH, **_NOT_FOUND},
)
async def score_history(
    lead_id: str,
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    key: ApiKey = Depends(require_scope("read")),
) -> ScoreHistory:
    ctx = request.app.state.ctx
    scores = await ctx.store.history(lead_id, limit)
    if not scores and await ctx.store.latest(lead_id) is None:
        raise ApiError(404, "unknown_lead", f"lead {lead_id!r} has no published score yet")
    return ScoreHistory(lead_id=lead_id, scores=scores)


@router.get(
    "/v1/leads/{lead_id}/activity",
    tags=["leads"],
    summary="A lead's recent input events (activity, profile updates, outcomes), newest first",
    responses={**_AUTH, **_NOT_FOUND},
)
async def lead_activity(
    lead_id: str,
    request: Request,
    limit: int = Query(50, ge=1, le=1000, description="at most LEADSCORE_ACTIVITY_LENGTH are kept"),
    key: ApiKey = Depends(require_scope("read")),
) -> dict[str, Any]:
    """The events the worker applied to the lead's state, as ``{"id", "type", "time",
    "data"}`` (``data`` without values over 200 characters)."""
    ctx = request.app.state.ctx
    events = await ctx.store.activity(lead_id, limit)
    if not events and await ctx.store.state(lead_id) is None:
        raise ApiError(404, "unknown_lead", f"lead {lead_id!r} is unknown")
    return {"lead_id": lead_id, "events": events}


@router.get(
    "/v1/leads/{lead_id}",
    tags=["leads"],
    summary="A lead's latest score and the state it was scored from (profile, activity counts)",
    responses={**_AUTH, **_NOT_FOUND},
)
async def lead_detail(
    lead_id: str, request: Request, key: ApiKey = Depends(require_scope("read"))
) -> dict[str, Any]:
    ctx = request.app.state.ctx
    score, state = await asyncio.gather(ctx.cache.latest(lead_id), ctx.store.state(lead_id))
    if score is None and state is None:
        raise ApiError(404, "unknown_lead", f"lead {lead_id!r} is unknown")
    if state is not None:
        state.pop("last_score_event", None)
        state.pop("last_points", None)
    return {"lead_id": lead_id, "score": score, "state": state}
