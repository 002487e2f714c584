"""CompiledModel: scikit-learn's probabilities to 1e-6, exact SHAP (against shap), points, files."""

from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shap
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

from leadscore.models.engine.compiled import ARRAYS_FILE, META_FILE, CompiledModel, to_points
from leadscore.models.engine.links import logit, sigmoid, signed_log1p
from leadscore.models.training.ensemble import LeadScoringEnsemble

N_FEATURES = 8
SUBSET = (0, 2, 3, 5, 7)

# Small members: the parity and exactness checks do not depend on model size.
RF = {"n_estimators": 10, "max_depth": 6, "min_samples_leaf": 5}
GB = {"n_estimators": 30, "n_iter_no_change": None}
HGB = {"max_iter": 30, "early_stopping": False}

#: name -> LeadScoringEnsemble arguments; every case the issue names.
CASES: dict[str, dict[str, Any]] = {
    "gb_default_weights": {"booster": "gb"},
    "hgb_default_weights": {"booster": "hgb"},
    "rf_only": {"booster": "gb", "weights": (1, 0, 0)},
    "gb_only": {"booster": "gb", "weights": (0, 1, 0)},
    "hgb_only": {"booster": "hgb", "weights": (0, 1, 0)},
    "lr_only": {"booster": "gb", "weights": (0, 0, 1)},
    "gb_zero_forest": {"booster": "gb", "weights": (0, 0.7, 0.3)},
    "gb_calibrated": {"booster": "gb", "weights": (0.5, 0.3, 0.2), "calibration": (0.7, -0.4)},
    "hgb_subset_calibrated": {
        "booster": "hgb",
        "feature_indices": SUBSET,
        "calibration": (1.3, 0.25),
    },
    "gb_subset": {"booster": "gb", "feature_indices": (1, 4, 6)},
}


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread() -> Any:
    # HistGradientBoosting's OpenMP threads spin against each other on a busy machine
    # (a 0.1 s fit took 5 s under load): one thread keeps every test fast.
    with threadpool_limits(1):
        yield


def lead_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """make_classification with columns on very different scales (counts, negatives)."""
    X, y = make_classification(
        n_samples=n, n_features=N_FEATURES, n_informative=5, n_redundant=1, random_state=seed
    )
    X = X * np.array([1.0, 10.0, 100.0, 0.1, 3.0, 1.0, 50.0, 2.0])
    X[:, 5] = np.round(np.abs(X[:, 5]) * 4)  # a count
    return X, y


@functools.cache
def fitted(case: str) -> tuple[LeadScoringEnsemble, CompiledModel]:
    X, y = lead_data()
    params = dict(CASES[case])
    gb_params = HGB if params.get("booster") == "hgb" else GB
    model = LeadScoringEnsemble(**params, rf_params=RF, gb_params=gb_params, random_state=0).fit(
        X, y
    )
    return model, model.compile(tuple(f"f{i}" for i in range(N_FEATURES)))


def holdout_rows() -> np.ndarray:
    X, _ = lead_data(n=200, seed=1)
    return X


# --- the same probabilities as scikit-learn -----------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_probabilities_equal_sklearn(case: str) -> None:
    model, compiled = fitted(case)
    X = holdout_rows()
    np.testing.assert_allclose(compiled.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        compiled.decision_function(X), model.decision_function(X), rtol=0, atol=1e-6
    )


