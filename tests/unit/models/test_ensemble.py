"""LeadScoringEnsemble: sklearn contract, exact additive explanations, pickling, speed path."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from leadscore.models.ensemble import LeadScoringEnsemble, signed_log1p
from leadscore.models.features import N_FEATURES

SMALL = dict(rf_n_estimators=12, gb_n_estimators=15, rf_min_samples_leaf=3)


def lead_like_data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Heavy-tailed counts and rates over N_FEATURES columns, ~20% positives."""
    rng = np.random.default_rng(seed)
    X = rng.negative_binomial(1, 0.3, size=(n, N_FEATURES)).astype(np.float64)
    X[:, 5] = rng.uniform(0, 1, n)  # a rate
    X[:, 30:] = rng.integers(0, 2, size=(n, N_FEATURES - 30))  # one-hot-ish flags
    logit = -2.2 + 0.35 * X[:, 0] + 0.8 * X[:, 11] + 1.5 * X[:, 5] - 0.1 * X[:, 18]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y


@pytest.fixture(scope="module")
def fitted() -> tuple[LeadScoringEnsemble, np.ndarray, np.ndarray]:
    X, y = lead_like_data()
    return LeadScoringEnsemble(**SMALL, random_state=0).fit(X, y), X, y


# --- scikit-learn's own estimator checks ---------------------------------------------------------


@parametrize_with_checks(
    [
        LeadScoringEnsemble(
            rf_n_estimators=5, gb_n_estimators=5, rf_min_samples_leaf=1, random_state=0
        )
    ],
)
def test_sklearn_estimator_checks(estimator, check):  # type: ignore[no-untyped-def]
    check(estimator)


# --- contract ---------------------------------------------------------------------------------


def test_constructor_args_are_stored_unchanged() -> None:
    weights = (0.5, 0.3, 0.2)
    model = LeadScoringEnsemble(weights=weights, rf_max_depth=None, class_weight="balanced")
    assert model.weights is weights
    assert model.get_params()["rf_max_depth"] is None
    assert model.get_params()["class_weight"] == "balanced"


def test_clone_pickle_probabilities_and_input_untouched(fitted) -> None:  # type: ignore[no-untyped-def]
    model, X, y = fitted
    X_before = X.copy()

    cloned = clone(model)
    assert not hasattr(cloned, "estimators_")
    assert cloned.get_params() == model.get_params()

    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert ((proba >= 0) & (proba <= 1)).all()

    model.explain(X[:5])  # builds the explainer cache, which must not be pickled
    restored = pickle.loads(pickle.dumps(model))
    assert getattr(restored, "_explainers", None) is None
    np.testing.assert_array_equal(restored.predict_proba(X), proba)
    base, contrib = restored.explain(X[:5])
    np.testing.assert_allclose(base + contrib.sum(axis=1), proba[:5, 1], atol=1e-9)

    np.testing.assert_array_equal(X, X_before)


def test_refit_drops_cached_explainers() -> None:
    X, y = lead_like_data(300, seed=1)
    model = LeadScoringEnsemble(**SMALL, random_state=0).fit(X, y)
    model.explain(X[:2])
    model.fit(X, 1 - y)
    base, contrib = model.explain(X[:20])
    np.testing.assert_allclose(
        base + contrib.sum(axis=1), model.predict_proba(X[:20])[:, 1], atol=1e-9
    )


def test_string_labels_and_positive_class() -> None:
    X, y = lead_like_data(300, seed=2)
    labels = np.where(y == 1, "won", "lost")
    model = LeadScoringEnsemble(**SMALL, random_state=0).fit(X, labels)
    assert list(model.classes_) == ["lost", "won"]
    p_won = model.predict_proba(X)[:, 1]
    assert p_won[y == 1].mean() > p_won[y == 0].mean()
    assert set(model.predict(X)) <= {"lost", "won"}


