"""The ``leadscore`` command: worker, train, models, simulate, demo and friends."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from leadscore.settings import Settings, env_var

if TYPE_CHECKING:
    from leadscore.infra.closed_loop_store import ClosedLoopView
    from leadscore.infra.model_admin import ChampionChange

app = typer.Typer(
    name="leadscore",
    help=(
        "Real-time AI lead scoring on Kafka.\n\n"
        "Configuration comes from environment variables (KAFKA_BOOTSTRAP, REDIS_URL, "
        "LEADSCORE_*); see the README."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:  # say which variable is wrong, by its name
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            variable = env_var(field)
            lines.append(f"  {variable}: {error['msg']} (got {error.get('input')!r})")
        typer.secho("invalid configuration:\n" + "\n".join(lines), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


@app.command()
def worker(
    loglevel: str = typer.Option("info", help="debug, info, warning or error"),
) -> None:
    """Run the stream worker: consume lead events, keep per-lead state, publish score changes.

    Reads leads.activity.v1, leads.profile.v1 and leads.outcome.v1; writes leads.scores.v1,
    leads.dead-letter.v1 and the latest scores to Redis. Creates missing topics first.
    Scale out by starting more workers with the same LEADSCORE_APP_ID; the input topics'
    partition count bounds how many get work.
    """
    from leadscore.infra.kafka.client import TopicLayoutError
    from leadscore.models.scoring.champion import NoModelError
    from leadscore.streams.runner import run_worker

    settings = _settings()
    try:
        run_worker(settings, loglevel=loglevel)
    except (NoModelError, TopicLayoutError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


@app.command()
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

    settings = _settings()
    for name, path in (("--data", data), ("--events", events)):
        if path is not None and not path.is_file():
            typer.secho(f"{name} {path}: no such file", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
    if sum(x is not None and x is not False for x in (data, events, training_topic or None)) > 1:
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


@app.command()
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
    from leadscore.jobs.train import score_file_job

    settings = _settings()
    if not data.is_file():
        typer.secho(f"{data}: no such file", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        score_file_job(settings, data, out, version=model, id_column=id_column, reasons=reasons)
    except ValueError as exc:
        typer.secho(f"cannot score: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


models_app = typer.Typer(
    help=(
        "List the model registry's versions, show one, promote one or roll back.\n\n"
        "promote and rollback change the champion in LEADSCORE_MODEL_DIR, then announce it "
        "on models.events.v1 so running workers switch at once."
    ),
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

#: Exit status of promote/rollback when the champion changed but could not be announced.
EXIT_NOT_ANNOUNCED = 3


@models_app.command("list")
def models_list(
    segment: str | None = typer.Option(
        None, help="mark this segment's champion (if not given: the default segment)"
    ),
) -> None:
    """List the model versions, oldest first, with metrics from their manifests; * marks the champion.

    ROC-AUC and accuracy come from the manifest's metrics (- when it has none).
    """
    from leadscore.infra.model_admin import list_models
    from leadscore.models.registry.errors import RegistryError

    settings = _settings()
    try:
        rows = list_models(settings, segment=segment)
    except RegistryError as exc:  # e.g. a hand-edited champion.json
        typer.secho(f"cannot list the registry: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except ValueError as exc:  # a bad segment name
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    if not rows:
        typer.echo(f"no models in {settings.model_dir}: train one with `leadscore train`", err=True)
        return
    header = ("VERSION", "CREATED (UTC)", "KIND", "VARIANT", "ROWS", "ROC-AUC", "ACCURACY")
    typer.echo("  {:<24} {:<19} {:<11} {:<19} {:>9} {:>8} {:>8}".format(*header))
    for row in rows:
        mark = "*" if row.champion else " "
        if row.problem is not None:
            typer.echo(f"{mark} {row.version:<24} unreadable manifest: {row.problem}")
            continue
        created = row.created_at.strftime("%Y-%m-%d %H:%M:%S") if row.created_at else "-"
        n_rows = f"{row.n_rows:,}" if row.n_rows is not None else "-"
        auc = f"{row.roc_auc:.3f}" if row.roc_auc is not None else "-"
        accuracy = f"{row.accuracy:.3f}" if row.accuracy is not None else "-"
        kind, variant = row.kind or "-", row.variant or "-"
        typer.echo(
            f"{mark} {row.version:<24} {created:<19} {kind:<11} {variant:<19} {n_rows:>9} {auc:>8} "
            f"{accuracy:>8}"
        )
    typer.echo(f"* champion of the {'segment ' + segment if segment else 'default segment'}")


@models_app.command("show")
def models_show(
    version: str = typer.Argument(..., help="a version from `leadscore models list`"),
    full: bool = typer.Option(False, help="include the drift reference sample (large)"),
) -> None:
    """Print a version's manifest as JSON: training window, metrics, parameters, features."""
    from leadscore.infra.model_admin import ModelCommandError, show_model

    try:
        manifest = show_model(_settings(), version, full=full)
    except ModelCommandError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(manifest, indent=2))
    if not full:
        typer.echo("(reference_sample left out; --full includes it)", err=True)


