"""A transparent points-table score for cold start, used until the ML model has labels.

Classic (Marketo/HubSpot style) lead scoring: points per signal, kept in two groups.

- **Fit** (who they are): company size, seniority, industry, lead source, contact
  completeness. ``fit = clip(sum of fit points, 0, fit_max_points)``.
- **Engagement** (what they did): points per signal, each capped (``min(points_per_unit *
  value, max_points)``); their sum ``S`` is capped at ``engagement_max_points``; then time
  acts: ``engagement = max(0, min(S, cap) * 0.5 ** (recency_days / half_life) + inactivity)``
  where ``inactivity`` is a table of negative points for long silences.

``score = base_points + fit + engagement`` (0–100) and every point is attributed to one
feature, so the reasons add up exactly to the score:

- a capped group scales the contributions on its overshooting side proportionally (fit
  above its cap: its positive points; fit below 0: its negative points; engagement above
  its cap: all its signals);
- the signals keep their table points (after the group cap); what time takes away (the
  decay) plus the inactivity points is one reason on ``recency_days``, limited so that
  engagement never goes below 0.

The "probability" is ``score / 100``. It is **not calibrated**: it is a prior that ranks
leads the way a sales team would by hand, not a measured conversion rate. The ML model
replaces it once ``LEADSCORE_MIN_TRAINING_LABELS`` labels exist. See ``docs/rules.md``.
"""

from __future__ import annotations

import json
import math
from hashlib import blake2b
from typing import Any, Final

import numpy as np

from leadscore.models.features.catalog import SENIORITY_RANK
from leadscore.models.features.vector import FEATURE_NAMES, FEATURE_SPEC_VERSION
from leadscore.models.rules.config import (
    _COMPLETENESS,
    _RECENCY,
    _SENIORITY,
    _SIZE,
    RulesConfig,
    RulesConfigError,
)

__all__ = ["RulesModel"]

#: Version of the scoring formula in this module; bump it when the code (not the table) changes.
RULES_FORMULA_VERSION: Final = 1


