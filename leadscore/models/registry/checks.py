"""The checks that keep a registry sound: what a new version may hold, and whether a saved one can be trusted.

On save: the model's features against the running code's (``lead_events``) or its
pipeline's (``table``), and the reference sample. On load: every file against its
checksum in the manifest, the features against the running code's, and the pipeline
file against the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from leadscore.models.engine.compiled import ARRAYS_FILE, META_FILE, CompiledModel
from leadscore.models.features.vector import FEATURE_NAMES, FEATURE_SPEC_VERSION
from leadscore.models.registry.errors import (
    FeatureMismatchError,
    RegistryError,
    UntrustedModelError,
)
from leadscore.models.registry.files import MANIFEST_FILE, PIPELINE_FILE, sha256
from leadscore.models.registry.manifest import KINDS, Manifest
from leadscore.models.tabular.pipeline import FeaturePipeline, TableError

#: Most rows a manifest's reference sample may hold (it is read by every drift check).
MAX_REFERENCE_ROWS = 5_000


def checked_inputs(
    model: CompiledModel,
    kind: str,
    pipeline: FeaturePipeline | None,
    reference_sample: np.ndarray,
    training_window: tuple[datetime, datetime] | None,
) -> tuple[tuple[str, ...], dict[str, Any] | None, np.ndarray]:
    """Check what a new version is given (see :meth:`ModelRegistry.save`).

    Returns:
        ``(the model's feature names, the pipeline as plain JSON or None, the reference
        sample as a float64 array)``.

    Raises:
        TypeError: ``model`` is not a :class:`CompiledModel`, or ``pipeline`` is not a
            :class:`FeaturePipeline`.
        ValueError: an unknown kind, feature names that differ between the model, the
            pipeline and (``lead_events``) the running code, a bad reference sample or
            training window.
    """
    if not isinstance(model, CompiledModel):
        raise TypeError(
            f"model must be a CompiledModel (e.g. train(...).model or "
            f"ensemble.compile(FEATURE_NAMES)), got {type(model).__name__}"
        )
    if pipeline is not None and not isinstance(pipeline, FeaturePipeline):
        raise TypeError(
            f"pipeline must be a FeaturePipeline or None, got {type(pipeline).__name__}"
        )
    names = tuple(model.feature_names)
    if kind == "lead_events":
        difference = name_difference(names, FEATURE_NAMES, "the model", "FEATURE_NAMES")
        if difference:
            raise ValueError(
                f"a lead_events model must use the stream's features (FEATURE_NAMES, spec "
                f"v{FEATURE_SPEC_VERSION}): {difference}. Compile it with "
                "ensemble.compile(FEATURE_NAMES), or save a model over a table as kind='table'"
            )
    elif kind == "table":
        if pipeline is None:
            raise ValueError(
                "a table model needs its FeaturePipeline (pipeline=...): without it no "
                "one can turn a table row into the model's input"
            )
    else:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    pipeline_dict: dict[str, Any] | None = None
    if pipeline is not None:
        difference = name_difference(names, pipeline.feature_names, "the model", "the pipeline")
        if difference:
            raise ValueError(
                f"the pipeline does not produce the model's features: {difference}. Save "
                "the pipeline the model was trained with"
            )
        pipeline_dict = _pipeline_dict(pipeline)
    sample = np.asarray(reference_sample, dtype=np.float64)
    if sample.ndim != 2 or sample.shape[1] != len(names):
        raise ValueError(
            f"reference_sample must have shape (rows, {len(names)}) (one column per model "
            f"feature), got {sample.shape}"
        )
    if len(sample) > MAX_REFERENCE_ROWS:
        raise ValueError(
            f"reference_sample has {len(sample)} rows; keep it at most {MAX_REFERENCE_ROWS} "
            "(e.g. TrainingSet.reference_sample(500))"
        )
    if not np.isfinite(sample).all():
        raise ValueError("reference_sample contains NaN or infinite values")
    if training_window is not None and any(t.tzinfo is None for t in training_window):
        raise ValueError("training_window datetimes must be timezone-aware (UTC)")
    return names, pipeline_dict, sample


def check_lead_features(manifest: Manifest) -> None:
    """Refuse a ``lead_events`` manifest whose features are not the running code's."""
    problems = []
    if manifest.feature_spec_version != FEATURE_SPEC_VERSION:
        problems.append(
            f"feature_spec_version: model {manifest.feature_spec_version}, "
            f"code {FEATURE_SPEC_VERSION}"
        )
    difference = name_difference(manifest.feature_names, FEATURE_NAMES, "the model", "the code")
    if difference:
        problems.append(difference)
    if problems:
        raise FeatureMismatchError(
            f"model {manifest.version} was built for another feature definition: "
            + "; ".join(problems)
            + ". Retrain it on the current features (or load with check_features=False to inspect)."
        )


