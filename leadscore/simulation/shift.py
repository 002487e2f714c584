"""Scheduled shifts for the simulator: parse when a shift happens, and measure what it does to a model.

The shift itself (:class:`~leadscore.simulation.config.Shift`, a switch to another
:class:`~leadscore.simulation.config.Regime` at time ``T``) lives in
``config.py``; this module turns a CLI value into one and measures how much a
model trained before ``T`` loses after it (``docs/simulator.md``, "Scheduled shifts").
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from leadscore.simulation.config import DAY_S, SHIFTED_REGIME, Regime, Shift, SimConfig
from leadscore.simulation.learnability import snapshot_dataset
from leadscore.simulation.simulator import simulate_with_truth


def parse_shift_at(spec: str, *, start: datetime, span: timedelta) -> datetime:
    """The time of a shift, from an ISO-8601 time or a fraction of a span.

    Args:
        spec: ``"2026-02-01T00:00:00Z"`` (must carry a zone), or a number in
            ``(0, 1)``: that fraction of the way through ``[start, start + span)``.
        start: the start of the span (timezone-aware).
        span: its length.

    Raises:
        ValueError: ``spec`` is neither, names no zone, or the fraction is out of range.

    Examples:
        >>> from datetime import UTC, datetime, timedelta
        >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
        >>> parse_shift_at("0.5", start=t0, span=timedelta(days=30)).isoformat()
        '2026-01-16T00:00:00+00:00'
        >>> parse_shift_at("2026-01-10T12:00:00Z", start=t0, span=timedelta(days=30)).isoformat()
        '2026-01-10T12:00:00+00:00'
    """
    try:
        fraction = float(spec)
    except ValueError:
        fraction = None
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(
                f"--shift-at as a fraction of the span must be in (0, 1), got {spec!r}"
            )
        return start + span * fraction
    try:
        at = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"--shift-at must be an ISO-8601 time with a zone or a fraction in (0, 1), got {spec!r}"
        ) from exc
    if at.tzinfo is None:
        raise ValueError(f"--shift-at needs a time zone (e.g. {spec}Z), got {spec!r}")
    return at.astimezone(UTC)


def shift_regime(email_open_factor: float | None = None) -> Regime:
    """The shifted regime (:data:`SHIFTED_REGIME`), optionally with another email open factor."""
    if email_open_factor is None:
        return SHIFTED_REGIME
    return replace(SHIFTED_REGIME, email_open_factor=email_open_factor)


def measure_shift(
    config: SimConfig, *, horizon_days: float = 30.0, seed: int = 0
) -> dict[str, float]:
    """Fit a model on leads that arrived before the shift and score it before and after.

    Simulates ``config`` (which needs ``start`` and ``shift``), takes one point-in-time
    snapshot per lead (:func:`~leadscore.simulation.learnability.snapshot_dataset`), fits
    scikit-learn's ``HistGradientBoostingClassifier`` on 70 % of the pre-shift leads,
    and reports its ROC-AUC on the other 30 % and on 30 % of the post-shift leads,
    next to a model refitted on the other 70 % of the post-shift leads (what a
    retrain could reach on the same test leads).

    Returns:
        ``leads_before``, ``leads_after``, ``auc_before`` (old model, pre-shift
        leads), ``auc_after`` (old model, post-shift leads), ``auc_after_refit``
        (a model trained after the shift, post-shift leads), ``seconds``.
    """
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    if config.start is None or config.shift is None:
        raise ValueError("measure_shift needs config.start and config.shift")
    started = time.perf_counter()
    events, truth = simulate_with_truth(config)
    end = datetime.fromtimestamp(config.start.timestamp() + config.span_days * DAY_S, UTC)
    x, y, ids = snapshot_dataset(events, truth, end=end, horizon_days=horizon_days, seed=seed)
    regime_of = {t.lead_id: t.regime for t in truth}
    after = np.array([regime_of[i] == 1 for i in ids])
    test = np.random.default_rng(seed).random(len(y)) < 0.3

    def fit(rows: np.ndarray) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(random_state=seed).fit(x[rows], y[rows])

    def auc(model: HistGradientBoostingClassifier, rows: np.ndarray) -> float:
        return float(roc_auc_score(y[rows], model.predict_proba(x[rows])[:, 1]))

    old = fit(~after & ~test)
    refit = fit(after & ~test)
    return {
        "leads_before": float((~after).sum()),
        "leads_after": float(after.sum()),
        "auc_before": auc(old, ~after & test),
        "auc_after": auc(old, after & test),
        "auc_after_refit": auc(refit, after & test),
        "seconds": time.perf_counter() - started,
    }


def default_shift(config: SimConfig, fraction: float = 0.5) -> Shift:
    """The default shifted regime, ``fraction`` of the way through ``config``'s span (needs ``start``)."""
    if config.start is None:
        raise ValueError("default_shift needs config.start")
    return Shift(at=config.start + timedelta(days=config.span_days * fraction))


if __name__ == "__main__":  # python -m leadscore.simulation.shift --leads 8000 --days 120
    import argparse

    import orjson

    parser = argparse.ArgumentParser(
        description="ROC-AUC of a model trained before a shift, after it."
    )
    parser.add_argument("--leads", type=int, default=8_000)
    parser.add_argument("--days", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    base = SimConfig(
        n_leads=args.leads,
        start=datetime(2026, 1, 5, tzinfo=UTC),
        span_days=args.days,
        seed=args.seed,
    )
    report = measure_shift(replace(base, shift=default_shift(base)), seed=args.seed)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