class RulesModel:
    """Scores feature rows with a :class:`RulesConfig`; the same outputs as the ML model.

    The probability is ``score / 100`` and is NOT calibrated (a prior, not a conversion
    rate). Columns are found by name in ``feature_names``, so any column order works.

    Args:
        config: the points table; ``None`` for the defaults.
        feature_names: the column names of the matrices to score.

    Attributes:
        version: ``rules-v<formula>-<hash of the table>``; a changed table is a new version.
        feature_names: as given.

    Raises:
        RulesConfigError: the table gives points to a feature missing from ``feature_names``.

    Examples:
        >>> from leadscore.models.features.vector import FEATURE_NAMES
        >>> x = np.zeros((1, len(FEATURE_NAMES)))
        >>> col = {n: i for i, n in enumerate(FEATURE_NAMES)}
        >>> x[0, col["demo_requests"]] = 1           # engagement: 25
        >>> x[0, col["seniority_rank"]] = 5          # vp: 12
        >>> x[0, col["industry=software"]] = 1       # software: 8
        >>> model = RulesModel()
        >>> model.predict_proba(x)
        array([[0.55, 0.45]])
        >>> {k: v.tolist() for k, v in model.components(x).items()}
        {'fit': [20.0], 'engagement': [25.0]}
        >>> x[0, col["recency_days"]] = 30           # one half-life, and 30+ days silent: -5
        >>> float(model.components(x)["engagement"][0])
        7.5
    """

    def __init__(
        self, config: RulesConfig | None = None, feature_names: tuple[str, ...] = FEATURE_NAMES
    ) -> None:
        self.config = RulesConfig() if config is None else config
        self.feature_names = tuple(feature_names)
        self.version = f"rules-v{RULES_FORMULA_VERSION}-{_table_hash(self.config)}"
        c = self.config
        index = {name: i for i, name in enumerate(self.feature_names)}

        def column(name: str) -> int:
            if name not in index:
                raise RulesConfigError(
                    f"the rules table uses feature {name!r}, which is not among the "
                    f"{len(self.feature_names)} feature_names given; add the column or give it "
                    "0 points"
                )
            return index[name]

        # Fit: one-hot columns with their points (only the non-zero ones are needed).
        onehot = [(f"industry={k}", v) for k, v in c.industry_points.items() if v]
        onehot += [(f"lead_source={k}", v) for k, v in c.lead_source_points.items() if v]
        self._onehot_cols = np.array([column(n) for n, _ in onehot], dtype=np.intp)
        self._onehot_points = np.array([v for _, v in onehot], dtype=np.float64)
        self._size_col, self._seniority_col = column(_SIZE), column(_SENIORITY)
        self._completeness_col, self._recency_col = column(_COMPLETENESS), column(_RECENCY)
        # company_size_log10 thresholds of the bands (the feature is log10 of the size).
        self._size_log10 = np.array([math.log10(m) for m, _ in c.company_size_points])
        self._size_points = np.array([p for _, p in c.company_size_points])
        # seniority_rank 0..6 -> points (0 and anything unexpected: "unknown").
        unknown = c.seniority_points.get("unknown", 0.0)
        rank_points = np.full(max(SENIORITY_RANK.values()) + 1, unknown)
        for name, rank in SENIORITY_RANK.items():
            rank_points[rank] = c.seniority_points.get(name, 0.0)
        self._rank_points = rank_points
        self._fit_cols = np.array(
            [self._size_col, self._seniority_col, self._completeness_col, *self._onehot_cols],
            dtype=np.intp,
        )
        # Engagement signals.
        signals = [(k, s) for k, s in c.engagement_points.items() if s.max_points > 0]
        self._signal_cols = np.array([column(k) for k, _ in signals], dtype=np.intp)
        self._signal_rate = np.array([s.points_per_unit for _, s in signals], dtype=np.float64)
        self._signal_max = np.array([s.max_points for _, s in signals], dtype=np.float64)
        # A leading (-inf, 0) band: silences shorter than the first band lose no points.
        self._inactive_days = np.array([-np.inf, *(d for d, _ in c.inactivity_points)])
        self._inactive_points = np.array([0.0, *(p for _, p in c.inactivity_points)])

    def score_and_explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities and their exact additive explanation in score points.

        Args:
            X: feature matrix, shape (n, len(feature_names)), finite values.

        Returns:
            ``(probability (n,), base_points (n,), points (n, n_features))`` with
            ``base_points + points.sum(1) == 100 * probability`` (to ~1e-12) and the
            probability in [0, 1]. Not calibrated: see the class docstring.
        """
        X = self._check_X(X)
        n = len(X)
        c = self.config
        points = np.zeros_like(X)

        # --- fit: who they are ---------------------------------------------------------------
        band = np.searchsorted(self._size_log10, X[:, self._size_col] + 1e-12, side="right") - 1
        points[:, self._size_col] = self._size_points[np.maximum(band, 0)]
        rank = np.rint(X[:, self._seniority_col])
        known = (rank >= 0) & (rank < len(self._rank_points))
        points[:, self._seniority_col] = self._rank_points[np.where(known, rank, 0).astype(np.intp)]
        completeness = np.clip(X[:, self._completeness_col], 0.0, 1.0)
        points[:, self._completeness_col] = c.contact_completeness_points * completeness
        points[:, self._onehot_cols] = X[:, self._onehot_cols] * self._onehot_points
        points[:, self._fit_cols] = _clip_group(points[:, self._fit_cols], 0.0, c.fit_max_points)

        # --- engagement: what they did, capped per signal, then as a group ------------------
        values = np.maximum(X[:, self._signal_cols], 0.0)  # negative counts count as zero
        signal = np.minimum(values * self._signal_rate, self._signal_max)
        total = signal.sum(axis=1)
        over = total > c.engagement_max_points
        signal[over] *= (c.engagement_max_points / total[over])[:, None]
        points[:, self._signal_cols] = signal
        earned = signal.sum(axis=1)

        # --- time: decay of the earned points plus inactivity, as one reason ---------------
        days = np.maximum(X[:, self._recency_col], 0.0)
        decay = 0.5 ** (days / c.activity_half_life_days)
        band = np.searchsorted(self._inactive_days, days, side="right") - 1
        penalty = self._inactive_points[band]
        # Never below -earned: engagement stays >= 0 (the floor scales the time reason).
        points[:, self._recency_col] = np.maximum(-(1.0 - decay) * earned + penalty, -earned)

        base = np.full(n, float(c.base_points))
        probability = np.clip((base + points.sum(axis=1)) / 100.0, 0.0, 1.0)
        return probability, base, points

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[[1 - p, p], ...]``, shape (n, 2); ``p = score / 100``, not calibrated."""
        p = self.score_and_explain(X)[0]
        return np.column_stack([1.0 - p, p])

    def explain(self, X: Any) -> tuple[float, np.ndarray]:
        """``(base, contributions)`` in probability units, what ``scoring.Scorer`` expects.

        ``base + contributions.sum(axis=1) == predict_proba(X)[:, 1]``.
        """
        _, _, points = self.score_and_explain(X)
        return float(self.config.base_points) / 100.0, points / 100.0

    def components(self, X: Any) -> dict[str, np.ndarray]:
        """Fit and engagement points, each (n,); ``base_points + fit + engagement`` = the score.

        Engagement includes the time reason (decay and inactivity).
        """
        _, _, points = self.score_and_explain(X)
        fit = points[:, self._fit_cols].sum(axis=1)
        engagement = points[:, self._signal_cols].sum(axis=1) + points[:, self._recency_col]
        return {"fit": fit, "engagement": engagement}

    def _check_X(self, X: Any) -> np.ndarray:
        checked: np.ndarray = np.asarray(X, dtype=np.float64)
        if checked.ndim != 2 or checked.shape[1] != len(self.feature_names):
            raise ValueError(
                f"RulesModel expects a matrix of shape (n, {len(self.feature_names)}), got shape "
                f"{checked.shape}; for one row use x.reshape(1, -1)"
            )
        if not np.isfinite(checked).all():
            bad = sorted({self.feature_names[j] for j in np.argwhere(~np.isfinite(checked))[:, 1]})
            raise ValueError(f"RulesModel needs finite features; NaN or inf in {bad}")
        return checked


def _clip_group(points: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale each row's overshooting side so its sum lands in ``[low, high]``.

    Above ``high`` the positive points shrink proportionally (the negatives stay); below
    ``low`` the negative points shrink. ``points`` is (n, k); returns a new array.
    """
    out = points.copy()
    pos = np.where(out > 0, out, 0.0)
    neg = np.where(out < 0, out, 0.0)
    pos_sum, neg_sum = pos.sum(axis=1), neg.sum(axis=1)
    total = pos_sum + neg_sum
    over, under = total > high, total < low
    # over: pos_sum > high - neg_sum >= 0; under: neg_sum < low - pos_sum <= 0 (low <= high).
    k_pos = np.divide(high - neg_sum, pos_sum, out=np.ones_like(total), where=over)
    k_neg = np.divide(low - pos_sum, neg_sum, out=np.ones_like(total), where=under)
    clipped: np.ndarray = pos * k_pos[:, None] + neg * k_neg[:, None]
    return clipped


def _table_hash(config: RulesConfig) -> str:
    payload = {"feature_spec": FEATURE_SPEC_VERSION, "table": config.to_dict()}
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return blake2b(raw, digest_size=4).hexdigest()
