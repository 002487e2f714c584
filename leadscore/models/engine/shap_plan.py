"""The SHAP plan: each leaf of a tree ensemble as a box over its path features, and its tables.

:func:`leadscore.models.engine.evaluate.shap_values` is exact path-dependent TreeSHAP
(``shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")`` on the raw
output); :func:`build_plan` prepares what it reads, and
:mod:`leadscore.models.engine.kernels` evaluates it, as follows.

SHAP. Each leaf is seen as a box: for each distinct feature ``j`` on its path, an
interval ``lo < x_j <= hi`` plus a NaN flag (the row "agrees" with the path on ``j``), and
``z_j``, the product of the cover ratios of the splits on ``j``. With ``A`` the set of
path features the row agrees with, ``d`` the number of path features,
``w(s) = s! (d - s - 1)! / d!`` and

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numba
import numpy as np


class Trees(Protocol):
    """What a SHAP plan is built from: the node arrays of a
    :class:`~leadscore.models.engine.trees.TreeEnsemble` (which this module must not import)."""

    @property
    def feature(self) -> np.ndarray: ...
    @property
    def threshold(self) -> np.ndarray: ...
    @property
    def left(self) -> np.ndarray: ...
    @property
    def right(self) -> np.ndarray: ...
    @property
    def missing_left(self) -> np.ndarray: ...
    @property
    def value(self) -> np.ndarray: ...
    @property
    def cover(self) -> np.ndarray: ...
    @property
    def roots(self) -> np.ndarray: ...
    @property
    def offset(self) -> float: ...
    @property
    def shap_table_budget_bytes(self) -> int: ...
    @property
    def max_depth(self) -> int: ...


__all__ = ["MAX_TABLE_PATH_FEATURES", "ShapPlan", "Trees", "build_plan"]

#: Leaves with more distinct path features than this never get a table (2**16 * 8 B = 512 KiB).
MAX_TABLE_PATH_FEATURES = 16


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


def build_plan(ens: Trees) -> ShapPlan:
    """The leaf boxes and tables of ``ens`` (``TreeEnsemble.shap_plan`` builds it once)."""
    internal = ens.feature >= 0
    if internal.any() and not (ens.cover[internal] > 0).all():
        raise ValueError("path-dependent SHAP needs a positive cover at every internal node")
    max_depth = ens.max_depth
    args = (
        ens.feature,
        ens.threshold,
        ens.left,
        ens.right,
        ens.missing_left,
        ens.cover,
        ens.value,
        ens.roots,
        max_depth,
    )
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
    _fill_tables(
        n_table,
        leaf_value,
        leaf_start,
        ent_z,
        table_start,
        _shapley_weights(max(max_d, 1)),
        tables,
        ent_coef,
    )
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


# --- numba kernels that build the plan -----------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _collect_paths(
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    missing_left: np.ndarray,
    cover: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
    max_depth: int,
    fill: bool,
    leaf_value: np.ndarray,
    leaf_start: np.ndarray,
    ent_feature: np.ndarray,
    ent_lo: np.ndarray,
    ent_hi: np.ndarray,
    ent_nan_ok: np.ndarray,
    ent_z: np.ndarray,
) -> tuple[int, int, float]:
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
def _fill_tables(
    n_table: int,
    leaf_value: np.ndarray,
    leaf_start: np.ndarray,
    ent_z: np.ndarray,
    table_start: np.ndarray,
    weights: np.ndarray,
    tables: np.ndarray,
    ent_coef: np.ndarray,
) -> None:
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
