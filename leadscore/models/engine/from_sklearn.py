"""Tree ensembles built from fitted scikit-learn models: RandomForest, GradientBoosting, HistGB.

The ``compile_*`` functions turn a fitted binary classifier into a
:class:`~leadscore.models.engine.trees.TreeEnsemble` whose output is the model's raw
output: the mean of smoothed leaf log-odds for a RandomForest, ``decision_function`` for
the two boosting models.

Splits. A :class:`~leadscore.models.engine.trees.TreeEnsemble` compares ``x <= threshold``
in float64. scikit-learn's trees compare ``float32(x) <= t`` instead; their
thresholds are replaced at compile time by the float64 ``t'`` with
``x <= t'  <=>  float32(x) <= t`` for every float64 ``x`` (float32 rounding is monotonic,
so ``t'`` is the upper edge of the rounding interval of the largest float32 ``<= t``).
One comparison then serves both kinds of trees, even mixed in one ensemble.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leadscore.models.engine.trees import (
    DEFAULT_SHAP_TABLE_BUDGET_BYTES,
    TreeArrays,
    TreeEnsemble,
    stack_trees,
)

__all__ = [
    "compile_forest",
    "compile_gradient_boosting",
    "compile_hist_gradient_boosting",
    "float32_split_as_float64",
    "leaf_log_odds",
]

# Leaf probabilities are clipped this far from 0 and 1 before the logit.
_LEAF_EPS = 1e-12
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def leaf_log_odds(
    frac1: np.ndarray, n: np.ndarray, *, prior: float, smoothing: float
) -> np.ndarray:
    """A forest leaf's log-odds: ``logit((frac1 * n + smoothing * prior) / (n + smoothing))``.

    ``frac1`` is the leaf's class-1 fraction over its training weight ``n``; the
    probability is clipped to [1e-12, 1 - 1e-12] before the logit. The one definition of
    the forest member's leaves, for :func:`compile_forest` and the scikit-learn reference
    (:func:`leadscore.models.training.ensemble.forest_log_odds`).

    Examples:
        >>> q = leaf_log_odds(np.array([1.0]), np.array([3.0]), prior=0.5, smoothing=1.0)
        >>> round(float(q[0]), 6)  # logit(3.5 / 4) = log(7)
        1.94591
    """
    q = np.clip((frac1 * n + smoothing * prior) / (n + smoothing), _LEAF_EPS, 1.0 - _LEAF_EPS)
    log_odds: np.ndarray = np.log(q) - np.log1p(-q)
    return log_odds


def compile_forest(
    rf: Any,
    *,
    prior: float,
    smoothing: float = 1.0,
    shap_table_budget_bytes: int = DEFAULT_SHAP_TABLE_BUDGET_BYTES,
) -> TreeEnsemble:
    """A binary RandomForestClassifier as the mean over trees of each leaf's smoothed log-odds.

    A leaf with class-1 fraction ``frac1`` over training weight ``n`` outputs
    ``logit((frac1 * n + smoothing * prior) / (n + smoothing)) / n_trees``.

    Args:
        rf: a fitted binary ``RandomForestClassifier`` (or any forest of sklearn trees
            with ``estimators_`` and ``tree_.value`` of class fractions).
        prior: the base rate the leaves are shrunk towards, in (0, 1).
        smoothing: pseudo-count of the shrinkage, > 0.
        shap_table_budget_bytes: see :class:`TreeEnsemble`.

    Raises:
        ValueError: not binary, or ``prior`` / ``smoothing`` out of range.
    """
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior!r}")
    if not smoothing > 0.0:
        raise ValueError(
            f"smoothing must be > 0 (it keeps leaf log-odds finite), got {smoothing!r}"
        )
    n_classes = len(getattr(rf, "classes_", ()))
    if n_classes != 2 or getattr(rf, "n_outputs_", 1) != 1:
        raise ValueError(
            f"compile_forest needs a binary single-output forest, got {n_classes} classes"
        )
    n_trees = len(rf.estimators_)
    trees = []
    for est in rf.estimators_:
        t = est.tree_
        n = t.weighted_n_node_samples.astype(np.float64)
        frac1 = t.value[:, 0, 1].astype(np.float64)  # sklearn >= 1.4 stores class fractions
        trees.append(
            _from_sklearn_tree(
                t, leaf_log_odds(frac1, n, prior=prior, smoothing=smoothing) / n_trees
            )
        )
    return stack_trees(
        trees, offset=0.0, n_features=int(rf.n_features_in_), budget=shap_table_budget_bytes
    )


def compile_gradient_boosting(
    gb: Any, *, shap_table_budget_bytes: int = DEFAULT_SHAP_TABLE_BUDGET_BYTES
) -> TreeEnsemble:
    """A binary GradientBoostingClassifier; the output equals ``gb.decision_function(X)``.

    Raises:
        ValueError: not binary, or an ``init`` estimator whose prediction depends on ``x``.
    """
    if gb.estimators_.ndim != 2 or gb.estimators_.shape[1] != 1:
        raise ValueError(
            f"compile_gradient_boosting needs a binary model, got estimators_ of shape "
            f"{gb.estimators_.shape}"
        )
    from sklearn.dummy import DummyClassifier

    n_features = int(gb.n_features_in_)
    if isinstance(gb.init_, str) and gb.init_ == "zero":
        offset = 0.0
    elif isinstance(gb.init_, DummyClassifier) and gb.init_.strategy == "prior":
        # the init's raw prediction is the same for every row: read it off a zero row
        offset = float(gb._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0, 0])
    else:
        raise ValueError(
            f"compile_gradient_boosting needs init='zero' or the default prior init, got "
            f"{type(gb.init_).__name__}: its raw prediction varies with x"
        )
    lr = float(gb.learning_rate)
    trees = [_from_sklearn_tree(e.tree_, lr * e.tree_.value[:, 0, 0]) for e in gb.estimators_[:, 0]]
    return stack_trees(trees, offset=offset, n_features=n_features, budget=shap_table_budget_bytes)


def compile_hist_gradient_boosting(
    hgb: Any, *, shap_table_budget_bytes: int = DEFAULT_SHAP_TABLE_BUDGET_BYTES
) -> TreeEnsemble:
    """A binary HistGradientBoostingClassifier on numeric features; equals ``hgb.decision_function(X)``.

    Raises:
        ValueError: more than one tree per iteration (multiclass) or categorical splits.
    """
    if hgb.n_trees_per_iteration_ != 1:
        raise ValueError(
            f"compile_hist_gradient_boosting needs a binary model, got "
            f"{hgb.n_trees_per_iteration_} trees per iteration"
        )
    is_cat = getattr(hgb, "is_categorical_", None)
    if (is_cat is not None and np.any(is_cat)) or getattr(hgb, "_preprocessor", None) is not None:
        raise ValueError(
            "compile_hist_gradient_boosting supports numeric features only; this model has "
            "categorical features (encode them as numbers before training)"
        )
    trees = []
    for (predictor,) in hgb._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("compile_hist_gradient_boosting: a tree has a categorical split")
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(
            (
                np.where(leaf, -1, nodes["feature_idx"]).astype(np.int32),
                np.where(leaf, 0.0, nodes["num_threshold"]).astype(np.float64),
                np.where(leaf, -1, nodes["left"].astype(np.int64)).astype(np.int32),
                np.where(leaf, -1, nodes["right"].astype(np.int64)).astype(np.int32),
                nodes["missing_go_to_left"].astype(bool) & ~leaf,
                np.where(leaf, nodes["value"], 0.0).astype(np.float64),
                nodes["count"].astype(np.float64),
            )
        )
    offset = float(np.asarray(hgb._baseline_prediction).reshape(-1)[0])
    return stack_trees(
        trees, offset=offset, n_features=int(hgb.n_features_in_), budget=shap_table_budget_bytes
    )


def float32_split_as_float64(threshold: np.ndarray) -> np.ndarray:
    """The float64 ``t'`` with ``x <= t'  <=>  float32(x) <= t`` for every float64 ``x``.

    Let ``f`` be the largest float32 ``<= t`` and ``g`` the next float32. ``float32(x)``
    is ``<= f`` exactly up to their midpoint (exact in float64), which itself rounds to
    whichever of ``f``, ``g`` has an even significand (ties to even).

    Examples:
        >>> t = float32_split_as_float64(np.array([0.5]))[0]
        >>> bool(np.float32(t) <= 0.5), bool(np.float32(np.nextafter(t, 1.0)) <= 0.5)
        (True, False)
    """
    t = np.asarray(threshold, dtype=np.float64)
    if np.isnan(t).any():
        raise ValueError("a float32 split threshold is NaN")
    with np.errstate(over="ignore", invalid="ignore"):  # the infinite cases are set below
        f = t.astype(np.float32)
        f = np.where(f.astype(np.float64) > t, np.nextafter(f, np.float32(-np.inf)), f)
        g = np.nextafter(f, np.float32(np.inf))
        f64 = f.astype(np.float64)
        # past float32's max (odd significand), x rounds to inf from max + 2**103 on
        half = np.where(np.isinf(g), 2.0**103, (g.astype(np.float64) - f64) / 2)
        mid = f64 + half
    odd = (f.view(np.uint32) & 1).astype(bool)
    out = np.where(odd, np.nextafter(mid, -np.inf), mid)
    # sklearn splits "all values left, NaN right" at +inf; below -max only -inf is <= t
    out[np.isposinf(t)] = np.inf
    out[t < -_FLOAT32_MAX] = -(2.0**128 - 2.0**103)
    return out


def _from_sklearn_tree(t: Any, leaf_value: np.ndarray) -> TreeArrays:
    """One sklearn ``Tree`` as node arrays (relative indices), float32 splits made float64."""
    leaf = t.children_left < 0
    missing = getattr(t, "missing_go_to_left", None)
    missing_left = np.zeros(t.node_count, dtype=bool) if missing is None else missing.astype(bool)
    threshold = np.zeros(t.node_count)
    threshold[~leaf] = float32_split_as_float64(t.threshold[~leaf])
    return (
        np.where(leaf, -1, t.feature).astype(np.int32),
        threshold,
        t.children_left.astype(np.int32),
        t.children_right.astype(np.int32),
        missing_left & ~leaf,
        np.where(leaf, leaf_value, 0.0).astype(np.float64),
        t.weighted_n_node_samples.astype(np.float64),
    )
