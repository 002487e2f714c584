"""`leadscore train`: train from lead events or a CRM table.

Each job takes :class:`~leadscore.settings.Settings` and plain arguments, so the CLI, the
demo and tests call the same code. Training runs in this process (it is a CLI job, not
the worker); the worker and the API only ever load what it saved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from leadscore.jobs.training_examples import load_examples
from leadscore.models.features.vector import FEATURE_NAMES
from leadscore.models.privacy.minimise import parse_keep
from leadscore.models.registry.manifest import Manifest
from leadscore.models.registry.store import TABLE_SEGMENT, ModelRegistry
from leadscore.models.tabular.pipeline import FeaturePipeline, TableError
from leadscore.models.tabular.tables import (
    LEAK_AUC_WARNING,
    detect_time_column,
    load_table,
    parse_target,
    single_column_auc,
)
from leadscore.models.training.candidates import TrainConfig
from leadscore.models.training.dataset import build_training_set
from leadscore.models.training.folds import TrainingData
from leadscore.models.training.report import write_json
from leadscore.models.training.report_render import render
from leadscore.models.training.train import train
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.files import read_jsonl
from leadscore.simulation.simulator import Simulator

__all__ = ["TableSpec", "TrainOutcome", "train_job"]

#: Days of simulated history to train on: enough that most snapshots have a full
#: conversion horizon after them.
TRAIN_SPAN_DAYS = 120.0
#: Rows of the drift reference sample saved with a model.
REFERENCE_ROWS = 500


@dataclass(frozen=True)
class TableSpec:
    """How to read a CRM table for training.

    Attributes:
        path: CSV/TSV (optionally gzipped) or Parquet file.
        target: the label column.
        positive: the label value meaning "converted" when it cannot be inferred.
        id_column: a column identifying the lead (never a feature; rows of one id stay in
            one fold).
        drop: columns to leave out (e.g. ones only known after the outcome).
        time_column: a date column: time-ordered validation; auto-detected when ``None``.
        rows_in_time_order: the file's rows are in time order (no date column needed).
        categorical: columns to treat as categories even if they look numeric.
        numeric: columns to treat as numbers even if inference says otherwise.
    """

    path: Path
    target: str
    positive: str | None = None
    id_column: str | None = None
    drop: tuple[str, ...] = ()
    time_column: str | None = None
    rows_in_time_order: bool = False
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainOutcome:
    """What :func:`train_job` produced."""

    version: str
    manifest: Manifest
    report: dict[str, Any]
    promoted: bool


def train_job(
    settings: Settings,
    *,
    table: TableSpec | None = None,
    events: Path | None = None,
    training_topic: bool = False,
    leads: int = 4000,
    horizon_days: float = 30.0,
    seed: int = 0,
    folds: int = 5,
    search: str = "quick",
    variant: str | None = None,
    compare: Sequence[str] | None = None,
    report_path: Path | None = None,
    promote: bool = True,
    console: Console | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> TrainOutcome:
    """Train, compare and save a model; print the report.

    Args:
        settings: the registry (``model_dir``) and the default variant (``model_variant``).
        table: train on a CRM table; otherwise on lead events (``events``, or simulated).
        events: a JSON-lines file of lead CloudEvents to build the point-in-time set from.
        training_topic: train on the labelled examples of ``settings.training_topic``
            (one per lead's first outcome; docs/drift.md), validated in outcome-time order.
        leads: simulated leads when neither ``table`` nor ``events`` is given.
        horizon_days: an event snapshot is positive if the lead converts within this.
        seed: seeds everything random.
        folds: outer cross-validation folds.
        search: ``"quick"`` hyperparameter search per member, or ``"none"``.
        variant: ``"auto"`` or a variant name; ``None`` takes ``settings.model_variant``.
        compare: the candidates to compare (default: every variant and baseline).
        report_path: also write the report as JSON here.
        promote: make the new model the champion (table models: of segment ``table``).
        on_progress: also told ``(stage, done, total)`` as training goes (API jobs).

    Raises:
        TableError: the table cannot be used (the message says why).
        InsufficientDataError: too few labels for honest validation.
        ValueError: an invalid event record, or a bad option.
    """
    console = console or Console(stderr=True)
    if table is not None:
        data, pipeline, columns, warnings, window = _table_data(table, console)
        kind, segment = "table", TABLE_SEGMENT
    elif training_topic:
        data, window = _topic_data(settings, console)
        pipeline, columns, warnings = None, [], []
        kind, segment = "lead_events", None
    else:
        keep = parse_keep(settings.url_keep_params)
        data, window = _event_data(events, leads, horizon_days, seed, console, keep)
        pipeline, columns, warnings = None, [], []
        kind, segment = "lead_events", None
    config = TrainConfig(
        folds=folds, search=search, variant=variant or settings.model_variant, seed=seed
    )
    if compare:
        config = dataclasses.replace(config, compare=tuple(compare))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("training", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)
            if on_progress is not None:
                on_progress(stage, done, total)

        result = train(data, config, progress=progress)

    report = result.report
    report["columns"] = columns
    report["warnings"] = warnings + report.get("warnings", [])
    render(report, console)
    y = np.asarray(data.y)
    rng = np.random.default_rng(seed)
    sample = data.X[np.sort(rng.choice(len(y), min(REFERENCE_ROWS, len(y)), replace=False))]
    chosen = next(m for m in report["models"] if m["name"] == result.variant)
    registry = ModelRegistry(settings.model_dir)
    manifest = registry.save(
        result.model,
        kind=kind,
        pipeline=pipeline,
        report=report,
        metrics={"variant": result.variant, "cv": chosen["cv"], "cv_scheme": report["data"]["cv"]},
        training_window=window,
        n_rows=len(y),
        class_balance=_class_balance(data),
        params=result.params,
        reference_sample=sample,
        source=data.source,
    )
    if report_path is not None:
        write_json(report, report_path)
        console.print(f"report written to [bold]{report_path}[/]")
    if promote:
        registry.promote(manifest.version, segment=segment)
    where = f" (segment {segment!r})" if segment else ""
    console.print(
        f"model [bold]{manifest.version}[/] ({result.variant}) saved to {settings.model_dir}"
        + (f" and promoted to champion{where}" if promote else "")
    )
    return TrainOutcome(manifest.version, manifest, report, promote)


def _class_balance(data: TrainingData) -> dict[str, float]:
    """Rows of each class; with groups (leads), also how many distinct groups converted."""
    y = np.asarray(data.y)
    balance = {
        "negative": float(len(y) - y.sum()),
        "positive": float(y.sum()),
        "positive_rate": float(y.mean()),
    }
    if data.groups is not None:
        balance["converted_leads"] = float(len(np.unique(np.asarray(data.groups)[y == 1])))
    return balance


def _event_data(
    events: Path | None,
    leads: int,
    horizon_days: float,
    seed: int,
    console: Console,
    url_keep_params: tuple[str, ...],
) -> tuple[TrainingData, tuple[datetime, datetime] | None]:
    if events is not None:
        console.print(f"reading events from [bold]{events}[/]")
        source: Any = read_jsonl(events)
        name = str(events)
    else:
        console.print(f"simulating {leads:,} leads over {TRAIN_SPAN_DAYS:.0f} days (seed {seed})")
        source = Simulator(SimConfig(n_leads=leads, span_days=TRAIN_SPAN_DAYS, seed=seed)).events()
        name = f"simulated: {leads} leads, seed {seed}"
    ts = build_training_set(
        source, horizon_days=horizon_days, seed=seed, url_keep_params=url_keep_params
    )
    console.print(
        f"training set: {len(ts):,} point-in-time snapshots of {len(set(ts.lead_ids)):,} leads "
        f"from {ts.n_events:,} events; positive rate {ts.class_balance['positive_rate']:.1%}"
    )
    data = TrainingData(
        X=ts.X,
        y=ts.y,
        feature_names=tuple(ts.feature_names),
        groups=ts.lead_ids,
        source=name,
    )
    return data, ts.training_window


def _topic_data(
    settings: Settings, console: Console
) -> tuple[TrainingData, tuple[datetime, datetime] | None]:

    examples, bad = load_examples(settings)
    if not examples:
        raise TableError(
            f"{settings.training_topic} at {settings.kafka_bootstrap} holds no usable examples "
            f"({bad} unusable): the worker writes one per lead's first outcome"
        )
    console.print(
        f"read {len(examples):,} labelled examples from [bold]{settings.training_topic}[/]"
        + (f" ({bad} unusable skipped)" if bad else "")
    )
    data = TrainingData(
        X=np.array([e.features for e in examples], dtype=np.float64),
        y=np.array([e.label for e in examples], dtype=np.int64),
        feature_names=FEATURE_NAMES,
        groups=np.array([e.lead_id for e in examples]),
        times=np.array([e.outcome_time.timestamp() for e in examples]),
        source=f"{settings.training_topic}: {len(examples)} outcomes",
    )
    return data, (examples[0].outcome_time, examples[-1].outcome_time)


def _table_data(
    spec: TableSpec, console: Console
) -> tuple[
    TrainingData, FeaturePipeline, list[dict[str, Any]], list[str], tuple[datetime, datetime] | None
]:
    df = load_table(spec.path)
    console.print(f"read [bold]{spec.path}[/]: {len(df):,} rows x {len(df.columns)} columns")
    y, positive = parse_target(df, spec.target, positive=spec.positive)
    named = [c for c in (spec.id_column, spec.time_column, *spec.drop) if c]
    missing = [c for c in named if c not in df.columns]
    if missing:
        raise TableError(
            f"{spec.path}: no column named {', '.join(map(repr, missing))}; the file has "
            f"{', '.join(map(str, df.columns))}"
        )
    candidates = df.drop(columns=[spec.target, *named])
    time_column = spec.time_column or (
        None if spec.rows_in_time_order else detect_time_column(candidates)
    )
    times = None
    window = None
    if time_column is not None:
        parsed = pd.to_datetime(df[time_column], errors="coerce", utc=True, format="mixed")
        if parsed.isna().any():
            raise TableError(
                f"time column {time_column!r}: {int(parsed.isna().sum())} of {len(df)} values are "
                "not dates; fix them, or name another column with --time-column"
            )
        times = (parsed.astype("int64") // 10**9).to_numpy(dtype=np.float64)
        window = (parsed.min().to_pydatetime(), parsed.max().to_pydatetime())
        console.print(f"time column {time_column!r}: validation is time-ordered")
    elif spec.rows_in_time_order:
        times = np.arange(len(df), dtype=np.float64)
        console.print("rows are in time order: validation is time-ordered")
    exclude = [spec.target, *named, *([time_column] if time_column else [])]
    pipeline = FeaturePipeline.fit(
        df, y=y, exclude=exclude, categorical=spec.categorical, numeric=spec.numeric
    )
    X = pipeline.transform(df)
    warnings: list[str] = []
    aucs = single_column_auc(df, y, list(pipeline.input_columns))
    for column, auc in sorted(aucs.items(), key=lambda kv: -kv[1]):
        if auc >= LEAK_AUC_WARNING:
            warnings.append(
                f"column {column!r} alone predicts {spec.target!r} with ROC-AUC {auc:.3f}: if it is "
                f"only known after the outcome, the model will not work live; leave it out with "
                f"--drop {column}"
            )
    groups = None
    if spec.id_column is not None:
        groups = df[spec.id_column].astype(str).to_numpy()
        if len(np.unique(groups)) == len(groups):
            groups = None  # one row per id: grouping changes nothing
    console.print(
        f"target {spec.target!r}: positive = {positive!r}, {int(y.sum()):,} of {len(y):,} rows "
        f"({y.mean():.1%}); {pipeline.n_features} features from {len(pipeline.input_columns)} columns"
    )
    data = TrainingData(
        X=X,
        y=y.astype(np.int64),
        feature_names=pipeline.feature_names,
        groups=groups,
        times=times,
        source=str(spec.path),
    )
    return data, pipeline, pipeline.columns_report(), warnings, window
