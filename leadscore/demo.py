"""``leadscore demo``: broker, Redis, worker and simulated traffic on one machine, with a live view.

What runs:

- the embedded Tansu broker and ``redis-server`` (or the servers in ``KAFKA_BOOTSTRAP`` /
  ``REDIS_URL`` when those are set), keeping their data in ``artifacts/demo/data`` so the
  next demo continues with the same leads, scores, keys and subscriptions;
- a first model, trained here when the registry is empty, and a model of the ``table``
  segment for batch files (trained on a simulated CRM export, written beside it with a file
  of newer leads to upload on the dashboard's Batch tab);
- the worker, as a child process (``python -m leadscore worker``), logging to a file;
- the API (``python -m leadscore api``) on ``LEADSCORE_API_PORT`` (8000; a free port if
  taken), with an admin key made for the demo and printed, serving the built dashboard
  (``make demo`` builds it when Node.js is there);
- the simulator, publishing live traffic from this process;
- a console view refreshed every second: events/s and scores/s (from the worker's
  counters in Redis), dead letters, the top leads and the newest score changes
  (these two in :mod:`leadscore.demo_view`).

Everything stops on Ctrl-C or after ``duration`` seconds, children included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from leadscore.api.dashboard import find_dashboard
from leadscore.demo_view import run_traffic_and_view
from leadscore.infra.access import KeyStore
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.durable import durable_services
from leadscore.infra.embedded.processes import stop_child
from leadscore.infra.embedded.servers import Services
from leadscore.infra.kafka.client import ensure_topics
from leadscore.infra.launch import (
    ApiStartError,
    WorkerStartError,
    start_api,
    start_worker,
    stop_worker,
)
from leadscore.infra.redis_store import connect
from leadscore.jobs.train import TableSpec, train_job
from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.store import TABLE_SEGMENT, ModelRegistry
from leadscore.settings import Settings
from leadscore.simulation.crm_table import simulated_crm_table

#: How long the worker may take to join its group and recover (Tansu: a few seconds).
WORKER_READY_TIMEOUT_S = 90.0
DEMO_DIR = Path("artifacts/demo")
#: The embedded broker's and Redis's data: the next demo continues with it (delete to start over).
DATA_DIR = DEMO_DIR / "data"


class DemoError(RuntimeError):
    """The demo could not start (the message says which part and where its log is)."""


def run_demo(
    settings: Settings,
    *,
    duration: float | None = None,
    rate: float = 300.0,
    leads: int = 1000,
    console: Console | None = None,
) -> None:
    """Run the whole loop until Ctrl-C or ``duration`` seconds; see the module docstring.

    Raises:
        DemoError: a part failed to start.
    """
    console = console or Console()
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # group/metadata chatter
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    given = settings.model_fields_set
    with durable_services(
        DATA_DIR,
        settings.kafka_bootstrap if "kafka_bootstrap" in given else None,
        settings.redis_url if "redis_url" in given else None,
    ) as services:
        settings = settings.model_copy(
            update={
                "kafka_bootstrap": services.kafka_bootstrap,
                "redis_url": services.redis_url,
                "model_dir": settings.model_dir.resolve(),
            }
        )
        _print_servers(services, console)
        _ensure_model(settings, console)
        score_file = _ensure_table_model(settings, console)

        asyncio.run(ensure_topics(settings))
        with (
            _worker(settings, console) as worker_log,
            _api(settings, console) as (settings, api_key),
        ):
            _print_where_to_look(settings, worker_log, console, api_key, score_file)
            asyncio.run(run_traffic_and_view(settings, duration, rate, leads, console))
    console.print(
        "stopped: worker, API, simulator"
        + (" and embedded servers" if services.kafka or services.redis else "")
    )


def _print_servers(services: Services, console: Console) -> None:
    if services.kafka is None:
        console.print(f"[green]✓[/] Kafka at {services.kafka_bootstrap}")
    elif services.kafka_durable:
        console.print(
            f"[green]✓[/] embedded Kafka at {services.kafka_bootstrap}, "
            f"its data in {DATA_DIR / 'broker'}"
        )
    else:
        console.print(
            f"[green]✓[/] embedded Kafka at {services.kafka_bootstrap}, in memory "
            "(no Node.js for s3rver: topics are gone when the demo stops)"
        )
    if services.redis is None:
        console.print(f"[green]✓[/] Redis at {services.redis_url}")
    elif services.kafka is not None and not services.kafka_durable:
        console.print(f"[green]✓[/] embedded Redis at {services.redis_url}, in memory too")
    else:
        console.print(
            f"[green]✓[/] embedded Redis at {services.redis_url}, its data in {DATA_DIR / 'redis'}"
        )
    if services.kafka_durable:
        console.print(f"  (the next demo continues from there; delete {DATA_DIR} to start over)")


def _ensure_model(settings: Settings, console: Console) -> None:
    registry = ModelRegistry(settings.model_dir)
    version = registry.champion()
    if version is not None:
        try:
            registry.load(version)
            console.print(f"[green]✓[/] model {version} from {settings.model_dir}")
            return
        except RegistryError as exc:  # e.g. saved by an older leadscore
            console.print(f"model {version} cannot be used ({exc}); training a new one")

    console.print(f"no usable model in {settings.model_dir}: training a first one (about a minute)")
    result = train_job(
        settings,
        leads=2500,
        folds=3,
        search="none",
        compare=("ensemble", "logistic_regression"),
        console=console,
    )
    console.print(f"[green]✓[/] model {result.version} trained")


def _ensure_table_model(settings: Settings, console: Console) -> Path:
    """A model of the registry's ``table`` segment for batch files (the dashboard's Batch tab),
    trained on a simulated CRM export if there is none; returns a file of new leads to score."""
    import io

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    train_path, score_path = (
        (DEMO_DIR / "crm_leads.csv").resolve(),
        (DEMO_DIR / "crm_leads_to_score.csv").resolve(),
    )
    registry = ModelRegistry(settings.model_dir)
    version = registry.champion(segment=TABLE_SEGMENT)
    has_table_model = version is not None and registry.manifest(version).kind == "table"
    if has_table_model and score_path.is_file():
        return score_path
    table = simulated_crm_table(3000, seed=0)
    cut = int(len(table) * 0.8)  # oldest 80 % to train on; the newest leads are "new" to score
    table.iloc[:cut].to_csv(train_path, index=False)
    table.iloc[cut:].drop(columns=["converted"]).to_csv(score_path, index=False)
    if not has_table_model:
        console.print(
            "no table model for batch files: training one on a simulated CRM export (a few seconds)"
        )
        result = train_job(
            settings,
            table=TableSpec(path=train_path, target="converted", id_column="lead_id"),
            folds=3,
            search="none",
            compare=("ensemble",),
            console=Console(file=io.StringIO()),
        )
        console.print(
            f"[green]✓[/] table model {result.version} (segment {TABLE_SEGMENT!r}) from {train_path}"
        )
    return score_path


@contextlib.contextmanager
def _worker(settings: Settings, console: Console) -> Iterator[Path]:
    """Start the worker as a child process; wait until it is ready; stop it after."""
    log_path = (DEMO_DIR / "worker.log").resolve()
    log_path.write_bytes(b"")
    console.print("starting the worker (joining its consumer group takes a few seconds)…")
    try:
        child = start_worker(settings, log_path, ready_timeout_s=WORKER_READY_TIMEOUT_S)
    except WorkerStartError as exc:
        raise DemoError(str(exc)) from exc
    try:
        console.print(f"[green]✓[/] worker running (pid {child.pid})")
        yield log_path
    finally:
        stop_worker(child)


@contextlib.contextmanager
def _api(settings: Settings, console: Console) -> Iterator[tuple[Settings, str]]:
    """Start ``leadscore api`` (on a free port if the configured one is taken) with a demo key."""
    if not _port_free(settings.api_host, settings.api_port):
        port = free_port(settings.api_host)
        console.print(f"port {settings.api_port} is taken: the API listens on {port}")
        settings = settings.model_copy(update={"api_port": port})
    log_path = (DEMO_DIR / "api.log").resolve()
    log_path.write_bytes(b"")
    try:
        child = start_api(settings, log_path)
    except ApiStartError as exc:
        raise DemoError(str(exc)) from exc

    async def make_key() -> str:
        client = connect(settings.redis_url)
        try:
            key, _ = await KeyStore(client, settings.redis_prefix).create("demo", ["admin"])
            return key
        finally:
            await client.aclose()

    try:
        key = asyncio.run(make_key())
        console.print(
            f"[green]✓[/] API at http://{settings.api_host}:{settings.api_port} (pid {child.pid})"
        )
        yield settings, key
    finally:
        stop_child(child, grace_s=10.0)


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _dashboard_line(settings: Settings, base: str, api_key: str) -> str:
    """The dashboard's address, signed in with the demo key (the page drops the key from the
    address bar and keeps it for the browser tab only), or how to get the dashboard built."""
    if find_dashboard(settings.dashboard_dir) is not None:
        return f"  dashboard:  {base}/#key={api_key}"
    return "  dashboard:  not built (needs Node.js 20+: make dashboard, then restart the demo)"


def _print_where_to_look(
    settings: Settings, worker_log: Path, console: Console, api_key: str, score_file: Path
) -> None:
    command = Path(sys.argv[0]).name if Path(sys.argv[0]).name == "leadscore" else "leadscore"
    base = f"http://{settings.api_host}:{settings.api_port}"
    lead = (
        '$(curl -s -H "X-API-Key: $KEY" '
        + base
        + '/v1/leads/top?limit=1 | python3 -c \'import json,sys; print(json.load(sys.stdin)["leads"][0]["lead_id"])\')'
    )
    lines = [
        "[bold]where to look[/] (in another terminal, while the demo runs):",
        _dashboard_line(settings, base, api_key),
        f"  batch file: {score_file}   (upload it on the dashboard's Batch tab)",
        f"  API docs:   {base}/docs      (demo admin key below; make your own: {command} keys create)",
        f"  export KEY={api_key}",
        f"  curl -s -H \"X-API-Key: $KEY\" '{base}/v1/leads/top?limit=5'",
        f'  curl -s -H "X-API-Key: $KEY" {base}/v1/leads/{lead}/score',
        f"  live feed:  ws://{settings.api_host}:{settings.api_port}/v1/stream?api_key=$KEY",
        f"  metrics:    {base}/metrics   and   {base}/v1/metrics/performance",
        f"  export KAFKA_BOOTSTRAP={settings.kafka_bootstrap} REDIS_URL={settings.redis_url}",
        f"  {command} tail                                   # score events, as JSON lines",
        f"  {command} tail --topic {settings.dead_letter_topic}   # refused input, with reasons",
        f"  {command} drift                                  # drift reports, live performance, retrains",
        f'  curl -s -H "X-API-Key: $KEY" {base}/v1/drift   and   {base}/v1/models/retraining',
    ]
    if shutil.which("redis-cli"):
        lines.append(
            f"  redis-cli -u $REDIS_URL ZREVRANGE {settings.redis_prefix}leaderboard 0 9 WITHSCORES"
        )
    lines += [
        f"  worker log: {worker_log}   API log: {(DEMO_DIR / 'api.log').resolve()}",
        f"  models:     {settings.model_dir}",
    ]
    console.print("\n".join(lines), highlight=False)
