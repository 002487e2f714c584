"""What a model version's manifest records, and where its metrics are."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict

__all__ = [
    "KINDS",
    "Manifest",
    "ModelKind",
    "TrainingWindow",
]

ModelKind = Literal["lead_events", "table"]
KINDS: tuple[str, ...] = ("lead_events", "table")


class TrainingWindow(BaseModel):
    """Event-time span of the training data (UTC)."""

    model_config = ConfigDict(frozen=True)

    start: AwareDatetime
    end: AwareDatetime


class Manifest(BaseModel):
    """Everything known about one model version, stored as ``manifest.json`` beside it.

    Manifests of the older skops layout still validate (``kind`` defaults to
    ``"lead_events"``, ``files`` to empty; ``model_class``/``model_sha256`` are ignored), so
    listing and showing them works; :meth:`ModelRegistry.load` refuses them.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str
    created_at: AwareDatetime
    kind: ModelKind = "lead_events"
    variant: str | None = None
    #: ``FEATURE_SPEC_VERSION`` of a ``lead_events`` model; ``None`` for a table model.
    feature_spec_version: int | None
    feature_names: list[str]
    #: The table model's :meth:`FeaturePipeline.to_dict` (same content as ``pipeline.json``).
    pipeline: dict[str, Any] | None = None
    source: str = ""
    training_window: TrainingWindow | None
    n_rows: int
    class_balance: dict[str, float]
    metrics: dict[str, Any]
    params: dict[str, Any]
    reference_sample: list[list[float]]
    #: sha256 (hex) of every file of the version except the manifest, by file name.
    files: dict[str, str] = {}
    library_versions: dict[str, str]

    def reference_matrix(self) -> np.ndarray:
        """The reference sample as an array of shape (rows, n_features), for drift checks."""
        return np.asarray(self.reference_sample, dtype=np.float64).reshape(
            -1, len(self.feature_names)
        )


def find_metric(metrics: Any, name: str) -> float | None:
    """A manifest metric wherever the layout puts it, or ``None``.

    Looks at the top level, then under ``cv``, ``holdout``, ``test`` and
    ``validation``, then one level into any other mapping. A mapping value with a
    ``mean`` counts as that mean.

    Examples:
        >>> find_metric({"cv": {"roc_auc": 0.81}}, "roc_auc")
        0.81
        >>> find_metric({"roc_auc": {"mean": 0.7, "std": 0.1}}, "roc_auc")
        0.7
        >>> find_metric({"cv": {"brier": 0.1}}, "roc_auc") is None
        True
    """
    if not isinstance(metrics, Mapping):
        return None
    preferred = ("cv", "holdout", "test", "validation")
    places = [metrics, *(metrics[k] for k in preferred if k in metrics)]
    places += [v for k, v in metrics.items() if k not in preferred]
    for place in places:
        if not isinstance(place, Mapping) or name not in place:
            continue
        value = place[name]
        if isinstance(value, Mapping):
            value = value.get("mean")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None
