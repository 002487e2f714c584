"""The worker's learning topics as jobs read them: labelled examples and scored vectors.

Only records of the current feature definition are kept (``FEATURE_SPEC_VERSION`` and the
number of features): a vector of another definition means something else.
"""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from leadscore.infra.kafka.client import read_topic
from leadscore.models.features.vector import FEATURE_NAMES, FEATURE_SPEC_VERSION
from leadscore.schemas.learning import FeatureSample, TrainingExample
from leadscore.settings import Settings

__all__ = ["load_examples", "load_samples"]


def load_examples(settings: Settings) -> tuple[list[TrainingExample], int]:
    """The examples on the training topic (deduplicated by id), and how many were unusable."""
    values = asyncio.run(read_topic(settings, settings.training_topic))
    examples: dict[str, TrainingExample] = {}
    bad = 0
    for value in values:
        try:
            example = TrainingExample.model_validate_json(value)
        except ValidationError:
            bad += 1
            continue
        if example.feature_spec_version != FEATURE_SPEC_VERSION or len(example.features) != len(
            FEATURE_NAMES
        ):
            bad += 1
            continue
        examples[example.id] = example
    return sorted(examples.values(), key=lambda e: (e.outcome_time, e.id)), bad


def load_samples(settings: Settings) -> list[FeatureSample]:
    """The scored vectors on the features topic (of the current feature definition)."""
    out = []
    for value in asyncio.run(read_topic(settings, settings.features_topic)):
        try:
            sample = FeatureSample.model_validate_json(value)
        except ValidationError:
            continue
        if sample.feature_spec_version == FEATURE_SPEC_VERSION and len(sample.features) == len(
            FEATURE_NAMES
        ):
            out.append(sample)
    return out
