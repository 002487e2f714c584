"""``/v1/metrics/performance``: the champion's cross-validated quality, the stream's and the API's numbers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.infra.access import ApiKey
from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.manifest import find_metric
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.scoring.scorer import Scorer

router = APIRouter()


@router.get(
    "/v1/metrics/performance",
    tags=["metrics"],
    summary="Model quality (cross-validated) and system throughput and latency",
    responses=_AUTH,
)
async def performance(
    request: Request, key: ApiKey = Depends(require_scope("read"))
) -> dict[str, Any]:
    ctx = request.app.state.ctx
    scorer: Scorer = ctx.models.scorer
    loop = asyncio.get_running_loop()
    model = await loop.run_in_executor(None, _model_summary, ctx.settings.model_dir, scorer)
    stats = await ctx.throughput.sample()
    rates = ctx.throughput.rates()
    return {
        "model": model,
        "stream": {
            "totals": stats,
            "rates_per_s": rates,
            "rate_window_s": round(ctx.throughput.window_s, 1),
            "leads_scored": await ctx.store.count(),
        },
        "api": {
            "uptime_s": round(time.time() - ctx.started_at, 1),
            "latency": ctx.metrics.latency_summary(),
            "score_cache": {
                "entries": len(ctx.cache),
                "hits": ctx.cache.hits,
                "misses": ctx.cache.misses,
            },
        },
        "feed": ctx.feed.stats() if ctx.feed is not None else {},
    }


def _model_summary(model_dir: Any, scorer: Scorer) -> dict[str, Any]:
    summary: dict[str, Any] = {"version": scorer.version, "champion": scorer.champion}
    if scorer.champion is None:
        summary["note"] = "no trained model yet: scoring with the rules prior"
        return summary
    try:
        manifest = ModelRegistry(model_dir).manifest(scorer.champion)
    except (RegistryError, OSError) as exc:
        summary["note"] = f"manifest unreadable: {exc}"
        return summary
    metrics = manifest.metrics or {}
    summary.update(
        variant=manifest.variant,
        created_at=manifest.created_at,
        n_rows=manifest.n_rows,
        class_balance=manifest.class_balance,
        cv_scheme=metrics.get("cv_scheme"),
        metrics={
            name: find_metric(metrics, name)
            for name in (
                "accuracy",
                "precision",
                "recall",
                "f1",
                "roc_auc",
                "pr_auc",
                "brier",
                "log_loss",
            )
        },
    )
    if scorer.version != scorer.champion:
        summary["note"] = (
            f"the champion was trained on too few conversions; scoring with {scorer.version}"
        )
    return summary