def name_difference(
    first: Sequence[str], second: Sequence[str], first_label: str, second_label: str
) -> str:
    """What differs between two lists of feature names, in words; ``""`` when equal.

    Examples:
        >>> name_difference(["a", "b"], ["b", "a"], "model", "code")
        "same features in another order (first difference at column 0: model 'a', code 'b')"
        >>> name_difference(["a", "b"], ["a", "c"], "model", "code")
        "features only in model: ['b']; features only in code: ['c']"
    """
    first, second = [str(n) for n in first], [str(n) for n in second]
    if first == second:
        return ""
    only_first = [n for n in first if n not in second]
    only_second = [n for n in second if n not in first]
    problems = []
    if only_first:
        problems.append(f"features only in {first_label}: {only_first}")
    if only_second:
        problems.append(f"features only in {second_label}: {only_second}")
    if problems:
        return "; ".join(problems)
    if len(first) != len(second):
        return (
            f"the same names but {len(first)} columns in {first_label} and {len(second)} in "
            f"{second_label} (a name repeats)"
        )
    col = next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
    return (
        f"same features in another order (first difference at column {col}: "
        f"{first_label} {first[col]!r}, {second_label} {second[col]!r})"
    )


def verify_files(directory: Path, manifest: Manifest) -> None:
    """Refuse the version unless every file the manifest lists has its checksum."""
    for required in (ARRAYS_FILE, META_FILE):
        if required not in manifest.files:
            raise UntrustedModelError(
                f"{directory / MANIFEST_FILE}: lists no checksum for {required}; the "
                "manifest was changed after saving"
            )
    for name, digest in manifest.files.items():
        if name != Path(name).name or name in ("", ".", "..", MANIFEST_FILE):
            raise UntrustedModelError(
                f"{directory / MANIFEST_FILE}: lists {name!r}, which is not a file of "
                "the version; the manifest was changed after saving"
            )
        verify_file(directory / name, digest)


def verify_file(path: Path, expected_sha256: str) -> None:
    """Refuse ``path`` unless it exists with the checksum the manifest lists for it."""
    if not path.is_file():
        raise UntrustedModelError(f"{path}: listed in the manifest but missing")
    if sha256(path) != expected_sha256:
        raise UntrustedModelError(
            f"{path}: checksum does not match its manifest; the file was changed or truncated "
            "after saving"
        )


def load_pipeline(directory: Path, manifest: Manifest) -> FeaturePipeline | None:
    """The pipeline of a version, checked against its manifest; ``None`` if it has none."""
    if PIPELINE_FILE not in manifest.files:
        if manifest.pipeline is not None:
            raise UntrustedModelError(
                f"{directory}: the manifest holds a pipeline but lists no {PIPELINE_FILE}"
            )
        return None
    path = directory / PIPELINE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: not readable JSON ({exc}); retrain the model") from exc
    if manifest.pipeline is not None and data != manifest.pipeline:
        raise UntrustedModelError(f"{path}: differs from the pipeline recorded in {MANIFEST_FILE}")
    try:
        return FeaturePipeline.from_dict(data)
    except (TableError, TypeError, AttributeError) as exc:
        raise RegistryError(f"{path}: not a usable feature pipeline: {exc}") from exc


def _pipeline_dict(pipeline: FeaturePipeline) -> dict[str, Any]:
    """The pipeline as plain JSON values, checked to rebuild the same pipeline."""
    try:
        data: dict[str, Any] = json.loads(json.dumps(pipeline.to_dict(), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the pipeline does not serialize to plain JSON: {exc}") from exc
    if FeaturePipeline.from_dict(data).feature_names != pipeline.feature_names:
        raise ValueError("the pipeline does not rebuild with the same features from its JSON")
    return data
