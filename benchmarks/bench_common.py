"""What both benchmark scripts share: the machine they report and the model they measure."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.store import ModelRegistry
from leadscore.settings import Settings


def machine() -> dict[str, Any]:
    """Cores, CPU model and load: the context every figure needs."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg_1m_at_start": round(load[0], 2),
    }


def ensure_model(model_dir: Path) -> str:
    """The champion's version in ``model_dir``, training a small model there first if none.

    A champion this leadscore cannot load (e.g. saved by an older version) is replaced.
    """
    registry = ModelRegistry(model_dir)
    version = registry.champion() or registry.latest()
    if version is not None:
        try:
            registry.load(version)
            return version
        except RegistryError as exc:
            print(f"model {version} cannot be loaded ({exc}); training a new one", file=sys.stderr)
    from leadscore.jobs.train import train_job

    print(
        f"no usable model in {model_dir}: training one (1,500 leads, 2 folds, ~20 s)",
        file=sys.stderr,
    )
    return train_job(
        Settings(model_dir=model_dir), leads=1500, folds=2, search="none", compare=("ensemble",)
    ).version
