"""The long-running commands: the stream worker, the API and the all-in-one demo."""

from __future__ import annotations

import typer

from leadscore.cli.config import load_settings


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
    from leadscore.streams.broker_watch import TOPICS_LOST_EXIT, TopicsLostError
    from leadscore.streams.runner import run_worker

    settings = load_settings()
    try:
        run_worker(settings, loglevel=loglevel)
    except (NoModelError, TopicLayoutError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except TopicsLostError as exc:  # logged once, with what to do, where it was found
        raise typer.Exit(TOPICS_LOST_EXIT) from exc


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

    settings = load_settings()
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
        run_demo(load_settings(), duration=duration, rate=rate, leads=leads)
    except (DemoError, InfraError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        typer.echo("stopped")
