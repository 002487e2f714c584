"""The seed's paths (``/ai/scoring/...``), kept as aliases of their ``/v1`` twins.

Each alias is the very same endpoint (same body, response, auth and errors), registered
under the old path and marked deprecated in the OpenAPI spec.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from leadscore.api import experiments, models, performance, scores

#: alias path -> (method, the /v1 path it answers like)
ALIASES: dict[str, tuple[str, str]] = {
    "/ai/scoring/score/single": ("POST", "/v1/score"),
    "/ai/scoring/score/batch": ("POST", "/v1/score/batch"),
    "/ai/scoring/score/{lead_id}": ("GET", "/v1/leads/{lead_id}/score"),
    "/ai/scoring/performance/metrics": ("GET", "/v1/metrics/performance"),
    "/ai/scoring/model/train": ("POST", "/v1/models/train"),
    "/ai/scoring/abtest/create": ("POST", "/v1/experiments"),
}

router = APIRouter()


def _twin(method: str, path: str) -> APIRoute:
    for route in [
        *scores.router.routes,
        *performance.router.routes,
        *models.router.routes,
        *experiments.router.routes,
    ]:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"no {method} {path} route to alias")  # a bug in ALIASES


for _alias, (_method, _path) in ALIASES.items():
    _route = _twin(_method, _path)
    router.add_api_route(
        _alias,
        _route.endpoint,
        methods=[_method],
        response_model=_route.response_model,
        status_code=_route.status_code,
        responses=_route.responses,
        summary=f"Alias of {_method} {_path} (the seed's path)",
        description=f"Deprecated: use `{_method} {_path}`, which answers exactly the same.",
        tags=["seed aliases"],
        deprecated=True,
        operation_id=f"alias_{_route.name}",
        openapi_extra=_route.openapi_extra,
    )
