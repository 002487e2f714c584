"""train(): one set of folds for every candidate, the choice rule, refusals, time and group folds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

from leadscore.models.training.candidates import (
    AUC_MARGIN,
    BASELINES,
    DEFAULT_VARIANT,
    VARIANTS,
    TrainConfig,
    choose,
)
from leadscore.models.training.folds import (
    InsufficientDataError,
    TrainingData,
    inner_split,
    outer_folds,
)
from leadscore.models.training.pool import select_features
from leadscore.models.training.report import REQUIRED_CV_METRICS, check_report
from leadscore.models.training.train import TrainResult, _check, train

DAY_S = 86_400.0
FAST = TrainConfig(folds=3, search="none")


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread() -> Any:
    # HistGradientBoosting's and LightGBM's OpenMP threads spin against each other on a busy
    # machine; the fixtures below fit outside train()'s own thread limit.
    with threadpool_limits(1):
        yield


def make_data(n: int = 1200, seed: int = 0, zero_columns: int = 2, **kwargs: Any) -> TrainingData:
    """10 make_classification columns (4 informative) then ``zero_columns`` all-zero ones."""
    X, y = make_classification(
        n_samples=n, n_features=10, n_informative=4, weights=[0.7], flip_y=0.05, random_state=seed
    )
    X = np.column_stack([X, np.zeros((n, zero_columns))])
    names = tuple(f"f{i}" for i in range(X.shape[1]))
    return TrainingData(X=X, y=y, feature_names=names, source="make_classification", **kwargs)


@pytest.fixture(scope="module")
def full() -> tuple[TrainingData, TrainResult]:
    """Every variant and baseline, 3 folds, no search (~5 s: shared by the tests below)."""
    data = make_data()
    return data, train(data, FAST)


# --- the report -----------------------------------------------------------------------------


def test_report_passes_the_contract_and_lists_every_candidate(full: Any) -> None:
    data, result = full
    report = result.report
    check_report(report)
    assert [m["name"] for m in report["models"]] == [*VARIANTS, *BASELINES]
    for model in report["models"]:
        for metric in REQUIRED_CV_METRICS:
            assert np.isfinite(model["cv"][metric]), (model["name"], metric)
        assert model["deployable"] == (model["name"] in VARIANTS)
    assert report["data"]["rows"] == 1200 and report["data"]["positives"] == int(data.y.sum())
    assert report["chosen"]["name"] == result.variant and result.variant in VARIANTS
    assert report["chosen"]["reason"]


def test_every_candidate_is_evaluated_on_the_same_folds(full: Any) -> None:
    data, result = full
    report = result.report
    assert report["data"]["cv"] == {"scheme": "stratified_kfold", "folds": 3}
    # every row is scored once out of fold, by every model, with the same labels
    oofs = [m["oof"] for m in report["models"]]
    assert {o["rows"] for o in oofs} == {len(data.y)}
    assert all(o["base_rate"] == pytest.approx(data.y.mean()) for o in oofs)
    # the folds are a function of the data and the seed alone
    scheme, folds = outer_folds(data, 3, FAST.seed)
    _, again = outer_folds(data, 3, FAST.seed)
    assert scheme == "stratified_kfold"
    for (tr, te), (tr2, te2) in zip(folds, again):
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(te, te2)
    np.testing.assert_array_equal(np.sort(np.concatenate([te for _, te in folds])), np.arange(1200))


def test_returned_compiled_model_equals_the_estimator(full: Any) -> None:
    data, result = full
    np.testing.assert_allclose(
        result.model.predict_proba(data.X),
        result.estimator.predict_proba(data.X),
        rtol=0,
        atol=1e-6,
    )
    assert result.model.feature_names == data.feature_names
    assert result.report["final"]["weights"] == pytest.approx(list(result.estimator.weights_))
    assert result.report["final"]["calibration"] == pytest.approx(
        list(result.estimator.calibration)
    )


def test_all_zero_columns_are_dropped_and_at_least_five_kept(full: Any) -> None:
    _, result = full
    final = result.report["final"]
    assert {"f10", "f11"} <= set(final["features_dropped"])
    assert final["features_used"] >= 5
    assert all(5 <= k <= 10 for k in final["features_used_per_fold"])
    assert not {"f10", "f11"} & {f["feature"] for f in result.report["feature_importance"]}


def test_select_features_keeps_five_and_never_a_constant_column() -> None:
    rng = np.random.default_rng(0)
    n = 600
    signal = rng.normal(size=n)
    y = (signal + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    # one strong column, six weak noise columns, five all-zero columns
    X = np.column_stack([signal, rng.normal(size=(n, 6)) * 1e-3, np.zeros((n, 5))])
    keep = select_features(X, y, seed=0)
    assert len(keep) >= 5
    assert 0 in keep
    assert not set(keep.tolist()) & set(range(7, 12))
    # fewer columns than the minimum: all of them
    np.testing.assert_array_equal(select_features(X[:, :3], y, seed=0), [0, 1, 2])


# --- which variant is deployed ------------------------------------------------------------------


def test_forced_variant_is_used_and_the_reason_says_configuration() -> None:
    data = make_data(n=600, seed=1)
    config = TrainConfig(
        folds=3, search="none", variant="logistic_regression", compare=("ensemble",)
    )
    result = train(data, config)
    assert result.variant == "logistic_regression"
    assert "configuration" in result.report["chosen"]["reason"]
    assert [m["name"] for m in result.report["models"]] == ["ensemble", "logistic_regression"]
    assert list(result.estimator.weights_) == [0.0, 0.0, 1.0]
    assert result.estimator.estimators_[0] is None and result.estimator.estimators_[1] is None
    np.testing.assert_allclose(
        result.model.predict_proba(data.X), result.estimator.predict_proba(data.X), atol=1e-6
    )


def folds_of(aucs: list[float], briers: list[float] | None = None) -> list[dict[str, float]]:
    briers = briers or [0.15] * len(aucs)
    return [{"roc_auc": a, "brier": b} for a, b in zip(aucs, briers)]


BASE = [0.80, 0.82, 0.78, 0.81, 0.79]


def test_choose_keeps_the_ensemble_when_nothing_beats_it_by_the_margin() -> None:
    small_gain = [a + AUC_MARGIN / 2 for a in BASE]
    noisy_gain = [a + d for a, d in zip(BASE, [0.05, -0.03, 0.04, -0.03, 0.0])]  # mean +0.006
    per_fold = {
        DEFAULT_VARIANT: folds_of(BASE),
        "gradient_boosting": folds_of(small_gain),
        "random_forest": folds_of(noisy_gain),
    }
    name, reason = choose("auto", list(per_fold), per_fold)
    assert name == DEFAULT_VARIANT
    assert "no other deployable variant" in reason


def test_choose_takes_a_clear_winner_with_no_worse_brier() -> None:
    per_fold = {
        DEFAULT_VARIANT: folds_of(BASE),
        "gradient_boosting": folds_of([a + 0.010 for a in BASE], [0.14] * 5),
        "ensemble_hgb": folds_of([a + 0.020 for a in BASE], [0.14] * 5),
        "random_forest": folds_of([a + 0.050 for a in BASE], [0.20] * 5),  # worse Brier
    }
    name, reason = choose("auto", list(per_fold), per_fold)
    assert name == "ensemble_hgb"
    assert "+0.0200" in reason and "5 folds" in reason


def test_choose_honours_a_forced_variant() -> None:
    per_fold = {DEFAULT_VARIANT: folds_of(BASE)}
    name, reason = choose("random_forest", [DEFAULT_VARIANT], per_fold)
    assert name == "random_forest" and "configuration" in reason


# --- refusals -------------------------------------------------------------------------------


def test_one_class_is_refused() -> None:
    data = make_data(n=100)
    one = TrainingData(X=data.X, y=np.zeros(100, dtype=int), feature_names=data.feature_names)
    with pytest.raises(InsufficientDataError, match="both classes"):
        train(one, FAST)


def test_too_few_positives_are_refused_naming_class_and_count() -> None:
    data = make_data(n=200)
    y = np.zeros(200, dtype=int)
    y[:5] = 1
    few = TrainingData(X=data.X, y=y, feature_names=data.feature_names)
    with pytest.raises(InsufficientDataError, match=r"class 1 appears in only 5 rows.*at least 6"):
        train(few, FAST)


def test_too_few_positive_leads_are_refused() -> None:
    data = make_data(n=200)
    y = np.zeros(200, dtype=int)
    y[:40] = 1
    groups = np.arange(200)  # one lead per row ...
    groups[:40] = np.arange(40) % 4  # ... except the 40 positive rows: 4 leads, 10 rows each
    grouped = TrainingData(X=data.X, y=y, feature_names=data.feature_names, groups=groups)
    with pytest.raises(InsufficientDataError, match=r"class 1 appears in only 4 leads"):
        train(grouped, FAST)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            TrainConfig(folds=3, search="none", variant="xgboost"),
            "variant must be 'auto' or one of",
        ),
        (TrainConfig(folds=3, search="none", compare=("ensemble", "catboost")), "catboost"),
        (TrainConfig(folds=3, search="grid"), "search must be one of"),
        (TrainConfig(folds=1, search="none"), "folds must be at least 2"),
    ],
)
def test_bad_configuration_is_refused(config: TrainConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train(make_data(n=100), config)


def test_nan_in_x_is_refused() -> None:
    data = make_data(n=100)
    X = data.X.copy()
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train(TrainingData(X=X, y=data.y, feature_names=data.feature_names), FAST)


def _outer_folds_checked(data: TrainingData) -> None:
    """Run train()'s input check and its fold split (no fitting: fast, and what is tested)."""
    _check(data, FAST)
    outer_folds(data, FAST.folds, FAST.seed)