def _split_rows(model: LeadScoringEnsemble, X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` with one column set exactly on a fitted split threshold or next to it.

    sklearn trees compare ``float32(x) <= threshold``, HistGradientBoosting ``x <= threshold``
    in float64: the values are the threshold, its float32 rounding and the neighbours of both.
    """
    splits: list[tuple[int, float]] = []
    rf, gb, _ = model.estimators_
    for est in [] if rf is None else rf.estimators_:
        internal = est.tree_.feature >= 0
        splits += zip(est.tree_.feature[internal], est.tree_.threshold[internal])
    if gb is not None and model.booster == "gb":
        for est in gb.estimators_[:, 0]:
            internal = est.tree_.feature >= 0
            splits += zip(est.tree_.feature[internal], est.tree_.threshold[internal])
    if gb is not None and model.booster == "hgb":
        for (predictor,) in gb._predictors:
            nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
            splits += zip(nodes["feature_idx"], nodes["num_threshold"])
    rows = []
    for k, (feature, t) in enumerate(splits):
        t32 = float(np.float32(t))
        for value in {
            t,
            t32,
            np.nextafter(t, -np.inf),
            np.nextafter(t, np.inf),
            np.nextafter(t32, -np.inf),
            np.nextafter(t32, np.inf),
        }:
            row = X[k % len(X)].copy()
            row[model.columns_[feature]] = value  # tree features index the selected columns
            rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize(
    "case", ["gb_default_weights", "hgb_default_weights", "hgb_subset_calibrated", "gb_subset"]
)
def test_rows_on_split_thresholds_take_the_same_branch_as_sklearn(case: str) -> None:
    model, compiled = fitted(case)
    rows = _split_rows(model, holdout_rows())
    assert len(rows) > 500
    np.testing.assert_allclose(
        compiled.predict_proba(rows), model.predict_proba(rows), rtol=0, atol=1e-6
    )


def test_unused_columns_do_not_move_the_score() -> None:
    model, compiled = fitted("hgb_subset_calibrated")
    X = holdout_rows()
    unused = np.setdiff1d(np.arange(N_FEATURES), SUBSET)
    X2 = X.copy()
    X2[:, unused] = 1e6
    np.testing.assert_array_equal(compiled.predict_proba(X2), compiled.predict_proba(X))
    _, phi = compiled.explain_log_odds(X2)
    assert (phi[:, unused] == 0).all()


# --- additivity ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_log_odds_and_points_add_up(case: str) -> None:
    model, compiled = fitted(case)
    X = holdout_rows()
    base, phi = compiled.explain_log_odds(X)
    assert phi.shape == X.shape
    np.testing.assert_allclose(base + phi.sum(1), model.decision_function(X), rtol=0, atol=1e-6)

    p, base_points, points = compiled.score_and_explain(X)
    np.testing.assert_allclose(p, model.predict_proba(X)[:, 1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(base_points, 100 * sigmoid(base), rtol=0, atol=1e-9)
    np.testing.assert_allclose(base_points + points.sum(1), 100 * p, rtol=0, atol=1e-6)
    # points keep the signs of the log-odds reasons
    assert (np.sign(points) == np.sign(phi)).all()


def test_points_add_up_for_a_row_at_the_base_value() -> None:
    # A linear model's row with signed_log1p(x_j) == mean_j has z == z0 (up to rounding).
    model, compiled = fitted("lr_only")
    mean = compiled.linear.mean  # type: ignore[union-attr]
    at_base = np.sign(mean) * np.expm1(np.abs(mean))
    X = np.vstack([at_base, at_base + 1e-9, holdout_rows()[:3]])
    base, phi = compiled.explain_log_odds(X)
    z = model.decision_function(X)
    assert abs(z[0] - base) < 1e-12 and abs(z[1] - base) < 1e-6
    p, base_points, points = compiled.score_and_explain(X)
    assert np.isfinite(points).all()
    np.testing.assert_allclose(base_points + points.sum(1), 100 * p, rtol=0, atol=1e-6)
    assert np.abs(points[0]).max() < 1e-9


@pytest.mark.parametrize("dz", [0.0, 1e-15, 1e-12, -1e-10, 1e-8, 2.5])
def test_to_points_adds_up_for_tiny_and_large_distances(dz: float) -> None:
    z0 = -1.3
    phi = np.array([[0.75 * dz, 0.5 * dz, -0.25 * dz]])
    z = np.array([z0 + phi.sum()])
    base_points, points = to_points(z0, z, phi)
    np.testing.assert_allclose(base_points + points.sum(1), 100 * sigmoid(z), rtol=0, atol=1e-9)
    # the ratios of the reasons are kept
    if dz != 0.0:
        np.testing.assert_allclose(points[0] / points[0, 0], [1.0, 2 / 3, -1 / 3], rtol=1e-9)


# --- the explanation is the exact SHAP of the log-odds ------------------------------------------


def _tree_shap(member: Any, X: np.ndarray) -> tuple[float, np.ndarray]:
    explainer = shap.TreeExplainer(member, feature_perturbation="tree_path_dependent")
    return float(np.ravel(explainer.expected_value)[0]), np.asarray(explainer.shap_values(X))


def _forest_shap(model: LeadScoringEnsemble, X: np.ndarray) -> tuple[float, np.ndarray]:
    """shap on the forest's own trees with the ensemble's leaf values (smoothed log-odds / T)."""
    rf = model.estimators_[0]
    trees = []
    for est in rf.estimators_:
        t = est.tree_
        n = t.weighted_n_node_samples
        q = (t.value[:, 0, 1] * n + model.rf_smoothing * model.prior_) / (n + model.rf_smoothing)
        trees.append(
            {
                "children_left": t.children_left,
                "children_right": t.children_right,
                "children_default": t.children_left,
                "features": t.feature,
                "thresholds": t.threshold,
                "values": (logit(q) / len(rf.estimators_)).reshape(-1, 1),
                "node_sample_weight": n,
            }
        )
    return _tree_shap({"trees": trees}, X)


def _linear_shap(model: LeadScoringEnsemble, X: np.ndarray) -> tuple[float, np.ndarray]:
    """The closed form ``coef_j / scale_j * (g(x_j) - mean_j)``, base = the intercept."""
    _, scaler, logreg = model.linear_member  # type: ignore[misc]
    phi = logreg.coef_[0] / scaler.scale_ * (signed_log1p(X) - scaler.mean_)
    return float(logreg.intercept_[0]), phi


def _member_shap(model: LeadScoringEnsemble, X: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Each member's (base, phi) on the full columns; zeros for dropped members."""
    Xs = X[:, model.columns_]
    out = []
    for i, member in enumerate(model.estimators_):
        if member is None:
            out.append((0.0, np.zeros(X.shape)))
            continue
        if i == 0:
            base, phi_s = _forest_shap(model, Xs)
        elif i == 1:
            base, phi_s = _tree_shap(member, Xs)
        else:
            base, phi_s = _linear_shap(model, Xs)
        phi = np.zeros(X.shape)
        phi[:, model.columns_] = phi_s
        out.append((base, phi))
    return out


@pytest.mark.parametrize(
    ("case", "member"), [("gb_only", 1), ("hgb_only", 1), ("rf_only", 0), ("lr_only", 2)]
)
def test_single_member_explanation_is_that_members_shap(case: str, member: int) -> None:
    model, compiled = fitted(case)
    X = holdout_rows()[:60]
    base, phi = compiled.explain_log_odds(X)
    shap_base, shap_phi = _member_shap(model, X)[member]
    np.testing.assert_allclose(phi, shap_phi, rtol=0, atol=1e-6)
    assert base == pytest.approx(shap_base, abs=1e-6)


@pytest.mark.parametrize(
    "case", ["gb_calibrated", "hgb_subset_calibrated", "gb_default_weights", "gb_zero_forest"]
)
def test_blend_explanation_is_the_weighted_members_shap(case: str) -> None:
    model, compiled = fitted(case)
    a, b = model.calibration or (1.0, 0.0)
    X = holdout_rows()[:60]
    members = _member_shap(model, X)
    expected_phi = a * sum(w * phi for w, (_, phi) in zip(model.weights_, members))
    expected_base = b + a * sum(w * base for w, (base, _) in zip(model.weights_, members))
    base, phi = compiled.explain_log_odds(X)
    np.testing.assert_allclose(phi, expected_phi, rtol=0, atol=1e-6)
    assert base == pytest.approx(expected_base, abs=1e-6)


# --- files and pickles ------------------------------------------------------------------------


def _outputs(compiled: CompiledModel, X: np.ndarray) -> list[Any]:
    return [
        compiled.predict_proba(X),
        *compiled.explain_log_odds(X),
        *compiled.score_and_explain(X),
    ]


@pytest.mark.parametrize("case", ["gb_calibrated", "hgb_subset_calibrated", "lr_only", "gb_only"])
def test_files_round_trip_without_pickles(case: str, tmp_path: Path) -> None:
    _, compiled = fitted(case)
    paths = compiled.to_files(tmp_path)
    assert sorted(p.name for p in paths) == sorted([ARRAYS_FILE, META_FILE])
    with np.load(tmp_path / ARRAYS_FILE, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    loaded = CompiledModel.from_files(tmp_path)
    X = holdout_rows()
    for got, want in zip(_outputs(loaded, X), _outputs(compiled, X)):
        np.testing.assert_array_equal(got, want)
    assert loaded.feature_names == compiled.feature_names
    assert loaded.info == compiled.info
    assert (loaded.trees is None) == (compiled.trees is None)
    assert (loaded.linear is None) == (compiled.linear is None)


def test_files_of_another_format_are_refused(tmp_path: Path) -> None:
    _, compiled = fitted("gb_only")
    compiled.to_files(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps({**meta, "format": 999}))
    with pytest.raises(ValueError, match="format 999"):
        CompiledModel.from_files(tmp_path)


def test_pickle_round_trip_after_explaining() -> None:
    # Regression: the tree part holds a lock (its lazy SHAP plan), which pickle refused, so a
    # model could not come back from the process pool training runs in.
    _, compiled = fitted("gb_calibrated")
    X = holdout_rows()
    want = _outputs(compiled, X)  # builds the SHAP plan first
    restored = pickle.loads(pickle.dumps(compiled))
    for got, expected in zip(_outputs(restored, X), want):
        np.testing.assert_array_equal(got, expected)


# --- refusals -------------------------------------------------------------------------------


def test_wrong_width_is_refused() -> None:
    _, compiled = fitted("gb_only")
    with pytest.raises(ValueError, match=rf"shape \(n, {N_FEATURES}\)"):
        compiled.predict_proba(np.zeros((2, N_FEATURES - 1)))
    with pytest.raises(ValueError, match=rf"shape \(n, {N_FEATURES}\)"):
        compiled.explain_log_odds(np.zeros(N_FEATURES))


def test_feature_names_must_match_the_width() -> None:
    model, _ = fitted("gb_only")
    with pytest.raises(ValueError, match="3 feature names for a model fitted on 8 features"):
        model.compile(("a", "b", "c"))


def test_two_threads_give_the_same_scores_and_points() -> None:
    import dataclasses

    _, compiled = fitted("gb_default_weights")
    X = np.tile(holdout_rows(), (max(1, 2_000 // len(holdout_rows()) + 1), 1))[:2_000]
    one = compiled.score_and_explain(X)
    two = dataclasses.replace(compiled, n_threads=2).score_and_explain(X)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
