"""The scorer for the registry's champion, or the rules prior while there is too little to learn from.

The worker and the API both load their scorer here, so a lead gets the same score from
the stream and from ``POST /v1/score``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from leadscore.models.features.vector import FEATURE_NAMES
from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.rules.config import RulesConfig
from leadscore.models.rules.model import RulesModel
from leadscore.models.scoring.scorer import Scorer, ScoringPolicy

log = logging.getLogger(__name__)


class NoModelError(RuntimeError):
    """There is no usable model to score with."""


def load_champion(
    model_dir: Path,
    policy: ScoringPolicy,
    *,
    min_training_labels: int,
    rules_file: Path | None = None,
    version: str | None = None,
) -> Scorer:
    """The scorer for ``version`` (default: the champion), or the rules prior.

    Cold start: while the registry holds no model, or the model was trained on fewer than
    ``min_training_labels`` conversions, leads are scored by the transparent rules prior
    (:mod:`leadscore.models.rules.model`); the scorer then stands in for that champion, so a
    follower does not reload it on every poll.

    Raises:
        NoModelError: the model cannot be used (broken, another feature definition, or a
            model over a CRM table rather than lead events).
    """
    registry = ModelRegistry(model_dir)
    if version is None:
        version = registry.champion()
    loaded = None
    if version is not None:
        try:
            loaded = registry.load(version)
        except RegistryError as exc:
            raise NoModelError(
                f"model {version} in {model_dir} cannot be used: {exc}. Promote "
                "another version (or train a new one) and start again."
            ) from exc
        if loaded.manifest.kind != "lead_events" and not registry.champion_history():
            # Nothing was ever promoted for the stream: the registry's fallback (its newest
            # version) is a table model, which is not ours to use. Cold start.
            loaded, version = None, None
        elif loaded.manifest.kind != "lead_events":
            raise NoModelError(
                f"model {version} was trained on a table ({loaded.manifest.source}), not on lead "
                "events: lead features cannot be built for it. Promote a lead-event model in the "
                "default segment (table models belong to the 'table' segment)."
            )
    # Conversions: distinct converted leads when the manifest has them (a converted lead
    # gives several positive snapshots), else positive rows (a table: one row per lead).
    balance = loaded.manifest.class_balance if loaded else {}
    positives = int(balance.get("converted_leads", balance.get("positive", 0)))
    if loaded is None or positives < min_training_labels:
        rules = RulesModel(RulesConfig.from_file(rules_file) if rules_file else None)
        if loaded is None:
            log.warning(
                "no model in %s yet: scoring with the rules prior %s", model_dir, rules.version
            )
        else:
            log.warning(
                "model %s was trained on %d conversions (< LEADSCORE_MIN_TRAINING_LABELS=%d): "
                "scoring with the rules prior %s", loaded.version, positives,
                min_training_labels, rules.version,
            )  # fmt: skip
        return Scorer(rules, rules.version, policy, champion=version)
    scorer = Scorer(loaded.model, loaded.version, policy)
    # Warm up here, not on the first request: numba kernels and SHAP tables are built
    # lazily (1 row takes the one-row kernels, 16 the block kernel).
    for rows in (1, 16):
        scorer.explain(np.zeros((rows, len(FEATURE_NAMES))))
    return scorer
