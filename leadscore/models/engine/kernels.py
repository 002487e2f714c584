"""The numba kernels that evaluate a tree ensemble: outputs, depth, and TreeSHAP over a SHAP plan.

:mod:`leadscore.models.engine.evaluate` is the public API and calls these; the plan they read
(leaf boxes, Fast TreeSHAP v2 tables, quadrature nodes) and the mathematics behind it are in
:mod:`leadscore.models.engine.shap_plan`.

Kernels. Batches go through :func:`shap_block_kernel`: rows in blocks of 256, transposed,
so every inner loop runs over the block's rows without branches (SIMD) and each table is
read once per block. One to seven rows go through :func:`shap_row_kernel` (quadrature
for every leaf: a few random reads per table cost more than computing). Measured in
``benchmarks/engine_speed.py``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["max_depth_kernel", "predict_kernel", "shap_block_kernel", "shap_row_kernel"]


@numba.njit(cache=True, nogil=True)
def max_depth_kernel(
    feature: np.ndarray, left: np.ndarray, right: np.ndarray, roots: np.ndarray
) -> int:
    """Edges on the longest root-to-leaf path of any tree."""
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
def predict_kernel(
    X: np.ndarray,
    r0: int,
    r1: int,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    missing_left: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
    offset: float,
    out: np.ndarray,
) -> None:
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
def _agreement(
    xt: np.ndarray,
    nb: int,
    s: int,
    d: int,
    ent_feature: np.ndarray,
    ent_lo: np.ndarray,
    ent_hi: np.ndarray,
    ent_nan_ok: np.ndarray,
    pattern: np.ndarray,
) -> None:
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
def shap_block_kernel(
    X: np.ndarray,
    r0: int,
    r1: int,
    block: int,
    n_table: int,
    leaf_value: np.ndarray,
    leaf_start: np.ndarray,
    ent_feature: np.ndarray,
    ent_lo: np.ndarray,
    ent_hi: np.ndarray,
    ent_nan_ok: np.ndarray,
    ent_z: np.ndarray,
    ent_coef: np.ndarray,
    table_start: np.ndarray,
    tables: np.ndarray,
    gl_t: np.ndarray,
    gl_w: np.ndarray,
    phi: np.ndarray,
) -> None:
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
def shap_row_kernel(
    X: np.ndarray,
    r0: int,
    r1: int,
    leaf_value: np.ndarray,
    leaf_start: np.ndarray,
    ent_feature: np.ndarray,
    ent_lo: np.ndarray,
    ent_hi: np.ndarray,
    ent_nan_ok: np.ndarray,
    ent_z: np.ndarray,
    gl_t: np.ndarray,
    gl_w: np.ndarray,
    phi: np.ndarray,
) -> None:
    """Path-dependent TreeSHAP of rows ``[r0, r1)`` one at a time, every leaf by quadrature.

    For one or a few rows: the tables would be read a few entries per leaf (cache misses),
    so all leaves use the quadrature of :func:`shap_block_kernel`, its nodes in lanes.
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
                o[j] = ((xv <= ent_hi[s + j]) & ~(xv <= ent_lo[s + j])) | (
                    (xv != xv) & ent_nan_ok[s + j]
                )
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
