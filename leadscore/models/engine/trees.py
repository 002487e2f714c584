"""Tree ensembles as flat arrays: build from scikit-learn, combine, save, predict, explain.

A :class:`TreeEnsemble` holds many regression trees in one set of node arrays; its output
is ``offset + sum over trees of the reached leaf's value``. The ``compile_*`` functions
build one from a fitted scikit-learn model (RandomForest with smoothed log-odds leaves,
GradientBoosting, HistGradientBoosting), :func:`concat` blends several into one (each
scaled), and :func:`predict` / :func:`shap_values` evaluate it with no scikit-learn call.

Splits. Every node sends ``x`` left when ``x <= threshold`` in float64, NaN to the side
given by ``missing_left``. scikit-learn's trees compare ``float32(x) <= t`` instead; their
thresholds are replaced at compile time by the float64 ``t'`` with
``x <= t'  <=>  float32(x) <= t`` for every float64 ``x`` (float32 rounding is monotonic,
so ``t'`` is the upper edge of the rounding interval of the largest float32 ``<= t``).
One comparison then serves both kinds of trees, even mixed in one ensemble.

SHAP. ``shap_values`` is exact path-dependent TreeSHAP (``shap.TreeExplainer(model,
feature_perturbation="tree_path_dependent")`` on the raw output). How it is computed (leaf
boxes, Fast TreeSHAP v2 tables, quadrature) is in :mod:`leadscore.models.engine.shap_plan`,
and the numba kernels that evaluate the trees are in :mod:`leadscore.models.engine.kernels`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from leadscore.models.engine.kernels import (
    max_depth_kernel,
    predict_kernel,
    shap_block_kernel,
    shap_row_kernel,
)
from leadscore.models.engine.shap_plan import ShapPlan, build_plan

__all__ = [
    "DEFAULT_SHAP_TABLE_BUDGET_BYTES",
    "TreeEnsemble",
    "compile_forest",
    "compile_gradient_boosting",
    "compile_hist_gradient_boosting",
    "concat",
    "from_arrays",
    "leaf_log_odds",
    "predict",
    "prepare_shap",
    "remap_features",
    "shap_values",
    "to_arrays",
    "warmup",
]

#: Memory allowed for the Fast TreeSHAP v2 tables of one ensemble (8 bytes * 2**d per leaf).
DEFAULT_SHAP_TABLE_BUDGET_BYTES = 64 * 2**20
# Leaf probabilities are clipped this far from 0 and 1 before the logit.
_LEAF_EPS = 1e-12
#: Below this many rows per thread, extra threads cost more than they save.
_MIN_ROWS_PER_THREAD = 64
#: SHAP rows per block: each leaf's table is read once per block (256 * 50 * 8 B = 100 KiB of X).
_BLOCK_ROWS = 256
#: Fewer rows than this are explained one at a time, without the tables.
_MIN_BLOCK_ROWS = 8

_NODE_ARRAYS = ("feature", "threshold", "left", "right", "missing_left", "value", "cover", "roots")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --- the ensemble ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Many regression trees flattened into node arrays; output = offset + sum of reached leaf values.

    Attributes:
        feature: int32 (n_nodes,), the split feature; -1 at leaves.
        threshold: float64 (n_nodes,), go left when ``x <= threshold`` (float64 compare).
        left, right: int32 (n_nodes,), absolute node indices of the children; -1 at leaves.
        missing_left: bool (n_nodes,), where NaN goes.
        value: float64 (n_nodes,), leaf outputs (0 at internal nodes).
        cover: float64 (n_nodes,), training weight through the node (path-dependent SHAP).
        roots: int32 (n_trees,), the root node of each tree.
        offset: added to every row's output (boosting init, baseline).
        n_features: columns expected in ``X``.
        shap_table_budget_bytes: memory for Fast TreeSHAP v2 tables; 0 = direct only.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    cover: np.ndarray
    roots: np.ndarray
    offset: float
    n_features: int
    shap_table_budget_bytes: int = DEFAULT_SHAP_TABLE_BUDGET_BYTES
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        n_nodes = self.feature.shape[0]
        for name in _NODE_ARRAYS[:-1]:
            if getattr(self, name).shape != (n_nodes,):
                raise ValueError(
                    f"TreeEnsemble.{name} must have shape ({n_nodes},) like feature, "
                    f"got {getattr(self, name).shape}"
                )
        internal = self.feature >= 0
        if internal.any() and (
            self.feature[internal].max() >= self.n_features
            or (self.left[internal] < 0).any()
            or (self.right[internal] < 0).any()
        ):
            raise ValueError(
                f"TreeEnsemble: an internal node has a feature >= n_features={self.n_features} "
                "or a missing child"
            )

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.feature.shape[0])

    @cached_property
    def max_depth(self) -> int:
        """Edges on the longest root-to-leaf path."""
        return int(max_depth_kernel(self.feature, self.left, self.right, self.roots))

    @property
    def shap_plan(self) -> ShapPlan:
        """The leaf boxes and tables :func:`shap_values` uses, built on first use (thread-safe)."""
        plan = self.__dict__.get("_plan")
        if plan is None:
            with self._lock:
                plan = self.__dict__.get("_plan")
                if plan is None:
                    plan = build_plan(self)
                    self.__dict__["_plan"] = plan
        return plan


def prepare_shap(ens: TreeEnsemble) -> ShapPlan:
    """Build (once) what :func:`shap_values` needs; call it when a model is loaded."""
    return ens.shap_plan


# --- building from scikit-learn ----------------------------------------------------------


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
    return np.log(q) - np.log1p(-q)


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
    return _stack(
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
    return _stack(trees, offset=offset, n_features=n_features, budget=shap_table_budget_bytes)


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
    return _stack(
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


TreeArrays = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]


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


def _stack(
    trees: Sequence[TreeArrays], *, offset: float, n_features: int, budget: int
) -> TreeEnsemble:
    """Concatenate per-tree arrays with relative child indices into one ensemble."""
    sizes = np.array([tr[0].shape[0] for tr in trees], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def shifted(k: int) -> np.ndarray:
        parts = [np.where(tr[k] >= 0, tr[k] + s, -1) for tr, s in zip(trees, starts, strict=True)]
        return np.concatenate(parts).astype(np.int32) if parts else np.empty(0, np.int32)

    def joined(k: int, dtype: Any) -> np.ndarray:
        return (
            np.concatenate([tr[k] for tr in trees]).astype(dtype) if trees else np.empty(0, dtype)
        )

    return TreeEnsemble(
        feature=joined(0, np.int32),
        threshold=joined(1, np.float64),
        left=shifted(2),
        right=shifted(3),
        missing_left=joined(4, bool),
        value=joined(5, np.float64),
        cover=joined(6, np.float64),
        roots=starts.astype(np.int32),
        offset=float(offset),
        n_features=n_features,
        shap_table_budget_bytes=budget,
    )


# --- combining and saving ----------------------------------------------------------------


def concat(
    parts: Sequence[tuple[TreeEnsemble, float]],
    *,
    shap_table_budget_bytes: int = DEFAULT_SHAP_TABLE_BUDGET_BYTES,
) -> TreeEnsemble:
    """One ensemble whose output is ``sum(scale * part output)`` (values and offsets scaled).

    Examples:
        >>> stump = TreeEnsemble(
        ...     feature=np.array([0, -1, -1], np.int32), threshold=np.array([0.5, 0, 0]),
        ...     left=np.array([1, -1, -1], np.int32), right=np.array([2, -1, -1], np.int32),
        ...     missing_left=np.zeros(3, bool), value=np.array([0.0, -1.0, 1.0]),
        ...     cover=np.array([4.0, 3.0, 1.0]), roots=np.array([0], np.int32),
        ...     offset=0.25, n_features=1)
        >>> both = concat([(stump, 1.0), (stump, 0.5)])
        >>> predict(both, np.array([[0.0], [1.0]])).tolist()
        [-1.125, 1.875]
    """
    if not parts:
        raise ValueError("concat needs at least one (ensemble, scale) pair")
    n_features = {ens.n_features for ens, _ in parts}
    if len(n_features) != 1:
        raise ValueError(
            f"concat: the parts expect different numbers of features {sorted(n_features)}"
        )
    trees: list[TreeArrays] = []
    for ens, scale in parts:
        base = ens.roots.astype(np.int64)
        ends = np.append(base[1:], ens.n_nodes)
        for r, e in zip(base, ends, strict=True):
            sl = slice(int(r), int(e))
            trees.append(
                (
                    ens.feature[sl],
                    ens.threshold[sl],
                    np.where(ens.left[sl] >= 0, ens.left[sl] - r, -1),
                    np.where(ens.right[sl] >= 0, ens.right[sl] - r, -1),
                    ens.missing_left[sl],
                    ens.value[sl] * float(scale),
                    ens.cover[sl],
                )
            )
    offset = sum(float(scale) * ens.offset for ens, scale in parts)
    return _stack(trees, offset=offset, n_features=n_features.pop(), budget=shap_table_budget_bytes)


def remap_features(ens: TreeEnsemble, columns: np.ndarray, n_features: int) -> TreeEnsemble:
    """The same trees reading column ``columns[k]`` of a wider ``X`` where they read ``k``.

    For a model trained on a subset of the columns; ``n_features`` is the new width.
    """
    columns = np.asarray(columns, dtype=np.int64)
    if columns.shape != (ens.n_features,) or (columns < 0).any() or (columns >= n_features).any():
        raise ValueError(
            f"remap_features: columns must be {ens.n_features} indices in [0, {n_features}), "
            f"got shape {columns.shape}"
        )
    internal = ens.feature >= 0
    feature = ens.feature.copy()
    feature[internal] = columns[ens.feature[internal]]
    return TreeEnsemble(
        **{k: getattr(ens, k) for k in _NODE_ARRAYS if k != "feature"},
        feature=feature,
        offset=ens.offset,
        n_features=int(n_features),
        shap_table_budget_bytes=ens.shap_table_budget_bytes,
    )


def to_arrays(ens: TreeEnsemble) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(node arrays, JSON-ready scalars)``, the inverse of :func:`from_arrays`."""
    meta = {
        "offset": ens.offset,
        "n_features": ens.n_features,
        "shap_table_budget_bytes": ens.shap_table_budget_bytes,
    }
    return {k: getattr(ens, k) for k in _NODE_ARRAYS}, meta


