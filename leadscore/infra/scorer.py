"""The scorer the settings ask for: the registry's champion, or the rules prior at cold start.

The worker, the API and the retrain job all load models through :func:`load_scorer`, so
a lead gets the same score whichever way it is asked.
"""

from __future__ import annotations

from leadscore.models.scoring.champion import load_champion
from leadscore.models.scoring.scorer import Scorer, ScoringPolicy
from leadscore.settings import Settings


def scoring_policy(settings: Settings) -> ScoringPolicy:
    """The grades, publishing threshold and reason counts the settings ask for."""
    return ScoringPolicy(
        grade_thresholds=settings.grade_thresholds,
        change_threshold=settings.score_change_threshold,
        top_reasons=settings.top_reasons,
        top_changes=settings.top_changes,
    )


def load_scorer(settings: Settings, version: str | None = None) -> Scorer:
    """The scorer for ``version`` (default: the champion), or the rules prior (cold start).

    See :func:`leadscore.models.scoring.champion.load_champion`.

    Raises:
        NoModelError: the model cannot be used.
    """
    return load_champion(
        settings.model_dir,
        scoring_policy(settings),
        min_training_labels=settings.min_training_labels,
        rules_file=settings.rules_file,
        version=version,
    )
