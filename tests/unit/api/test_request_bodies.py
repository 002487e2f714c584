"""A body parsed off the event loop answers exactly as the same body declared to FastAPI."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from leadscore.api.errors import install_error_handlers
from leadscore.api.request_bodies import (
    INLINE_BYTES,
    install_body_schemas,
    parse_off_loop,
    request_body_of,
)
from leadscore.schemas.api import BatchScoreRequest


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_body_schemas(app)

    @app.post("/declared")
    async def declared(body: BatchScoreRequest) -> dict[str, Any]:
        return body.model_dump(mode="json")

    @app.post("/off-loop", openapi_extra=request_body_of(BatchScoreRequest))
    async def off_loop(request: Request) -> dict[str, Any]:
        body = await parse_off_loop(request, BatchScoreRequest, items="leads")
        return body.model_dump(mode="json")

    return app


CLIENT = TestClient(_app())


def lead(i: int, activities: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "lead_id": f"lead-{i}",
        "profile": {"company_size": 50 + i, "industry": "software"},
        "activities": [
            {"type": "lead.page_viewed", "time": "2026-11-20T10:00:00Z", "data": {"url": "/p"}}
        ]
        * activities,
        **extra,
    }


BIG = [lead(i, activities=12) for i in range(200)]  # well over INLINE_BYTES: chunked


def broken(at: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, **at.get(i, {})} for i, row in enumerate(BIG)]


@pytest.mark.parametrize(
    "body",
    [
        {"leads": BIG},
        {"leads": [lead(1)]},
        {"leads": broken({3: {"lead_id": ""}, 130: {"profile": {"company_size": -5}}})},
        {"leads": broken({60: {"surprise": 1}, 199: {"activities": "no"}})},
        {"leads": broken({25: {"activities": [{"type": "lead.page_viewed"}]}})},
        {"leads": BIG, "more": 1},
        {"leads": []},
        {"leads": "x" * (2 * INLINE_BYTES)},
        [lead(1)] * 300,
        None,
    ],
    ids=[
        "valid", "small", "two-bad", "extra-and-type", "missing-time", "extra-top",
        "empty", "not-a-list", "top-list", "null",
    ],
)  # fmt: skip
def test_the_same_body_gets_the_same_answer(body: Any) -> None:
    declared = CLIENT.post("/declared", json=body)
    off_loop = CLIENT.post("/off-loop", json=body)
    assert (off_loop.status_code, off_loop.json()) == (declared.status_code, declared.json())


@pytest.mark.parametrize("size", [10, 2 * INLINE_BYTES])
def test_bytes_that_are_not_text_get_the_same_answer(size: int) -> None:
    raw = b" \xa1\x0c:\x08," * (size // 6)  # not UTF-8
    headers = {"content-type": "application/json"}
    declared = CLIENT.post("/declared", content=raw, headers=headers)
    off_loop = CLIENT.post("/off-loop", content=raw, headers=headers)
    assert (off_loop.status_code, off_loop.json()) == (declared.status_code, declared.json())
    assert off_loop.status_code == 400


def test_malformed_json_is_a_422_either_way() -> None:
    raw = b'{"leads": [' + b'{"lead_id": "a"},' * 5000 + b"]"
    assert len(raw) > INLINE_BYTES
    declared = CLIENT.post("/declared", content=raw, headers={"content-type": "application/json"})
    off_loop = CLIENT.post("/off-loop", content=raw, headers={"content-type": "application/json"})
    assert declared.status_code == off_loop.status_code == 422
    assert off_loop.json()["error"]["code"] == "invalid_request"


def test_the_openapi_body_is_the_declared_one() -> None:
    spec = CLIENT.get("/openapi.json").json()
    assert (
        spec["paths"]["/off-loop"]["post"]["requestBody"]
        == (spec["paths"]["/declared"]["post"]["requestBody"])
    )
    assert (
        spec["paths"]["/off-loop"]["post"]["responses"]["422"]
        == (spec["paths"]["/declared"]["post"]["responses"]["422"])
    )
