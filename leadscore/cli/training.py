"""``leadscore train`` and ``leadscore score``: train models and batch-score files with them."""

from __future__ import annotations

from pathlib import Path

import typer

from leadscore.cli.config import load_settings


def train(
    data: Path | None = typer.Option(
        None, help="train on a CRM export (CSV, TSV or Parquet) with a target column"
    ),
    target: str | None = typer.Option(None, help="with --data: the label column"),
    positive: str | None = typer.Option(
        None, help="with --data: the target value meaning converted (when not yes/true/1)"
    ),
    id_column: str | None = typer.Option(
        None, help="with --data: the lead id column (never a feature)"
    ),
    drop: list[str] = typer.Option(
        [],
        help="with --data: a column to leave out, e.g. one only known after the outcome (repeatable)",
    ),
    categorical: list[str] = typer.Option(
        [],
        help="with --data: treat this column as categories even if it holds numbers (repeatable)",
    ),
    numeric: list[str] = typer.Option(
        [], help="with --data: treat this column as numbers, e.g. '1,155' read as 1155 (repeatable)"
    ),
    time_column: str | None = typer.Option(
        None, help="with --data: a date column; validation becomes time-ordered (auto-detected)"
    ),
    rows_in_time_order: bool = typer.Option(
        False, help="with --data: rows are in time order; validate on later rows"
    ),
    events: Path | None = typer.Option(
        None, help="train on a JSON-lines log of lead events (one CloudEvent per line)"
    ),
    training_topic: bool = typer.Option(
        False,
        "--training-topic",
        help="train on the labelled examples the worker wrote to "
        "LEADSCORE_TRAINING_TOPIC (one per lead's first outcome; docs/drift.md)",
    ),
    leads: int = typer.Option(
        4000, help="simulated leads to train on (without --data or --events)"
    ),
    horizon_days: float = typer.Option(
        30.0, help="events: a snapshot is positive if the lead converts within this"
    ),
    folds: int = typer.Option(5, help="cross-validation folds"),
    search: str = typer.Option("quick", help="hyperparameter search per member: quick or none"),
    variant: str | None = typer.Option(
        None,
        help="auto (default: LEADSCORE_MODEL_VARIANT), ensemble, ensemble_hgb, ensemble_fitted, "
        "random_forest, gradient_boosting, hist_gradient_boosting or logistic_regression",
    ),
    compare: str | None = typer.Option(
        None,
        help="comma-separated candidates to compare (default: all variants and baselines), "
        "e.g. ensemble,lgbm_default; fewer is faster",
    ),
    report: Path | None = typer.Option(None, help="also write the comparison report as JSON here"),
    seed: int = typer.Option(0, help="random seed (simulation, folds, models)"),
    promote: bool = typer.Option(True, help="make the new model the champion"),
) -> None:
    """Train and compare models on the same folds, print the report, save the chosen one.

    From a CRM table: leadscore train --data leads.csv --target converted [--report r.json].
    Every column's treatment is printed; a column that alone predicts the target is flagged.
    Table models are promoted in the registry segment 'table' (batch scoring: leadscore score).

    From lead events: --events FILE, --training-topic (the worker's labelled outcomes), or
    (none given) simulated leads (docs/simulator.md); these models score the stream and are
    promoted in the default segment.
    """
    from leadscore.jobs.train import TableSpec, train_job

    settings = load_settings()
    for name, path in (("--data", data), ("--events", events)):
        if path is not None and not path.is_file():
            typer.secho(f"{name} {path}: no such file", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
    if sum(x is not None for x in (data, events, training_topic or None)) > 1:
        typer.secho(
            "give one of --data, --events and --training-topic", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2)
    if data is not None and not target:
        typer.secho(
            "--data needs --target COLUMN (the label column)", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2)
    table = None
    if data is not None and target:
        table = TableSpec(
            path=data,
            target=target,
            positive=positive,
            id_column=id_column,
            drop=tuple(drop),
            time_column=time_column,
            rows_in_time_order=rows_in_time_order,
            categorical=tuple(categorical),
            numeric=tuple(numeric),
        )
    try:
        train_job(
            settings,
            table=table,
            events=events,
            training_topic=training_topic,
            leads=leads,
            horizon_days=horizon_days,
            seed=seed,
            folds=folds,
            search=search,
            variant=variant,
            report_path=report,
            promote=promote,
            compare=[c.strip() for c in compare.split(",") if c.strip()] if compare else None,
        )
    except ValueError as exc:  # TableError, InsufficientDataError, an invalid event, a bad option
        typer.secho(f"cannot train: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


def score(
    data: Path = typer.Argument(..., help="CSV, TSV or Parquet file of leads to score"),
    out: Path = typer.Option(..., "--out", help="where to write the scored CSV"),
    model: str | None = typer.Option(
        None, help="model version (default: the champion of the 'table' segment)"
    ),
    id_column: str | None = typer.Option(None, help="copy this column into the output"),
    reasons: int = typer.Option(3, help="reasons per row (0: none, faster)"),
) -> None:
    """Batch-score a file with a model trained by `leadscore train --data`.

    Writes score, grade, probability and the top reasons of every row, in the input order.
    """
    from leadscore.jobs.score_file import score_file_job

    settings = load_settings()
    if not data.is_file():
        typer.secho(f"{data}: no such file", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        score_file_job(settings, data, out, version=model, id_column=id_column, reasons=reasons)
    except ValueError as exc:
        typer.secho(f"cannot score: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
