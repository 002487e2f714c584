"""The lead-scoring ensemble: RandomForest + gradient boosting + LogisticRegression, blended in log-odds.

The score is a weighted blend of the three members' log-odds, then a Platt calibration::

    z(x) = b + a * (w_rf * z_rf(x) + w_gb * z_gb(x) + w_lr * z_lr(x)),   w = (0.4, 0.4, 0.2)
    p(x) = sigmoid(z(x))

- ``z_gb`` and ``z_lr`` are the boosting's and the logistic regression's own decision
  functions (already log-odds, and already sums: of trees, of ``coef * feature``);
- ``z_rf`` is the mean over the forest's trees of each reached leaf's log-odds,
  ``logit((frac1 * n + m * prior) / (n + m))`` (the leaf's class-1 fraction over its ``n``
  training samples, shrunk towards the training base rate with ``m = rf_smoothing``).

Why blend log-odds, where the seed averaged probabilities: every member is then a *sum*
of per-tree or per-feature terms in the same units, so the blend is too, and exact
TreeSHAP of the trees plus the exact linear SHAP of the logistic regression add up to
``z(x)`` (:mod:`leadscore.models.engine.compiled`). Averaged probabilities cannot be explained
exactly: a boosting model's SHAP values live in log-odds, and squeezing them through the
sigmoid is not additive. The Platt step ``(a, b)`` is fitted by the trainer on held-out
rows (:mod:`leadscore.models.training.train`) and restores calibrated probabilities; being
affine in log-odds it keeps the explanations exact.

This class is the *training-time* estimator (a scikit-learn classifier: ``fit``,
``predict_proba``, ``clone``-able, with the probabilities computed by scikit-learn
itself). Scoring uses :meth:`LeadScoringEnsemble.compile`, which flattens it into
arrays evaluated by :mod:`leadscore.models.engine.evaluate` without per-call scikit-learn
overhead; a test holds the two to 1e-6.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from leadscore.models.engine.compiled import CompiledModel, LinearPart
from leadscore.models.engine.from_sklearn import (
    compile_forest,
    compile_gradient_boosting,
    compile_hist_gradient_boosting,
    leaf_log_odds,
)
from leadscore.models.engine.links import sigmoid, signed_log1p
from leadscore.models.engine.trees import TreeEnsemble, concat, remap_features

__all__ = [
    "BOOSTERS",
    "DEFAULT_GB_PARAMS",
    "DEFAULT_HGB_PARAMS",
    "DEFAULT_LR_PARAMS",
    "DEFAULT_RF_PARAMS",
    "DEFAULT_WEIGHTS",
    "MEMBERS",
    "LeadScoringEnsemble",
    "compile_ensemble",
    "forest_log_odds",
    "make_member",
    "member_log_odds",
]

#: Member names, in the order of ``weights`` and ``estimators_``.
MEMBERS = ("random_forest", "gradient_boosting", "logistic_regression")
#: The weights users asked for: forest, boosting, logistic regression.
DEFAULT_WEIGHTS = (0.4, 0.4, 0.2)
#: Which gradient boosting fills the middle slot.
BOOSTERS = ("gb", "hgb")

#: Depth-capped forest: the cap bounds the cost of TreeSHAP (O(leaves * depth) per tree).
DEFAULT_RF_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "max_depth": 8,
    "min_samples_leaf": 20,
    "max_features": "sqrt",
}
#: Shallow boosting; the number of stages is found by early stopping on 10 % of the rows.
DEFAULT_GB_PARAMS: dict[str, Any] = {
    "n_estimators": 400,
    "max_depth": 3,
    "learning_rate": 0.1,
    "subsample": 0.8,
    "n_iter_no_change": 20,
    "validation_fraction": 0.1,
}
DEFAULT_HGB_PARAMS: dict[str, Any] = {"max_iter": 300, "early_stopping": True}
DEFAULT_LR_PARAMS: dict[str, Any] = {"C": 1.0}


def forest_log_odds(
    rf: RandomForestClassifier, X: np.ndarray, *, prior: float, smoothing: float
) -> np.ndarray:
    """The forest member's log-odds: the mean over trees of the reached leaf's smoothed logit.

    Computed with scikit-learn's own trees (``apply`` and ``predict_proba``): this is the
    reference the compiled engine is tested against.
    """
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    total = np.zeros(X.shape[0])
    for tree in rf.estimators_:
        leaf = tree.apply(X32, check_input=False)
        frac1 = tree.predict_proba(X32, check_input=False)[:, 1]
        n = tree.tree_.weighted_n_node_samples[leaf]
        total += leaf_log_odds(frac1, n, prior=prior, smoothing=smoothing)
    return total / len(rf.estimators_)


def make_member(
    kind: str, params: dict[str, Any] | None, *, seed: int, n_jobs: int | None = 1
) -> Any:
    """An unfitted member: ``"rf"``, ``"gb"``, ``"hgb"`` or ``"lr"``, defaults overridden by ``params``."""
    params = dict(params or {})
    if kind == "rf":
        return RandomForestClassifier(
            **{**DEFAULT_RF_PARAMS, **params}, n_jobs=n_jobs, random_state=seed
        )
    if kind == "gb":
        return GradientBoostingClassifier(**{**DEFAULT_GB_PARAMS, **params}, random_state=seed)
    if kind == "hgb":
        return HistGradientBoostingClassifier(**{**DEFAULT_HGB_PARAMS, **params}, random_state=seed)
    if kind == "lr":
        return make_pipeline(
            FunctionTransformer(signed_log1p, feature_names_out="one-to-one"),
            StandardScaler(),
            LogisticRegression(
                **{"max_iter": 2000, **DEFAULT_LR_PARAMS, **params}, random_state=seed
            ),
        )
    raise ValueError(f"unknown member kind {kind!r}; expected one of rf, gb, hgb, lr")


def member_log_odds(
    kind: str, member: Any, X: np.ndarray, *, prior: float, smoothing: float = 1.0
) -> np.ndarray:
    """A fitted member's log-odds of class 1 for ``X`` (already restricted to its columns)."""
    if kind == "rf":
        return forest_log_odds(member, X, prior=prior, smoothing=smoothing)
    return np.asarray(member.decision_function(X), dtype=np.float64)


