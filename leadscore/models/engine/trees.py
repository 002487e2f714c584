"""Tree ensembles as flat arrays: the ensemble type, built from node arrays, combined, saved.

A :class:`TreeEnsemble` holds many regression trees in one set of node arrays; its output
is ``offset + sum over trees of the reached leaf's value``. Every node sends ``x`` left
when ``x <= threshold`` in float64, NaN to the side given by ``missing_left``.
:mod:`leadscore.models.engine.from_sklearn` builds one from a fitted scikit-learn model,
:func:`concat` blends several into one (each scaled), and
:mod:`leadscore.models.engine.evaluate` predicts and explains it with no scikit-learn call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from leadscore.models.engine.kernels import max_depth_kernel
from leadscore.models.engine.shap_plan import ShapPlan, build_plan

__all__ = [
    "DEFAULT_SHAP_TABLE_BUDGET_BYTES",
    "TreeArrays",
    "TreeEnsemble",
    "concat",
    "from_arrays",
    "remap_features",
    "stack_trees",
    "to_arrays",
]

#: Memory allowed for the Fast TreeSHAP v2 tables of one ensemble (8 bytes * 2**d per leaf).
DEFAULT_SHAP_TABLE_BUDGET_BYTES = 64 * 2**20

_NODE_ARRAYS = ("feature", "threshold", "left", "right", "missing_left", "value", "cover", "roots")


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
        """The leaf boxes and tables :func:`~leadscore.models.engine.evaluate.shap_values` uses, built on first use (thread-safe)."""
        plan = self.__dict__.get("_plan")
        if plan is None:
            with self._lock:
                plan = self.__dict__.get("_plan")
                if plan is None:
                    plan = build_plan(self)
                    self.__dict__["_plan"] = plan
        return plan


# --- building from node arrays ----------------------------------------------------------


TreeArrays = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]


def stack_trees(
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
        >>> from leadscore.models.engine.evaluate import predict
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
    return stack_trees(
        trees, offset=offset, n_features=n_features.pop(), budget=shap_table_budget_bytes
    )


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
