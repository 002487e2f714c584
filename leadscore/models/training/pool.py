"""The member fits every variant shares, and the blends made of them.

Per fold, :func:`fit_pool` selects features on the inner training part (a quick LightGBM
ranks them by split gain), searches each member's few candidates (the best ROC-AUC on the
held-out part wins), keeps the winners' held-out log-odds and refits them on all of the
fold's training rows. :func:`blend_plan` fits a variant's blend weights (for
``ensemble_fitted``) and its Platt calibration on those held-out log-odds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score

from leadscore.models.engine.links import sigmoid
from leadscore.models.training.candidates import SEARCH_SPACE, VARIANTS, TrainConfig
from leadscore.models.training.ensemble import DEFAULT_WEIGHTS, make_member, member_log_odds
from leadscore.models.training.folds import TrainingData, inner_split

__all__ = ["MemberPool", "blend_plan", "fit_pool", "select_features", "variant_probability"]

#: Held-out ROC-AUC differences this small are noise: the cheaper candidate is kept.
_SEARCH_TIE_AUC = 0.001
_MIN_GAIN_SHARE = 0.001
_MIN_FEATURES = 5
#: Rows above this are subsampled for the search fits (the refit uses every row).
_MAX_SEARCH_ROWS = 30_000


@dataclass(eq=False)
class MemberPool:
    """Members fitted on one training part, with their held-out log-odds."""

    columns: np.ndarray
    members: dict[str, Any]
    params: dict[str, dict[str, Any]]
    prior: float
    holdout_z: dict[str, np.ndarray]
    holdout_y: np.ndarray

    def log_odds(self, kind: str, X: np.ndarray) -> np.ndarray:
        return member_log_odds(kind, self.members[kind], X[:, self.columns], prior=self.prior)


def fit_pool(
    data: TrainingData, train_idx: np.ndarray, kinds: set[str], config: TrainConfig, seed: int
) -> MemberPool:
    X, y = data.X, np.asarray(data.y, dtype=np.int64)
    inner, holdout = inner_split(data, train_idx, seed)
    columns = (
        select_features(X[inner], y[inner], seed)
        if config.select_features
        else np.arange(X.shape[1])
    )
    search_rows = inner
    if len(inner) > _MAX_SEARCH_ROWS:
        search_rows = np.sort(
            np.random.default_rng(seed).choice(inner, _MAX_SEARCH_ROWS, replace=False)
        )
    Xi, yi = X[np.ix_(search_rows, columns)], y[search_rows]
    Xh, yh = X[np.ix_(holdout, columns)], y[holdout]

    members: dict[str, Any] = {}
    params: dict[str, dict[str, Any]] = {}
    holdout_z: dict[str, np.ndarray] = {}
    for kind in sorted(kinds):
        candidates = SEARCH_SPACE[kind] if config.search == "quick" else SEARCH_SPACE[kind][:1]
        best: tuple[float, dict[str, Any], np.ndarray] | None = None
        for cand in candidates:
            member = make_member(kind, cand, seed=seed, n_jobs=config.n_jobs).fit(Xi, yi)
            z = member_log_odds(kind, member, Xh, prior=float(yi.mean()))
            auc = _auc(yh, z)
            # A later (costlier) candidate must win by more than _SEARCH_TIE_AUC.
            if best is None or auc > best[0] + _SEARCH_TIE_AUC:
                best = (auc, cand, z)
        if best is None:  # pragma: no cover - every kind has at least one candidate
            raise RuntimeError(f"no search candidate for {kind}")
        params[kind], holdout_z[kind] = dict(best[1]), best[2]
        members[kind] = make_member(kind, params[kind], seed=seed, n_jobs=config.n_jobs).fit(
            X[np.ix_(train_idx, columns)], y[train_idx]
        )
    return MemberPool(
        columns=columns,
        members=members,
        params=params,
        prior=float(y[train_idx].mean()),
        holdout_z=holdout_z,
        holdout_y=yh,
    )


def select_features(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Columns carrying at least 0.1 % of a quick LightGBM's split gain (at least 5)."""
    import lightgbm

    model = lightgbm.LGBMClassifier(
        n_estimators=100, importance_type="gain", random_state=seed, n_jobs=1, verbose=-1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    gain = np.asarray(model.feature_importances_, dtype=np.float64)
    if gain.sum() <= 0:
        return np.arange(X.shape[1])
    keep = np.flatnonzero(gain / gain.sum() >= _MIN_GAIN_SHARE)
    if len(keep) < _MIN_FEATURES:
        # Pad with the next-best columns that vary at all (a constant column can say nothing).
        varying = np.flatnonzero(X.min(axis=0) < X.max(axis=0))
        ranked = [j for j in np.argsort(-gain, kind="stable") if j in set(varying)]
        keep = np.sort(np.asarray(ranked[: max(_MIN_FEATURES, len(keep))], dtype=np.int64))
        if len(keep) == 0:
            keep = np.arange(X.shape[1])
    return keep


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else 0.5


# --- blending and calibration --------------------------------------------------------------


def _fit_logistic(Z: np.ndarray, y: np.ndarray, *, nonneg: bool) -> tuple[np.ndarray, float]:
    """Unregularized logistic regression of ``y`` on the columns of ``Z`` (n, k).

    Returns ``(coef (k,), intercept)``; with ``nonneg`` the coefficients are kept >= 0.
    """
    y = np.asarray(y, dtype=np.float64)
    k = Z.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + Z @ theta[1:]
        # log(1 + e^z) - y z, stably
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        r = sigmoid(z) - y
        return float(nll), np.concatenate([[r.sum()], Z.T @ r])

    base = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    theta0 = np.concatenate([[np.log(base / (1 - base))], np.full(k, 1.0 / k)])
    bounds = [(None, None)] + [(0.0, None) if nonneg else (None, None)] * k
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[1:], float(result.x[0])


def blend_plan(
    variant: str, pool: MemberPool
) -> tuple[tuple[str, str, str], np.ndarray, tuple[float, float]]:
    """Kinds, normalized weights and Platt ``(a, b)`` of ``variant``, from ``pool``'s held-out rows."""
    kinds, weights, _ = VARIANTS[variant]
    if isinstance(weights, str):  # "fitted"
        Z = np.column_stack([pool.holdout_z[k] for k in kinds])
        coef, intercept = _fit_logistic(Z, pool.holdout_y, nonneg=True)
        if coef.sum() <= 0:
            w = np.asarray(DEFAULT_WEIGHTS) / sum(DEFAULT_WEIGHTS)
        else:
            return kinds, coef / coef.sum(), (float(coef.sum()), intercept)
    else:
        w = np.asarray(weights, dtype=np.float64) / sum(weights)
    s = sum(w[i] * pool.holdout_z[k] for i, k in enumerate(kinds) if w[i] > 0)
    (a,), b = _fit_logistic(np.asarray(s).reshape(-1, 1), pool.holdout_y, nonneg=True)
    if a <= 0:  # the blend does not rank the held-out rows at all: keep its own scale
        a, b = 1.0, 0.0
    return kinds, w, (float(a), float(b))


def variant_probability(
    kinds: Sequence[str], w: np.ndarray, calib: tuple[float, float], pool: MemberPool, X: np.ndarray
) -> np.ndarray:
    """Calibrated probabilities of the blend ``sum_i w[i] * log-odds of kinds[i]`` on ``X``."""
    s = np.zeros(X.shape[0])
    for i, kind in enumerate(kinds):
        if w[i] > 0:
            s += w[i] * pool.log_odds(kind, X)
    p: np.ndarray = sigmoid(calib[1] + calib[0] * s)
    return p
