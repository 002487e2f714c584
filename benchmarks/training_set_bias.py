"""Which training set ranks leads the way the stream uses the model: outcomes or snapshots.

Simulated leads (``--leads`` over ``--span`` days, seed 1) go through the worker's batch
logic offline (``leadscore.models.batch.replay``, the rules prior scoring): that gives the
``leads.training.v1`` examples (each lead's vector just before its outcome) and the
``leads.features.v1`` samples (every scored vector). A retrain runs on each training set
(``retrain_job`` with ``retrain_training_set`` = outcomes / snapshots; margin 1 so nothing
is promoted). Each candidate, and the rules prior as the baseline, is then scored on
another seed's leads, two ways:

- mid-life snapshots with a 30-day horizon (``build_training_set``, what
  ``leadscore train --events`` learns from): how the stream uses the model;
- the vectors just before each outcome.

    .venv/bin/python benchmarks/training_set_bias.py
"""

from __future__ import annotations

import argparse
import io
import tempfile
from datetime import UTC, datetime

import numpy as np
from rich.console import Console
from sklearn.metrics import roc_auc_score

from leadscore.infra.scorer import load_scorer
from leadscore.jobs.retrain import retrain_job
from leadscore.models.batch.replay import replay
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.training.dataset import build_training_set
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

START = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=6000)
    parser.add_argument("--span", type=float, default=120.0)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--search", default="none")
    args = parser.parse_args()
    rules = load_scorer(Settings(model_dir=tempfile.mkdtemp()))

    def config(seed: int) -> SimConfig:
        return SimConfig(n_leads=args.leads, span_days=args.span, seed=seed, start=START)

    examples, samples = [], []
    for batch in replay(Simulator(config(1)).events(), rules):
        examples += batch.examples
        samples += batch.samples
    test = build_training_set(Simulator(config(2)).events(), horizon_days=30, seed=2)
    test_examples = [e for b in replay(Simulator(config(2)).events(), rules) for e in b.examples]
    Xo = np.array([e.features for e in test_examples])
    yo = np.array([e.label for e in test_examples])
    print(f"seed 1: {len(examples):,} outcomes, {len(samples):,} scored vectors; "
          f"seed 2: {len(test.y):,} mid-life snapshots, {len(yo):,} outcomes")  # fmt: skip
    print(
        f"{'model':<34} {'mid-life ROC-AUC':>17} {'before-outcome ROC-AUC':>23} {'retrain s':>10}"
    )
    for mode in ("outcomes", "snapshots"):
        registry_dir = tempfile.mkdtemp()
        settings = Settings(
            model_dir=registry_dir, retrain_training_set=mode, retrain_margin=1.0,
            retrain_folds=args.folds, retrain_search=args.search, model_variant="ensemble",
        )  # fmt: skip
        record = retrain_job(settings, examples=examples, samples=samples, publish=False,
                             console=Console(file=io.StringIO()))  # fmt: skip
        model = ModelRegistry(registry_dir).load(record["candidate"]).model
        mid = roc_auc_score(test.y, model.predict_proba(test.X)[:, 1])
        before = roc_auc_score(yo, model.predict_proba(Xo)[:, 1])
        print(
            f"{'retrained on ' + mode:<34} {mid:>17.3f} {before:>23.3f} {record['seconds']:>10.1f}"
        )
    mid = roc_auc_score(test.y, rules.probabilities(test.X))
    before = roc_auc_score(yo, rules.probabilities(Xo))
    print(f"{'rules prior (baseline)':<34} {mid:>17.3f} {before:>23.3f} {'-':>10}")


if __name__ == "__main__":
    main()
