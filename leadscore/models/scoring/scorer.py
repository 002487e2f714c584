"""From feature vectors to scores, grades and reasons: the one scoring path.

The stream, the REST API and batch scoring all call :class:`Scorer`, so a lead
gets the same score whichever way it is asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, Protocol

import numpy as np

from leadscore.models.features.vector import FEATURE_FAMILY, FEATURE_NAMES, describe
from leadscore.schemas.scores import ReasonChange

#: Families that say who the lead is; the others say what the lead did.
FIT_FAMILIES = frozenset({"demographic", "quality"})
#: Points below this are left out of a lead's remembered contributions.
_MIN_REMEMBERED_POINTS = 0.005


class ScoringModel(Protocol):
    """What the scorer needs of a model (the compiled ML model and the rules prior)."""

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def predict_proba(self, x: Any) -> np.ndarray: ...

    def score_and_explain(self, x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    """How probabilities become grades, and when a change is worth publishing.

    Attributes:
        grade_thresholds: lowest score of grades A, B and C; below the last is D.
        change_threshold: publish when the score moves at least this many points
            (0: publish every rescore).
        top_reasons: how many reasons to attach to a score.
        top_changes: how many moved contributions to attach to a score.
    """

    grade_thresholds: tuple[int, int, int] = (80, 60, 40)
    change_threshold: int = 3
    top_reasons: int = 5
    top_changes: int = 3

    def grade(self, score: int) -> str:
        """The grade of a 0–100 score.

        Examples:
            >>> ScoringPolicy().grade(85), ScoringPolicy().grade(40), ScoringPolicy().grade(39)
            ('A', 'C', 'D')
        """
        a, b, c = self.grade_thresholds
        if score >= a:
            return "A"
        if score >= b:
            return "B"
        if score >= c:
            return "C"
        return "D"

    def should_publish(
        self, previous: int | None, previous_grade: str | None, score: int, grade: str
    ) -> bool:
        """Whether a new score is news: the first score, a big enough move, or a new grade."""
        if previous is None or grade != previous_grade:
            return True
        return self.change_threshold == 0 or abs(score - previous) >= self.change_threshold


def to_score(probability: float) -> int:
    """A probability as a 0–100 score (rounded half up).

    Examples:
        >>> to_score(0.4249), to_score(0.425), to_score(1.0)
        (42, 43, 100)
    """
    return int(min(max(probability, 0.0), 1.0) * 100 + 0.5)


def lowest_points(score: int) -> float:
    """The least ``probability x 100`` (as the leaderboard stores it) that scores ``score`` or more.

    :func:`to_score` computes ``int(p * 100 + 0.5)`` in floating point, so the edge is not
    always exactly ``score - 0.5``: ``0.49999999999999994 + 0.5`` rounds to ``1.0``, so
    that scores 1 (whereas ``0.575 * 100`` is ``57.49999999999999`` and scores 57, below
    the edge 57.5). This walks to the exact float: for every stored
    ``points``, ``points >= lowest_points(s)`` if and only if ``int(points + 0.5) >= s``.
    ``-inf`` for scores 0 and below, ``inf`` above 100.

    Examples:
        >>> lowest_points(80), lowest_points(1), lowest_points(0), lowest_points(101)
        (79.5, 0.49999999999999994, -inf, inf)
    """
    if score <= 0:
        return -math.inf
    if score > 100:
        return math.inf
    points = score - 0.5
    while int(points + 0.5) >= score:
        points = math.nextafter(points, -math.inf)
    while int(points + 0.5) < score:
        points = math.nextafter(points, math.inf)
    return points


def score_bins(n_bins: int) -> list[tuple[int, int]]:
    """``n_bins`` ranges of 0–100 scores as ``(from, to)``: ``from <= score < to`` (the last: ``<= 100``).

    The edges are ``ceil(i x 100 / n_bins)``, so they are the multiples of ``100 / n_bins``
    when it is whole.

    Examples:
        >>> score_bins(4)
        [(0, 25), (25, 50), (50, 75), (75, 100)]
        >>> score_bins(3)
        [(0, 34), (34, 67), (67, 100)]
    """
    edges = [-(-i * 100 // n_bins) for i in range(n_bins + 1)]
    return list(zip(edges[:-1], edges[1:]))


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a lead has its score, in score points.

    ``base_score + sum(points.values()) == 100 * probability``; ``reasons`` holds the
    largest ones only (as dicts with :class:`Reason`'s fields), ``points`` every
    non-negligible one (for the next score's changes).
    """

    base_score: float
    probability: float
    reasons: list[dict[str, Any]]  # the fields of Reason
    points: dict[str, float]
    components: dict[str, Any] | None  # the fields of ScoreComponents

    def changes_since(
        self, previous: Mapping[str, float] | None, describe_now: Callable[[str], str], k: int
    ) -> list[ReasonChange]:
        """The ``k`` contributions that moved most since ``previous`` (a former ``points``)."""
        if previous is None or k == 0:
            return []
        names = set(previous) | set(self.points)
        moved = sorted(
            ((self.points.get(n, 0.0) - previous.get(n, 0.0), n) for n in names),
            key=lambda item: (-abs(item[0]), item[1]),
        )
        return [
            ReasonChange(
                feature=name,
                label=describe_now(name),
                contribution=round(self.points.get(name, 0.0), 3),
                previous_contribution=round(previous.get(name, 0.0), 3),
                delta=round(delta, 3),
            )
            for delta, name in moved[:k]
            if abs(delta) >= _MIN_REMEMBERED_POINTS
        ]