def test_nan_in_times_is_refused() -> None:
    data = make_data(n=600)
    times = np.arange(600, dtype=np.float64) * DAY_S
    times[-1] = np.nan
    timed = TrainingData(X=data.X, y=data.y, feature_names=data.feature_names, times=times)
    with pytest.raises(ValueError, match="times"):
        _outer_folds_checked(timed)


def test_times_of_the_wrong_length_are_refused() -> None:
    data = make_data(n=600)
    times = np.arange(500, dtype=np.float64) * DAY_S
    timed = TrainingData(X=data.X, y=data.y, feature_names=data.feature_names, times=times)
    with pytest.raises(ValueError, match="times"):
        _outer_folds_checked(timed)


# --- time-ordered and grouped folds ---------------------------------------------------------------


def timed_data(n: int = 900, horizon_days: float = 10.0, seed: int = 0) -> TrainingData:
    data = make_data(n=n, seed=seed)
    times = 1.7e9 + np.random.default_rng(seed).uniform(0, 300 * DAY_S, size=n)
    return TrainingData(
        X=data.X,
        y=data.y,
        feature_names=data.feature_names,
        times=times,
        horizon_s=horizon_days * DAY_S,
    )


def test_time_folds_train_only_on_labels_known_before_the_test_period() -> None:
    data = timed_data()
    assert data.times is not None
    scheme, folds = outer_folds(data, 4, seed=0)
    assert scheme == "time_ordered_expanding"
    assert len(folds) == 4
    previous_end = -np.inf
    for train_idx, test_idx in folds:
        first_test_time = data.times[test_idx].min()
        assert (data.times[train_idx] + data.horizon_s < first_test_time).all()
        assert first_test_time > previous_end  # test periods follow each other
        previous_end = data.times[test_idx].max()
        # purged: rows whose label was not known by the cut are out of training
        purged = (data.times < first_test_time) & (data.times + data.horizon_s >= first_test_time)
        assert purged.any() and not np.isin(np.flatnonzero(purged), train_idx).any()


