"""From feature vectors to scores, grades and reasons: the one scoring path.

The stream, the REST API and batch scoring all call :class:`Scorer`, so a lead
gets the same score whichever way it is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from leadscore.models.features import FEATURE_NAMES, describe
from leadscore.schemas.scores import Reason


class ExplainableModel(Protocol):
    """What the scorer needs of a model."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...

    def explain(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    """How probabilities become grades, and when a change is worth publishing.

    Attributes:
        grade_thresholds: lowest score of grades A, B and C; below the last is D.
        change_threshold: publish when the score moves at least this many points
            (0: publish every rescore).
        top_reasons: how many reasons to attach to a score.
    """

    grade_thresholds: tuple[int, int, int] = (80, 60, 40)
    change_threshold: int = 3
    top_reasons: int = 5

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

    ``base_score + sum(c.contribution for all features) == 100 * probability``;
    ``reasons`` holds the largest ones only.
    """

    base_score: float
    reasons: list[Reason]


class Scorer:
    """A loaded model with its version and the scoring policy.

    Args:
        model: a fitted model with ``predict_proba`` and ``explain``.
        version: the model's registry version, stamped on every score.
        policy: grades, publishing threshold, number of reasons.
    """

    def __init__(self, model: ExplainableModel, version: str, policy: ScoringPolicy) -> None:
        self.model = model
        self.version = version
        self.policy = policy

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Conversion probabilities of a ``(n, n_features)`` matrix, one vectorized call."""
        return np.asarray(self.model.predict_proba(x))[:, 1]

    def explain(self, x: np.ndarray) -> list[Explanation]:
        """Top reasons for each row of ``x`` (one vectorized explanation call)."""
        if len(x) == 0:
            return []
        base, contributions = self.model.explain(x)
        return [self._reasons(row, contrib, base) for row, contrib in zip(x, contributions)]

    def _reasons(self, row: np.ndarray, contributions: np.ndarray, base: float) -> Explanation:
        k = self.policy.top_reasons
        if k == 0:
            return Explanation(base_score=100.0 * base, reasons=[])
        # argpartition then sort the k: O(n_features), not a full sort per lead.
        top = np.argpartition(-np.abs(contributions), min(k, len(contributions) - 1))[:k]
        top = top[np.argsort(-np.abs(contributions[top]))]
        reasons = [
            Reason(
                feature=FEATURE_NAMES[i],
                label=describe(FEATURE_NAMES[i], float(row[i])),
                value=float(row[i]),
                contribution=round(100.0 * float(contributions[i]), 3),
            )
            for i in top
        ]
        return Explanation(base_score=round(100.0 * base, 3), reasons=reasons)