class Scorer:
    """A loaded model with its version and the scoring policy.

    Args:
        model: a model with ``predict_proba`` and ``score_and_explain``.
        version: the version stamped on every score.
        policy: grades, publishing threshold, number of reasons.
        describe: ``(feature, value) -> words``; the stream's features by default.
        families: feature -> factor family, for the fit/engagement split (``None``: no split).
        champion: the registry version this scorer stands for (the rules prior stands in
            for a champion trained on too few labels, or for none); defaults to ``version``.
    """

    def __init__(
        self,
        model: ScoringModel,
        version: str,
        policy: ScoringPolicy,
        *,
        describe: Callable[[str, float], str] = describe,
        families: Mapping[str, str] | None = FEATURE_FAMILY,
        champion: str | None | EllipsisType = ...,
    ) -> None:
        self.model = model
        self.version = version
        self.policy = policy
        self.describe = describe
        self.champion: str | None = version if champion is ... else champion
        self.feature_names = tuple(getattr(model, "feature_names", FEATURE_NAMES))
        self._names = np.array(self.feature_names, dtype=object)
        self._index = {name: i for i, name in enumerate(self.feature_names)}
        # Family membership as a (n_families, n_features) 0/1 matrix: one product per batch.
        self._families: tuple[str, ...] | None = None
        self._family_matrix: np.ndarray | None = None
        self._fit_mask: np.ndarray | None = None
        if families is not None and all(n in families for n in self.feature_names):
            self._families = tuple(sorted({families[n] for n in self.feature_names}))
            self._family_matrix = np.array(
                [[families[n] == f for n in self.feature_names] for f in self._families],
                dtype=np.float64,
            )
            self._fit_mask = np.array([f in FIT_FAMILIES for f in self._families])

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Conversion probabilities of a ``(n, n_features)`` matrix, one vectorized call."""
        return np.asarray(self.model.predict_proba(x))[:, 1]

    def explain(self, x: np.ndarray) -> list[Explanation]:
        """Reasons for each row of ``x``: one model call, the ranking vectorized over rows.

        Cost beyond the model call: a few µs per row (reasons and their words, the
        remembered contributions, the family sums). Reasons and components are plain
        dicts in the shape of :class:`Reason` and :class:`ScoreComponents`: the score
        event validates them once (pydantic's ``model_construct`` per object cost more).
        """
        if len(x) == 0:
            return []
        probability, base, points = self.model.score_and_explain(x)
        n, width = points.shape
        k = min(self.policy.top_reasons, width)
        top = np.zeros((n, 0), dtype=np.int64)
        if k > 0:
            # argpartition then sort the k, for all rows at once: O(n_features) per row.
            magnitude = -np.abs(points)
            top = np.argpartition(magnitude, k - 1, axis=1)[:, :k]
            order = np.argsort(np.take_along_axis(magnitude, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
        rounded = np.round(points, 3)
        keep = np.abs(points) >= _MIN_REMEMBERED_POINTS
        families = fit = engagement = None
        if self._family_matrix is not None and self._fit_mask is not None:
            by_family = points @ self._family_matrix.T
            families = np.round(by_family, 3).tolist()
            fit = np.round(by_family[:, self._fit_mask].sum(axis=1), 3).tolist()
            engagement = np.round(by_family[:, ~self._fit_mask].sum(axis=1), 3).tolist()
        explanations = []
        for i in range(n):
            row = x[i]
            reasons = [
                {
                    "feature": self.feature_names[j],
                    "label": self.describe(self.feature_names[j], float(row[j])),
                    "value": float(row[j]),
                    "contribution": float(rounded[i, j]),
                }
                for j in top[i].tolist()
            ]
            idx = np.flatnonzero(keep[i])
            remembered = dict(zip(self._names[idx].tolist(), rounded[i, idx].tolist()))
            components = None
            if families is not None and fit is not None and engagement is not None:
                components = {
                    "fit": fit[i],
                    "engagement": engagement[i],
                    "families": dict(zip(self._families or (), families[i])),
                }
            explanations.append(
                Explanation(
                    base_score=round(float(base[i]), 3),
                    probability=float(probability[i]),
                    reasons=reasons,
                    points=remembered,
                    components=components,
                )
            )
        return explanations

    def word(self, feature: str, row: np.ndarray) -> str:
        """``feature`` of ``row`` in words."""
        return self.describe(feature, float(row[self._index[feature]]))
