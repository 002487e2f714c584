"""Scheduled shifts: no shift leaves the output as it was; a shift changes who arrives, opens and converts."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from scipy.stats import chi2_contingency

from leadscore.models.features.catalog import INDUSTRIES, INDUSTRY_ALIASES, normalize_category
from leadscore.simulation.config import DEFAULT_REGIME, SHIFTED_REGIME, Shift, SimConfig
from leadscore.simulation.shift import (
    measure_shift,
    parse_shift_at,
    shift_regime,
)
from leadscore.simulation.simulator import simulate_with_truth

START = datetime(2026, 1, 5, tzinfo=UTC)
AT = START + timedelta(days=30)

# sha256 of the JSON lines of SimConfig(n_leads=100, start=START, span_days=30, seed=3), taken
# before scheduled shifts had a CLI. If a deliberate change to the generative model alters it,
# regenerate it in the same commit and say so.
NO_SHIFT_SHA256 = "b2c2b4871c6246940b376dba5447ce9cfcbcd0e51782d28fd0137ef4c38fcc9e"


def _config(**changes: object) -> SimConfig:
    base: dict[str, object] = {"n_leads": 4_000, "start": START, "span_days": 60.0, "seed": 5}
    base.update(changes)
    return SimConfig(**base)  # type: ignore[arg-type]


def _industries(events: list[dict]) -> dict[str, str | None]:
    """Each lead's industry as its profile finally says it (None when never stated)."""
    profile: dict[str, dict] = {}
    for e in events:
        if e["type"] == "lead.profile_updated":
            profile.setdefault(e["subject"], {}).update(e["data"])
    return {
        lead: normalize_category(p.get("industry"), INDUSTRIES, INDUSTRY_ALIASES)
        for lead, p in profile.items()
    }


@pytest.fixture(scope="module")
def shifted() -> tuple[list[dict], list, dict[str, str | None]]:
    events, truth = simulate_with_truth(_config(shift=Shift(at=AT)))
    return events, truth, _industries(events)


def test_no_shift_output_is_byte_identical_to_before() -> None:
    config = SimConfig(n_leads=100, start=START, span_days=30.0, seed=3)
    assert config.shift is None
    events, _ = simulate_with_truth(config)
    digest = hashlib.sha256(b"".join(orjson.dumps(e) + b"\n" for e in events)).hexdigest()
    assert digest == NO_SHIFT_SHA256
    assert simulate_with_truth(replace(config, shift=None)) == simulate_with_truth(config)


def test_industry_mix_of_leads_after_the_shift_differs(shifted) -> None:
    _, truth, industry = shifted
    names = sorted(INDUSTRIES)
    table = np.array(
        [
            [sum(industry[t.lead_id] == name for t in truth if t.regime == r) for name in names]
            for r in (0, 1)
        ]
    )
    assert table.min() > 0  # every industry occurs in both regimes, so chi-square applies
    _, p_value, _, _ = chi2_contingency(table)
    assert p_value < 1e-6
    shares = table / table.sum(axis=1, keepdims=True)
    healthcare = names.index("healthcare")
    assert shares[1, healthcare] > shares[0, healthcare] + 0.08  # configured 8 % -> 22 %


def test_email_opens_change_by_about_the_open_factor() -> None:
    # Same regime except the open factor, so only email behaviour differs after T.
    halved = Shift(at=AT, regime=replace(DEFAULT_REGIME, email_open_factor=0.5))
    calm, _ = simulate_with_truth(_config(n_leads=3_000))
    opened, _ = simulate_with_truth(_config(n_leads=3_000, shift=halved))
    window = (AT.isoformat()[:13], (AT + timedelta(days=25)).isoformat()[:13])

    def opens(events: list[dict]) -> int:
        return sum(
            e["type"] == "lead.email_opened" and window[0] <= e["time"] < window[1] for e in events
        )

    ratio = opens(opened) / opens(calm)
    assert 0.4 < ratio < 0.6, ratio


def test_what_converts_changes_by_industry_as_configured(shifted) -> None:
    _, truth, industry = shifted

    def rate(regime: int, name: str) -> float:
        leads = [t for t in truth if t.regime == regime and industry[t.lead_id] == name]
        return float(np.mean([t.will_convert for t in leads]))

    # before: software fits better than healthcare (+0.6 vs +0.2); after: the reverse (0 vs +0.9)
    assert SHIFTED_REGIME.industry_fit["healthcare"] > SHIFTED_REGIME.industry_fit["software"]
    assert rate(0, "software") > rate(0, "healthcare")
    assert rate(1, "healthcare") > rate(1, "software") + 0.05


def test_parse_shift_at_takes_a_time_or_a_fraction() -> None:
    span = timedelta(days=60)
    assert parse_shift_at("0.25", start=START, span=span) == START + timedelta(days=15)
    assert parse_shift_at("2026-02-01T06:00:00Z", start=START, span=span) == datetime(
        2026, 2, 1, 6, tzinfo=UTC
    )
    assert parse_shift_at("2026-02-01T07:00:00+01:00", start=START, span=span).tzinfo is not None
    for bad, message in [
        ("1.5", "in \\(0, 1\\)"),
        ("2026-02-01", "time zone"),
        ("soon", "ISO-8601"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_shift_at(bad, start=START, span=span)
    assert shift_regime() is SHIFTED_REGIME
    assert shift_regime(0.8).email_open_factor == 0.8
    assert shift_regime(0.8).industry_weights == SHIFTED_REGIME.industry_weights


def test_measure_shift_needs_a_start_and_a_shift() -> None:
    # The measurement itself takes 3-7 s (docs/simulator.md has its numbers), too slow here.
    with pytest.raises(ValueError, match="needs config.start and config.shift"):
        measure_shift(_config())
