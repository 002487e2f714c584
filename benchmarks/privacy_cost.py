"""What sealing at rest costs the worker's CPU: a batch's processing with and without it.

No broker, no Redis (``privacy.py`` measures the whole worker): simulated records go
through :func:`leadscore.models.batch.processing.process_batch` in 256-record batches,
as in ``profile_batch.py``, with a real trained ensemble, and every value the worker seals
goes through the data keys as the worker handles it:

- the table: each lead's state is opened when the batch loads it and sealed when it is
  stored (the lead as associated data), as ``streams/scoring.py`` does;
- Redis: each changed lead's public state JSON and its new activity entries are sealed
  (``ScoreStore.write_batch``), then opened once, as one API read of each would.

*Sealed* uses a keyring with encryption on; *plain* the same code with
``LEADSCORE_ENCRYPT_AT_REST=false`` (``seal`` returns the bytes, ``open`` checks one
byte). Runs alternate plain/sealed, ``--rounds`` times each, on the same records, so
load drifts hit both alike; the median of each is reported, with the ratio and the cost
per sealed or opened value.

Usage::

    .venv/bin/python benchmarks/privacy_cost.py                  # ~1 min (+20 s to train once)
    .venv/bin/python benchmarks/privacy_cost.py --records 40000 --rounds 7 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from bench_common import ensure_model, machine
from profile_batch import (
    DEFAULT_MODEL_DIR,
    KIND_OF_TOPIC,
    batches_of,
    load_scorer,
    simulated_records,
)

from leadscore.infra.privacy.crypto import Keyring
from leadscore.infra.redis_store import public_state
from leadscore.models.batch.outputs import recent_activity
from leadscore.models.batch.processing import process_batch
from leadscore.models.batch.records import InputRecord, Limits
from leadscore.models.scoring.scorer import Scorer
from leadscore.settings import Settings


class TimedKeyring:
    """``keyring`` with the seconds spent in its seal and open calls counted (in both
    modes, so the timers cost both the same)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.seconds = 0.0
        self.calls = 0

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        t0 = time.perf_counter()
        blob = self.keyring.seal(plaintext, aad)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return blob

    def open(self, blob: bytes, aad: bytes) -> bytes:
        t0 = time.perf_counter()
        plaintext = self.keyring.open(blob, aad)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return plaintext


class SealedTable:
    """The worker's ``lead_state`` table, values sealed by ``keyring`` (or not, if off)."""

    def __init__(self, keyring: TimedKeyring) -> None:
        self.keyring = keyring
        self.rows: dict[str, bytes] = {}
        self.opened = 0
        self.sealed = 0

    def load_state(self, lead_id: str) -> dict[str, Any] | None:
        raw = self.rows.get(lead_id)
        if raw is None:
            return None
        self.opened += 1
        state: dict[str, Any] = orjson.loads(self.keyring.open(raw, lead_id.encode()))
        return state

    def store(self, lead_id: str, state: dict[str, Any]) -> None:
        self.sealed += 1
        self.rows[lead_id] = self.keyring.seal(orjson.dumps(state), lead_id.encode())


