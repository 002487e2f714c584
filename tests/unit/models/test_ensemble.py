"""LeadScoringEnsemble: scikit-learn's checks, the log-odds blend, refusals, the model contract."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from leadscore.models.engine.links import logit, sigmoid, signed_log1p
from leadscore.models.training.ensemble import LeadScoringEnsemble

RF = {"n_estimators": 5, "min_samples_leaf": 1}
GB = {"n_estimators": 5, "n_iter_no_change": None}
HGB = {"max_iter": 5, "early_stopping": False}


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread() -> Any:
    # HistGradientBoosting's OpenMP threads spin against each other on a busy machine.
    with threadpool_limits(1):
        yield


def small(**kwargs: Any) -> LeadScoringEnsemble:
    booster = kwargs.get("booster", "gb")
    defaults = {"rf_params": RF, "gb_params": HGB if booster == "hgb" else GB, "random_state": 0}
    return LeadScoringEnsemble(**{**defaults, **kwargs})


def lead_data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, random_state=seed)
    return X * np.array([1.0, 10.0, 100.0, 0.1, 3.0, 1.0]), y


# --- scikit-learn's own estimator checks ------------------------------------------------------
# We skip none. The binary-only tag (multi_class=False) makes sklearn adapt its multiclass
# checks itself; sklearn skips its array-API check when SCIPY_ARRAY_API is unset.


@parametrize_with_checks([small(), small(booster="hgb", weights=(0.5, 0.5, 0.0))])
def test_sklearn_estimator_checks(estimator: LeadScoringEnsemble, check: Any) -> None:
    check(estimator)


def test_unfitted_model_raises_not_fitted_error() -> None:
    # Regression: decision_function read weights_ before check_is_fitted (AttributeError).
    X, _ = lead_data(n=10)
    for method in ("decision_function", "predict_proba", "predict", "member_log_odds"):
        with pytest.raises(NotFittedError):
            getattr(small(), method)(X)


# --- the blend --------------------------------------------------------------------------


def test_constructor_args_are_stored_unchanged() -> None:
    weights, rf_params = (0.5, 0.3, 0.2), {"max_depth": None}
    model = LeadScoringEnsemble(weights=weights, rf_params=rf_params, calibration=(2.0, 1.0))
    assert model.weights is weights and model.rf_params is rf_params
    assert model.get_params()["calibration"] == (2.0, 1.0)


def test_decision_function_is_the_calibrated_weighted_sum_of_member_log_odds() -> None:
    X, y = lead_data()
    model = small(weights=(2, 1, 1), calibration=(0.8, -0.5)).fit(X, y)
    np.testing.assert_allclose(model.weights_, [0.5, 0.25, 0.25])
    z = model.member_log_odds(X)
    rf, gb, lr = model.estimators_
    np.testing.assert_allclose(z[1], gb.decision_function(X), atol=1e-12)
    np.testing.assert_allclose(z[2], lr.decision_function(X), atol=1e-12)
    np.testing.assert_allclose(
        model.decision_function(X),
        -0.5 + 0.8 * (0.5 * z[0] + 0.25 * z[1] + 0.25 * z[2]),
        atol=1e-12,
    )
    p = model.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], sigmoid(model.decision_function(X)), atol=1e-15)
    np.testing.assert_array_equal(model.predict(X), model.classes_[(p[:, 1] >= 0.5).astype(int)])


def test_forest_log_odds_is_the_mean_smoothed_leaf_logit() -> None:
    X, y = lead_data()
    model = small(weights=(1, 0, 0), rf_smoothing=3.0).fit(X, y)
    rf = model.estimators_[0]
    expected = np.zeros(len(X))
    for tree in rf.estimators_:
        leaf = tree.apply(X.astype(np.float32))
        n = tree.tree_.weighted_n_node_samples[leaf]
        frac1 = tree.tree_.value[leaf, 0, 1]
        expected += logit((frac1 * n + 3.0 * model.prior_) / (n + 3.0)) / len(rf.estimators_)
    np.testing.assert_allclose(model.member_log_odds(X)[0], expected, atol=1e-12)
    # a huge pseudo-count pulls every leaf to the base rate
    flat = small(weights=(1, 0, 0), rf_smoothing=1e12).fit(X, y)
    np.testing.assert_allclose(flat.decision_function(X), logit(flat.prior_), atol=1e-6)


def test_zero_weight_members_are_not_fitted_and_columns_are_selected() -> None:
    X, y = lead_data()
    model = small(weights=(0, 1, 0), feature_indices=(4, 1)).fit(X, y)
    assert model.estimators_[0] is None and model.estimators_[2] is None
    np.testing.assert_array_equal(model.columns_, [4, 1])
    assert model.estimators_[1].n_features_in_ == 2
    assert (model.member_log_odds(X)[[0, 2]] == 0).all()
    X2 = X.copy()
    X2[:, [0, 2, 3, 5]] = 0.0  # columns the members do not see
    np.testing.assert_array_equal(model.predict_proba(X2), model.predict_proba(X))


def test_labels_keep_their_order_and_prior_is_of_the_second_class() -> None:
    X, y = lead_data()
    labels = np.where(y == 1, "won", "lost")
    model = small().fit(X, labels)
    assert list(model.classes_) == ["lost", "won"]
    assert model.prior_ == pytest.approx((labels == "won").mean())


def test_linear_member_sees_signed_log1p() -> None:
    X, y = lead_data()
    model = small(weights=(0, 0, 1)).fit(X, y)
    transform, scaler, _ = model.linear_member  # type: ignore[misc]
    np.testing.assert_allclose(transform.transform(X), signed_log1p(X))
    np.testing.assert_allclose(scaler.mean_, signed_log1p(X).mean(axis=0))


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": (0, 0, 0)}, "positive sum"),
        ({"weights": (1, -1, 1)}, "non-negative"),
        ({"weights": (1, 1)}, "3 non-negative numbers"),
        ({"booster": "xgb"}, "booster must be one of"),
        ({"feature_indices": (0, 6)}, "below 6"),
        ({"feature_indices": ()}, "non-empty"),
    ],
)
def test_bad_arguments_are_refused_at_fit(kwargs: dict[str, Any], message: str) -> None:
    X, y = lead_data(n=60)
    with pytest.raises(ValueError, match=message):
        small(**kwargs).fit(X, y)


def test_one_class_and_multiclass_are_refused() -> None:
    X, y = lead_data(n=60)
    with pytest.raises(ValueError, match="only 1 class"):
        small().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="binary"):
        small().fit(X, np.arange(len(y)) % 3)


# --- the contract every model of ours keeps --------------------------------------------------


MODELS = {
    "gb": lambda: small(),
    "hgb": lambda: small(booster="hgb"),
    "forest_only": lambda: small(weights=(1, 0, 0)),
    "linear_only_subset": lambda: small(weights=(0, 0, 1), feature_indices=(0, 2, 5)),
    "calibrated": lambda: small(calibration=(1.7, -0.2)),
}


@pytest.mark.parametrize("name", MODELS)
def test_contract_clone_pickle_probabilities_input_untouched(name: str) -> None:
    X, y = lead_data()
    X_before, y_before = X.copy(), y.copy()
    model = MODELS[name]().fit(X, y)

    cloned = clone(model)
    assert not hasattr(cloned, "estimators_")
    assert cloned.get_params() == model.get_params()
    np.testing.assert_array_equal(cloned.fit(X, y).predict_proba(X), model.predict_proba(X))

    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)

    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), proba)

    compiled = model.compile()
    c_proba = compiled.predict_proba(X)
    np.testing.assert_allclose(c_proba.sum(axis=1), 1.0, atol=1e-12)
    compiled.explain_log_odds(X[:5])
    compiled.score_and_explain(X[:5])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(compiled)).predict_proba(X), c_proba)

    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
