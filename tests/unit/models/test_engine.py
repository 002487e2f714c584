"""engine: compiled trees equal scikit-learn, exact TreeSHAP equals shap, on split edges and NaN."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import shap
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)

from leadscore.models.engine.evaluate import predict, shap_values
from leadscore.models.engine.from_sklearn import (
    compile_forest,
    compile_gradient_boosting,
    compile_hist_gradient_boosting,
    float32_split_as_float64,
)
from leadscore.models.engine.trees import (
    DEFAULT_SHAP_TABLE_BUDGET_BYTES,
    TreeEnsemble,
    concat,
    from_arrays,
    remap_features,
    to_arrays,
)

TOL = 1e-9
PRIOR = 0.3


def make_data(n: int = 600, n_features: int = 6, seed: int = 0, nan_rate: float = 0.0):
    """Rounded values (many ties, so thresholds sit between close values), ~30% positives."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n, n_features)) * 3, 1)
    X[:, 1] = rng.uniform(0, 1, n)  # not float32-representable: exercises the float32 cast
    logit = -1.0 + X[:, 0] + 2 * X[:, 1] + np.sin(3 * X[:, 0])
    if n_features >= 5:
        logit += -0.7 * X[:, 2] + 0.5 * X[:, 3] * X[:, 4]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    if nan_rate:
        X[rng.uniform(size=X.shape) < nan_rate] = np.nan
    return X, y


def edge_rows(X: np.ndarray, ens: TreeEnsemble, sk_thresholds: np.ndarray, seed: int = 0):
    """Rows of X with one column overwritten by a split threshold or a neighbour of it.

    The neighbours: one float64 step and one float32 step each side, the float32 value of
    the threshold, and our float64 equivalent ``t'`` with its neighbours.
    """
    rng = np.random.default_rng(seed)
    internal = np.flatnonzero((ens.feature >= 0) & np.isfinite(sk_thresholds))  # NaN splits: +inf
    rows = []
    for node in rng.choice(internal, size=min(120, internal.size), replace=False):
        f = ens.feature[node]
        for t in (sk_thresholds[node], ens.threshold[node]):
            t32 = np.float32(t)
            for v in (
                t,
                np.nextafter(t, -np.inf),
                np.nextafter(t, np.inf),
                float(t32),
                float(np.nextafter(t32, np.float32(-np.inf))),
                float(np.nextafter(t32, np.float32(np.inf))),
            ):
                row = X[rng.integers(len(X))].copy()
                row[f] = v
                rows.append(row)
    return np.array(rows)


def shap_dict(ens: TreeEnsemble) -> dict:
    """Our ensemble in shap's custom-model format (float64 thresholds, float64 input)."""
    trees = []
    ends = np.append(ens.roots[1:], ens.n_nodes)
    for r, e in zip(ens.roots, ends):
        sl = slice(int(r), int(e))
        leaf = ens.feature[sl] < 0
        left = np.where(leaf, -1, ens.left[sl] - r)
        right = np.where(leaf, -1, ens.right[sl] - r)
        trees.append(
            {
                "children_left": left,
                "children_right": right,
                "children_default": np.where(ens.missing_left[sl], left, right),
                "features": np.where(leaf, -2, ens.feature[sl]),
                "thresholds": ens.threshold[sl].copy(),
                "values": ens.value[sl].reshape(-1, 1).copy(),
                "node_sample_weight": ens.cover[sl].copy(),
            }
        )
    return {"trees": trees, "base_offset": ens.offset}


def forest_reference(rf: RandomForestClassifier, X: np.ndarray, prior: float, smoothing: float):
    """The forest's log-odds computed by scikit-learn's own trees."""
    X32 = X.astype(np.float32)
    total = np.zeros(len(X))
    for tree in rf.estimators_:
        frac1 = tree.predict_proba(X32)[:, 1]
        n = tree.tree_.weighted_n_node_samples[tree.apply(X32)]
        q = (frac1 * n + smoothing * prior) / (n + smoothing)
        total += np.log(q / (1 - q))
    return total / len(rf.estimators_)


