"""The rules prior: exact additive reasons, caps, monotonicity, the JSON table and its version."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import FEATURE_NAMES, to_matrix
from leadscore.models.rules.config import RulesConfig, RulesConfigError, SignalPoints
from leadscore.models.rules.model import RulesModel
from leadscore.models.scoring.scorer import Scorer, ScoringPolicy
from leadscore.schemas.events import lead_event_adapter

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
N = len(FEATURE_NAMES)
COUNTS = [
    n
    for n in FEATURE_NAMES
    if "=" not in n
    and not n.endswith(("_rate", "_recent"))
    and n
    not in {
        "recency_days",
        "company_size_log10",
        "seniority_rank",
        "has_profile",
        "contact_completeness",
    }
]
RATES = ["email_click_rate", "call_answer_rate", "interaction_rate", "contact_completeness"]


def row(**values: float) -> np.ndarray:
    """One feature row from names; ``industry``/``lead_source`` take the category."""
    x = np.zeros(N)
    for name, value in values.items():
        if name in ("industry", "lead_source"):
            x[COL[f"{name}={value}"]] = 1.0
        else:
            x[COL[name]] = value
    return x


def random_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, N))
    for name in COUNTS:
        x[:, COL[name]] = rng.poisson(rng.uniform(0, 4), n)
    for name in RATES:
        x[:, COL[name]] = rng.uniform(0, 1, n)
    x[:, COL["recency_days"]] = rng.exponential(30, n)
    x[:, COL["company_size_log10"]] = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 6, n))
    x[:, COL["seniority_rank"]] = rng.integers(0, 7, n)
    for prefix, k in (("industry=", 12), ("lead_source=", 11)):
        cols = [COL[c] for c in FEATURE_NAMES if c.startswith(prefix)]
        pick = rng.integers(0, k + 1, n)  # k means "unknown": no one-hot set
        for i, j in enumerate(pick):
            if j < k:
                x[i, cols[j]] = 1.0
    return x


def assert_additive(model: RulesModel, x: np.ndarray) -> None:
    p, base, points = model.score_and_explain(x)
    assert p.shape == base.shape == (len(x),) and points.shape == x.shape
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(base + points.sum(axis=1), 100 * p, rtol=0, atol=1e-9)
    parts = model.components(x)
    total = base + parts["fit"] + parts["engagement"]
    np.testing.assert_allclose(total, 100 * p, rtol=0, atol=1e-9)
    assert (parts["fit"] >= -1e-9).all()
    assert (parts["fit"] <= model.config.fit_max_points + 1e-9).all()
    assert (parts["engagement"] >= -1e-9).all()
    assert (parts["engagement"] <= model.config.engagement_max_points + 1e-9).all()
    np.testing.assert_allclose(model.predict_proba(x).sum(axis=1), 1.0, atol=1e-12)


# --- additivity -----------------------------------------------------------------------------


def test_reasons_add_up_on_random_rows() -> None:
    assert_additive(RulesModel(), random_rows(2000, seed=1))


def test_reasons_add_up_on_edge_rows() -> None:
    huge = np.zeros(N)
    for name in COUNTS:
        huge[COL[name]] = 1e300
    huge[COL["company_size_log10"]] = 1e300
    edges = np.array(
        [
            np.zeros(N),
            huge,
            row(recency_days=365.0),  # what the stream sends for a lead with no activity
            row(recency_days=1e300, demo_requests=3),
            row(seniority_rank=1, lead_source="purchased_list"),  # negative fit only
            row(demo_requests=-5, seniority_rank=99, contact_completeness=7),  # out-of-range input
        ]
    )
    assert_additive(RulesModel(), edges)
    p = RulesModel().score_and_explain(edges)[0]
    assert p[0] == 0.0 and p[2] == 0.0 and p[4] == 0.0


def test_reasons_add_up_with_a_base_and_a_table_without_caps_in_reach() -> None:
    config = RulesConfig(
        base_points=10.0, fit_max_points=30.0, engagement_max_points=60.0, inactivity_points=()
    )
    assert_additive(RulesModel(config), random_rows(500, seed=2))


# --- the points themselves ------------------------------------------------------------------


def test_points_follow_the_default_table() -> None:
    x = row(
        company_size_log10=np.log10(500),
        seniority_rank=4,
        industry="healthcare",
        lead_source="event",
        contact_completeness=0.5,
        demo_requests=1,
        email_clicks=2,
        call_answer_rate=0.5,
    )
    _, _, points = RulesModel().score_and_explain(x[None])
    got = {FEATURE_NAMES[j]: points[0, j] for j in np.flatnonzero(points[0])}
    assert got == pytest.approx(
        {
            "company_size_log10": 10.0,
            "seniority_rank": 9.0,
            "industry=healthcare": 4.0,
            "lead_source=event": 5.0,
            "contact_completeness": 3.0,
            "demo_requests": 25.0,
            "email_clicks": 6.0,
            "call_answer_rate": 5.0,
        }
    )


def test_company_size_band_edges() -> None:
    model = RulesModel()
    sizes = [1, 9, 10, 49, 50, 199, 200, 999, 1000, 10_000_000]
    x = np.array([row(company_size_log10=np.log10(s)) for s in sizes])
    _, _, points = model.score_and_explain(x)
    assert points[:, COL["company_size_log10"]].tolist() == [0, 0, 3, 3, 6, 6, 10, 10, 12, 12]


def test_each_signal_is_capped() -> None:
    x = row(meetings=100)
    _, _, points = RulesModel().score_and_explain(x[None])
    assert points[0, COL["meetings"]] == 30.0


def test_engagement_cap_scales_signals_proportionally() -> None:
    x = row(demo_requests=1, meetings=2, high_intent_page_views=4, referrals=2)  # 25+30+20+20 = 95
    _, _, points = RulesModel().score_and_explain(x[None])
    signals = points[
        0, [COL["demo_requests"], COL["meetings"], COL["high_intent_page_views"], COL["referrals"]]
    ]
    np.testing.assert_allclose(signals, np.array([25, 30, 20, 20]) * 60 / 95, atol=1e-12)
    assert RulesModel().components(x[None])["engagement"][0] == pytest.approx(60.0, abs=1e-12)


def test_fit_cap_scales_only_the_positive_side() -> None:
    # 12 (1000+) + 12 (vp) + 8 (software) + 6 (complete) + 8 (referral) = 46 > 40
    x = row(
        company_size_log10=4,
        seniority_rank=5,
        industry="software",
        contact_completeness=1,
        lead_source="referral",
    )
    _, _, points = RulesModel().score_and_explain(x[None])
    fit = {
        n: points[0, COL[n]]
        for n in (
            "company_size_log10",
            "seniority_rank",
            "industry=software",
            "contact_completeness",
            "lead_source=referral",
        )
    }
    assert sum(fit.values()) == pytest.approx(40.0, abs=1e-12)
    assert fit["company_size_log10"] / fit["industry=software"] == pytest.approx(12 / 8)
    # A negative fit point is kept whole while the positives shrink: 52 - 10 = 42 > 40.
    config = RulesConfig(
        lead_source_points={"purchased_list": -10.0}, industry_points={"software": 24.0}
    )
    y = row(
        company_size_log10=4,
        seniority_rank=5,
        industry="software",
        contact_completeness=1,
        lead_source="purchased_list",
    )
    _, _, points = RulesModel(config).score_and_explain(y[None])
    assert points[0, COL["lead_source=purchased_list"]] == -10.0
    assert points[0, RulesModel(config)._fit_cols].sum() == pytest.approx(40.0, abs=1e-12)


def test_negative_fit_is_floored_at_zero_by_shrinking_the_negatives() -> None:
    x = row(seniority_rank=1, lead_source="purchased_list", industry="retail")  # -10 -10 +2
    _, _, points = RulesModel().score_and_explain(x[None])
    assert points[0, COL["industry=retail"]] == 2.0
    assert points[0, COL["seniority_rank"]] == pytest.approx(-1.0)
    assert points[0, COL["lead_source=purchased_list"]] == pytest.approx(-1.0)


def test_best_possible_lead_scores_100() -> None:
    x = row(
        company_size_log10=5,
        seniority_rank=6,
        industry="software",
        lead_source="referral",
        contact_completeness=1,
        demo_requests=2,
        meetings=3,
        high_intent_page_views=9,
    )
    assert RulesModel().predict_proba(x[None])[0, 1] == pytest.approx(1.0, abs=1e-12)


# --- time -----------------------------------------------------------------------------------


def test_decay_halves_engagement_every_half_life_and_is_one_reason() -> None:
    model = RulesModel(RulesConfig(inactivity_points=()))
    x = np.array([row(demo_requests=1, recency_days=d) for d in (0, 30, 60)])
    np.testing.assert_allclose(model.components(x)["engagement"], [25, 12.5, 6.25], atol=1e-12)
    _, _, points = model.score_and_explain(x)
    assert (points[:, COL["demo_requests"]] == 25).all()  # the table's points, unchanged
    np.testing.assert_allclose(points[:, COL["recency_days"]], [0, -12.5, -18.75], atol=1e-12)


def test_inactivity_points_and_the_engagement_floor() -> None:
    model = RulesModel()
    x = np.array([row(meetings=2, recency_days=d) for d in (29.9, 30, 90, 400)])
    eng = model.components(x)["engagement"]
    expected = [30 * 0.5 ** (29.9 / 30), 15 - 5, 30 / 8 - 15, 0.0]
    np.testing.assert_allclose(eng, np.maximum(expected, 0), atol=1e-12)
    assert eng[2] == 0.0 and eng[3] == 0.0


def test_more_demo_requests_never_lower_the_score() -> None:
    model = RulesModel()
    x = random_rows(300, seed=3)
    previous = None
    for demos in range(6):
        x[:, COL["demo_requests"]] = demos
        score = 100 * model.predict_proba(x)[:, 1]
        if previous is not None:
            assert (score >= previous - 1e-9).all()
        previous = score
    assert (previous > 0).any()


def test_longer_inactivity_never_raises_engagement() -> None:
    model = RulesModel()
    x = random_rows(300, seed=4)
    previous = None
    for days in np.linspace(0, 200, 81):
        x[:, COL["recency_days"]] = days
        eng = model.components(x)["engagement"]
        if previous is not None:
            assert (eng <= previous + 1e-9).all()
        previous = eng


# --- with the rest of the package -----------------------------------------------------------


def test_scores_stream_vectors_and_plugs_into_the_scorer() -> None:
    t0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)

    def ev(i: int, etype: str, data: dict, days: float) -> object:
        return lead_event_adapter.validate_python(
            {
                "specversion": "1.0",
                "id": f"e{i}",
                "source": "test",
                "type": etype,
                "time": t0 + timedelta(days=days),
                "subject": "lead-1",
                "data": data,
            }
        )

    hot, cold = LeadState("hot"), LeadState("cold")
    for state, demo in ((hot, True), (cold, False)):
        apply_event(
            state,
            ev(
                1,
                "lead.profile_updated",
                {"company_size": 300, "industry": "SaaS", "job_title": "VP Sales"},
                0,
            ),
        )
        apply_event(state, ev(2, "lead.page_viewed", {"url": "/pricing", "duration_s": 60}, 1))
        if demo:
            apply_event(state, ev(3, "lead.demo_requested", {}, 1.1))
    x = to_matrix([hot, cold])
    model = RulesModel()
    p = model.predict_proba(x)[:, 1]
    assert p[0] > p[1] > 0
    scorer = Scorer(model, model.version, ScoringPolicy(top_reasons=3))
    explanation = scorer.explain(x)[0]
    assert explanation.reasons[0]["feature"] == "demo_requests"
    assert explanation.reasons[0]["contribution"] == 25.0


def test_columns_are_found_by_name_not_position() -> None:
    x = random_rows(200, seed=5)
    order = np.random.default_rng(0).permutation(N)
    shuffled = RulesModel(feature_names=tuple(FEATURE_NAMES[j] for j in order))
    p, _, points = shuffled.score_and_explain(x[:, order])
    p0, _, points0 = RulesModel().score_and_explain(x)
    np.testing.assert_allclose(p, p0, atol=1e-12)
    np.testing.assert_allclose(points, points0[:, order], atol=1e-12)


def test_a_feature_the_table_needs_must_be_present() -> None:
    names = tuple(n for n in FEATURE_NAMES if n != "demo_requests")
    with pytest.raises(RulesConfigError, match="'demo_requests'"):
        RulesModel(feature_names=names)
    zeroed = RulesConfig(engagement_points={"demo_requests": SignalPoints(0.0, 0.0)})
    assert RulesModel(zeroed, feature_names=names).feature_names == names


def test_bad_matrices_are_refused() -> None:
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        RulesModel().predict_proba(np.zeros(N))
    x = np.zeros((2, N))
    x[1, COL["meetings"]] = np.nan
    with pytest.raises(ValueError, match="meetings"):
        RulesModel().predict_proba(x)


def test_pickle_round_trip_and_input_not_mutated() -> None:
    model = RulesModel()
    x = random_rows(50, seed=6)
    before = x.copy()
    p = model.predict_proba(x)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_proba(x), p)
    assert clone.version == model.version
    np.testing.assert_array_equal(x, before)


# --- the table from a file, and the version ---------------------------------------------------


def test_file_overrides_merge_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            {
                "engagement_points": {"demo_requests": {"points_per_unit": 30, "max_points": 30}},
                "industry_points": {"healthcare": 10},
                "inactivity_points": [{"min_days": 60, "points": -20}],
            }
        )
    )
    config = RulesConfig.from_file(path)
    assert config.engagement_points["demo_requests"] == SignalPoints(30.0, 30.0)
    assert config.engagement_points["meetings"] == SignalPoints(15.0, 30.0)  # default kept
    assert config.industry_points["healthcare"] == 10.0
    assert config.industry_points["software"] == 8.0
    assert config.inactivity_points == ((60.0, -20.0),)
    assert RulesModel(config).components(row(demo_requests=1)[None])["engagement"][0] == 30.0


def test_defaults_written_to_a_file_read_back_as_the_same_version(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RulesConfig().to_dict(), indent=2))
    assert RulesConfig.from_file(path) == RulesConfig()
    assert RulesModel(RulesConfig.from_file(path)).version == RulesModel().version


def test_version_changes_with_the_table() -> None:
    default = RulesModel().version
    assert default.startswith("rules-v1-") and len(default) == len("rules-v1-") + 8
    assert RulesModel(RulesConfig()).version == default
    changed = RulesModel(RulesConfig(industry_points={"software": 9.0})).version
    assert changed != default
    assert RulesModel(RulesConfig(activity_half_life_days=14)).version not in {default, changed}


# --- docs/rules.md stays true ----------------------------------------------------------------

DOC = Path(__file__).resolve().parents[3] / "docs" / "rules.md"


def _num(value: float) -> str:
    return f"{value:g}"


def test_the_docs_list_the_default_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    c = RulesConfig()
    rows = [f"| {m} | {_num(p)} |" for m, p in c.company_size_points]
    rows += [f"| {_num(d)} | {_num(p)} |" for d, p in c.inactivity_points]
    for table in (c.seniority_points, c.industry_points, c.lead_source_points):
        rows += [f"| `{k}` | {_num(v)} |" for k, v in table.items()]
    rows += [
        f"| `{k}` | {_num(s.points_per_unit)} | {_num(s.max_points)} |"
        for k, s in c.engagement_points.items()
    ]
    missing = [r for r in rows if r not in text]
    assert not missing, f"docs/rules.md is out of date with the default table: {missing}"
    assert f"**{_num(c.contact_completeness_points)}** points" in text
    assert f"capped at {_num(c.fit_max_points)}" in text
    assert f"capped at {_num(c.engagement_max_points)}" in text


def test_the_worked_example_in_the_docs() -> None:
    x = row(
        company_size_log10=np.log10(500),
        seniority_rank=5,
        industry="software",
        lead_source="website",
        contact_completeness=4 / 6,
        demo_requests=1,
        high_intent_page_views=3,
        page_views=10,
        email_clicks=2,
        recency_days=20,
    )
    model = RulesModel()
    parts = model.components(x[None])
    assert parts["fit"][0] == pytest.approx(38.0)
    assert round(parts["engagement"][0], 2) == 32.13
    assert round(model.score_and_explain(x[None])[2][0, COL["recency_days"]], 2) == -18.87
    x[COL["recency_days"]] = 45
    assert round(model.components(x[None])["engagement"][0], 2) == 13.03
    text = DOC.read_text(encoding="utf-8")
    assert "**70.13 → 70 (grade B)**" in text and "= 13.03" in text