def one_run(
    batches: list[list[InputRecord]], scorer: Scorer, keyring: Keyring, activity_length: int
) -> dict[str, float]:
    """Every batch in order, from an empty table; seconds and counts."""
    timed = TimedKeyring(keyring)
    table = SealedTable(timed)
    limits = Limits()
    redis_values = 0
    state_bytes = 0
    states_opened = 0
    started = time.perf_counter()
    for batch in batches:
        result = process_batch(
            batch,
            kind_of_topic=KIND_OF_TOPIC,
            load_state=table.load_state,
            scorer=scorer,
            limits=limits,
            now=datetime.now(UTC),
        )
        public: dict[str, bytes] = {}
        for lead_id, (state, _) in result.states.items():
            stored = state.to_dict()
            table.store(lead_id, stored)
            public[lead_id] = timed.seal(public_state(stored), lead_id.encode())
        activity = {
            lead_id: [timed.seal(entry, lead_id.encode()) for entry in entries]
            for lead_id, entries in recent_activity(result.activity, activity_length).items()
        }
        # what one API read of each would open
        for lead_id, blob in public.items():
            state_bytes += len(timed.open(blob, lead_id.encode()))
        states_opened += len(public)
        for lead_id, blobs in activity.items():
            for blob in blobs:
                timed.open(blob, lead_id.encode())
        redis_values += len(public) + sum(len(blobs) for blobs in activity.values())
    seconds = time.perf_counter() - started
    records = sum(len(batch) for batch in batches)
    return {
        "seconds": seconds,
        "events_per_s": records / seconds,
        "table_opens": table.opened,
        "table_seals": table.sealed,
        "redis_values": redis_values,  # each sealed once and opened once
        "mean_redis_state_bytes": state_bytes / max(1, states_opened),
        "keyring_seconds": timed.seconds,
        "keyring_calls": timed.calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--leads", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each, alternating")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    box = machine()
    version = ensure_model(args.model_dir)
    settings = Settings()
    scorer = load_scorer(args.model_dir, settings.score_change_threshold)
    records = simulated_records(args.records, args.leads, args.seed)
    batches = batches_of(records, args.batch_size)
    keys = [("k1", os.urandom(32))]
    modes = {"plain": Keyring(keys, enabled=False), "sealed": Keyring(keys, enabled=True)}
    print(
        f"{len(records):,} records, {args.leads:,} leads, batches of {args.batch_size}, "
        f"model {version}; {box['cores']} cores ({box['cpu']}), "
        f"load {box['loadavg_1m_at_start']} at start"
    )
    one_run(batches[:4], scorer, modes["sealed"], settings.activity_length)  # warm up
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "sealed": []}
    for i in range(args.rounds):
        for mode in ("plain", "sealed") if i % 2 == 0 else ("sealed", "plain"):
            run = one_run(batches, scorer, modes[mode], settings.activity_length)
            runs[mode].append(run)
            print(f"  round {i + 1} {mode:6s}: {run['events_per_s']:8,.0f} events/s")
    median = {m: statistics.median(r["events_per_s"] for r in rs) for m, rs in runs.items()}
    seconds = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
    last = runs["sealed"][-1]
    keyring_s = {m: statistics.median(r["keyring_seconds"] for r in rs) for m, rs in runs.items()}
    per_call_us = {m: keyring_s[m] / last["keyring_calls"] * 1e6 for m in runs}
    load_end = os.getloadavg()[0]
    print(
        f"plain {median['plain']:,.0f} events/s, sealed {median['sealed']:,.0f} events/s "
        f"(median of {args.rounds}): sealed/plain = {median['sealed'] / median['plain']:.3f}"
    )
    print(
        f"per run: {last['table_opens']:,.0f} table opens + {last['table_seals']:,.0f} table "
        f"seals + {last['redis_values']:,.0f} Redis values sealed and opened "
        f"(public state {last['mean_redis_state_bytes']:,.0f} B on average); in the keyring: "
        f"sealed {keyring_s['sealed']:.3f} s ({per_call_us['sealed']:.1f} µs a call, "
        f"{keyring_s['sealed'] / seconds['sealed']:.1%} of the run), plain "
        f"{keyring_s['plain']:.3f} s ({per_call_us['plain']:.1f} µs a call)"
    )
    print(f"load {load_end:.2f} at the end")
    if args.json:
        results = {
            "machine": {**box, "loadavg_1m_at_end": round(load_end, 2)},
            "args": {k: str(v) for k, v in vars(args).items()},
            "model": version,
            "median_events_per_s": median,
            "ratio_sealed_to_plain": median["sealed"] / median["plain"],
            "keyring_us_per_call": per_call_us,
            "runs": runs,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