def forest_shap_reference(
    rf: RandomForestClassifier, X: np.ndarray, prior: float, smoothing: float
):
    """shap on the forest with our log-odds leaves but sklearn's own float32 thresholds."""
    trees = []
    for est in rf.estimators_:
        t = est.tree_
        n = t.weighted_n_node_samples
        q = (t.value[:, 0, 1] * n + smoothing * prior) / (n + smoothing)
        left, right = t.children_left, t.children_right
        trees.append(
            {
                "children_left": left,
                "children_right": right,
                "children_default": np.where(t.missing_go_to_left, left, right),
                "features": t.feature,
                "thresholds": t.threshold.astype(np.float64),
                "values": (np.log(q / (1 - q)) / len(rf.estimators_)).reshape(-1, 1),
                "node_sample_weight": n.astype(np.float64),
            }
        )
    explainer = shap.TreeExplainer({"trees": trees}, feature_perturbation="tree_path_dependent")
    phi = explainer.shap_values(X.astype(np.float32).astype(np.float64), check_additivity=False)
    return float(np.ravel(explainer.expected_value)[0]), phi


def sklearn_thresholds(model) -> np.ndarray:
    """Per node of the compiled ensemble, the model's original threshold."""
    if isinstance(model, HistGradientBoostingClassifier):
        return np.concatenate([p[0].nodes["num_threshold"] for p in model._predictors])
    estimators = (
        model.estimators_ if isinstance(model, RandomForestClassifier) else model.estimators_[:, 0]
    )
    return np.concatenate([e.tree_.threshold for e in estimators])


# --- fitted models, shared by the tests ----------------------------------------------------


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def data_nan():
    return make_data(seed=1, nan_rate=0.1)