@models_app.command("promote")
def models_promote(
    version: str = typer.Argument(..., help="a version from `leadscore models list`"),
    segment: str | None = typer.Option(
        None, help="the segment to promote it in (if not given: the default segment)"
    ),
    reason: str | None = typer.Option(None, help="why, for the record (sent with the event)"),
) -> None:
    """Make VERSION the champion and tell running workers to switch to it.

    The version is loaded first (checksum, allowed types, features) and refused if a
    worker could not use it. Exit status: 0 done; 1 nothing changed (unknown version,
    unusable model); 3 the champion changed but the announcement on models.events.v1
    failed, so workers switch at their next registry check (LEADSCORE_MODEL_POLL_S).
    """
    from leadscore.infra.model_admin import ModelCommandError, promote_model

    settings = _settings()
    try:
        change = promote_model(settings, version, segment=segment, reason=reason)
    except ModelCommandError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except ValueError as exc:  # a bad segment name
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    if change.changed:
        typer.echo(f"{version} is the champion{_of(segment)} (was {change.event.previous})")
    else:
        typer.echo(f"{version} already was the champion{_of(segment)}")
    _report_announcement(
        settings,
        change,
        retry=f"leadscore models promote {version}" + (f" --segment {segment}" if segment else ""),
    )


@models_app.command("rollback")
def models_rollback(
    segment: str | None = typer.Option(
        None, help="the segment to roll back (if not given: the default segment)"
    ),
    reason: str | None = typer.Option(None, help="why, for the record (sent with the event)"),
) -> None:
    """Make the previous champion the champion again and tell running workers to switch.

    Exit status: 0 done; 1 nothing changed (no previous champion); 3 the champion
    changed but the announcement on models.events.v1 failed, so workers switch at
    their next registry check (LEADSCORE_MODEL_POLL_S).
    """
    from leadscore.infra.model_admin import ModelCommandError, rollback_model

    settings = _settings()
    try:
        change = rollback_model(settings, segment=segment, reason=reason)
    except ModelCommandError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except ValueError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    event = change.event
    typer.echo(
        f"rolled back{_of(segment)}: {event.version} is the champion again (was {event.previous})"
    )
    # Running rollback again would go back one more version: re-announce with promote.
    _report_announcement(
        settings,
        change,
        retry=f"leadscore models promote {event.version}"
        + (f" --segment {segment}" if segment else ""),
    )


def _of(segment: str | None) -> str:
    return f" of segment {segment}" if segment else ""


def _report_announcement(settings: Settings, change: ChampionChange, *, retry: str) -> None:
    if change.announce_error is None:
        typer.echo(f"announced on {settings.model_events_topic} (event {change.event.id})")
        return
    typer.secho(
        f"the registry is changed, but the announcement failed: {change.announce_error}.\n"
        f"Running workers switch at their next registry check, within LEADSCORE_MODEL_POLL_S "
        f"({settings.model_poll_s:g} s). To announce it again: `{retry}`",
        fg=typer.colors.YELLOW,
        err=True,
    )
    raise typer.Exit(EXIT_NOT_ANNOUNCED)


