"""Versioned model artifacts on disk: save, list, load safely, and a champion pointer.

Each version is one directory under ``root``, beside the champion pointers (the layout:
:mod:`leadscore.models.registry.files`). A version directory appears in one ``rename``,
so a reader never sees half a model. Loading runs no code from the files and needs no scikit-learn; it refuses a file whose
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
import json
import logging
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from leadscore.models.engine.compiled import ARRAYS_FILE, CompiledModel
from leadscore.models.features.vector import FEATURE_SPEC_VERSION
from leadscore.models.registry.champion import ChampionPointers
from leadscore.models.registry.checks import (
    check_lead_features,
    checked_inputs,
    load_pipeline,
    name_difference,
    verify_file,
    verify_files,
)
from leadscore.models.registry.errors import (
    ModelNotFoundError,
    OutdatedModelError,
    RegistryError,
    UntrustedModelError,
)
from leadscore.models.registry.files import (
    MANIFEST_FILE,
    OLD_MODEL_FILE,
    PIPELINE_FILE,
    REPORT_FILE,
    fsync,
    sha256,
    write_text,
)
from leadscore.models.registry.manifest import Manifest, TrainingWindow
from leadscore.models.tabular.pipeline import FeaturePipeline
from leadscore.models.training.report import jsonable

__all__ = [
    "LoadedModel",
    "ModelRegistry",
]

log = logging.getLogger(__name__)
#: The registry segment table models are promoted in (the worker follows the default one,
#: which holds models over the stream's lead-event features).
TABLE_SEGMENT = "table"
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


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
        self._champions = ChampionPointers(self.root)

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
        names, pipeline_dict, sample = checked_inputs(
            model, kind, pipeline, reference_sample, training_window
        )
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
                write_text(tmp / PIPELINE_FILE, json.dumps(pipeline_dict, indent=2))
                written.append(tmp / PIPELINE_FILE)
            if report_json is not None:
                write_text(tmp / REPORT_FILE, json.dumps(report_json, indent=2, allow_nan=False))
                written.append(tmp / REPORT_FILE)
            for path in written:
                fsync(path)
            manifest = Manifest(
                version=version,
                created_at=created_at,
                kind=kind,  # checked above
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
                files={path.name: sha256(path) for path in sorted(written)},
                library_versions=_library_versions(),
            )
            write_text(tmp / MANIFEST_FILE, manifest.model_dump_json(indent=2))
            fsync(tmp)
            os.rename(tmp, self.root / version)  # atomic: the version appears whole
            fsync(self.root)
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
        verify_files(directory, manifest)
        if manifest.kind == "lead_events" and check_features:
            check_lead_features(manifest)
        try:
            model = CompiledModel.from_files(directory)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise RegistryError(
                f"{directory}: cannot read the model files ({type(exc).__name__}: {exc}); "
                "retrain it"
            ) from exc
        difference = name_difference(
            model.feature_names, manifest.feature_names, ARRAYS_FILE, MANIFEST_FILE
        )
        if difference:
            raise UntrustedModelError(
                f"{directory}: the model disagrees with its manifest: {difference}"
            )
        pipeline = load_pipeline(directory, manifest)
        if manifest.kind == "table" and pipeline is None:
            raise UntrustedModelError(
                f"{directory}: a table model without {PIPELINE_FILE} in its manifest's files"
            )
        if pipeline is not None:
            difference = name_difference(
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
        verify_file(path, manifest.files[REPORT_FILE])
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    # --- champion ---------------------------------------------------------------------------
    def champion(self, *, segment: str | None = None) -> str | None:
        """The champion version of ``segment`` (default segment if None).

        Falls back to the default segment's champion for a segment without one, then to
        the newest version; ``None`` only when the registry is empty.
        """
        pointer = self._champions.read(segment)
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
        self._champions.promote(version, segment)

    def rollback(self, *, segment: str | None = None) -> str:
        """Restore the previous champion and return its version.

        Raises:
            RegistryError: there is no previous champion.
        """
        return self._champions.rollback(segment)

    def champion_history(self, *, segment: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every promote and rollback of ``segment``, oldest first."""
        return self._champions.history(segment)

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


def _library_versions() -> dict[str, str]:
    """Versions of what wrote the artifact (for reading old manifests)."""
    versions = {}
    for name in ("leadscore", "numpy"):
        try:
            versions[name] = _dist_version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions
