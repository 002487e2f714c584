"""A minimal Faust worker with one changelogged table, run as a subprocess by the recovery test.

Usage::

    python recovery_app.py CONFIG.json worker --web-port 6101 --loglevel info

``CONFIG.json`` (written by the test) holds::

    {"app_id": str, "bootstrap": "host:port", "source_topic": str, "partitions": int,
     "snapshot_path": str, "datadir": str, "apply_fix": bool}

and optionally ``broker_session_timeout``, ``broker_rebalance_timeout``,
``broker_heartbeat_interval`` (seconds), ``group_instance_id`` and ``producer_linger_s``.

Every event is ``key -> {"seq": n}`` with ``n`` counting 1, 2, 3 ... per key. The table
``key_to_applied`` maps a key to ``[applied_count, last_seq]`` and applies an event only if
its ``seq`` is newer than ``last_seq``: replays after a crash (at-least-once) are skipped, so
a correct worker ends with ``applied_count == last_seq == events per key``. A table restored
from its changelog a few updates short keeps that deficit forever, because the replayed
events it would need are older than the committed source offsets.

Every 0.2 s, once table recovery is complete, the worker writes its table and the recovery
high watermarks to ``snapshot_path`` (JSON, atomically replaced), which is how the test
reads the outcome.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust

if len(sys.argv) < 2 or not sys.argv[1].endswith(".json"):
    raise SystemExit(f"usage: {sys.argv[0]} CONFIG.json worker [faust options]")
CONFIG: dict[str, Any] = json.loads(Path(sys.argv.pop(1)).read_text())

if CONFIG["apply_fix"]:
    from leadscore.streams.tansu_compat import install_tansu_compat

    install_tansu_compat()

STARTED_AT = time.time()

app = faust.App(
    CONFIG["app_id"],
    broker=f"kafka://{CONFIG['bootstrap']}",
    store="memory://",
    datadir=CONFIG["datadir"],
    topic_partitions=CONFIG["partitions"],
    # Group formation on Tansu: it holds every JoinGroup for half the *session* timeout,
    # and a SIGKILLed member blocks the group until its session expires.
    broker_session_timeout=CONFIG.get("broker_session_timeout", 6.0),
    broker_rebalance_timeout=CONFIG.get("broker_rebalance_timeout", 10.0),
    broker_heartbeat_interval=CONFIG.get("broker_heartbeat_interval", 1.0),
    consumer_group_instance_id=CONFIG.get("group_instance_id"),
    broker_commit_interval=1.0,
    # Batch changelog writes for 50 ms, so each changelog partition ends in a batch of
    # many records: the case where Tansu's ListOffsets answer falls short.
    producer_linger=CONFIG.get("producer_linger_s", 0.05),
    table_standby_replicas=0,
    web_enabled=False,
)

source_topic = app.topic(
    CONFIG["source_topic"], key_type=str, value_serializer="json", partitions=CONFIG["partitions"]
)
key_to_applied = app.Table("key_to_applied", default=None, partitions=CONFIG["partitions"])

_ready_at: float | None = None


@app.agent(source_topic)
async def apply_events(stream: Any) -> None:
    async for key, event in stream.items():
        applied, last_seq = key_to_applied.get(key) or (0, 0)
        if event["seq"] > last_seq:  # older or equal: a replay after a crash
            key_to_applied[key] = [applied + 1, event["seq"]]


@app.timer(0.2)
async def write_snapshot() -> None:
    global _ready_at
    recovery = app.tables.recovery
    if app.rebalancing or not recovery.completed.is_set():
        return
    if _ready_at is None:
        _ready_at = time.time()
    snapshot = {
        "pid": os.getpid(),
        "started_at": STARTED_AT,
        "ready_at": _ready_at,
        "table": {key: value for key, value in key_to_applied.items()},
        "active_highwaters": {
            f"{tp.topic}:{tp.partition}": hw for tp, hw in recovery.active_highwaters.items()
        },
    }
    path = Path(CONFIG["snapshot_path"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot))
    tmp.replace(path)


if __name__ == "__main__":
    app.main()
