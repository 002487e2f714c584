"""Drift detection: compare windows of feature vectors and scores with a model's reference sample.

Pure numpy/scipy; the drift agent in ``streams`` feeds windows in and publishes the reports.

- :class:`DriftReference` is built once per model version from its reference sample
  (``Manifest.reference_matrix()``): each numeric column pre-sorted, each categorical
  (one-hot, binary or low-cardinality) column as category counts.
- :class:`DriftDetector` tests each window (the tests are in
  :mod:`leadscore.models.monitoring.stats`) and applies the false-alarm guards of
  :class:`DriftConfig` (minimum window size, multiple-testing correction, effect-size
  floor, persistence across windows), keeping the persistence state between windows.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from leadscore.models.monitoring.report import SCORE_FEATURE, AlertLevel, DriftReport, FeatureDrift
from leadscore.models.monitoring.stats import (
    DriftError,
    adjust_pvalues,
    chi2_psi,
    ks_2samp_sorted,
    tie_starts,
)

__all__ = [
    "DriftConfig",
    "DriftDetector",
    "DriftReference",
]


class _HasReferenceSample(Protocol):
    feature_names: list[str]

    def reference_matrix(self) -> np.ndarray: ...


# --- the reference -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReference:
    """A model's reference sample, prepared once for testing many windows.

    Build it with :meth:`from_sample` or :meth:`from_manifest`. A column is categorical
    when its reference holds at most ``max_categories`` distinct values (one-hot and binary
    columns always are); the others are numeric and are kept sorted for the KS test.
    """

    feature_names: tuple[str, ...]
    numeric_index: np.ndarray  # column indices of the numeric features, shape (k_num,)
    sorted_numeric: np.ndarray  # shape (n_ref, k_num), each column ascending
    tie_start: np.ndarray  # tie_starts(sorted_numeric)
    categorical_index: np.ndarray  # shape (k_cat,)
    categories: tuple[np.ndarray, ...]  # per categorical feature: its sorted reference values
    category_counts: tuple[np.ndarray, ...]  # per categorical feature: counts, aligned
    sorted_scores: np.ndarray | None  # reference predicted probabilities, sorted; shape (n_s, 1)
    n_rows: int

    @classmethod
    def from_sample(
        cls,
        matrix: np.ndarray,
        feature_names: Sequence[str],
        scores: np.ndarray | None = None,
        max_categories: int = 10,
    ) -> DriftReference:
        """Prepare a reference from a (rows, features) sample and optional reference scores.

        Args:
            matrix: the reference sample, shape (n_ref, len(feature_names)).
            feature_names: column names.
            scores: the model's predicted probabilities on a reference sample (any length),
                for the score-distribution test; ``None`` skips that test.
            max_categories: most distinct reference values for a column to count as categorical.
        """
        x = _checked(matrix, len(feature_names), "reference sample")
        if x.shape[0] < 2:
            raise DriftError(f"reference sample needs at least 2 rows; got {x.shape[0]}")
        numeric, categorical, cats, counts = [], [], [], []
        for j in range(x.shape[1]):
            values, c = np.unique(x[:, j], return_counts=True)
            if values.size <= max_categories:
                categorical.append(j)
                cats.append(values)
                counts.append(c)
            else:
                numeric.append(j)
        num_idx = np.asarray(numeric, dtype=np.intp)
        sorted_numeric = np.sort(x[:, num_idx], axis=0)
        sorted_scores = None
        if scores is not None:
            s = _checked(np.asarray(scores, dtype=np.float64).reshape(-1, 1), 1, "reference scores")
            sorted_scores = np.sort(s, axis=0)
        return cls(
            feature_names=tuple(feature_names),
            numeric_index=num_idx,
            sorted_numeric=sorted_numeric,
            tie_start=tie_starts(sorted_numeric),
            categorical_index=np.asarray(categorical, dtype=np.intp),
            categories=tuple(cats),
            category_counts=tuple(counts),
            sorted_scores=sorted_scores,
            n_rows=x.shape[0],
        )

    @classmethod
    def from_manifest(
        cls,
        manifest: _HasReferenceSample,
        scores: np.ndarray | None = None,
        max_categories: int = 10,
    ) -> DriftReference:
        """Prepare the reference of a registry :class:`~leadscore.models.registry.manifest.Manifest`."""
        return cls.from_sample(
            manifest.reference_matrix(), manifest.feature_names, scores, max_categories
        )


def _checked(x: np.ndarray, n_features: int, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise DriftError(f"{what} must have shape (rows, {n_features}); got {x.shape}")
    if not np.isfinite(x).all():
        raise DriftError(f"{what} holds NaN or infinite values; impute or drop them first")
    return x


# --- config ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftConfig:
    """The false-alarm guards and alert thresholds (all hyperparameters, saved with the agent).

    A feature *drifts* in a window when its adjusted p-value is below ``alpha`` AND its
    effect reaches the floor (KS ``D >= ks_min_effect``, or ``PSI >= psi_min_effect``);
    it drifts *persistently* when it drifted in at least ``persistence_k`` of the last
    ``persistence_m`` tested windows. Windows smaller than ``min_window`` are not tested.
    """

    min_window: int = 200
    alpha: float = 0.01
    correction: Literal["bh", "holm", "none"] = "bh"
    ks_min_effect: float = 0.1
    psi_min_effect: float = 0.1
    persistence_k: int = 2
    persistence_m: int = 3
    #: A "large" effect, for the alert level: KS D and PSI at or above these.
    ks_large_effect: float = 0.2
    psi_large_effect: float = 0.25
    #: Persistent features with a large effect needed for a high alert.
    high_min_features: int = 3
    #: KS p-value: "kstwo" equals scipy's ks_2samp 'asymp'; "kstwobign" is ~3x cheaper per window.
    ks_pvalue: Literal["kstwo", "kstwobign"] = "kstwo"

    def __post_init__(self) -> None:
        if not 1 <= self.persistence_k <= self.persistence_m:
            raise DriftError(
                f"need 1 <= persistence_k <= persistence_m; got {self.persistence_k} of {self.persistence_m}"
            )
        if not 0.0 < self.alpha < 1.0:
            raise DriftError(f"alpha must be in (0, 1); got {self.alpha}")
        if self.min_window < 2:
            raise DriftError(f"min_window must be at least 2; got {self.min_window}")


# --- the detector ------------------------------------------------------------------------------


@dataclass
class DriftDetector:
    """Tests windows against a reference and keeps the persistence state between them.

    Alert level of a window (only persistent drift counts; "large" means KS D >=
    ``ks_large_effect`` or PSI >= ``psi_large_effect`` in this window):

    - **high**: at least ``high_min_features`` persistent features are large, or the score
      distribution drifts persistently with a large effect;
    - **medium**: at least one persistent feature is large, or at least 3 features drift
      persistently, or the score distribution drifts persistently;
    - **low**: at least one feature drifts persistently;
    - **none**: otherwise, and for windows too small to test.

    The score test is one test on its own (its p-value is not part of the feature
    family's correction) and obeys the same effect floor and persistence.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> ref = DriftReference.from_sample(rng.normal(size=(1000, 2)), ["a", "b"])
        >>> det = DriftDetector(ref)
        >>> shifted = rng.normal(size=(500, 2)) + [1.0, 0.0]
        >>> [det.update(shifted).level for _ in range(3)]
        ['none', 'medium', 'medium']
        >>> det.drift_detected
        True
    """

    reference: DriftReference
    config: DriftConfig = field(default_factory=DriftConfig)
    #: Per test (features in column order, then the score): drifted flags of the last m windows.
    history_: dict[str, deque[bool]] = field(init=False, default_factory=dict)
    n_windows_: int = field(init=False, default=0)
    last_report_: DriftReport | None = field(init=False, default=None)

    @property
    def drift_detected(self) -> bool:
        """Whether the last window raised an alert (any level above none)."""
        return self.last_report_ is not None and self.last_report_.level != "none"

    def update(self, window: np.ndarray, scores: np.ndarray | None = None) -> DriftReport:
        """Test one window and return its report.

        Args:
            window: feature vectors, shape (n, n_features), in the reference's column order.
            scores: the model's predicted probabilities for the window (any length >=
                ``min_window``); ignored when the reference has no scores.
        """
        ref, cfg = self.reference, self.config
        x = _checked(window, len(ref.feature_names), "window")
        index = self.n_windows_
        self.n_windows_ += 1
        if x.shape[0] < cfg.min_window:
            report = DriftReport(
                index,
                x.shape[0],
                False,
                "none",
                reason=f"window of {x.shape[0]} rows is below min_window={cfg.min_window}",
            )
            self.last_report_ = report
            return report

        names, tests, stat, pval, effect = [], [], [], [], []
        if ref.numeric_index.size:
            d, p = ks_2samp_sorted(
                ref.sorted_numeric, x[:, ref.numeric_index], ref.tie_start, cfg.ks_pvalue
            )
            for j, col in enumerate(ref.numeric_index):
                names.append(ref.feature_names[col])
                tests.append("ks")
                stat.append(float(d[j]))
                pval.append(float(p[j]))
                effect.append(float(d[j]))
        for col, cats, counts in zip(ref.categorical_index, ref.categories, ref.category_counts):
            values = x[:, col]
            # Window counts per reference category, plus one bucket for unseen values.
            pos = np.clip(np.searchsorted(cats, values), 0, cats.size - 1)
            seen = cats[pos] == values
            win_counts = np.bincount(pos[seen], minlength=cats.size)
            ref_c = np.append(counts, 0)
            win_c = np.append(win_counts, np.count_nonzero(~seen))
            chi2, p_c, psi = chi2_psi(ref_c, win_c)
            names.append(ref.feature_names[col])
            tests.append("chi2")
            stat.append(chi2)
            pval.append(p_c)
            effect.append(psi)
        adjusted = adjust_pvalues(np.asarray(pval), cfg.correction)

        features = [
            self._judge(n, t, s, p, a, e)
            for n, t, s, p, a, e in zip(names, tests, stat, pval, adjusted, effect)
        ]
        # Report in the reference's column order.
        order = {name: i for i, name in enumerate(ref.feature_names)}
        features.sort(key=lambda f: order[f.feature])

        score = None
        if ref.sorted_scores is not None and scores is not None:
            s = _checked(np.asarray(scores, dtype=np.float64).reshape(-1, 1), 1, "scores")
            if s.shape[0] >= cfg.min_window:
                d, p = ks_2samp_sorted(ref.sorted_scores, s, pvalue=cfg.ks_pvalue)
                score = self._judge(
                    SCORE_FEATURE, "ks", float(d[0]), float(p[0]), float(p[0]), float(d[0])
                )

        level = self._level(features, score)
        report = DriftReport(index, x.shape[0], True, level, tuple(features), score)
        self.last_report_ = report
        return report

    def _judge(
        self,
        name: str,
        test: Literal["ks", "chi2"],
        stat: float,
        p: float,
        adj: float,
        effect: float,
    ) -> FeatureDrift:
        cfg = self.config
        floor, large = (
            (cfg.ks_min_effect, cfg.ks_large_effect)
            if test == "ks"
            else (cfg.psi_min_effect, cfg.psi_large_effect)
        )
        drifted = bool(adj < cfg.alpha and effect >= floor)
        hist = self.history_.setdefault(name, deque(maxlen=cfg.persistence_m))
        hist.append(drifted)
        persistent = sum(hist) >= cfg.persistence_k
        return FeatureDrift(
            feature=name,
            test=test,
            statistic=_finite(stat),
            p_value=_finite(p),
            adjusted_p=_finite(adj),
            effect=_finite(effect),
            drifted=drifted,
            persistent=persistent,
            large=bool(effect >= large),
        )

    def _level(self, features: Sequence[FeatureDrift], score: FeatureDrift | None) -> AlertLevel:
        persistent = [f for f in features if f.persistent]
        n_large = sum(f.large for f in persistent)
        score_persistent = score is not None and score.persistent
        if n_large >= self.config.high_min_features or (
            score_persistent and score is not None and score.large
        ):
            return "high"
        if n_large >= 1 or len(persistent) >= 3 or score_persistent:
            return "medium"
        if persistent:
            return "low"
        return "none"


def _finite(v: float) -> float:
    # JSON has no NaN; every statistic here is finite for finite input, this is a guard.
    return float(v) if math.isfinite(v) else 0.0
