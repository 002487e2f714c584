"""Versioned model artifacts on disk: save, list, load safely, and a champion pointer.

Layout under ``root``::

    root/
      20261126T231500Z-ab12cd/   one version: written in a hidden temp dir, then renamed
        model.skops              the fitted model (skops: loading runs no pickled code)
        manifest.json            what it is, how it was trained, a drift reference sample
      champion.json              the champion pointer and its history (per segment:
      champion.<segment>.json    one file each)

A version directory appears in one ``rename``, so a reader never sees half a model.
Loading refuses any type outside :data:`TRUSTED_TYPES` and any model built for another
feature definition, saying exactly what differs.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from leadscore.models.ensemble import LeadScoringEnsemble
from leadscore.models.features import FEATURE_NAMES, FEATURE_SPEC_VERSION

__all__ = [
    "FeatureMismatchError",
    "LoadedModel",
    "Manifest",
    "ModelNotFoundError",
    "ModelRegistry",
    "RegistryError",
    "TRUSTED_TYPES",
    "TrainingWindow",
    "UntrustedModelError",
]

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
#: Most rows a manifest's reference sample may hold (it is read by every drift check).
MAX_REFERENCE_ROWS = 5_000
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Every type a model file may contain. Anything else is refused before it is built.
#: These are exactly the types our ensemble is made of (checked by a test); a new
#: scikit-learn that adds an internal type makes *saving* fail first, at training time.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # ours
        "leadscore.models.ensemble.LeadScoringEnsemble",
        "leadscore.models.ensemble.signed_log1p",
        # scikit-learn members and their parts
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree",
        "sklearn.dummy.DummyClassifier",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.Interval",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        # numpy and plain containers (no scipy type is needed)
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        "numpy.bool_",
        "numpy.random.mtrand.RandomState",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.NoneType",
    }
)


# --- errors ------------------------------------------------------------------------------------


class RegistryError(Exception):
    """A registry operation failed."""


class ModelNotFoundError(RegistryError, LookupError):
    """No such version (or no version at all)."""


class UntrustedModelError(RegistryError, ValueError):
    """A model file holds types outside the allow-list, or is not a readable skops file."""


class FeatureMismatchError(RegistryError, ValueError):
    """The model was trained on another feature definition than the running code's."""


# --- manifest ----------------------------------------------------------------------------------


class TrainingWindow(BaseModel):
    """Event-time span of the training data (UTC)."""

    model_config = ConfigDict(frozen=True)

    start: AwareDatetime
    end: AwareDatetime