def test_time_inner_split_holds_out_the_latest_rows() -> None:
    data = timed_data()
    assert data.times is not None
    idx = np.arange(600)
    inner, holdout = inner_split(data, idx, seed=0)
    assert (data.times[inner] + data.horizon_s <= data.times[holdout].min()).all()


def test_train_with_times_reports_the_time_ordered_scheme() -> None:
    data = timed_data(n=600)
    result = train(data, TrainConfig(folds=3, search="none", compare=("ensemble",)))
    assert result.report["data"]["cv"]["scheme"] == "time_ordered_expanding"
    # the first time block only trains: fewer rows are scored out of fold
    assert result.report["models"][0]["oof"]["rows"] < 600
    check_report(result.report)


def test_groups_never_straddle_train_and_test() -> None:
    data = make_data(n=600)
    groups = np.random.default_rng(0).integers(0, 150, size=600)  # ~4 rows per lead
    grouped = TrainingData(X=data.X, y=data.y, feature_names=data.feature_names, groups=groups)
    scheme, folds = outer_folds(grouped, 3, seed=0)
    assert scheme == "stratified_group_kfold"
    for train_idx, test_idx in folds:
        assert not set(groups[train_idx]) & set(groups[test_idx])
        inner, holdout = inner_split(grouped, train_idx, seed=0)
        assert not set(groups[inner]) & set(groups[holdout])
        assert len(inner) + len(holdout) == len(train_idx)


def test_the_variant_setting_accepts_exactly_the_deployable_variants() -> None:
    """settings.py cannot import training (it would load scikit-learn): keep its pattern in step."""
    from pydantic import ValidationError

    from leadscore.models.training.candidates import VARIANTS
    from leadscore.settings import Settings

    for name in ("auto", *VARIANTS):
        assert Settings(model_variant=name).model_variant == name
    for name in ("hgb_default", "lgbm_default", "nope"):
        with pytest.raises(ValidationError):
            Settings(model_variant=name)