@app.command()
def retrain(
    detail: str = typer.Option("", help="why, for the record (e.g. a ticket)"),
    as_json: bool = typer.Option(False, "--json", help="print the decision record as JSON"),
) -> None:
    """Retrain on leads.training.v1 and promote the candidate only if it beats the champion.

    The same run as the worker's automatic retrain (docs/drift.md), here in this process,
    trigger "manual": the latest labelled outcomes, the most recent share held out, the
    candidate and the champion scored on that holdout, promotion only by
    LEADSCORE_RETRAIN_MARGIN of ROC-AUC. The decision is recorded in Redis and published on
    models.events.v1. Exit status 0 when promoted, rejected or skipped; 1 when it failed.
    """
    import io

    from rich.console import Console

    from leadscore.closed_loop_text import decision_lines
    from leadscore.jobs.retrain import retrain_job

    settings = _settings()
    try:
        record = retrain_job(
            settings, trigger="manual", detail=detail, console=Console(file=io.StringIO())
        )
    except (
        Exception
    ) as exc:  # recorded and published as "failed" by retrain_job; say why and exit 1
        typer.secho(f"retrain failed: {type(exc).__name__}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo("\n".join(decision_lines(record)))


@app.command()
def drift(
    top: int = typer.Option(5, help="features to show per model, most drifting first"),
    decisions: int = typer.Option(5, help="recent retrain decisions to show"),
) -> None:
    """The latest drift report and live performance of each model version, and recent retrains.

    Read from Redis, where the worker's drift agent keeps them: alert level, window, the
    most drifting features with their statistic and p-value, the score distribution's
    test, the metrics over the latest labelled outcomes (docs/drift.md).
    """
    from leadscore.closed_loop_text import drift_lines
    from leadscore.infra.closed_loop_store import ClosedLoopKeys, read_closed_loop

    settings = _settings()

    async def read() -> ClosedLoopView:
        client = _redis(settings)
        try:
            return await read_closed_loop(
                client, ClosedLoopKeys(settings.redis_prefix), latest=True, performance=True,
                decisions=decisions,
            )  # fmt: skip
        finally:
            await client.aclose()  # type: ignore[attr-defined]

    view = asyncio.run(read())
    typer.echo("\n".join(drift_lines(view.latest, view.performance, view.decisions, top=top)))


@app.command()
def simulate(
    rate: float = typer.Option(500.0, help="events per second to publish"),
    duration: float | None = typer.Option(None, help="seconds to run (default: until Ctrl-C)"),
    leads: int = typer.Option(2000, help="leads per simulated cohort"),
    days: float = typer.Option(30.0, help="days of history each cohort spans (event time)"),
    seed: int = typer.Option(0, help="random seed"),
    out: Path | None = typer.Option(
        None, help="write events to this JSON-lines file instead of Kafka"
    ),
    truth: Path | None = typer.Option(
        None, help="with --out: write each lead's hidden truth to this CSV"
    ),
    shift_at: str | None = typer.Option(
        None,
        help="switch to the shifted regime at this ISO time (with a zone), or this fraction "
        "of the span (--out) or of --duration (live)",
    ),
    shift_open_factor: float | None = typer.Option(
        None, help="with --shift-at: email open factor after the shift (default 0.45)"
    ),
) -> None:
    """Publish simulated lead activity to Kafka, or write a labeled event file.

    Each lead has a hidden intent that drives its activity; some convert. Events go to
    their topics keyed by lead id. With --out, events are written to a file (and the
    truth per lead to --truth) and nothing is published. With --shift-at, the industry
    mix, what converts and email opens change at that time (docs/simulator.md).
    """
    from leadscore.jobs.simulate import ShiftOptionError, simulate_job

    if truth is not None and out is None:
        typer.secho(
            "--truth needs --out (live traffic has no truth file)", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2)
    if shift_open_factor is not None and shift_at is None:
        typer.secho("--shift-open-factor needs --shift-at", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        simulate_job(
            _settings(),
            rate=rate,
            duration=duration,
            leads=leads,
            days=days,
            seed=seed,
            out=out,
            truth=truth,
            shift_at=shift_at,
            shift_open_factor=shift_open_factor,
        )
    except ShiftOptionError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


@app.command()
def tail(
    topic: str = typer.Option("leads.scores.v1", help="topic to print"),
    from_beginning: bool = typer.Option(False, help="start at the oldest record"),
    limit: int | None = typer.Option(None, help="stop after this many records"),
) -> None:
    """Print records of a topic as JSON lines (score events by default)."""
    from leadscore.jobs.simulate import tail_job

    asyncio.run(tail_job(_settings(), topic=topic, from_beginning=from_beginning, limit=limit))


@app.command()
def topics() -> None:
    """Create leadscore's topics (if missing) and print their partition counts."""
    from leadscore.infra.kafka.client import TopicLayoutError, ensure_topics

    try:
        layout = asyncio.run(ensure_topics(_settings()))
    except TopicLayoutError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    for name, partitions in sorted(layout.items()):
        typer.echo(f"{name}\t{partitions} partitions")


@app.command()
def api(
    host: str | None = typer.Option(
        None, help="address to listen on (default: LEADSCORE_API_HOST)"
    ),
    port: int | None = typer.Option(None, help="port (default: LEADSCORE_API_PORT, 8000)"),
    workers: int | None = typer.Option(None, help="processes (default: LEADSCORE_API_WORKERS, 1)"),
    loglevel: str = typer.Option("info", help="debug, info, warning or error"),
) -> None:
    """Run the REST API, the WebSocket feed (/v1/stream) and /metrics.

    Reads scores from Redis and the score topic; every call but /healthz and /readyz needs
    an API key (leadscore keys create). OpenAPI docs at /docs. Stateless: run as many as
    needed, sharing Redis, the broker and LEADSCORE_MODEL_DIR.
    """
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "leadscore.api.main:app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        log_level=loglevel,
        proxy_headers=True,
        ws_per_message_deflate=settings.ws_compression,
    )


keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="who uses it, e.g. 'crm-sync' or 'dashboard'"),
    scope: list[str] = typer.Option(
        ["read"], help="read, score (includes read) or admin (includes both); repeatable"
    ),
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from leadscore.infra.access import AccessError, KeyStore

    settings = _settings()

    async def create() -> tuple[str, object]:
        client = _redis(settings)
        try:
            return await KeyStore(client, settings.redis_prefix).create(name, scope)
        finally:
            await client.aclose()

    try:
        key, record = asyncio.run(create())
    except AccessError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    typer.echo(key)
    typer.secho(
        f"key {record.id} ({', '.join(record.scopes)}) for {record.name!r}: store it now, it is not shown again",  # type: ignore[attr-defined]
        err=True,
    )