class Manifest(BaseModel):
    """Everything known about one model version, stored as ``manifest.json`` beside it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str
    created_at: AwareDatetime
    model_class: str
    feature_spec_version: int
    feature_names: list[str]
    training_window: TrainingWindow | None
    n_rows: int
    class_balance: dict[str, float]
    metrics: dict[str, Any]
    params: dict[str, Any]
    reference_sample: list[list[float]]
    model_sha256: str
    library_versions: dict[str, str]

    def reference_matrix(self) -> np.ndarray:
        """The reference sample as an array of shape (rows, n_features), for drift checks."""
        return np.asarray(self.reference_sample, dtype=np.float64).reshape(
            -1, len(self.feature_names)
        )


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score, with its version and manifest."""

    version: str
    model: LeadScoringEnsemble
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
        model: LeadScoringEnsemble,
        *,
        metrics: Mapping[str, Any],
        training_window: tuple[datetime, datetime] | None,
        n_rows: int,
        class_balance: Mapping[str, float],
        params: Mapping[str, Any] | None,
        reference_sample: np.ndarray,
    ) -> Manifest:
        """Write a new version atomically and return its manifest.

        Args:
            model: a fitted model over the current :data:`FEATURE_NAMES`.
            metrics: evaluation results (e.g. from :func:`train_model`); must be JSON-able
                after numpy scalars are turned into numbers.
            training_window: event-time (start, end) of the training data, timezone-aware.
            n_rows: training rows.
            class_balance: e.g. ``{"negative": 900, "positive": 100, "positive_rate": 0.1}``.
            params: hyperparameters; ``None`` stores ``model.get_params()``.
            reference_sample: feature vectors, shape (rows <= MAX_REFERENCE_ROWS, n_features),
                the reference distribution for drift detection.

        Raises:
            ValueError: the model or the sample does not match the feature definition, or the
                model holds a type that :meth:`load` would refuse.
        """
        n_features = getattr(model, "n_features_in_", None)
        if n_features != len(FEATURE_NAMES):
            raise ValueError(
                f"model must be fitted on the {len(FEATURE_NAMES)} features of FEATURE_NAMES "
                f"(spec v{FEATURE_SPEC_VERSION}); it has n_features_in_={n_features}"
            )
        sample = np.asarray(reference_sample, dtype=np.float64)
        if sample.ndim != 2 or sample.shape[1] != len(FEATURE_NAMES):
            raise ValueError(
                f"reference_sample must have shape (rows, {len(FEATURE_NAMES)}), got {sample.shape}"
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

        created_at = datetime.now(timezone.utc)
        for _ in range(10):
            version = f"{created_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
            if not (self.root / version).exists():
                break
        tmp = self.root / f".tmp-{version}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            model_path = tmp / MODEL_FILE
            sio.dump(model, model_path)
            _check_types(model_path)  # never write what load would refuse
            manifest = Manifest(
                version=version,
                created_at=created_at,
                model_class=f"{type(model).__module__}.{type(model).__qualname__}",
                feature_spec_version=FEATURE_SPEC_VERSION,
                feature_names=list(FEATURE_NAMES),
                training_window=(
                    TrainingWindow(start=training_window[0], end=training_window[1])
                    if training_window is not None
                    else None
                ),
                n_rows=int(n_rows),
                class_balance=_jsonable(dict(class_balance)),
                metrics=_jsonable(dict(metrics)),
                params=_jsonable(dict(params) if params is not None else model.get_params()),
                reference_sample=sample.tolist(),
                model_sha256=_sha256(model_path),
                library_versions=_library_versions(),
            )
            _write_text(tmp / MANIFEST_FILE, manifest.model_dump_json(indent=2))
            _fsync(model_path)
            os.rename(tmp, self.root / version)  # atomic: the version appears whole
            _fsync(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return manifest

    # --- reading versions -------------------------------------------------------------------

    def list(self) -> list[str]:
        """All versions, oldest first (by creation time)."""
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
            if len(group) > 1:
                group.sort(key=lambda name: (self.manifest(name).created_at, name))
            ordered.extend(group)
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
        """Load ``version`` safely.

        Args:
            version: a version from :meth:`list`.
            check_features: refuse a model built for another feature definition (leave on
                except to inspect old models).

        Raises:
            ModelNotFoundError: no such version.
            FeatureMismatchError: its feature spec differs from the running code's.
            UntrustedModelError: its file holds a type outside :data:`TRUSTED_TYPES`, or it
                does not match the checksum in its manifest.
        """
        manifest = self.manifest(version)
        if check_features:
            _check_features(manifest)
        model_path = self._version_dir(version) / MODEL_FILE
        if _sha256(model_path) != manifest.model_sha256:
            raise UntrustedModelError(
                f"{model_path}: checksum does not match its manifest; the file was changed "
                "or truncated after saving"
            )
        trusted = _check_types(model_path)
        model = sio.load(model_path, trusted=trusted)
        if not isinstance(model, LeadScoringEnsemble):
            raise UntrustedModelError(
                f"{model_path}: expected a LeadScoringEnsemble, got {type(model).__name__}"
            )
        return LoadedModel(version=version, model=model, manifest=manifest)

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


# --- module helpers ------------------------------------------------------------------------------


def _check_features(manifest: Manifest) -> None:
    problems = []
    if manifest.feature_spec_version != FEATURE_SPEC_VERSION:
        problems.append(
            f"feature_spec_version: model {manifest.feature_spec_version}, "
            f"code {FEATURE_SPEC_VERSION}"
        )
    theirs, ours = list(manifest.feature_names), list(FEATURE_NAMES)
    if theirs != ours:
        missing = [n for n in ours if n not in theirs]
        extra = [n for n in theirs if n not in ours]
        if missing:
            problems.append(f"features the model lacks: {missing}")
        if extra:
            problems.append(f"features the code no longer has: {extra}")
        if not missing and not extra:
            first = next(i for i, (a, b) in enumerate(zip(theirs, ours, strict=True)) if a != b)
            problems.append(
                f"same features in another order (first difference at column {first}: "
                f"model {theirs[first]!r}, code {ours[first]!r})"
            )
    if problems:
        raise FeatureMismatchError(
            f"model {manifest.version} was built for another feature definition: "
            + "; ".join(problems)
            + ". Retrain it on the current features (or load with check_features=False to inspect)."
        )


def _check_types(model_path: Path) -> list[str]:
    """Refuse ``model_path`` unless every type in it is in :data:`TRUSTED_TYPES`.

    Two independent checks: every type named anywhere in the file's schema, and every
    type skops itself would not trust by default. Returns the latter, to pass to
    ``skops.io.load(trusted=...)``.
    """
    try:
        with zipfile.ZipFile(model_path) as archive:
            schema = json.loads(archive.read("schema.json"))
        untrusted_by_skops = sio.get_untrusted_types(file=model_path)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise UntrustedModelError(f"{model_path}: not a readable skops file: {exc}") from exc
    named = set(_types_in_schema(schema)) | set(untrusted_by_skops)
    refused = sorted(named - TRUSTED_TYPES)
    if refused:
        raise UntrustedModelError(
            f"{model_path}: refusing to load types outside the allow-list: {refused}. "
            "If a new scikit-learn version needs them, review them and add them to "
            "leadscore.models.registry.TRUSTED_TYPES."
        )
    return list(untrusted_by_skops)


def _types_in_schema(node: Any) -> Iterator[str]:
    """Every ``module.class`` named by a node of a skops schema, recursively."""
    if isinstance(node, dict):
        if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
            yield f"{node['__module__']}.{node['__class__']}"
        for value in node.values():
            yield from _types_in_schema(value)
    elif isinstance(node, list):
        for value in node:
            yield from _types_in_schema(value)


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays to numbers/lists, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    """Versions of the libraries the artifact depends on (for reading old manifests)."""
    return {name: _dist_version(name) for name in ("numpy", "scikit-learn", "shap", "skops")}


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


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