def from_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> TreeEnsemble:
    """Rebuild an ensemble written by :func:`to_arrays` (checks names, dtypes and shapes)."""
    missing = [k for k in _NODE_ARRAYS if k not in arrays]
    if missing:
        raise ValueError(f"tree arrays lack {missing}; got {sorted(arrays)}")
    dtypes = {
        "feature": np.int32,
        "left": np.int32,
        "right": np.int32,
        "roots": np.int32,
        "missing_left": bool,
    }
    return TreeEnsemble(
        **{
            k: np.ascontiguousarray(arrays[k], dtype=dtypes.get(k, np.float64))
            for k in _NODE_ARRAYS
        },
        offset=float(meta["offset"]),
        n_features=int(meta["n_features"]),
        shap_table_budget_bytes=int(
            meta.get("shap_table_budget_bytes", DEFAULT_SHAP_TABLE_BUDGET_BYTES)
        ),
    )


# --- evaluating --------------------------------------------------------------------------


def _check_X(ens: TreeEnsemble, X: Any) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != ens.n_features:
        raise ValueError(f"expected X of shape (n, {ens.n_features}), got shape {X.shape}")
    return X


def _run_rows(kernel: Callable[[int, int], None], n_rows: int, n_threads: int) -> None:
    """Run ``kernel(row0, row1)`` over contiguous row ranges on ``n_threads`` threads."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads!r}")
    n_threads = max(1, min(n_threads, n_rows // _MIN_ROWS_PER_THREAD))
    if n_threads == 1:
        kernel(0, n_rows)
        return
    bounds = np.linspace(0, n_rows, n_threads + 1).astype(np.int64)
    with ThreadPoolExecutor(n_threads) as pool:  # the kernels release the GIL
        futures = [
            pool.submit(kernel, int(a), int(b))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for fut in futures:
            fut.result()


def predict(ens: TreeEnsemble, X: Any, *, n_threads: int = 1) -> np.ndarray:
    """Ensemble output per row, float64 (n,).

    Args:
        ens: the ensemble.
        X: float matrix (n, n_features); NaN follows ``missing_left``.
        n_threads: threads to split the rows over (worth it from a few thousand rows).
    """
    X = _check_X(ens, X)
    out = np.empty(X.shape[0])

    def run(r0: int, r1: int) -> None:
        predict_kernel(
            X,
            r0,
            r1,
            ens.feature,
            ens.threshold,
            ens.left,
            ens.right,
            ens.missing_left,
            ens.value,
            ens.roots,
            ens.offset,
            out,
        )

    _run_rows(run, X.shape[0], n_threads)
    return out


def shap_values(ens: TreeEnsemble, X: Any, *, n_threads: int = 1) -> tuple[float, np.ndarray]:
    """Exact path-dependent TreeSHAP of the ensemble's raw output.

    Args:
        ens: the ensemble (its :class:`~leadscore.models.engine.shap_plan.ShapPlan` is built on
            the first call).
        X: float matrix (n, n_features).
        n_threads: threads to split the rows over.

    Returns:
        ``(expected_value, phi)`` with ``phi`` float64 (n, n_features) and
        ``expected_value + phi.sum(1) == predict(ens, X)`` up to rounding.
    """
    X = _check_X(ens, X)
    plan = ens.shap_plan
    phi = np.zeros(X.shape)

    def run(r0: int, r1: int) -> None:
        if r1 - r0 < _MIN_BLOCK_ROWS:
            shap_row_kernel(
                X,
                r0,
                r1,
                plan.leaf_value,
                plan.leaf_start,
                plan.ent_feature,
                plan.ent_lo,
                plan.ent_hi,
                plan.ent_nan_ok,
                plan.ent_z,
                plan.gl_t,
                plan.gl_w,
                phi,
            )
        else:
            shap_block_kernel(
                X,
                r0,
                r1,
                _BLOCK_ROWS,
                plan.n_table_leaves,
                plan.leaf_value,
                plan.leaf_start,
                plan.ent_feature,
                plan.ent_lo,
                plan.ent_hi,
                plan.ent_nan_ok,
                plan.ent_z,
                plan.ent_coef,
                plan.table_start,
                plan.tables,
                plan.gl_t,
                plan.gl_w,
                phi,
            )

    _run_rows(run, X.shape[0], n_threads)
    return plan.expected_value, phi


def warmup() -> None:
    """Compile (or load from numba's cache) every kernel, on a two-tree ensemble."""
    stump = TreeEnsemble(
        feature=np.array([0, 1, -1, -1, -1], np.int32),
        threshold=np.array([0.5, 0.5, 0.0, 0.0, 0.0]),
        left=np.array([1, 2, -1, -1, -1], np.int32),
        right=np.array([4, 3, -1, -1, -1], np.int32),
        missing_left=np.zeros(5, bool),
        value=np.array([0.0, 0.0, -1.0, 0.5, 1.0]),
        cover=np.array([4.0, 3.0, 2.0, 1.0, 1.0]),
        roots=np.array([0], np.int32),
        offset=0.0,
        n_features=2,
    )
    # 2 rows take the one-row kernels, 16 the block kernel (8 rows or more): warm both.
    two = np.array([[0.0, 1.0], [1.0, np.nan]])
    for budget, X in itertools.product(
        (DEFAULT_SHAP_TABLE_BUDGET_BYTES, 0), (two, np.tile(two, (8, 1)))
    ):
        ens = concat([(stump, 1.0)], shap_table_budget_bytes=budget)
        predict(ens, X)
        shap_values(ens, X)
