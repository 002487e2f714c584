"""Evaluating a tree ensemble: outputs and exact TreeSHAP values, over threads, with no scikit-learn.

:func:`shap_values` is exact path-dependent TreeSHAP (``shap.TreeExplainer(model,
feature_perturbation="tree_path_dependent")`` on the raw output). How it is computed (leaf
boxes, Fast TreeSHAP v2 tables, quadrature) is in :mod:`leadscore.models.engine.shap_plan`,
and the numba kernels that evaluate the trees are in :mod:`leadscore.models.engine.kernels`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from leadscore.models.engine.kernels import predict_kernel, shap_block_kernel, shap_row_kernel
from leadscore.models.engine.shap_plan import ShapPlan
from leadscore.models.engine.trees import DEFAULT_SHAP_TABLE_BUDGET_BYTES, TreeEnsemble, concat

__all__ = ["predict", "prepare_shap", "shap_values", "warmup"]

#: Below this many rows per thread, extra threads cost more than they save.
_MIN_ROWS_PER_THREAD = 64
#: SHAP rows per block: each leaf's table is read once per block (256 * 50 * 8 B = 100 KiB of X).
_BLOCK_ROWS = 256
#: Fewer rows than this are explained one at a time, without the tables.
_MIN_BLOCK_ROWS = 8


def prepare_shap(ens: TreeEnsemble) -> ShapPlan:
    """Build (once) what :func:`shap_values` needs; call it when a model is loaded."""
    return ens.shap_plan


def _check_X(ens: TreeEnsemble, X: Any) -> np.ndarray:
    checked: np.ndarray = np.ascontiguousarray(X, dtype=np.float64)
    if checked.ndim != 2 or checked.shape[1] != ens.n_features:
        raise ValueError(f"expected X of shape (n, {ens.n_features}), got shape {checked.shape}")
    return checked


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
