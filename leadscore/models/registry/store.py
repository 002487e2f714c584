"""Versioned model artifacts on disk: save, list, load safely, and a champion pointer.

Layout under ``root``::

    root/
      20261126T231500Z-ab12cd/   one version: written in a hidden temp dir, then renamed
        model.npz                the compiled model's arrays (read with allow_pickle=False)
        model.json               its feature names, offset, tree layout and description
        pipeline.json            table models: how a table row becomes the feature vector
        report.json              the full training report, when one was given
        manifest.json            what it is, how it was trained, a drift reference sample,
                                 and the sha256 of every other file
      champion.json              the champion pointer and its history (per segment:
      champion.<segment>.json    one file each)

A version directory appears in one ``rename``, so a reader never sees half a model.
Loading runs no code from the files and needs no scikit-learn; it refuses a file whose
checksum differs from the manifest's, and a ``lead_events`` model built for another
feature definition, saying exactly what differs.

Two kinds of model:

- ``"lead_events"``: scores the stream's lead state; its features are
  :data:`~leadscore.models.features.vector.FEATURE_NAMES` (spec ``FEATURE_SPEC_VERSION``).
- ``"table"``: scores rows of a CRM table through its saved
  :class:`~leadscore.models.tabular.pipeline.FeaturePipeline`.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from leadscore.models.engine.compiled import ARRAYS_FILE, META_FILE, CompiledModel
from leadscore.models.features.vector import FEATURE_NAMES, FEATURE_SPEC_VERSION
from leadscore.models.tabular.pipeline import FeaturePipeline, TableError
from leadscore.models.training.report import jsonable

__all__ = [
    "FeatureMismatchError",
    "KINDS",
    "LoadedModel",
    "Manifest",
    "ModelKind",
    "ModelNotFoundError",
    "ModelRegistry",
    "OutdatedModelError",
    "RegistryError",
    "TrainingWindow",
    "UntrustedModelError",
]

log = logging.getLogger(__name__)

ModelKind = Literal["lead_events", "table"]
KINDS: tuple[str, ...] = ("lead_events", "table")
#: The registry segment table models are promoted in (the worker follows the default one,
#: which holds models over the stream's lead-event features).
TABLE_SEGMENT = "table"

PIPELINE_FILE = "pipeline.json"
REPORT_FILE = "report.json"
MANIFEST_FILE = "manifest.json"
#: The model file of the layout before compiled models (a skops archive); never loaded.
OLD_MODEL_FILE = "model.skops"
#: Most rows a manifest's reference sample may hold (it is read by every drift check).
MAX_REFERENCE_ROWS = 5_000
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# --- errors ------------------------------------------------------------------------------------


class RegistryError(Exception):
    """A registry operation failed."""


class ModelNotFoundError(RegistryError, LookupError):
    """No such version (or no version at all)."""


class UntrustedModelError(RegistryError, ValueError):
    """A file of a version differs from its manifest (changed, truncated, missing, unlisted)."""


class FeatureMismatchError(RegistryError, ValueError):
    """The model was trained on another feature definition than the running code's."""


class OutdatedModelError(RegistryError, ValueError):
    """The version was written by an older leadscore in a layout this one does not read."""


# --- manifest ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score, with its version, its pipeline (table models) and manifest."""

    version: str
    model: CompiledModel
    pipeline: FeaturePipeline | None
    manifest: Manifest


# --- the registry ------------------------------------------------------------------------------


