"""Trained model registries, trained once and copied to every test that asks for the same one.

Several modules start workers on a small model trained by :func:`train_job` with the same
arguments (~5-10 s of CPU each). :class:`ModelCache` trains each distinct one once, into a
directory shared by the pytest-xdist workers of the run (a file lock makes the others wait
rather than train it too) and, when pytest's cache is on, kept in ``.pytest_cache`` for
later runs. Every caller gets its own copy of the registry, so a test that trains, promotes
or rolls back models changes only its copy.

The key is a hash of the training arguments, the settings training reads, the source of the
imported ``leadscore`` package, and the versions of Python and the libraries training uses:
change any of them and the model is trained again. ``pytest --cache-clear`` empties the
cache; ``-p no:cacheprovider`` keeps it to the run.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import leadscore
from leadscore.jobs.train import train_job
from leadscore.settings import Settings

#: Distributions whose version can change what training produces.
_LIBRARIES = ("numpy", "scipy", "scikit-learn", "lightgbm", "numba", "pandas", "pyarrow")
_MANIFEST = "model-cache.json"


@functools.cache
def source_digest() -> str:
    """A hash of every file of the imported ``leadscore`` package (caches excluded)."""
    root = Path(leadscore.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".nbi", ".nbc"):
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    versions = {"python": sys.version}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


class ModelCache:
    """Registries trained by :func:`train_job`, by their arguments, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def key(self, settings: Settings, train_args: dict[str, Any]) -> str:
        what = {
            "train_args": train_args,
            "settings": settings.model_dump(mode="json", exclude={"model_dir"}),
            "source": source_digest(),
            "versions": _versions(),
        }
        text = json.dumps(what, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def registry(self, dest: Path, **train_args: Any) -> str:
        """Copy the registry ``train_job(Settings(model_dir=...), **train_args)`` makes to ``dest``.

        ``dest`` may exist (empty). Returns the version of the trained model.
        """
        settings = Settings(model_dir=dest)
        key = self.key(settings, train_args)
        built = self.root / key
        with (self.root / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another xdist worker may be training it
            if not (built / _MANIFEST).exists():
                for stale in self.root.glob(f"{key}.staging-*"):  # from an interrupted run
                    shutil.rmtree(stale, ignore_errors=True)
                staging = self.root / f"{key}.staging-{os.getpid()}"
                result = train_job(settings.model_copy(update={"model_dir": staging}), **train_args)
                manifest = {"version": result.version, "train_args": repr(train_args)}
                (staging / _MANIFEST).write_text(json.dumps(manifest))
                shutil.rmtree(built, ignore_errors=True)
                staging.rename(built)
        version: str = json.loads((built / _MANIFEST).read_text())["version"]
        shutil.copytree(built, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(_MANIFEST))
        return version