def test_binary_only_with_a_clear_error() -> None:
    X, _ = lead_like_data(90)
    with pytest.raises(ValueError, match="Only binary classification"):
        LeadScoringEnsemble(**SMALL).fit(X, np.arange(90) % 3)
    with pytest.raises(ValueError, match="weights must be 3 non-negative"):
        LeadScoringEnsemble(**SMALL, weights=(1.0, -1.0, 1.0)).fit(X, np.arange(90) % 2)


def test_fast_forest_path_equals_sklearn(fitted) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = fitted
    rf = model.estimators_[0]
    np.testing.assert_array_equal(model._member_p1(X)[0], rf.predict_proba(X)[:, 1])


def test_soft_vote_uses_normalized_weights() -> None:
    X, y = lead_like_data(300, seed=3)
    model = LeadScoringEnsemble(**SMALL, weights=(2, 2, 1), random_state=0).fit(X, y)
    np.testing.assert_allclose(model.weights_, [0.4, 0.4, 0.2])
    members = np.stack([m.predict_proba(X)[:, 1] for m in model.estimators_])
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], model.weights_ @ members, atol=1e-12)


# --- explanations -----------------------------------------------------------------------------


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_explanations_add_up_to_the_probability(class_weight: str | None) -> None:
    X, y = lead_like_data(500, seed=4)
    model = LeadScoringEnsemble(**SMALL, class_weight=class_weight, random_state=0).fit(X, y)
    rng = np.random.default_rng(5)
    X_new = np.vstack([X[:100], rng.negative_binomial(1, 0.2, size=(50, N_FEATURES)).astype(float)])
    base, contrib = model.explain(X_new)
    assert isinstance(base, float)
    assert contrib.shape == (len(X_new), N_FEATURES)
    np.testing.assert_allclose(
        base + contrib.sum(axis=1), model.predict_proba(X_new)[:, 1], atol=1e-6
    )
    # and the base is a probability the model produces on average
    assert 0.0 < base < 1.0


def test_explanations_are_exact_per_member(fitted) -> None:  # type: ignore[no-untyped-def]
    """Each member alone (weight 1) is also additive: the conversion is per member, not a fudge."""
    model, X, _ = fitted
    for member in range(3):
        alone = clone(model).set_params(weights=tuple(float(i == member) for i in range(3)))
        alone.fit(X, fitted[2])
        base, contrib = alone.explain(X[:64])
        p = alone.predict_proba(X[:64])[:, 1]
        np.testing.assert_allclose(base + contrib.sum(axis=1), p, atol=1e-6)


def test_row_equal_to_base_gets_zero_contributions() -> None:
    """A row whose log-odds equal a member's base takes the tangent branch, not 0/0."""
    X, y = lead_like_data(300, seed=6)
    model = LeadScoringEnsemble(**SMALL, weights=(0, 0, 1), random_state=0).fit(X, y)
    # z = 0 at the scaler's mean of signed_log1p(x); invert signed_log1p to get that x
    mean_z = model.estimators_[2][1].mean_
    x0 = np.sign(mean_z) * np.expm1(np.abs(mean_z))
    base, contrib = model.explain(x0[None, :])
    np.testing.assert_allclose(contrib, 0.0, atol=1e-9)
    np.testing.assert_allclose(base, model.predict_proba(x0[None, :])[0, 1], atol=1e-9)


def test_contributions_point_the_right_way(fitted) -> None:  # type: ignore[no-untyped-def]
    model, X, y = fitted
    _, contrib = model.explain(X)
    # feature 11 (demo requests in the data) drives conversions: more demos, higher contribution
    many = X[:, 11] >= 3
    none = X[:, 11] == 0
    assert contrib[many, 11].mean() > 0 > contrib[none, 11].mean()


def test_explain_is_safe_from_threads(fitted) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = fitted
    fresh = pickle.loads(pickle.dumps(model))  # no explainer yet: threads race to build it
    expected = model.explain(X[:32])[1]
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(fresh.explain(X[:32])[1])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-12)


def test_signed_log1p_is_odd_and_monotone() -> None:
    x = np.linspace(-100, 100, 201)
    y = signed_log1p(x)
    np.testing.assert_allclose(y, -signed_log1p(-x))
    assert (np.diff(y) > 0).all()