# scikit-learn has no type information, so its base classes are Any to mypy
class LeadScoringEnsemble(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """RandomForest + gradient boosting + LogisticRegression, blended in log-odds (binary).

    Args:
        booster: ``"gb"`` (scikit-learn ``GradientBoostingClassifier``, what users asked
            for) or ``"hgb"`` (``HistGradientBoostingClassifier``: faster to train).
        weights: blend weights of (forest, boosting, logistic regression), normalized at
            fit; a zero weight drops that member (it is not fitted).
        rf_params, gb_params, lr_params: overrides of the members' hyperparameters
            (:data:`DEFAULT_RF_PARAMS`, :data:`DEFAULT_GB_PARAMS` or
            :data:`DEFAULT_HGB_PARAMS`, :data:`DEFAULT_LR_PARAMS`).
        rf_smoothing: pseudo-count shrinking each forest leaf towards the base rate.
        calibration: ``(a, b)`` of the Platt step ``z = b + a * blend``; ``None`` is
            ``(1, 0)``. Fitted by the trainer on held-out rows, not by :meth:`fit`.
        feature_indices: the columns of ``X`` the members see (feature selection);
            ``None`` uses all. ``X`` always has every column, so one feature vector
            serves every model.
        n_jobs: threads for fitting the forest.
        random_state: seed (int), ``RandomState`` or ``None``.

    Attributes:
        classes_: the two class labels; column 1 of :meth:`predict_proba` is ``classes_[1]``.
        estimators_: the fitted members in the order of :data:`MEMBERS` (``None`` for a
            member with weight 0).
        weights_: the normalized weights, shape (3,).
        prior_: the training rate of ``classes_[1]``.
        columns_: the column indices the members were fitted on.
    """

    def __init__(
        self,
        *,
        booster: str = "gb",
        weights: tuple[float, float, float] = DEFAULT_WEIGHTS,
        rf_params: dict[str, Any] | None = None,
        gb_params: dict[str, Any] | None = None,
        lr_params: dict[str, Any] | None = None,
        rf_smoothing: float = 1.0,
        calibration: tuple[float, float] | None = None,
        feature_indices: tuple[int, ...] | None = None,
        n_jobs: int | None = 1,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.booster = booster
        self.weights = weights
        self.rf_params = rf_params
        self.gb_params = gb_params
        self.lr_params = lr_params
        self.rf_smoothing = rf_smoothing
        self.calibration = calibration
        self.feature_indices = feature_indices
        self.n_jobs = n_jobs
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = False
        return tags

    # --- fit ----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> LeadScoringEnsemble:
        """Fit the members with a non-zero weight on ``X`` (n, n_features) and binary ``y``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"LeadScoringEnsemble needs both classes to fit; y has only 1 class ({classes[0]!r})"
            )
        if type_of_target(y) != "binary":
            raise ValueError(f"Only binary classification is supported, got {type_of_target(y)!r}")
        weights = self._check_weights()
        if self.booster not in BOOSTERS:
            raise ValueError(f"booster must be one of {BOOSTERS}, got {self.booster!r}")
        columns = self._check_columns(X.shape[1])
        Xs = X[:, columns]

        rng = check_random_state(self.random_state)
        seeds = [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=3)]
        kinds = ("rf", self.booster, "lr")
        params = (self.rf_params, self.gb_params, self.lr_params)
        members: list[Any] = [
            make_member(kind, p, seed=seed, n_jobs=self.n_jobs).fit(Xs, y_enc) if w > 0 else None
            for kind, p, seed, w in zip(kinds, params, seeds, weights)
        ]

        self.classes_ = classes
        self.estimators_ = members
        self.weights_ = weights
        self.prior_ = float(y_enc.mean())
        self.columns_ = columns
        return self

    def _check_weights(self) -> np.ndarray:
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (3,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(
                "weights must be 3 non-negative numbers (forest, boosting, logistic regression) "
                f"with a positive sum, got {self.weights!r}"
            )
        normalized: np.ndarray = weights / weights.sum()
        return normalized

    def _check_columns(self, n_features: int) -> np.ndarray:
        if self.feature_indices is None:
            return np.arange(n_features)
        columns = np.asarray(self.feature_indices, dtype=np.int64)
        if len(columns) == 0 or columns.min() < 0 or columns.max() >= n_features:
            raise ValueError(
                f"feature_indices must be non-empty column indices below {n_features}, "
                f"got {self.feature_indices!r}"
            )
        return columns

    # --- predict ------------------------------------------------------------------------

    def member_log_odds(self, X: Any) -> np.ndarray:
        """Each member's log-odds of ``classes_[1]``, shape (3, n); zeros for a dropped member."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)[:, self.columns_]
        z = np.zeros((3, X.shape[0]))
        kinds = ("rf", self.booster, "lr")
        for i, (kind, member) in enumerate(zip(kinds, self.estimators_)):
            if member is not None:
                z[i] = member_log_odds(
                    kind, member, X, prior=self.prior_, smoothing=self.rf_smoothing
                )
        return z

    def decision_function(self, X: Any) -> np.ndarray:
        """The calibrated blended log-odds ``z(x)``, shape (n,)."""
        check_is_fitted(self)  # before reading weights_: NotFittedError, not AttributeError
        a, b = self.calibration or (1.0, 0.0)
        z: np.ndarray = b + a * (self.weights_ @ self.member_log_odds(X))
        return z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, shape (n, 2); column 1 is the probability of ``classes_[1]``."""
        p1 = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        """The more probable class (threshold 0.5)."""
        z = self.decision_function(X)  # first: it raises NotFittedError before classes_ is read
        labels: np.ndarray = self.classes_[(z >= 0.0).astype(int)]
        return labels

    def compile(self, feature_names: tuple[str, ...] | None = None) -> CompiledModel:
        """This ensemble as arrays for fast scoring and exact explanations."""
        return compile_ensemble(self, feature_names=feature_names)

    @property
    def linear_member(self) -> Pipeline | None:
        """The fitted logistic-regression pipeline (transform, scaler, model), if any."""
        check_is_fitted(self)
        return self.estimators_[2]


def compile_ensemble(
    model: LeadScoringEnsemble, *, feature_names: tuple[str, ...] | None = None
) -> CompiledModel:
    """Flatten a fitted ensemble; its probabilities are kept to ~1e-12."""
    n_features = int(model.n_features_in_)
    names = (
        tuple(feature_names)
        if feature_names is not None
        else tuple(f"x{i}" for i in range(n_features))
    )
    if len(names) != n_features:
        raise ValueError(f"{len(names)} feature names for a model fitted on {n_features} features")
    a, b = model.calibration or (1.0, 0.0)
    w_rf, w_gb, w_lr = (float(w) for w in model.weights_)
    rf, gb, lr = model.estimators_
    columns = np.asarray(model.columns_, dtype=np.int64)
    parts: list[tuple[TreeEnsemble, float]] = []
    if rf is not None:
        forest = compile_forest(rf, prior=model.prior_, smoothing=model.rf_smoothing)
        parts.append((forest, a * w_rf))
    if gb is not None:
        if model.booster == "gb":
            boosting = compile_gradient_boosting(gb)
        else:
            boosting = compile_hist_gradient_boosting(gb)
        parts.append((boosting, a * w_gb))
    trees = None
    offset = float(b)
    if parts:
        trees = remap_features(concat(parts), columns, n_features)
    linear = None
    if lr is not None:
        scaler, logreg = lr[1], lr[-1]
        coef = np.zeros(n_features)
        mean = np.zeros(n_features)
        coef[columns] = a * w_lr * logreg.coef_[0] / scaler.scale_
        mean[columns] = scaler.mean_
        linear = LinearPart(coef=coef, mean=mean)
        offset += a * w_lr * float(logreg.intercept_[0])
    info = {
        "kind": "ensemble",
        "booster": model.booster,
        "weights": [w_rf, w_gb, w_lr],
        "calibration": [float(a), float(b)],
        "columns_used": int(len(columns)),
    }
    return CompiledModel(feature_names=names, trees=trees, linear=linear, offset=offset, info=info)
