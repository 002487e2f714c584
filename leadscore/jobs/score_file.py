"""`leadscore score`: score every row of a CRM table with a table model, write a CSV.

Like the training jobs, it takes :class:`~leadscore.settings.Settings` and plain arguments,
so the CLI and the API's jobs call the same code.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from leadscore.models.registry.store import TABLE_SEGMENT, ModelRegistry
from leadscore.models.scoring.scorer import Scorer, ScoringPolicy, to_score
from leadscore.models.tabular.pipeline import TableError
from leadscore.models.tabular.tables import load_table
from leadscore.settings import Settings

__all__ = ["score_file_job"]


def score_file_job(
    settings: Settings,
    path: Path,
    out: Path,
    *,
    version: str | None = None,
    id_column: str | None = None,
    reasons: int = 3,
    console: Console | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> int:
    """Score every row of a CRM table with a table model; write a CSV. Returns rows scored.

    The output has the id column (when given), ``score``, ``grade``, ``probability`` and
    ``reason_1..k`` (words with their points), in the input's row order.
    """
    console = console or Console(stderr=True)
    registry = ModelRegistry(settings.model_dir)
    version = version or registry.champion(segment=TABLE_SEGMENT)
    if version is None:
        raise TableError(
            f"no table model in {settings.model_dir}: train one with "
            "`leadscore train --data FILE --target COLUMN`"
        )
    loaded = registry.load(version)
    if loaded.pipeline is None:
        raise TableError(
            f"model {version} scores lead events, not table rows; pass --model with a version "
            "trained by `leadscore train --data`"
        )
    df = load_table(path)
    absent = loaded.pipeline.absent_columns(list(df.columns))
    if absent:
        console.print(
            f"[yellow]warning:[/] {path} lacks {len(absent)} column(s) the model was trained on "
            f"({', '.join(absent[:8])}{'…' if len(absent) > 8 else ''}); they are scored as missing"
        )
    X = loaded.pipeline.transform(df)
    policy = ScoringPolicy(
        grade_thresholds=settings.grade_thresholds, change_threshold=0, top_reasons=reasons
    )
    # A file is a big batch: let the engine use every core (the stream worker keeps one).
    model = dataclasses.replace(loaded.model, n_threads=os.cpu_count() or 1)
    scorer = Scorer(model, version, policy, describe=loaded.pipeline.describe, families=None)
    words: list[list[str]] = [[] for _ in range(reasons)]
    if reasons:
        # The explanation gives the probability too: one engine pass per chunk, not two.
        parts = []
        for start in range(0, len(X), 4096):
            explanations = scorer.explain(X[start : start + 4096])
            if on_progress is not None:
                on_progress("scoring", min(start + 4096, len(X)), len(X))
            parts.append(np.array([e.probability for e in explanations]))
            for explanation in explanations:
                for k in range(reasons):
                    r = explanation.reasons[k] if k < len(explanation.reasons) else None
                    words[k].append(f"{r['contribution']:+.1f}: {r['label']}" if r else "")
        probability = np.concatenate(parts) if parts else np.zeros(0)
    else:
        probability = scorer.probabilities(X)
    scores = [to_score(float(p)) for p in probability]
    result = pd.DataFrame(
        {
            **({id_column: df[id_column].to_numpy()} if id_column else {}),
            "score": scores,
            "grade": [policy.grade(s) for s in scores],
            "probability": np.round(probability, 6),
        }
    )
    for k in range(reasons):
        result[f"reason_{k + 1}"] = words[k]
    result.to_csv(out, index=False)
    console.print(
        f"scored {len(result):,} rows of {path} with model {version}; wrote [bold]{out}[/] "
        f"({datetime.now(UTC):%H:%M:%S} UTC)"
    )
    return len(result)
