"""Simulated runs on disk: the events as JSON lines, the truth per lead as CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from leadscore.simulation.activity import iso
from leadscore.simulation.config import SimConfig
from leadscore.simulation.leads import LeadTruth
from leadscore.simulation.simulator import simulate

TRUTH_COLUMNS: Final = (
    "lead_id", "intent", "fit", "converted", "outcome", "outcome_time", "created_time",
    "will_convert", "regime",
)  # fmt: skip


def iso_or_empty(value: datetime | None) -> str:
    """``value`` as ISO-8601 ``Z`` (to the millisecond), or ``""`` for ``None``."""
    return "" if value is None else iso(value.timestamp())


def truth_row(truth: LeadTruth) -> list[str]:
    """One CSV row for :data:`TRUTH_COLUMNS` (booleans as 0/1, times as ISO-8601 ``Z``)."""
    return [
        truth.lead_id,
        f"{truth.intent:.6f}",
        f"{truth.fit:.6f}",
        str(int(truth.converted)),
        truth.outcome or "",
        iso_or_empty(truth.outcome_time),
        iso_or_empty(truth.created_at),
        str(int(truth.will_convert)),
        str(truth.regime),
    ]


def write_jsonl(events: Iterable[Mapping[str, Any]], path: Path | str) -> int:
    """Write events as JSON lines (one CloudEvent per line). Returns the number written."""
    n = 0
    with open(path, "wb") as out:
        for event in events:
            out.write(orjson.dumps(event))
            out.write(b"\n")
            n += 1
    return n


def write_truth_csv(truth: Iterable[LeadTruth], path: Path | str) -> int:
    """Write the truth per lead as CSV with a header (:data:`TRUTH_COLUMNS`); returns the rows."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(TRUTH_COLUMNS)
        for row in truth:
            writer.writerow(truth_row(row))
            n += 1
    return n


def write_labeled_files(
    config: SimConfig,
    events_path: Path | str,
    truth_path: Path | str | None = None,
    *,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Simulate a batch run straight to a JSON-lines file and its truth CSV, streaming both.

    Returns:
        ``(events written, leads written)``.
    """
    if truth_path is None:
        return write_jsonl(simulate(config, now=now), events_path), config.n_leads
    with open(truth_path, "w", newline="", encoding="utf-8") as truth_file:
        writer = csv.writer(truth_file)
        writer.writerow(TRUTH_COLUMNS)
        n_events = write_jsonl(
            simulate(config, on_lead=lambda t: writer.writerow(truth_row(t)), now=now), events_path
        )
    return n_events, config.n_leads


def read_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    """Read a JSON-lines event file back (skipping blank lines)."""
    with open(path, "rb") as src:
        for line in src:
            if line.strip():
                yield orjson.loads(line)
