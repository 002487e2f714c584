"""Tree ensembles as flat arrays: numba kernels for scores and exact path-dependent TreeSHAP.

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
feature_perturbation="tree_path_dependent")`` on the raw output). Each leaf is seen as a
box: for each distinct feature ``j`` on its path, an interval ``lo < x_j <= hi`` plus a
NaN flag (the row "agrees" with the path on ``j``), and ``z_j``, the product of the cover
ratios of the splits on ``j``. With ``A`` the set of path features the row agrees with,
``d`` the number of path features, ``w(s) = s! (d - s - 1)! / d!`` and

    K(A) = v * sum over S subset of A of  w(|S|) * prod over j not in S of z_j,

the leaf adds ``-K(A)`` to each path feature outside ``A`` and ``(1 - z_i) / z_i *
K(A - {i})`` to each ``i`` in ``A``. Fast TreeSHAP v2 (Yang 2021, arXiv 2109.09847)
stores ``K`` for all ``2**d`` patterns of a leaf, so a row costs O(d) per leaf; leaves
whose tables do not fit the budget (``shap_table_budget_bytes``, 8 bytes per pattern,
smallest tables first; a leaf with a zero-cover child never gets one) are evaluated
directly. Direct evaluation uses ``w(s) = integral over [0, 1] of t**s (1 - t)**(d-1-s)``:
a leaf's term for feature ``i`` is ``v (o_i - z_i)`` times the integral of
``prod_{j != i} (t o_j + (1 - t) z_j)``, a polynomial of degree ``d - 1``, which
Gauss-Legendre quadrature with ``ceil(d / 2)`` nodes integrates exactly: O(d**2 / 2)
per leaf, branch-free, no memory beyond the path. Both agree with shap to ~1e-15.

Kernels. Batches go through :func:`_shap_block_kernel`: rows in blocks of 256, transposed,
so every inner loop runs over the block's rows without branches (SIMD) and each table is
read once per block. One to seven rows go through :func:`_shap_row_kernel` (quadrature
for every leaf: a few random reads per table cost more than computing). Measured in
``benchmarks/engine_speed.py``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numba
import numpy as np

__all__ = [
    "DEFAULT_SHAP_TABLE_BUDGET_BYTES",
    "ShapPlan",
    "TreeEnsemble",
    "compile_forest",
    "compile_gradient_boosting",
    "compile_hist_gradient_boosting",
    "concat",
    "from_arrays",
    "predict",
    "prepare_shap",
    "remap_features",
    "shap_values",
    "to_arrays",
    "warmup",
]

#: Memory allowed for the Fast TreeSHAP v2 tables of one ensemble (8 bytes * 2**d per leaf).
DEFAULT_SHAP_TABLE_BUDGET_BYTES = 64 * 2**20
#: Leaves with more distinct path features than this never get a table (2**16 * 8 B = 512 KiB).
MAX_TABLE_PATH_FEATURES = 16
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
        return int(_max_depth(self.feature, self.left, self.right, self.roots))

    @property
    def shap_plan(self) -> ShapPlan:
        """The leaf boxes and tables :func:`shap_values` uses, built on first use (thread-safe)."""
        plan = self.__dict__.get("_plan")
        if plan is None:
            with self._lock:
                plan = self.__dict__.get("_plan")
                if plan is None:
                    plan = _build_plan(self)
                    self.__dict__["_plan"] = plan
        return plan


@dataclass(frozen=True, eq=False)
class ShapPlan:
    """Every leaf of an ensemble as a box over its path features, ready for TreeSHAP.

    Leaves ``[0, n_table_leaves)`` have a Fast TreeSHAP v2 table, the rest are evaluated
    directly. Entry ``e`` of leaf ``l`` (``leaf_start[l] <= e < leaf_start[l + 1]``) is one
    distinct path feature: the row agrees when ``lo[e] < x <= hi[e]`` (``lo`` NaN = no
    lower bound) or ``x`` is NaN and ``nan_ok[e]``.

    Attributes:
        expected_value: offset + sum over leaves of value * product of cover ratios.
        n_leaves: leaves with at least one split above them.
        n_table_leaves: leaves evaluated with a table.
        table_bytes: memory of the tables.
        max_path_features: the largest number of distinct features on one path.
    """

    expected_value: float
    n_leaves: int
    n_table_leaves: int
    table_bytes: int
    max_path_features: int
    leaf_value: np.ndarray = field(repr=False)
    leaf_start: np.ndarray = field(repr=False)
    ent_feature: np.ndarray = field(repr=False)
    ent_lo: np.ndarray = field(repr=False)
    ent_hi: np.ndarray = field(repr=False)
    ent_nan_ok: np.ndarray = field(repr=False)
    ent_z: np.ndarray = field(repr=False)
    ent_coef: np.ndarray = field(repr=False)
    table_start: np.ndarray = field(repr=False)
    tables: np.ndarray = field(repr=False)
    gl_t: np.ndarray = field(repr=False)
    gl_w: np.ndarray = field(repr=False)


def prepare_shap(ens: TreeEnsemble) -> ShapPlan:
    """Build (once) what :func:`shap_values` needs; call it when a model is loaded."""
    return ens.shap_plan


# --- building from scikit-learn ----------------------------------------------------------


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
        raise ValueError(f"smoothing must be > 0 (it keeps leaf log-odds finite), got {smoothing!r}")
    n_classes = len(getattr(rf, "classes_", ()))
    if n_classes != 2 or getattr(rf, "n_outputs_", 1) != 1:
        raise ValueError(f"compile_forest needs a binary single-output forest, got {n_classes} classes")
    n_trees = len(rf.estimators_)
    trees = []
    for est in rf.estimators_:
        t = est.tree_
        n = t.weighted_n_node_samples.astype(np.float64)
        frac1 = t.value[:, 0, 1].astype(np.float64)  # sklearn >= 1.4 stores class fractions
        q = (frac1 * n + smoothing * prior) / (n + smoothing)
        trees.append(_from_sklearn_tree(t, np.log(q / (1.0 - q)) / n_trees))
    return _stack(trees, offset=0.0, n_features=int(rf.n_features_in_), budget=shap_table_budget_bytes)


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
    return _stack(trees, offset=offset, n_features=int(hgb.n_features_in_), budget=shap_table_budget_bytes)


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


TreeArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


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


def _stack(trees: Sequence[TreeArrays], *, offset: float, n_features: int, budget: int) -> TreeEnsemble:
    """Concatenate per-tree arrays with relative child indices into one ensemble."""
    sizes = np.array([tr[0].shape[0] for tr in trees], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def shifted(k: int) -> np.ndarray:
        parts = [np.where(tr[k] >= 0, tr[k] + s, -1) for tr, s in zip(trees, starts, strict=True)]
        return np.concatenate(parts).astype(np.int32) if parts else np.empty(0, np.int32)

    def joined(k: int, dtype: Any) -> np.ndarray:
        return np.concatenate([tr[k] for tr in trees]).astype(dtype) if trees else np.empty(0, dtype)

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
        raise ValueError(f"concat: the parts expect different numbers of features {sorted(n_features)}")
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
    dtypes = {"feature": np.int32, "left": np.int32, "right": np.int32, "roots": np.int32,
              "missing_left": bool}
    return TreeEnsemble(
        **{k: np.ascontiguousarray(arrays[k], dtype=dtypes.get(k, np.float64)) for k in _NODE_ARRAYS},
        offset=float(meta["offset"]),
        n_features=int(meta["n_features"]),
        shap_table_budget_bytes=int(meta.get("shap_table_budget_bytes", DEFAULT_SHAP_TABLE_BUDGET_BYTES)),
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
        futures = [pool.submit(kernel, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
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
        _predict_kernel(X, r0, r1, ens.feature, ens.threshold, ens.left, ens.right,
                        ens.missing_left, ens.value, ens.roots, ens.offset, out)

    _run_rows(run, X.shape[0], n_threads)
    return out


def shap_values(ens: TreeEnsemble, X: Any, *, n_threads: int = 1) -> tuple[float, np.ndarray]:
    """Exact path-dependent TreeSHAP of the ensemble's raw output.

    Args:
        ens: the ensemble (its :class:`ShapPlan` is built on the first call).
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
            _shap_row_kernel(X, r0, r1, plan.leaf_value, plan.leaf_start, plan.ent_feature,
                             plan.ent_lo, plan.ent_hi, plan.ent_nan_ok, plan.ent_z, plan.gl_t,
                             plan.gl_w, phi)
        else:
            _shap_block_kernel(X, r0, r1, _BLOCK_ROWS, plan.n_table_leaves, plan.leaf_value,
                               plan.leaf_start, plan.ent_feature, plan.ent_lo, plan.ent_hi,
                               plan.ent_nan_ok, plan.ent_z, plan.ent_coef, plan.table_start,
                               plan.tables, plan.gl_t, plan.gl_w, phi)

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
    X = np.array([[0.0, 1.0], [1.0, np.nan]])
    for budget in (DEFAULT_SHAP_TABLE_BUDGET_BYTES, 0):
        ens = concat([(stump, 1.0)], shap_table_budget_bytes=budget)
        predict(ens, X)
        shap_values(ens, X)


