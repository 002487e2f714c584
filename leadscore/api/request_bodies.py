"""Request bodies parsed off the event loop, for routes whose bodies can be large.

FastAPI parses and validates a declared body on the event loop before the route runs: a
``POST /v1/score/batch`` of 1,000 leads with 30 activities each held every other request
of the process for ~100 ms while pydantic checked 30,000 activities. A route that takes
its body with :func:`parse_off_loop` reads the bytes on the loop and validates them in a
thread; :func:`request_body_of` keeps the body's schema in the OpenAPI document exactly as
a declared body would show it, and a body that is not valid gets the same 422.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar, cast

import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

M = TypeVar("M", bound=BaseModel)

#: Bodies up to this size are validated inline (a thread hop costs more than they do).
INLINE_BYTES = 64 * 1024

_MODELS: dict[str, type[BaseModel]] = {}


def request_body_of(model: type[BaseModel]) -> dict[str, Any]:
    """The route's ``openapi_extra``: a required JSON body of ``model`` (see the module notes)."""
    _MODELS[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    invalid = {"$ref": "#/components/schemas/HTTPValidationError"}
    return {
        "requestBody": {"content": {"application/json": {"schema": schema}}, "required": True},
        # what FastAPI lists for a declared body
        "responses": {
            "422": {
                "description": "Validation Error",
                "content": {"application/json": {"schema": invalid}},
            }
        },
    }


async def parse_off_loop(request: Request, model: type[M], items: str | None = None) -> M:
    """The request's body as ``model``, validated in a thread when it is large.

    Args:
        items: the name of ``model``'s one list field when the body is mostly that list:
            its items are then validated a few at a time. pydantic holds the GIL for a
            whole validation call, so one call over 1,000 leads would still hold the event
            loop for its length even from a thread.

    Raises:
        RequestValidationError: as FastAPI raises for a declared body (a 422 naming each field).
    """
    raw = await request.body()
    if len(raw) <= INLINE_BYTES:
        return _validate(raw, model, None)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _validate, raw, model, items)


#: Items validated per pydantic call when a body is validated a few items at a time.
CHUNK = 25


def _validate(raw: bytes, model: type[M], field: str | None) -> M:
    """Decode and validate as FastAPI does for a declared body (same errors, same words)."""
    data = _decode(raw)
    if data is None:
        raise _invalid([{"type": "missing", "loc": (), "msg": "Field required", "input": None}])
    values = data.get(field) if field is not None and isinstance(data, dict) else None
    if field is None or not isinstance(values, list) or not values or set(data) != {field}:
        try:
            return model.model_validate(data, from_attributes=True)  # as FastAPI validates
        except ValidationError as exc:
            raise _invalid(exc.errors(include_url=False, include_context=False)) from None
    adapter = _list_adapter(model, field)
    parsed: list[Any] = []
    errors: list[Any] = []
    for start in range(0, len(values), CHUNK):
        try:
            parsed += adapter.validate_python(values[start : start + CHUNK])
        except ValidationError as exc:
            errors += [
                {**e, "loc": (field, start + int(e["loc"][0]), *e["loc"][1:])}
                for e in exc.errors(include_url=False, include_context=False)
            ]
    if errors:
        raise _invalid(errors)
    values_of: dict[str, Any] = {field: parsed}
    return model.model_construct(None, **values_of)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # what FastAPI reads (json also takes NaN and Infinity), and its error
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": (exc.pos,), "msg": "JSON decode error"}
        raise _invalid([{**error, "input": {}, "ctx": {"error": exc.msg}}]) from None
    except ValueError:  # not text at all (bad UTF-8): FastAPI's answer to it
        raise HTTPException(400, "There was an error parsing the body") from None


_ADAPTERS: dict[tuple[type[BaseModel], str], TypeAdapter[list[Any]]] = {}


def _list_adapter(model: type[BaseModel], field: str) -> TypeAdapter[list[Any]]:
    key = (model, field)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = TypeAdapter(cast(Any, model.model_fields[field].annotation))
    return _ADAPTERS[key]


def _invalid(errors: list[Any]) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors])


def install_body_schemas(app: FastAPI) -> None:
    """Add the schemas of :func:`request_body_of` bodies to the app's OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = generate()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, model in _MODELS.items():
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for inner, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(inner, definition)
            schemas.setdefault(name, schema)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
