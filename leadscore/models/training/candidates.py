"""What a training run compares, how it is configured, and the rule that picks the model to deploy.

Every variant (:data:`VARIANTS`) is a blend of the same member fits, so they are compared
on the same folds at little extra cost; the baselines (:data:`BASELINES`) are stock models
with default parameters. :data:`SEARCH_SPACE` holds the few candidates of each member's
quick hyperparameter search.

Which model is deployed: the 40/40/20 ensemble users asked for, unless another deployable
variant beats its cross-validated ROC-AUC on the same folds by more than the folds' noise
(paired standard error, at least :data:`AUC_MARGIN`) without a worse Brier score; the
report says which and why. ``variant=`` forces one.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leadscore.models.training.ensemble import DEFAULT_WEIGHTS

__all__ = [
    "AUC_MARGIN",
    "BASELINES",
    "DEFAULT_VARIANT",
    "SEARCHES",
    "SEARCH_SPACE",
    "VARIANTS",
    "TrainConfig",
    "baseline_probability",
    "choose",
    "used_kinds",
]

#: Deployable candidates: name -> (member kinds, weights or "fitted", description).
VARIANTS: dict[str, tuple[tuple[str, str, str], tuple[float, float, float] | str, str]] = {
    "ensemble": (
        ("rf", "gb", "lr"),
        DEFAULT_WEIGHTS,
        "RandomForest + GradientBoosting + LogisticRegression, 40/40/20 (the default)",
    ),
    "ensemble_hgb": (
        ("rf", "hgb", "lr"),
        DEFAULT_WEIGHTS,
        "RandomForest + HistGradientBoosting + LogisticRegression, 40/40/20",
    ),
    "ensemble_fitted": (
        ("rf", "gb", "lr"),
        "fitted",
        "RandomForest + GradientBoosting + LogisticRegression, weights fitted on held-out rows",
    ),
    "random_forest": (("rf", "gb", "lr"), (1.0, 0.0, 0.0), "depth-capped RandomForest alone"),
    "gradient_boosting": (("rf", "gb", "lr"), (0.0, 1.0, 0.0), "tuned GradientBoosting alone"),
    "hist_gradient_boosting": (
        ("rf", "hgb", "lr"),
        (0.0, 1.0, 0.0),
        "tuned HistGradientBoosting alone",
    ),
    "logistic_regression": (("rf", "gb", "lr"), (0.0, 0.0, 1.0), "LogisticRegression alone"),
}
#: Stock models with default parameters, for comparison only (not deployable).
BASELINES: dict[str, str] = {
    "hgb_default": "HistGradientBoostingClassifier(), default parameters",
    "lgbm_default": "LGBMClassifier(), default parameters",
}
DEFAULT_VARIANT = "ensemble"
#: Smallest ROC-AUC gain over the default that can make another variant the choice.
AUC_MARGIN = 0.003

#: Candidates of the quick search, per member kind (the first is the default), cheapest to
#: explain first. Depth is capped at 8 for every tree: exact TreeSHAP costs O(leaves x depth)
#: per row, and one search that picked a depth-10 forest and unbounded leaf-wise boosting
#: (100k rows) explained 2,300 rows/s where the default does 7,000-11,000.
SEARCH_SPACE: dict[str, list[dict[str, Any]]] = {
    "rf": [
        {"max_depth": 8, "min_samples_leaf": 20},
        {"max_depth": 6, "min_samples_leaf": 50},
        {"max_depth": 8, "min_samples_leaf": 10, "max_features": 0.3},
    ],
    "gb": [
        {"max_depth": 3, "learning_rate": 0.1},
        {"max_depth": 2, "learning_rate": 0.1},
        {"max_depth": 4, "learning_rate": 0.05},
        # leaf-wise like LightGBM: up to 31 leaves grown best first, paths of at most 6
        {"max_depth": 6, "max_leaf_nodes": 31, "min_samples_leaf": 20, "learning_rate": 0.1},
    ],
    "hgb": [
        {},
        {"learning_rate": 0.05, "max_iter": 600},
        {"max_leaf_nodes": 15, "l2_regularization": 1.0},
    ],
    "lr": [{"C": 1.0}, {"C": 0.05}, {"C": 0.005}],
}
SEARCHES = ("none", "quick")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``variant="auto"`` applies the rule in the module notes."""

    folds: int = 5
    search: str = "quick"
    select_features: bool = True
    variant: str = "auto"
    compare: tuple[str, ...] = (*VARIANTS, *BASELINES)
    seed: int = 0
    n_jobs: int = 1


def used_kinds(variant: str) -> list[tuple[str, float]]:
    """The member kinds ``variant`` blends, with their fixed weights (1.0 each when fitted)."""
    kinds, weights, _ = VARIANTS[variant]
    if isinstance(weights, str):  # "fitted"
        return [(k, 1.0) for k in kinds]
    return [(k, w) for k, w in zip(kinds, weights) if w > 0]


def choose(
    forced: str, variants: Sequence[str], per_fold: Mapping[str, list[dict[str, Any]]]
) -> tuple[str, str]:
    """The variant to deploy, and why (see the module notes)."""
    if forced != "auto":
        return forced, f"chosen by configuration (variant={forced!r})"
    base = np.array([f["roc_auc"] for f in per_fold[DEFAULT_VARIANT]], dtype=np.float64)
    base_brier = float(np.mean([f["brier"] for f in per_fold[DEFAULT_VARIANT]]))
    best, best_gain, why = DEFAULT_VARIANT, 0.0, ""
    for name in variants:
        if name == DEFAULT_VARIANT:
            continue
        auc = np.array([f["roc_auc"] for f in per_fold[name]], dtype=np.float64)
        diff = auc - base
        gain = float(np.mean(diff))
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        brier = float(np.mean([f["brier"] for f in per_fold[name]]))
        if gain > max(AUC_MARGIN, se) and brier <= base_brier + 1e-4 and gain > best_gain:
            best, best_gain = name, gain
            why = (
                f"{name} beat the default 40/40/20 ensemble by {gain:+.4f} ROC-AUC over "
                f"{len(diff)} folds (paired standard error {se:.4f}, margin {AUC_MARGIN}) with a "
                f"Brier score of {brier:.4f} against {base_brier:.4f}"
            )
    if best == DEFAULT_VARIANT:
        why = (
            "the default 40/40/20 ensemble: no other deployable variant beat its cross-validated "
            f"ROC-AUC by more than the fold-to-fold noise (at least {AUC_MARGIN}) without a worse "
            "Brier score"
        )
    return best, why


def baseline_probability(
    name: str, X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int
) -> np.ndarray:
    """Test-row probabilities of the stock baseline ``name`` fitted on the training rows."""
    if name == "hgb_default":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model: Any = HistGradientBoostingClassifier(random_state=seed)
    elif name == "lgbm_default":
        import lightgbm

        model = lightgbm.LGBMClassifier(random_state=seed, n_jobs=1, verbose=-1)
    else:  # pragma: no cover - train() checks the name first (train._check)
        raise ValueError(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[train], y[train])
        p: np.ndarray = model.predict_proba(X[test])[:, 1]
        return p
