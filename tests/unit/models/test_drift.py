"""Drift statistics: KS equal to scipy's, the false-alarm guards, detection delay (golden, seeded)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from leadscore.models.monitoring.drift import DriftConfig, DriftDetector, DriftReference
from leadscore.models.monitoring.report import SCORE_FEATURE
from leadscore.models.monitoring.stats import DriftError, adjust_pvalues, chi2_psi, ks_2samp_sorted

N_NUMERIC = 40
N_BINARY = 8
NAMES = (
    [f"num_{i}" for i in range(N_NUMERIC)] + [f"bin_{i}" for i in range(N_BINARY)] + ["industry"]
)
INDUSTRY_MIX = np.array([0.4, 0.3, 0.2, 0.1])
BINARY_RATES = np.linspace(0.05, 0.5, N_BINARY)


def sample(rng: np.random.Generator, n: int, industry_mix: np.ndarray = INDUSTRY_MIX) -> np.ndarray:
    """Rows shaped like lead vectors: skewed counts, rates, one-hot-like flags, a category code."""
    normal = rng.normal(size=(n, N_NUMERIC // 2))
    counts = rng.poisson(lam=np.linspace(3, 40, N_NUMERIC // 2), size=(n, N_NUMERIC // 2)).astype(
        float
    )
    flags = (rng.random((n, N_BINARY)) < BINARY_RATES).astype(float)
    industry = rng.choice(4, size=(n, 1), p=industry_mix).astype(float)
    return np.hstack([normal, counts, flags, industry])


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    rng = np.random.default_rng(42)
    return DriftReference.from_sample(sample(rng, 2_000), NAMES, scores=rng.beta(2, 5, size=2_000))


def test_reference_splits_numeric_and_categorical(reference: DriftReference) -> None:
    cat = [reference.feature_names[i] for i in reference.categorical_index]
    assert cat == [f"bin_{i}" for i in range(N_BINARY)] + ["industry"]
    assert reference.sorted_numeric.shape == (2_000, N_NUMERIC)
    assert np.all(np.diff(reference.sorted_numeric, axis=0) >= 0)


@pytest.mark.parametrize(
    ("n_ref", "n_win", "rounding"), [(500, 1_000, None), (5_000, 1_000, 1), (300, 37, 0)]
)
def test_ks_equals_scipy_asymp(n_ref: int, n_win: int, rounding: int | None) -> None:
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(n_ref, 12))
    win = rng.normal(loc=np.linspace(0, 0.5, 12), size=(n_win, 12))
    if rounding is not None:  # many ties, inside and across the samples
        ref, win = ref.round(rounding), win.round(rounding)
    d, p = ks_2samp_sorted(np.sort(ref, axis=0), win)
    for j in range(12):
        res = stats.ks_2samp(ref[:, j], win[:, j], method="asymp")
        assert d[j] == pytest.approx(res.statistic, abs=1e-9)
        assert p[j] == pytest.approx(res.pvalue, rel=1e-6, abs=1e-12)
    d_fast, p_fast = ks_2samp_sorted(np.sort(ref, axis=0), win, pvalue="kstwobign")
    np.testing.assert_array_equal(d_fast, d)
    np.testing.assert_allclose(p_fast, p, atol=0.02)


def test_bh_and_holm_match_scipy() -> None:
    p = np.random.default_rng(3).random(50) ** 3
    np.testing.assert_allclose(
        adjust_pvalues(p, "bh"), stats.false_discovery_control(p, method="bh")
    )
    holm = adjust_pvalues(p, "holm")
    assert np.all(holm >= p) and np.all(holm <= 1.0)


def test_chi2_equals_scipy_contingency() -> None:
    ref, win = np.array([400, 300, 200, 100, 0]), np.array([80, 60, 40, 10, 5])
    chi2, p, psi = chi2_psi(ref, win)
    res = stats.chi2_contingency(np.vstack([ref, win]), correction=False)
    assert chi2 == pytest.approx(res.statistic)
    assert p == pytest.approx(res.pvalue)
    assert psi > 0.1  # a category unseen in the reference weighs heavily


@pytest.mark.parametrize("seed", [2026, 2027, 2028, 2029])
def test_no_alert_over_200_identical_windows(reference: DriftReference, seed: int) -> None:
    """4 seeds x 50 windows of 1,000 rows, default config: no alert, not one feature drifted."""
    rng = np.random.default_rng(seed)
    det = DriftDetector(reference)
    alerts, drifted = 0, 0
    for _ in range(50):
        report = det.update(sample(rng, 1_000), scores=rng.beta(2, 5, size=1_000))
        alerts += det.drift_detected
        drifted += sum(f.drifted for f in report.features)
    assert (alerts, drifted) == (0, 0)


def test_mean_shift_detected_within_persistence_horizon(reference: DriftReference) -> None:
    rng = np.random.default_rng(11)
    det = DriftDetector(reference)  # persistence 2 of 3: an alert one window after the shift
    levels = []
    for t in range(8):
        x = sample(rng, 1_000)
        if t >= 4:
            x[:, 3] += 0.6  # 0.6 standard deviations: D ~ 0.23
        report = det.update(x)
        levels.append(report.level)
    assert levels == ["none"] * 5 + ["medium"] * 3
    assert report.persistent_features == ["num_3"]
    (f,) = [f for f in report.features if f.feature == "num_3"]
    assert f.test == "ks" and f.large and f.adjusted_p < 1e-10


def test_category_mix_change_detected(reference: DriftReference) -> None:
    rng = np.random.default_rng(12)
    det = DriftDetector(reference)
    levels = []
    for t in range(6):
        mix = INDUSTRY_MIX if t < 2 else np.array([0.15, 0.25, 0.3, 0.3])
        levels.append(det.update(sample(rng, 1_000, mix)).level)
    assert levels == ["none", "none", "none", "medium", "medium", "medium"]
    assert det.last_report_ is not None and det.last_report_.persistent_features == ["industry"]


def test_many_features_shifted_is_high(reference: DriftReference) -> None:
    rng = np.random.default_rng(13)
    det = DriftDetector(reference)
    for _ in range(2):
        x = sample(rng, 1_000)
        x[:, :5] += 1.0
        report = det.update(x)
    assert report.level == "high"
    assert report.persistent_features == [f"num_{i}" for i in range(5)]


def test_effect_floor_suppresses_tiny_significant_shift() -> None:
    rng = np.random.default_rng(5)
    ref = DriftReference.from_sample(rng.normal(size=(5_000, 1)), ["x"])
    window = rng.normal(loc=0.12, size=(20_000, 1))  # D ~ 0.05: significant at n = 20,000
    floor = DriftDetector(ref, DriftConfig(persistence_k=1, persistence_m=1))
    no_floor = DriftDetector(ref, DriftConfig(persistence_k=1, persistence_m=1, ks_min_effect=0.0))
    with_floor, without = floor.update(window).features[0], no_floor.update(window).features[0]
    assert with_floor.adjusted_p < 1e-3 and with_floor.statistic < 0.1
    assert (with_floor.drifted, without.drifted) == (False, True)


def test_bh_reduces_alarms_with_50_null_features() -> None:
    rng = np.random.default_rng(8)
    ref = DriftReference.from_sample(rng.normal(size=(1_000, 50)), [f"f{i}" for i in range(50)])
    # No effect floor or persistence, so only the correction stands between noise and an alarm.
    loose = dict(
        alpha=0.05, ks_min_effect=0.0, persistence_k=1, persistence_m=1, ks_pvalue="kstwobign"
    )
    raw = DriftDetector(ref, DriftConfig(correction="none", **loose))  # type: ignore[arg-type]
    bh = DriftDetector(ref, DriftConfig(correction="bh", **loose))  # type: ignore[arg-type]
    holm = DriftDetector(ref, DriftConfig(correction="holm", **loose))  # type: ignore[arg-type]
    counts = {"none": 0, "bh": 0, "holm": 0}
    for _ in range(100):
        w = rng.normal(size=(500, 50))
        counts["none"] += raw.update(w).level != "none"
        counts["bh"] += bh.update(w).level != "none"
        counts["holm"] += holm.update(w).level != "none"
    # Uncorrected: 1 - 0.95**50 = 92 % of null windows alarm; BH/Holm keep it near alpha.
    assert counts == {"none": 93, "bh": 4, "holm": 4}


def test_score_distribution_drift(reference: DriftReference) -> None:
    rng = np.random.default_rng(14)
    det = DriftDetector(reference)
    for _ in range(2):
        report = det.update(sample(rng, 1_000), scores=rng.beta(4, 5, size=1_000))
    assert report.score is not None and report.score.feature == SCORE_FEATURE
    assert report.score.persistent and report.score.large
    assert report.persistent_features == [] and report.level == "high"


def test_small_window_is_not_tested(reference: DriftReference) -> None:
    det = DriftDetector(reference)
    report = det.update(sample(np.random.default_rng(1), 199))
    assert (report.tested, report.level, report.features) == (False, "none", ())
    assert "min_window=200" in report.reason
    assert det.history_ == {}


def test_report_is_json_ready(reference: DriftReference) -> None:
    rng = np.random.default_rng(15)
    report = DriftDetector(reference).update(sample(rng, 500), scores=rng.beta(2, 5, size=500))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["level"] == "none" and len(data["features"]) == len(NAMES)
    assert set(data["features"][0]) == {
        "feature",
        "test",
        "statistic",
        "p_value",
        "adjusted_p",
        "effect",
        "drifted",
        "persistent",
        "large",
    }


def test_bad_input_names_the_problem(reference: DriftReference) -> None:
    det = DriftDetector(reference)
    with pytest.raises(DriftError, match=r"window must have shape \(rows, 49\)"):
        det.update(np.zeros((300, 3)))
    bad = sample(np.random.default_rng(0), 300)
    bad[0, 0] = np.nan
    with pytest.raises(DriftError, match="NaN"):
        det.update(bad)
    with pytest.raises(DriftError, match="persistence_k"):
        DriftConfig(persistence_k=4, persistence_m=3)
