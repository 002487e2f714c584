"""``leadscore models``: list the registry's versions, show one, promote one or roll back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from leadscore.cli.config import load_settings
from leadscore.settings import Settings

if TYPE_CHECKING:
    from leadscore.infra.model_admin import ChampionChange

models_app = typer.Typer(
    help=(
        "List the model registry's versions, show one, promote one or roll back.\n\n"
        "promote and rollback change the champion in LEADSCORE_MODEL_DIR, then announce it "
        "on models.events.v1 so running workers switch at once."
    ),
    no_args_is_help=True,
)


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

    settings = load_settings()
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
        manifest = show_model(load_settings(), version, full=full)
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

    settings = load_settings()
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

    settings = load_settings()
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