class ModelRegistry:
    """Model versions under one directory, and which one is the champion.

    Safe for many readers (workers) and writers (trainers) on one filesystem: versions
    appear atomically, and promote/rollback hold an exclusive file lock.

    Args:
        root: the registry directory; created if missing.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # --- writing versions -------------------------------------------------------------------

    def save(
        self,
        model: CompiledModel,
        *,
        kind: str,
        pipeline: FeaturePipeline | None,
        report: Mapping[str, Any] | None,
        metrics: Mapping[str, Any],
        training_window: tuple[datetime, datetime] | None,
        n_rows: int,
        class_balance: Mapping[str, float],
        params: Mapping[str, Any] | None,
        reference_sample: np.ndarray,
        source: str = "",
    ) -> Manifest:
        """Write a new version atomically and return its manifest.

        Args:
            model: the compiled model (e.g. ``train(...).model``).
            kind: ``"lead_events"`` (``model.feature_names`` must be :data:`FEATURE_NAMES`)
                or ``"table"`` (``pipeline`` required, with the model's feature names).
            pipeline: turns a table row into the model's feature vector; ``None`` for a
                ``lead_events`` model (the stream builds its vectors itself).
            report: the full training report (``train(...).report``), saved as
                ``report.json``; NaN and infinities become ``null``.
            metrics: evaluation results for the manifest (shown by ``leadscore models``);
                JSON-able after numpy scalars are turned into numbers.
            training_window: event-time (start, end) of the training data, timezone-aware.
            n_rows: training rows.
            class_balance: e.g. ``{"negative": 900, "positive": 100, "positive_rate": 0.1}``.
            params: hyperparameters (``None``: none recorded).
            reference_sample: feature vectors, shape (rows <= MAX_REFERENCE_ROWS,
                model.n_features), finite: the reference distribution for drift detection.
            source: where the training data came from (a file name, ``"simulation"``).

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
            difference = _name_difference(names, FEATURE_NAMES, "the model", "FEATURE_NAMES")
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
            difference = _name_difference(
                names, pipeline.feature_names, "the model", "the pipeline"
            )
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
        report_json = jsonable(dict(report)) if report is not None else None
        variant = model.info.get("variant")
        if variant is None and report_json is not None:
            chosen = report_json.get("chosen")
            variant = chosen.get("name") if isinstance(chosen, Mapping) else None

        created_at = datetime.now(UTC)
        for _ in range(10):
            version = f"{created_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
            if not (self.root / version).exists():
                break
        tmp = self.root / f".tmp-{version}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            written = [Path(p) for p in model.to_files(tmp)]
            if pipeline_dict is not None:
                _write_text(tmp / PIPELINE_FILE, json.dumps(pipeline_dict, indent=2))
                written.append(tmp / PIPELINE_FILE)
            if report_json is not None:
                _write_text(tmp / REPORT_FILE, json.dumps(report_json, indent=2, allow_nan=False))
                written.append(tmp / REPORT_FILE)
            for path in written:
                _fsync(path)
            manifest = Manifest(
                version=version,
                created_at=created_at,
                kind=kind,  # type: ignore[arg-type]  # checked above
                variant=str(variant) if variant is not None else None,
                feature_spec_version=FEATURE_SPEC_VERSION if kind == "lead_events" else None,
                feature_names=list(names),
                pipeline=pipeline_dict,
                source=str(source),
                training_window=(
                    TrainingWindow(start=training_window[0], end=training_window[1])
                    if training_window is not None
                    else None
                ),
                n_rows=int(n_rows),
                class_balance=jsonable(dict(class_balance)),
                metrics=jsonable(dict(metrics)),
                params=jsonable(dict(params)) if params is not None else {},
                reference_sample=sample.tolist(),
                files={path.name: _sha256(path) for path in sorted(written)},
                library_versions=_library_versions(),
            )
            _write_text(tmp / MANIFEST_FILE, manifest.model_dump_json(indent=2))
            _fsync(tmp)
            os.rename(tmp, self.root / version)  # atomic: the version appears whole
            _fsync(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return manifest

    # --- reading versions -------------------------------------------------------------------

    def list(self) -> builtins.list[str]:
        """All versions, oldest first (by creation time).

        A version made in the same second as another whose manifest cannot be read is
        skipped (and logged): its creation time, needed to order it, is unknown.
        """
        names = sorted(
            path.name
            for path in self.root.iterdir()
            if _VERSION_RE.match(path.name) and (path / MANIFEST_FILE).is_file()
        )
        # The name starts with the creation second; only versions made in the same second
        # need their manifest's microsecond created_at to be ordered.
        per_second: dict[str, builtins.list[str]] = {}
        for name in names:
            per_second.setdefault(name.split("-", 1)[0], []).append(name)
        ordered: builtins.list[str] = []
        for group in per_second.values():
            if len(group) == 1:
                ordered.extend(group)
                continue
            keyed = []
            for name in group:
                try:
                    keyed.append((self.manifest(name).created_at, name))
                except (RegistryError, OSError) as exc:
                    log.warning("skipping model version %s: unreadable manifest (%s)", name, exc)
            ordered.extend(name for _, name in sorted(keyed))
        return ordered

    def latest(self) -> str | None:
        """The newest version, or ``None`` if the registry is empty."""
        versions = self.list()
        return versions[-1] if versions else None

    def manifest(self, version: str) -> Manifest:
        """The manifest of ``version`` (cheap: does not load the model)."""
        path = self._version_dir(version) / MANIFEST_FILE
        try:
            return Manifest.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise RegistryError(f"{path}: not a valid manifest: {exc}") from exc

    def load(self, version: str, *, check_features: bool = True) -> LoadedModel:
        """Load ``version`` safely: no code from its files runs.

        Args:
            version: a version from :meth:`list`.
            check_features: refuse a ``lead_events`` model built for another feature
                definition than the running code's (leave on except to inspect old models).

        Raises:
            ModelNotFoundError: no such version.
            OutdatedModelError: written by an older leadscore (the skops layout); retrain.
            UntrustedModelError: a file differs from the checksum in the manifest, is
                missing, or the files disagree with each other or the manifest.
            FeatureMismatchError: its feature spec differs from the running code's.
            RegistryError: a file is unreadable although its checksum matches.
        """
        manifest = self.manifest(version)
        directory = self._version_dir(version)
        if not manifest.files and (directory / OLD_MODEL_FILE).exists():
            raise OutdatedModelError(
                f"model {version} in {self.root} was trained by an older leadscore (a "
                f"{OLD_MODEL_FILE} file, no {ARRAYS_FILE}), which this version cannot load; "
                "retrain it with `leadscore train` and promote the new version"
            )
        self._verify_files(directory, manifest)
        if manifest.kind == "lead_events" and check_features:
            _check_features(manifest)
        try:
            model = CompiledModel.from_files(directory)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise RegistryError(
                f"{directory}: cannot read the model files ({type(exc).__name__}: {exc}); "
                "retrain it"
            ) from exc
        difference = _name_difference(
            model.feature_names, manifest.feature_names, ARRAYS_FILE, MANIFEST_FILE
        )
        if difference:
            raise UntrustedModelError(
                f"{directory}: the model disagrees with its manifest: {difference}"
            )
        pipeline = self._load_pipeline(directory, manifest)
        if manifest.kind == "table" and pipeline is None:
            raise UntrustedModelError(
                f"{directory}: a table model without {PIPELINE_FILE} in its manifest's files"
            )
        if pipeline is not None:
            difference = _name_difference(
                model.feature_names, pipeline.feature_names, "the model", PIPELINE_FILE
            )
            if difference:
                raise UntrustedModelError(
                    f"{directory}: the pipeline does not produce the model's features: {difference}"
                )
        return LoadedModel(version=version, model=model, pipeline=pipeline, manifest=manifest)

    def report(self, version: str) -> dict[str, Any] | None:
        """The full training report of ``version``, or ``None`` if it was saved without one.

        Raises:
            ModelNotFoundError: no such version.
            UntrustedModelError: ``report.json`` differs from its checksum in the manifest.
        """
        manifest = self.manifest(version)
        if REPORT_FILE not in manifest.files:
            return None
        path = self._version_dir(version) / REPORT_FILE
        _verify_file(path, manifest.files[REPORT_FILE])
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    # --- champion ---------------------------------------------------------------------------
    def champion(self, *, segment: str | None = None) -> str | None:
        """The champion version of ``segment`` (default segment if None).

        Falls back to the default segment's champion for a segment without one, then to
        the newest version; ``None`` only when the registry is empty.
        """
        pointer = self._read_pointer(segment)
        if pointer is not None:
            return str(pointer["version"])
        if segment is not None:
            return self.champion()
        return self.latest()

    def load_champion(self, *, segment: str | None = None) -> LoadedModel | None:
        """Load the champion (see :meth:`champion`); ``None`` when the registry is empty."""
        version = self.champion(segment=segment)
        return self.load(version) if version is not None else None

    def promote(self, version: str, *, segment: str | None = None) -> None:
        """Make ``version`` the champion; the current one is kept for :meth:`rollback`."""
        self.manifest(version)  # must exist and be readable
        with self._lock():
            pointer = self._read_pointer(segment) or {"version": None, "history": [], "log": []}
            if pointer["version"] == version:
                return
            if pointer["version"] is not None:
                pointer["history"].append(
                    {"version": pointer["version"], "promoted_at": pointer["promoted_at"]}
                )
            now = _now_iso()
            pointer.update(version=version, promoted_at=now)
            pointer["log"].append({"action": "promote", "version": version, "at": now})
            self._write_pointer(segment, pointer)

    def rollback(self, *, segment: str | None = None) -> str:
        """Restore the previous champion and return its version.

        Raises:
            RegistryError: there is no previous champion.
        """
        with self._lock():
            pointer = self._read_pointer(segment)
            if pointer is None or not pointer["history"]:
                raise RegistryError(
                    f"no previous champion to roll back to in {self._pointer_path(segment)}"
                )
            previous = pointer["history"].pop()
            now = _now_iso()
            pointer["log"].append(
                {
                    "action": "rollback",
                    "version": previous["version"],
                    "from": pointer["version"],
                    "at": now,
                }
            )
            pointer.update(version=previous["version"], promoted_at=now)
            self._write_pointer(segment, pointer)
            return str(previous["version"])

    def champion_history(self, *, segment: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every promote and rollback of ``segment``, oldest first."""
        pointer = self._read_pointer(segment)
        return list(pointer["log"]) if pointer is not None else []

    # --- helpers ----------------------------------------------------------------------------

    def _version_dir(self, version: str) -> Path:
        if not _VERSION_RE.match(version):
            raise ModelNotFoundError(
                f"{version!r} is not a model version (expected e.g. 20261126T231500Z-ab12cd)"
            )
        path = self.root / version
        if not (path / MANIFEST_FILE).is_file():
            raise ModelNotFoundError(f"no model version {version!r} in {self.root}")
        return path

    def _pointer_path(self, segment: str | None) -> Path:
        if segment is None:
            return self.root / "champion.json"
        if not _SEGMENT_RE.match(segment):
            raise ValueError(f"segment must match {_SEGMENT_RE.pattern}, got {segment!r}")
        return self.root / f"champion.{segment}.json"

    def _read_pointer(self, segment: str | None) -> dict[str, Any] | None:
        path = self._pointer_path(segment)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{path}: champion pointer is not valid JSON: {exc}") from exc
        return data

    def _write_pointer(self, segment: str | None, pointer: dict[str, Any]) -> None:
        path = self._pointer_path(segment)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        _write_text(tmp, json.dumps(pointer, indent=2))
        os.replace(tmp, path)  # atomic: readers see the old or the new pointer
        _fsync(self.root)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _verify_files(self, directory: Path, manifest: Manifest) -> None:
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
            _verify_file(directory / name, digest)

    def _load_pipeline(self, directory: Path, manifest: Manifest) -> FeaturePipeline | None:
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
            raise UntrustedModelError(
                f"{path}: differs from the pipeline recorded in {MANIFEST_FILE}"
            )
        try:
            return FeaturePipeline.from_dict(data)
        except (TableError, TypeError, AttributeError) as exc:
            raise RegistryError(f"{path}: not a usable feature pipeline: {exc}") from exc


# --- module helpers ------------------------------------------------------------------------------


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


def _check_features(manifest: Manifest) -> None:
    """Refuse a ``lead_events`` manifest whose features are not the running code's."""
    problems = []
    if manifest.feature_spec_version != FEATURE_SPEC_VERSION:
        problems.append(
            f"feature_spec_version: model {manifest.feature_spec_version}, "
            f"code {FEATURE_SPEC_VERSION}"
        )
    difference = _name_difference(manifest.feature_names, FEATURE_NAMES, "the model", "the code")
    if difference:
        problems.append(difference)
    if problems:
        raise FeatureMismatchError(
            f"model {manifest.version} was built for another feature definition: "
            + "; ".join(problems)
            + ". Retrain it on the current features (or load with check_features=False to inspect)."
        )


def _name_difference(
    first: Sequence[str], second: Sequence[str], first_label: str, second_label: str
) -> str:
    """What differs between two lists of feature names, in words; ``""`` when equal.

    Examples:
        >>> _name_difference(["a", "b"], ["b", "a"], "model", "code")
        "same features in another order (first difference at column 0: model 'a', code 'b')"
        >>> _name_difference(["a", "b"], ["a", "c"], "model", "code")
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


def _verify_file(path: Path, expected_sha256: str) -> None:
    if not path.is_file():
        raise UntrustedModelError(f"{path}: listed in the manifest but missing")
    if _sha256(path) != expected_sha256:
        raise UntrustedModelError(
            f"{path}: checksum does not match its manifest; the file was changed or truncated "
            "after saving"
        )


def _pipeline_dict(pipeline: FeaturePipeline) -> dict[str, Any]:
    """The pipeline as plain JSON values, checked to rebuild the same pipeline."""
    try:
        data: dict[str, Any] = json.loads(json.dumps(pipeline.to_dict(), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the pipeline does not serialize to plain JSON: {exc}") from exc
    if FeaturePipeline.from_dict(data).feature_names != pipeline.feature_names:
        raise ValueError("the pipeline does not rebuild with the same features from its JSON")
    return data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    """Versions of what wrote the artifact (for reading old manifests)."""
    versions = {}
    for name in ("leadscore", "numpy"):
        try:
            versions[name] = _dist_version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's entries to disk (a rename is durable once its dir is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
