"""The seed's design as a REST endpoint: the baseline ``benchmarks/api_latency.py`` measures beside ``leadscore api``.

One FastAPI app, run by uvicorn exactly as ``leadscore api`` is (``factory=True``,
``log_level`` warning, ``proxy_headers``, the same worker count):

- ``POST /v1/score`` takes the same JSON as leadscore's (:class:`ScoreRequest`: a
  profile and activities, or only ``lead_id``), builds the same feature vector with
  leadscore's own code (:func:`leadscore.api.scores.build_state`, or the state stored in
  Redis as ``<prefix>state:<lead_id>``, one ``GET``) and calls scikit-learn
  ``predict_proba`` on one row of a soft ``VotingClassifier`` (RF + GB + LR, 40/40/20).
  **No explanation**: it returns the score, grade and probability only.
- ``POST /v1/score/shap`` does the same plus ``shap.TreeExplainer`` (path-dependent) on
  the forest and the boosting members, and returns the 5 features with the largest
  0.4/0.4-weighted SHAP values: the seed's way of explaining, per request.

No API key, no metrics, no audit: the seed had none. A pure-ASGI middleware adds the
same ``Server-Timing: app;dur=<ms>`` header as leadscore's (time from the request
entering the app to the response start).

Configured by environment variables (this is a benchmark, not leadscore code):
``SEED_API_MODEL`` (a pickled fitted ``VotingClassifier``), ``SEED_API_REDIS_URL`` and
``SEED_API_REDIS_PREFIX``. Run: ``python benchmarks/seed_api.py --port P [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException

from leadscore.api.scores import _LeadError, build_state
from leadscore.models.features.state import LeadState
from leadscore.models.features.vector import FEATURE_NAMES, to_vector
from leadscore.schemas.api import ScoreRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The seed's grade boundaries (leadscore's defaults): lowest score of A, B, C.
GRADES = ((80, "A"), (60, "B"), (40, "C"))


class ServerTiming:
    """Pure-ASGI middleware: ``Server-Timing: app;dur=<ms>`` from entry to the response start."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed_ms:.3f}".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, timed_send)


def _grade(score: int) -> str:
    return next((g for low, g in GRADES if score >= low), "D")


def app() -> FastAPI:
    """The seed app, configured from ``SEED_API_*`` (each uvicorn worker builds its own)."""
    with Path(os.environ["SEED_API_MODEL"]).open("rb") as f:
        voting = pickle.load(f)
    rf, gb = voting.named_estimators_["rf"], voting.named_estimators_["gb"]
    redis_url = os.environ.get("SEED_API_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = os.environ.get("SEED_API_REDIS_PREFIX", "leadscore:")
    client = aioredis.Redis.from_url(redis_url)
    explainers: list[Any] = []  # built on the first /v1/score/shap call (the seed built them once)

    async def vector(body: ScoreRequest) -> np.ndarray:
        if body.profile is None and not body.activities:
            raw = await client.get(f"{prefix}state:{body.lead_id}")
            if raw is None:
                raise HTTPException(404, f"lead {body.lead_id!r} has no state yet")
            state = LeadState.from_dict({"seen_ids": [], **orjson.loads(raw)})
        else:
            try:
                state = build_state(body)
            except _LeadError as exc:
                raise HTTPException(422, exc.message) from exc
        return to_vector(state)[None, :]

    def answer(lead_id: str, x: np.ndarray) -> dict[str, Any]:
        p = float(voting.predict_proba(x)[0, 1])
        score = int(round(100 * p))
        return {
            "lead_id": lead_id,
            "score": score,
            "grade": _grade(score),
            "probability": round(p, 6),
        }

    api = FastAPI(title="seed baseline")

    @api.post("/v1/score")
    async def score(body: ScoreRequest) -> dict[str, Any]:
        x = await vector(body)
        return answer(body.lead_id, x)

    @api.post("/v1/score/shap")
    async def score_shap(body: ScoreRequest) -> dict[str, Any]:
        import shap

        x = await vector(body)
        out = answer(body.lead_id, x)
        if not explainers:
            explainers.extend(
                shap.TreeExplainer(m, feature_perturbation="tree_path_dependent") for m in (rf, gb)
            )
        phi = np.zeros(x.shape[1])
        for weight, explainer in zip((0.4, 0.4), explainers):
            values = explainer.shap_values(x, check_additivity=False)
            values = values[1] if isinstance(values, list) else values  # per class for the forest
            values = np.asarray(values)
            phi += weight * (values[0, :, 1] if values.ndim == 3 else values[0])
        top = np.argsort(-np.abs(phi))[:5]
        out["reasons"] = [
            {"feature": FEATURE_NAMES[i], "shap": round(float(phi[i]), 6)} for i in top
        ]
        return out

    api.add_middleware(ServerTiming)
    return api


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # the same uvicorn.run arguments as `leadscore api` (leadscore/cli/run.py), log level warning
    # as leadscore.infra.launch.start_api runs it
    uvicorn.run(
        "seed_api:app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
