"""Wall time of one retrain (:func:`leadscore.jobs.retrain.retrain_job`) at realistic sizes.

Run: ``.venv/bin/python benchmarks/retrain_time.py`` (about 2 minutes on 2 cores;
``--sizes 2000,8000``, ``--folds 3``).

Setup: simulated traffic (shift half-way) goes through the worker's batch logic offline
(:func:`~leadscore.models.batch.replay.replay`, scored by the rules prior), which gives the
``leads.training.v1`` examples the worker would publish; the latest N of them are the
retrain's input (passed in, so reading the topic is not timed). The registry is empty,
so the champion is the rules prior; ``retrain_margin=1`` makes the gate reject, so no
promotion is announced and no broker is needed (a promotion adds one pointer write and
one Kafka send). All figures are wall seconds, in the same run, per size:

- ``quick`` / ``none``: ``decision["seconds"]`` (the whole job: time-ordered CV of the
  ensemble, the search, the final fit, holdout scoring of both models, registry save)
  and ``decision["train_seconds"]`` (:func:`~leadscore.models.training.train.train` alone),
  with ``retrain_search`` quick and none;
- ``plain fit``: one ``LeadScoringEnsemble().fit`` of the same members (RandomForest,
  GradientBoosting, LogisticRegression) with default parameters on the same training
  rows: no CV, no search, no report; the floor a retrain cannot go below.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine

from leadscore.infra.scorer import load_scorer
from leadscore.jobs.retrain import retrain_job
from leadscore.models.batch.replay import replay
from leadscore.models.training.ensemble import LeadScoringEnsemble
from leadscore.schemas.learning import TrainingExample
from leadscore.settings import Settings
from leadscore.simulation.config import Shift, SimConfig
from leadscore.simulation.simulator import simulate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def examples(n_wanted: int, seed: int) -> list[TrainingExample]:
    """At least ``n_wanted`` examples (about one per 2.6 simulated leads over 180 days), by outcome time."""
    span_days = 180.0
    config = SimConfig(
        n_leads=int(n_wanted * 3), span_days=span_days, seed=seed, start=T0, max_life_days=30,
        shift=Shift(at=T0 + timedelta(days=span_days / 2)),
    )  # fmt: skip
    scorer = load_scorer(Settings(model_dir=Path(tempfile.mkdtemp())))
    out = [e for batch in replay(simulate(config), scorer) for e in batch.examples]
    if len(out) < n_wanted:
        raise SystemExit(f"the simulation gave {len(out)} examples, fewer than {n_wanted}")
    return sorted(out, key=lambda e: (e.outcome_time, e.id))


def retrain(rows: list[TrainingExample], folds: int, search: str) -> dict[str, Any]:
    settings = Settings(
        model_dir=Path(tempfile.mkdtemp()), retrain_folds=folds, retrain_search=search,
        retrain_margin=1.0, retrain_max_examples=len(rows), min_training_labels=0,
        retrain_training_set="outcomes",
    )  # fmt: skip
    return retrain_job(
        settings,
        trigger="benchmark",
        examples=rows,
        publish=False,
        console=Console(file=io.StringIO()),
    )


def plain_fit_s(rows: list[TrainingExample], holdout_fraction: float) -> float:
    cut = int(round(len(rows) * (1 - holdout_fraction)))
    X = np.array([e.features for e in rows[:cut]])
    y = np.array([e.label for e in rows[:cut]])
    with threadpool_limits(limits=1):  # as train() does
        started = time.perf_counter()
        LeadScoringEnsemble(random_state=0).fit(X, y)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="2000,8000", help="examples per retrain, comma-separated"
    )
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the rules prior's cold-start warning, once per load
    sizes = [int(s) for s in args.sizes.split(",")]
    print(machine())
    started = time.perf_counter()
    pool = examples(max(sizes), args.seed)
    print(f"{len(pool):,} examples simulated and replayed in {time.perf_counter() - started:.0f} s")
    holdout = Settings().retrain_holdout_fraction
    print(f"folds {args.folds}, holdout {holdout:.0%}; wall seconds (job total / train() alone)")
    print(f"{'examples':>9} {'positives':>9} {'quick total':>12} {'quick train':>12} "
          f"{'none total':>11} {'none train':>11} {'plain fit':>10}")  # fmt: skip
    for n in sizes:
        rows = pool[-n:]
        quick = retrain(rows, args.folds, "quick")
        none = retrain(rows, args.folds, "none")
        plain = plain_fit_s(rows, holdout)
        print(
            f"{n:>9,} {quick['examples']['positives']:>9,} {quick['seconds']:>12.1f} {quick['train_seconds']:>12.1f} "
            f"{none['seconds']:>11.1f} {none['train_seconds']:>11.1f} {plain:>10.1f}"
        )


if __name__ == "__main__":
    main()
