"""What both benchmark scripts share: the model they measure."""

from __future__ import annotations

import sys
from pathlib import Path

from leadscore.models.registry import ModelRegistry
from leadscore.settings import Settings


def ensure_model(model_dir: Path) -> str:
    """The champion's version in ``model_dir``, training a small model there first if none."""
    registry = ModelRegistry(model_dir)
    version = registry.champion() or registry.latest()
    if version is None:
        from leadscore.jobs import train_job

        print(f"no model in {model_dir}: training one (1,500 leads, 2 folds, ~20 s)", file=sys.stderr)
        version = train_job(Settings(model_dir=model_dir), leads=1500, cv_folds=2).version
    return version