@keys_app.command("list")
def keys_list() -> None:
    """Every key's id, name, scopes and whether it is revoked (never the keys themselves)."""
    from leadscore.infra.access import KeyStore

    settings = _settings()

    async def read() -> list:
        client = _redis(settings)
        try:
            return await KeyStore(client, settings.redis_prefix).list()
        finally:
            await client.aclose()

    rows = asyncio.run(read())
    if not rows:
        typer.echo("no API keys yet: leadscore keys create --name NAME --scope read")
    for key in rows:
        state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}  {key.name:<24} {','.join(key.scopes):<16} created {key.created_at}  {state}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="the key's id (leadscore keys list)"),
) -> None:
    """Revoke a key: refused everywhere within LEADSCORE_API_KEY_CACHE_S seconds."""
    from leadscore.infra.access import AccessError, KeyStore

    settings = _settings()

    async def revoke() -> object:
        client = _redis(settings)
        try:
            return await KeyStore(client, settings.redis_prefix).revoke(key_id)
        finally:
            await client.aclose()

    try:
        record = asyncio.run(revoke())
    except AccessError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {key_id} ({record.name})")  # type: ignore[attr-defined]


@app.command()
def audit(limit: int = typer.Option(50, help="entries to show, newest first")) -> None:
    """The audit log of admin API calls: who, what, when, outcome."""
    from leadscore.infra.access import AuditLog

    settings = _settings()

    async def read() -> list:
        client = _redis(settings)
        try:
            return await AuditLog(client, settings.redis_prefix).read(limit)
        finally:
            await client.aclose()

    for entry in asyncio.run(read()):
        who = entry.get("key_name") or "(no valid key)"
        typer.echo(
            f"{entry['at']}  {who:<20} {entry['method']:<6} {entry['path']:<40} {entry['status']}  {entry['outcome']}"
        )


def _redis(settings: Settings) -> object:
    from leadscore.infra.redis_store import connect

    return connect(settings.redis_url, retries=2)


@app.command()
def demo(
    duration: float | None = typer.Option(None, help="seconds to run (default: until Ctrl-C)"),
    rate: float = typer.Option(300.0, help="simulated events per second"),
    leads: int = typer.Option(1000, help="leads per simulated cohort"),
) -> None:
    """Everything on one machine: embedded broker and Redis, worker, simulated traffic, live view.

    Uses KAFKA_BOOTSTRAP / REDIS_URL instead of the embedded servers when they are set.
    Trains a first model if the registry is empty.
    """
    from leadscore.demo import DemoError, run_demo
    from leadscore.infra.errors import InfraError

    try:
        run_demo(_settings(), duration=duration, rate=rate, leads=leads)
    except (DemoError, InfraError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        typer.echo("stopped")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()


if __name__ == "__main__":
    main()
