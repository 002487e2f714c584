"""From feature vectors to scores, grades and reasons: the one scoring path.

The stream, the REST API and batch scoring all call :class:`Scorer`, so a lead
gets the same score whichever way it is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, Protocol

import numpy as np

from leadscore.models.features import FEATURE_FAMILY, FEATURE_NAMES, describe
from leadscore.schemas.scores import Reason, ReasonChange, ScoreComponents

#: Families that say who the lead is; the others say what the lead did.
FIT_FAMILIES = frozenset({"demographic", "quality"})
#: Points below this are left out of a lead's remembered contributions.
_MIN_REMEMBERED_POINTS = 0.005


class ScoringModel(Protocol):
    """What the scorer needs of a model (the compiled ML model and the rules prior)."""

    feature_names: tuple[str, ...]

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

    def should_publish(self, previous: int | None, previous_grade: str | None, score: int, grade: str) -> bool:
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


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a lead has its score, in score points.

    ``base_score + sum(points.values()) == 100 * probability``; ``reasons`` holds the
    largest ones only, ``points`` every non-negligible one (for the next score's changes).
    """

    base_score: float
    reasons: list[Reason]
    points: dict[str, float]
    components: ScoreComponents | None

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
        self._families: list[str] | None = None
        if families is not None and all(n in families for n in self.feature_names):
            self._families = [families[n] for n in self.feature_names]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Conversion probabilities of a ``(n, n_features)`` matrix, one vectorized call."""
        return np.asarray(self.model.predict_proba(x))[:, 1]

    def explain(self, x: np.ndarray) -> list[Explanation]:
        """Reasons for each row of ``x`` (one vectorized explanation call)."""
        if len(x) == 0:
            return []
        _, base, points = self.model.score_and_explain(x)
        return [self._explanation(row, pts, float(b)) for row, pts, b in zip(x, points, base)]

    def _explanation(self, row: np.ndarray, points: np.ndarray, base: float) -> Explanation:
        k = min(self.policy.top_reasons, len(points))
        reasons: list[Reason] = []
        if k > 0:
            # argpartition then sort the k: O(n_features), not a full sort per lead.
            top = np.argpartition(-np.abs(points), k - 1)[:k]
            top = top[np.argsort(-np.abs(points[top]), kind="stable")]
            reasons = [
                Reason(
                    feature=self.feature_names[i],
                    label=self.describe(self.feature_names[i], float(row[i])),
                    value=float(row[i]),
                    contribution=round(float(points[i]), 3),
                )
                for i in top
            ]
        remembered = {
            self.feature_names[i]: round(float(points[i]), 3)
            for i in np.flatnonzero(np.abs(points) >= _MIN_REMEMBERED_POINTS)
        }
        return Explanation(
            base_score=round(base, 3),
            reasons=reasons,
            points=remembered,
            components=self._components(points),
        )

    def _components(self, points: np.ndarray) -> ScoreComponents | None:
        if self._families is None:
            return None
        families: dict[str, float] = {}
        for family, value in zip(self._families, points):
            families[family] = families.get(family, 0.0) + float(value)
        fit = sum(v for f, v in families.items() if f in FIT_FAMILIES)
        engagement = sum(v for f, v in families.items() if f not in FIT_FAMILIES)
        return ScoreComponents(
            fit=round(fit, 3),
            engagement=round(engagement, 3),
            families={f: round(v, 3) for f, v in sorted(families.items())},
        )

    def word(self, feature: str, row: np.ndarray) -> str:
        """``feature`` of ``row`` in words."""
        return self.describe(feature, float(row[self.feature_names.index(feature)]))