@pytest.fixture(scope="module")
def rf_nan(data_nan):
    X, y = data_nan
    return RandomForestClassifier(12, max_depth=7, min_samples_leaf=3, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def gb(data):
    X, y = data
    return GradientBoostingClassifier(n_estimators=25, max_depth=3, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def hgb_nan(data_nan):
    X, y = data_nan
    return HistGradientBoostingClassifier(max_iter=20, max_depth=4, random_state=0).fit(X, y)


def rows_for(model, ens, X):
    rows = np.vstack([X[:100], edge_rows(X, ens, sklearn_thresholds(model))])
    return rows


# --- float32 splits as float64 -------------------------------------------------------------


def test_float32_split_as_float64_matches_the_float32_compare():
    rng = np.random.default_rng(0)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    t = np.concatenate(
        [
            rng.normal(size=3000) * 10.0 ** rng.integers(-40, 38, 3000),
            (f32(rng.normal(size=500)).astype(np.float64) + f32(rng.normal(size=500))) / 2,
            [
                0.0,
                -0.0,
                1.0,
                -1.0,
                2.0**-149,
                -(2.0**-149),
                2.0**-126,
                float(np.finfo(np.float32).max),
            ],
            -float(np.finfo(np.float32).max) + np.zeros(1),
        ]
    )
    t = t[np.abs(t) <= np.finfo(np.float32).max]
    tp = float32_split_as_float64(t)
    for steps in range(-3, 4):
        x = tp.copy()
        for _ in range(abs(steps)):
            x = np.nextafter(x, np.sign(steps) * np.inf)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(x <= tp, x.astype(np.float32) <= t)
    x = np.concatenate([t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)])
    tt = np.tile(t, 3)
    np.testing.assert_array_equal(x <= np.tile(tp, 3), x.astype(np.float32) <= tt)


# --- predict == scikit-learn ------------------------------------------------------------------


def test_forest_equals_sklearn_on_split_edges_and_nan(rf_nan, data_nan):
    X, _ = data_nan
    ens = compile_forest(rf_nan, prior=PRIOR, smoothing=2.0)
    rows = rows_for(rf_nan, ens, X)
    assert np.isnan(rows).any()
    np.testing.assert_allclose(
        predict(ens, rows), forest_reference(rf_nan, rows, PRIOR, 2.0), rtol=0, atol=TOL
    )


def test_tree_values_are_class_fractions(rf_nan):
    """compile_forest reads tree_.value[:, 0, 1] as the class-1 fraction (sklearn >= 1.4)."""
    value = rf_nan.estimators_[0].tree_.value[:, 0, :]
    np.testing.assert_allclose(value.sum(axis=1), 1.0)


def test_gradient_boosting_equals_decision_function(gb, data):
    X, _ = data
    ens = compile_gradient_boosting(gb)
    rows = rows_for(gb, ens, X)
    np.testing.assert_allclose(predict(ens, rows), gb.decision_function(rows), rtol=0, atol=TOL)


def test_hist_gradient_boosting_equals_decision_function(hgb_nan, data_nan):
    X, _ = data_nan
    ens = compile_hist_gradient_boosting(hgb_nan)
    rows = rows_for(hgb_nan, ens, X)
    # HGB compares float64 values: float32 steps of a threshold must not be snapped to it
    np.testing.assert_allclose(
        predict(ens, rows), hgb_nan.decision_function(rows), rtol=0, atol=TOL
    )


def test_hist_gradient_boosting_with_categorical_splits_is_refused(data):
    X, y = data
    Xc = X.copy()
    Xc[:, 0] = np.abs(np.round(Xc[:, 0])) % 4
    hgb = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(Xc, y)
    with pytest.raises(ValueError, match="categorical"):
        compile_hist_gradient_boosting(hgb)


def test_concat_is_the_scaled_sum_and_mixes_float32_and_float64_splits(rf_nan, hgb_nan, data_nan):
    X, _ = data_nan
    rf = compile_forest(rf_nan, prior=PRIOR)
    hgb = compile_hist_gradient_boosting(hgb_nan)
    both = concat([(rf, 0.4), (hgb, 1.5)])
    rows = np.vstack([rows_for(rf_nan, rf, X), rows_for(hgb_nan, hgb, X)])
    expected = 0.4 * forest_reference(rf_nan, rows, PRIOR, 1.0) + 1.5 * hgb_nan.decision_function(
        rows
    )
    np.testing.assert_allclose(predict(both, rows), expected, rtol=0, atol=TOL)


# --- shap_values == shap ------------------------------------------------------------------


BUDGETS = [DEFAULT_SHAP_TABLE_BUDGET_BYTES, 0, 20_000]  # all tables, direct, a mix


@pytest.mark.parametrize("budget", BUDGETS)
def test_forest_shap_equals_shap(rf_nan, data_nan, budget):
    X, _ = data_nan
    ens = compile_forest(rf_nan, prior=PRIOR, smoothing=2.0, shap_table_budget_bytes=budget)
    rows = rows_for(rf_nan, ens, X)[::3]
    base, phi = shap_values(ens, rows)
    ref_base, ref_phi = forest_shap_reference(rf_nan, rows, PRIOR, 2.0)
    assert abs(base - ref_base) < TOL
    np.testing.assert_allclose(phi, ref_phi, rtol=0, atol=TOL)
    # a few rows at a time take the row kernel (no tables), a batch the block kernel
    one_by_one = np.vstack([shap_values(ens, rows[i : i + 1])[1] for i in range(40)])
    np.testing.assert_allclose(one_by_one, ref_phi[:40], rtol=0, atol=TOL)
    plan = ens.shap_plan
    if budget == 0:
        assert plan.n_table_leaves == 0
    elif budget == 20_000:
        assert 0 < plan.n_table_leaves < plan.n_leaves and plan.table_bytes <= budget
    else:
        assert plan.n_table_leaves == plan.n_leaves


@pytest.mark.parametrize("budget", BUDGETS[:2])
def test_gradient_boosting_shap_equals_shap(gb, data, budget):
    X, _ = data
    ens = compile_gradient_boosting(gb, shap_table_budget_bytes=budget)
    rows = rows_for(gb, ens, X)[::3]
    base, phi = shap_values(ens, rows)
    explainer = shap.TreeExplainer(gb, feature_perturbation="tree_path_dependent")
    ref = explainer.shap_values(rows, check_additivity=False)
    assert abs(base - float(np.ravel(explainer.expected_value)[0])) < TOL
    np.testing.assert_allclose(phi, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("budget", BUDGETS[:2])
def test_hist_gradient_boosting_shap_equals_shap(hgb_nan, data_nan, budget):
    X, _ = data_nan
    ens = compile_hist_gradient_boosting(hgb_nan, shap_table_budget_bytes=budget)
    rows = rows_for(hgb_nan, ens, X)[::3]
    base, phi = shap_values(ens, rows)
    explainer = shap.TreeExplainer(hgb_nan, feature_perturbation="tree_path_dependent")
    ref = explainer.shap_values(rows, check_additivity=False)
    assert abs(base - float(np.ravel(explainer.expected_value)[0])) < TOL
    np.testing.assert_allclose(phi, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(shap_values(ens, rows[:5])[1], ref[:5], rtol=0, atol=TOL)


def single_leaf_tree(value: float, cover: float, n_features: int) -> TreeEnsemble:
    return TreeEnsemble(
        feature=np.array([-1], np.int32),
        threshold=np.zeros(1),
        left=np.array([-1], np.int32),
        right=np.array([-1], np.int32),
        missing_left=np.zeros(1, bool),
        value=np.array([value]),
        cover=np.array([cover]),
        roots=np.array([0], np.int32),
        offset=0.0,
        n_features=n_features,
    )


@pytest.mark.parametrize("budget", BUDGETS[:2])
def test_repeated_features_stumps_and_single_leaf_trees_equal_shap(budget):
    """Deep trees on two features repeat features along paths; depth-1 trees are stumps."""
    X, y = make_data(n=800, n_features=2, seed=3, nan_rate=0.05)
    deep = HistGradientBoostingClassifier(max_iter=6, max_depth=7, min_samples_leaf=5).fit(X, y)
    X0 = np.nan_to_num(X)
    stumps = GradientBoostingClassifier(n_estimators=5, max_depth=1, random_state=0).fit(X0, y)
    repeats = GradientBoostingClassifier(n_estimators=5, max_depth=6, random_state=0).fit(X0, y)
    ens = concat(
        [
            (compile_hist_gradient_boosting(deep), 1.0),
            (compile_gradient_boosting(stumps), 0.5),
            (compile_gradient_boosting(repeats), 0.25),
            (single_leaf_tree(0.7, 10.0, 2), 2.0),
        ],
        shap_table_budget_bytes=budget,
    )
    assert ens.shap_plan.max_path_features == 2 and ens.max_depth == 7  # features repeat
    rows = np.vstack([X[:200], X0[:50]])
    base, phi = shap_values(ens, rows)
    explainer = shap.TreeExplainer(shap_dict(ens), feature_perturbation="tree_path_dependent")
    ref = explainer.shap_values(rows, check_additivity=False)
    np.testing.assert_allclose(phi, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(shap_values(ens, rows[:3])[1], ref[:3], rtol=0, atol=TOL)
    assert abs(base - float(np.ravel(explainer.expected_value)[0])) < TOL
    np.testing.assert_allclose(base + phi.sum(1), predict(ens, rows), rtol=0, atol=TOL)


@pytest.mark.parametrize("budget", BUDGETS)
def test_concatenated_ensemble_is_additive(rf_nan, gb, hgb_nan, data_nan, budget):
    X, _ = data_nan
    parts = [
        (compile_forest(rf_nan, prior=PRIOR), 0.4),
        (compile_gradient_boosting(gb), 0.35),
        (compile_hist_gradient_boosting(hgb_nan), 0.25),
    ]
    ens = concat(parts, shap_table_budget_bytes=budget)
    rows = np.vstack([X, np.nan_to_num(X[:50])])
    rows = rows[~np.isnan(rows).any(axis=1) | (np.arange(len(rows)) % 2 == 0)]
    gb_rows = np.nan_to_num(rows)  # GradientBoosting has no NaN support: compare on finite rows
    base, phi = shap_values(ens, gb_rows)
    np.testing.assert_allclose(base + phi.sum(1), predict(ens, gb_rows), rtol=0, atol=TOL)
    # and the sum of the parts' explanations is the blend's explanation
    parts_phi = sum(s * shap_values(p, gb_rows)[1] for p, s in parts)
    np.testing.assert_allclose(phi, parts_phi, rtol=0, atol=TOL)


# --- threads, saving, remapping -----------------------------------------------------------


def test_threads_give_the_same_result(rf_nan, data_nan):
    X, _ = data_nan
    ens = compile_forest(rf_nan, prior=PRIOR, shap_table_budget_bytes=20_000)
    rows = np.tile(X, (2, 1))
    base, phi = shap_values(ens, rows)
    base2, phi2 = shap_values(ens, rows, n_threads=2)
    np.testing.assert_array_equal(phi, phi2)
    np.testing.assert_array_equal(predict(ens, rows), predict(ens, rows, n_threads=2))


def test_plan_is_built_once_under_concurrent_first_calls(gb, data):
    X, _ = data
    ens = compile_gradient_boosting(gb)
    plans = []
    threads = [threading.Thread(target=lambda: plans.append(ens.shap_plan)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p is plans[0] for p in plans)


def test_arrays_round_trip_and_remap(gb, data):
    X, _ = data
    ens = compile_gradient_boosting(gb)
    arrays, meta = to_arrays(ens)
    back = from_arrays({k: v.copy() for k, v in arrays.items()}, meta)
    np.testing.assert_array_equal(predict(back, X), predict(ens, X))
    columns = np.array([7, 0, 3, 9, 2, 5])
    wide = np.full((len(X), 10), 123.0)
    wide[:, columns] = X
    moved = remap_features(ens, columns, 10)
    np.testing.assert_array_equal(predict(moved, wide), predict(ens, X))
    np.testing.assert_allclose(shap_values(moved, wide)[1][:, columns], shap_values(ens, X)[1])


def test_bad_input_is_refused(gb, data):
    ens = compile_gradient_boosting(gb)
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        predict(ens, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="prior"):
        compile_forest(RandomForestClassifier(), prior=1.0)
    with pytest.raises(ValueError, match="n_threads"):
        predict(ens, np.zeros((2, 6)), n_threads=0)
    assert replace(ens, shap_table_budget_bytes=0).shap_plan.n_table_leaves == 0


@pytest.mark.parametrize("budget", BUDGETS[:2])
def test_paths_with_more_than_eight_features_equal_shap(budget):
    """Past 8 features a leaf needs more than the row kernel's 4 fixed quadrature lanes."""
    X, y = make_data(n=1500, n_features=20, seed=5)
    X[:, 5:] += np.random.default_rng(5).normal(size=(len(X), 15))
    rf = RandomForestClassifier(3, max_depth=18, max_features=None, random_state=0).fit(X, y)
    ens = compile_forest(rf, prior=PRIOR, shap_table_budget_bytes=budget)
    assert ens.shap_plan.max_path_features > 10
    rows = X[:60]
    ref_base, ref = forest_shap_reference(rf, rows, PRIOR, 1.0)
    base, phi = shap_values(ens, rows)
    assert abs(base - ref_base) < TOL
    np.testing.assert_allclose(phi, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(shap_values(ens, rows[:4])[1], ref[:4], rtol=0, atol=TOL)