# --- building the SHAP plan --------------------------------------------------------------


def _shapley_weights(max_d: int) -> np.ndarray:
    """``W[d, s] = s! (d - s - 1)! / d!`` for ``0 <= s < d <= max_d`` (float64)."""
    W = np.zeros((max_d + 1, max_d + 1))
    for d in range(1, max_d + 1):
        for s in range(d):
            W[d, s] = 1.0 / (d * math.comb(d - 1, s))
    return W


def _gauss_legendre(max_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ``n``: the ``n`` Gauss-Legendre nodes and weights on [0, 1], zero-padded."""
    t = np.full((max_nodes + 1, max_nodes), 0.5)
    w = np.zeros((max_nodes + 1, max_nodes))
    for n in range(1, max_nodes + 1):
        x, wx = np.polynomial.legendre.leggauss(n)
        t[n, :n] = (x + 1.0) / 2.0
        w[n, :n] = wx / 2.0
    return t, w


def _build_plan(ens: TreeEnsemble) -> ShapPlan:
    internal = ens.feature >= 0
    if internal.any() and not (ens.cover[internal] > 0).all():
        raise ValueError("path-dependent SHAP needs a positive cover at every internal node")
    max_depth = ens.max_depth
    args = (ens.feature, ens.threshold, ens.left, ens.right, ens.missing_left, ens.cover,
            ens.value, ens.roots, max_depth)
    n_leaves, n_entries, expected = _collect_paths(*args, False, *_empty_plan_arrays(0, 0))
    arrays = _empty_plan_arrays(n_leaves, n_entries)
    _collect_paths(*args, True, *arrays)
    leaf_value, leaf_start, ent_feature, ent_lo, ent_hi, ent_nan_ok, ent_z = arrays
    d = np.diff(leaf_start)
    max_d = int(d.max()) if n_leaves else 0

    # Tables for the leaves with the fewest path features first, while the budget lasts.
    has_zero = np.zeros(n_leaves, dtype=bool)
    np.logical_or.at(has_zero, np.repeat(np.arange(n_leaves), d), ent_z == 0.0)
    eligible = (d <= MAX_TABLE_PATH_FEATURES) & ~has_zero
    cost = 8 * (np.int64(1) << np.minimum(d, 62))
    order = np.argsort(np.where(eligible, d, 10**6), kind="stable")
    within = np.cumsum(cost[order]) <= ens.shap_table_budget_bytes
    table = np.zeros(n_leaves, dtype=bool)
    table[order[within & eligible[order]]] = True
    # keep tree order inside each group (cache locality), table leaves first
    leaf_order = np.concatenate([np.flatnonzero(table), np.flatnonzero(~table)])
    ent_index = np.concatenate(
        [np.arange(leaf_start[i], leaf_start[i + 1]) for i in leaf_order] or [np.empty(0, np.int64)]
    ).astype(np.int64)
    leaf_start = np.concatenate([[0], np.cumsum(d[leaf_order])]).astype(np.int64)
    leaf_value = leaf_value[leaf_order]
    ent_feature, ent_lo, ent_hi = ent_feature[ent_index], ent_lo[ent_index], ent_hi[ent_index]
    ent_nan_ok, ent_z = ent_nan_ok[ent_index], ent_z[ent_index]

    n_table = int(table.sum())
    table_start = np.concatenate([[0], np.cumsum(cost[leaf_order[:n_table]] // 8)]).astype(np.int64)
    tables = np.empty(int(table_start[-1]))
    ent_coef = np.zeros(ent_z.shape[0])
    _fill_tables(n_table, leaf_value, leaf_start, ent_z, table_start, _shapley_weights(max(max_d, 1)),
                 tables, ent_coef)
    gl_t, gl_w = _gauss_legendre(max(4, (max_d + 1) // 2))
    return ShapPlan(
        expected_value=float(ens.offset + expected),
        n_leaves=int(n_leaves),
        n_table_leaves=n_table,
        table_bytes=int(tables.nbytes),
        max_path_features=max_d,
        leaf_value=leaf_value,
        leaf_start=leaf_start,
        ent_feature=ent_feature,
        ent_lo=ent_lo,
        ent_hi=ent_hi,
        ent_nan_ok=ent_nan_ok,
        ent_z=ent_z,
        ent_coef=ent_coef,
        table_start=table_start,
        tables=tables,
        gl_t=gl_t,
        gl_w=gl_w,
    )


def _empty_plan_arrays(n_leaves: int, n_entries: int) -> tuple[np.ndarray, ...]:
    return (
        np.zeros(n_leaves),  # leaf_value
        np.zeros(n_leaves + 1, np.int64),  # leaf_start
        np.zeros(n_entries, np.int32),  # ent_feature
        np.zeros(n_entries),  # ent_lo
        np.zeros(n_entries),  # ent_hi
        np.zeros(n_entries, np.bool_),  # ent_nan_ok
        np.zeros(n_entries),  # ent_z
    )


# --- numba kernels -----------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _max_depth(feature, left, right, roots):  # type: ignore[no-untyped-def]
    depth = np.zeros(feature.shape[0], np.int64)
    best = 0
    for t in range(roots.shape[0]):
        stack = [roots[t]]
        depth[roots[t]] = 0
        while len(stack) > 0:
            n = stack.pop()
            if feature[n] < 0:
                best = max(best, depth[n])
            else:
                depth[left[n]] = depth[n] + 1
                depth[right[n]] = depth[n] + 1
                stack.append(left[n])
                stack.append(right[n])
    return best


@numba.njit(cache=True, nogil=True)
def _collect_paths(feature, threshold, left, right, missing_left, cover, value, roots, max_depth,  # type: ignore[no-untyped-def]
                   fill, leaf_value, leaf_start, ent_feature, ent_lo, ent_hi, ent_nan_ok, ent_z):
    """Each leaf's distinct path features as boxes; only counts unless ``fill``.

    Returns (leaves below at least one split, entries, sum over all leaves of value * path
    probability), the probability being the product of the cover ratios on the path.
    """
    path = np.empty(max_depth + 1, np.int64)
    stack = np.empty(max_depth + 2, np.int64)
    stack_depth = np.empty(max_depth + 2, np.int64)
    f_loc = np.empty(max_depth + 1, np.int64)  # this leaf's distinct features, path order
    lo_loc = np.empty(max_depth + 1)
    hi_loc = np.empty(max_depth + 1)
    nan_loc = np.empty(max_depth + 1, np.bool_)
    z_loc = np.empty(max_depth + 1)
    n_leaves = 0
    n_entries = 0
    expected = 0.0
    for t in range(roots.shape[0]):
        stack[0] = roots[t]
        stack_depth[0] = 0
        top = 1
        while top > 0:
            top -= 1
            node = stack[top]
            dd = stack_depth[top]
            path[dd] = node  # preorder: path[:dd] still holds this node's ancestors
            if feature[node] >= 0:
                stack[top] = right[node]
                stack_depth[top] = dd + 1
                stack[top + 1] = left[node]
                stack_depth[top + 1] = dd + 1
                top += 2
                continue
            # a leaf at depth dd: merge its path's splits by feature
            d = 0
            prob = 1.0
            for k in range(dd):
                p = path[k]
                c = path[k + 1]
                ratio = cover[c] / cover[p]
                prob *= ratio
                slot = 0
                while slot < d and f_loc[slot] != feature[p]:
                    slot += 1
                if slot == d:
                    d += 1
                    f_loc[slot] = feature[p]
                    lo_loc[slot] = np.nan
                    hi_loc[slot] = np.inf
                    nan_loc[slot] = True
                    z_loc[slot] = 1.0
                thr = threshold[p]
                if c == left[p]:
                    if thr < hi_loc[slot]:
                        hi_loc[slot] = thr
                    nan_loc[slot] = nan_loc[slot] and missing_left[p]
                else:
                    if not (thr <= lo_loc[slot]):  # NaN lo: no lower bound yet
                        lo_loc[slot] = thr
                    nan_loc[slot] = nan_loc[slot] and not missing_left[p]
                z_loc[slot] *= ratio
            expected += value[node] * prob
            if d == 0:
                continue  # a single-leaf tree: only the expected value
            if fill:
                for j in range(d):
                    e = n_entries + j
                    ent_feature[e] = f_loc[j]
                    ent_lo[e] = lo_loc[j]
                    ent_hi[e] = hi_loc[j]
                    ent_nan_ok[e] = nan_loc[j]
                    ent_z[e] = z_loc[j]
                leaf_value[n_leaves] = value[node]
                leaf_start[n_leaves + 1] = n_entries + d
            n_entries += d
            n_leaves += 1
    return n_leaves, n_entries, expected


@numba.njit(cache=True, nogil=True)
def _fill_tables(n_table, leaf_value, leaf_start, ent_z, table_start, weights, tables, ent_coef):  # type: ignore[no-untyped-def]
    """Fast TreeSHAP v2 tables: ``tables[table_start[l] + A] = K_l(A)`` for every pattern ``A``.

    ``K(A) = v * prod_{j not in A} z_j * sum_m W[d, |A| - m] * e_m(z_A)`` with ``e_m`` the
    elementary symmetric polynomials of the agreed ``z``, built over the patterns by adding
    one feature (the lowest bit) at a time: O(2**d * d) per leaf. ``K(all)`` is never read.
    """
    max_d = weights.shape[0] - 1
    E = np.zeros((1 << min(max_d, 16), max_d + 2))
    zprod = np.empty(1 << min(max_d, 16))  # product of z over the pattern's features
    count = np.empty(1 << min(max_d, 16), np.int64)
    for leaf in range(n_table):
        s = leaf_start[leaf]
        d = leaf_start[leaf + 1] - s
        size = 1 << d
        full = size - 1
        E[0, 0] = 1.0
        zprod[0] = 1.0
        count[0] = 0
        for A in range(1, size):
            low = A & -A
            j = 0
            while (low >> j) != 1:
                j += 1
            B = A ^ low
            z = ent_z[s + j]
            k = count[B]
            count[A] = k + 1
            zprod[A] = zprod[B] * z
            E[A, 0] = 1.0
            for m in range(1, k + 1):
                E[A, m] = E[B, m] + z * E[B, m - 1]
            E[A, k + 1] = z * E[B, k]
        v = leaf_value[leaf]
        t0 = table_start[leaf]
        for A in range(size):
            a = count[A]
            total = 0.0
            for m in range(a + 1):
                if a - m < d:
                    total += weights[d, a - m] * E[A, m]
            tables[t0 + A] = v * zprod[full ^ A] * total
        for j in range(d):
            z = ent_z[s + j]
            ent_coef[s + j] = (1.0 - z) / z


@numba.njit(cache=True, nogil=True)
def _predict_kernel(X, r0, r1, feature, threshold, left, right, missing_left, value, roots, offset, out):  # type: ignore[no-untyped-def]
    """Outputs of rows ``[r0, r1)``: trees outer, rows of a block inner (a tree stays in cache)."""
    block = 256
    for b0 in range(r0, r1, block):
        b1 = min(b0 + block, r1)
        out[b0:b1] = offset
        for t in range(roots.shape[0]):
            for r in range(b0, b1):
                n = roots[t]
                while feature[n] >= 0:
                    x = X[r, feature[n]]
                    if x <= threshold[n]:
                        n = left[n]
                    elif x != x:
                        n = left[n] if missing_left[n] else right[n]
                    else:
                        n = right[n]
                out[r] += value[n]


@numba.njit(cache=True, nogil=True)
def _agreement(xt, nb, s, d, ent_feature, ent_lo, ent_hi, ent_nan_ok, pattern):  # type: ignore[no-untyped-def]
    """Bit j of ``pattern[r]`` = row r agrees with the leaf's path on its feature j."""
    pattern[:nb] = 0
    for j in range(d):
        xs = xt[ent_feature[s + j]]
        lo = ent_lo[s + j]
        hi = ent_hi[s + j]
        nan_ok = ent_nan_ok[s + j]
        bit = np.int64(1) << j
        for r in range(nb):  # branch-free: vectorizes over the block's rows
            xv = xs[r]
            ok = ((xv <= hi) & ~(xv <= lo)) | ((xv != xv) & nan_ok)  # NaN lo = no bound
            pattern[r] |= ok * bit


@numba.njit(cache=True, nogil=True)
def _shap_block_kernel(X, r0, r1, block, n_table, leaf_value, leaf_start, ent_feature, ent_lo,  # type: ignore[no-untyped-def]
                       ent_hi, ent_nan_ok, ent_z, ent_coef, table_start, tables, gl_t, gl_w, phi):
    """Path-dependent TreeSHAP of rows ``[r0, r1)``, added into ``phi``; for batches.

    Rows go in blocks of ``block``, transposed (feature-major) so the loops over a block's
    rows are branch-free and vectorize, and each leaf's table is read once per block.
    Table leaves: ``phi_j += (1 - z_j) / z_j * K(A - {j})`` or ``-K(A)``. Direct leaves:
    Gauss-Legendre quadrature of ``v (o_j - z_j) * integral over t in [0, 1] of
    prod_{i != j} (t o_i + (1 - t) z_i)``, exact with ceil(d / 2) nodes (the integrand has
    degree d - 1); the products leaving out ``j`` come from prefix and suffix products.
    """
    n_features = X.shape[1]
    n_leaves = leaf_value.shape[0]
    max_d = 2 * gl_t.shape[1]
    xt = np.empty((n_features, block))
    pt = np.empty((n_features, block))
    pattern = np.empty(block, np.int64)
    suf = np.empty((max_d + 1, block))
    pre = np.empty(block)
    for b0 in range(r0, r1, block):
        nb = min(block, r1 - b0)
        for r in range(nb):
            for f in range(n_features):
                xt[f, r] = X[b0 + r, f]
        pt[:, :nb] = 0.0
        for leaf in range(n_table):
            s = leaf_start[leaf]
            d = leaf_start[leaf + 1] - s
            _agreement(xt, nb, s, d, ent_feature, ent_lo, ent_hi, ent_nan_ok, pattern)
            t0 = table_start[leaf]
            for j in range(d):
                ps = pt[ent_feature[s + j]]
                c = ent_coef[s + j]
                bit = np.int64(1) << j
                for r in range(nb):
                    a = pattern[r]
                    k = tables[t0 + (a & ~bit)]  # K(A - {j}) when j in A, else K(A)
                    ps[r] += c * k if a & bit else -k
        for leaf in range(n_table, n_leaves):
            s = leaf_start[leaf]
            d = leaf_start[leaf + 1] - s
            _agreement(xt, nb, s, d, ent_feature, ent_lo, ent_hi, ent_nan_ok, pattern)
            nq = (d + 1) // 2
            for k in range(nq):
                t = gl_t[nq, k]
                u = 1.0 - t
                suf[d, :nb] = 1.0
                for j in range(d - 1, -1, -1):
                    f0 = u * ent_z[s + j]  # the factor of feature j: t o_j + (1 - t) z_j
                    f1 = t + f0
                    bit = np.int64(1) << j
                    for r in range(nb):
                        suf[j, r] = suf[j + 1, r] * (f1 if pattern[r] & bit else f0)
                pre[:nb] = gl_w[nq, k] * leaf_value[leaf]
                for j in range(d):
                    z = ent_z[s + j]
                    f0 = u * z
                    f1 = t + f0
                    c1 = 1.0 - z
                    bit = np.int64(1) << j
                    ps = pt[ent_feature[s + j]]
                    sj = suf[j + 1]
                    for r in range(nb):
                        o = pattern[r] & bit
                        ps[r] += (c1 if o else -z) * pre[r] * sj[r]
                        pre[r] *= f1 if o else f0
        for r in range(nb):
            for f in range(n_features):
                phi[b0 + r, f] += pt[f, r]


@numba.njit(cache=True, nogil=True)
def _shap_row_kernel(X, r0, r1, leaf_value, leaf_start, ent_feature, ent_lo, ent_hi,  # type: ignore[no-untyped-def]
                     ent_nan_ok, ent_z, gl_t, gl_w, phi):
    """Path-dependent TreeSHAP of rows ``[r0, r1)`` one at a time, every leaf by quadrature.

    For one or a few rows: the tables would be read a few entries per leaf (cache misses),
    so all leaves use the quadrature of :func:`_shap_block_kernel`, its nodes in lanes.
    """
    n_leaves = leaf_value.shape[0]
    lanes = gl_t.shape[1]  # >= 4: short leaves run 4 lanes, padded with zero weights
    max_d = 2 * lanes
    o = np.zeros(max_d, np.bool_)
    suf = np.empty((max_d + 1, lanes))
    fac = np.empty((max_d, 4))
    pre = np.empty(lanes)
    tk = np.empty(lanes)
    uk = np.empty(lanes)
    for r in range(r0, r1):
        x = X[r]
        out = phi[r]
        for leaf in range(n_leaves):
            s = leaf_start[leaf]
            d = leaf_start[leaf + 1] - s
            for j in range(d):
                xv = x[ent_feature[s + j]]
                o[j] = ((xv <= ent_hi[s + j]) & ~(xv <= ent_lo[s + j])) | ((xv != xv) & ent_nan_ok[s + j])
            nq = (d + 1) // 2
            v = leaf_value[leaf]
            if nq <= 4:  # up to 8 path features: four lanes in registers (zero-weight padding)
                t0, t1, t2, t3 = gl_t[nq, 0], gl_t[nq, 1], gl_t[nq, 2], gl_t[nq, 3]
                for j in range(d):
                    z = ent_z[s + j]
                    a = (1.0 if o[j] else 0.0) - z
                    fac[j, 0] = z + t0 * a  # t o_j + (1 - t) z_j
                    fac[j, 1] = z + t1 * a
                    fac[j, 2] = z + t2 * a
                    fac[j, 3] = z + t3 * a
                s0 = s1 = s2 = s3 = 1.0
                for j in range(d - 1, -1, -1):
                    suf[j, 0], suf[j, 1], suf[j, 2], suf[j, 3] = s0, s1, s2, s3
                    s0 *= fac[j, 0]
                    s1 *= fac[j, 1]
                    s2 *= fac[j, 2]
                    s3 *= fac[j, 3]
                p0, p1, p2, p3 = gl_w[nq, 0] * v, gl_w[nq, 1] * v, gl_w[nq, 2] * v, gl_w[nq, 3] * v
                for j in range(d):
                    acc = p0 * suf[j, 0] + p1 * suf[j, 1] + p2 * suf[j, 2] + p3 * suf[j, 3]
                    p0 *= fac[j, 0]
                    p1 *= fac[j, 1]
                    p2 *= fac[j, 2]
                    p3 *= fac[j, 3]
                    z = ent_z[s + j]
                    out[ent_feature[s + j]] += ((1.0 - z) if o[j] else -z) * acc
                continue
            for k in range(nq):
                tk[k] = gl_t[nq, k]
                uk[k] = 1.0 - tk[k]
                pre[k] = gl_w[nq, k] * v
                suf[d, k] = 1.0
            for j in range(d - 1, -1, -1):
                z = ent_z[s + j]
                oj = o[j]
                for k in range(nq):
                    suf[j, k] = suf[j + 1, k] * ((tk[k] + uk[k] * z) if oj else uk[k] * z)
            for j in range(d):
                z = ent_z[s + j]
                oj = o[j]
                acc = 0.0
                for k in range(nq):
                    acc += pre[k] * suf[j + 1, k]
                    pre[k] *= (tk[k] + uk[k] * z) if oj else uk[k] * z
                out[ent_feature[s + j]] += ((1.0 - z) if oj else -z) * acc
