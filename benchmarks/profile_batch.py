"""Where a worker batch spends its CPU: ``process_batch`` on 256-record batches, timed and profiled.

No broker, no Redis: simulated records go through
:func:`leadscore.models.batch.processing.process_batch` exactly as the worker feeds them
(lead-keyed records on the activity/profile/outcome topics, states kept between
batches as orjson bytes like the worker's table), with a real trained ensemble.

Three measurements, each on the same record sequence for every threshold:

1. **plain**: wall time of ``process_batch`` per event, nothing instrumented.
2. **split**: the same run with a ``perf_counter`` around each stage (decode, state
   load, feature apply, ``to_matrix``, ``predict_proba``, SHAP, reasons, score events),
   plus the worker's own serialization outside ``process_batch`` (table state bytes and
   score JSON, which ``app.py`` does per batch). The timers add ~1 µs per call.
3. **cProfile**: the functions with the most own time (cProfile inflates small Python
   calls, so read it for *which* functions, the split for *how much*).

Plus the model calls alone by batch size (1..256 rows), which is what a faster tree
engine would replace.

Usage::

    .venv/bin/python benchmarks/profile_batch.py                 # ~1 min (+18 s to train once)
    .venv/bin/python benchmarks/profile_batch.py --batches 80 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import json
import os
import pstats
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from bench_common import ensure_model, machine

from leadscore.models.batch import processing
from leadscore.models.batch.processing import process_batch
from leadscore.models.batch.records import InputRecord, Limits
from leadscore.models.engine import evaluate as engine
from leadscore.models.features.state import LeadState
from leadscore.models.features.vector import FEATURE_NAMES
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.scoring import events as score_events
from leadscore.models.scoring.scorer import Scorer, ScoringPolicy
from leadscore.schemas.decode import EventKind, kind_of
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

TOPIC_OF_KIND = {
    EventKind.ACTIVITY: "leads.activity.v1",
    EventKind.PROFILE: "leads.profile.v1",
    EventKind.OUTCOME: "leads.outcome.v1",
}
KIND_OF_TOPIC = {topic: kind for kind, topic in TOPIC_OF_KIND.items()}
DEFAULT_MODEL_DIR = Path("artifacts/bench/model")


# --- machine and model ------------------------------------------------------------------------


def load_scorer(model_dir: Path, threshold: int) -> Scorer:
    """The champion as the worker loads it (``app.load_scorer``), with this change threshold."""
    loaded = ModelRegistry(model_dir).load_champion()
    assert loaded is not None
    defaults = Settings()
    policy = ScoringPolicy(
        grade_thresholds=defaults.grade_thresholds,
        change_threshold=threshold,
        top_reasons=defaults.top_reasons,
    )
    scorer = Scorer(loaded.model, loaded.version, policy)
    scorer.explain(np.zeros((1, len(FEATURE_NAMES))))  # build the explainers, as the worker does
    return scorer


# --- records ----------------------------------------------------------------------------------


def simulated_records(n_records: int, n_leads: int, seed: int) -> list[InputRecord]:
    """``n_records`` simulated events as the worker consumes them: keyed by lead, on their topic."""
    sim = Simulator(SimConfig(n_leads=n_leads, span_days=30.0, seed=seed))
    records = []
    for offset, event in enumerate(itertools.islice(sim.events(), n_records)):
        records.append(
            InputRecord(
                topic=TOPIC_OF_KIND[kind_of(event["type"])],
                partition=0,
                offset=offset,
                key=str(event["subject"]).encode(),
                value=orjson.dumps(event),
            )
        )
    if len(records) < n_records:
        raise SystemExit(f"the simulation gave only {len(records)} events; raise --leads")
    return records


def batches_of(records: list[InputRecord], size: int) -> list[list[InputRecord]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


class Table:
    """The worker's ``lead_state`` table: lead id -> orjson bytes of the state."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}

    def load_state(self, lead_id: str) -> dict[str, Any] | None:
        raw = self.rows.get(lead_id)
        return orjson.loads(raw) if raw is not None else None

    def store(self, states: dict[str, tuple[LeadState, int]]) -> None:
        for lead_id, (state, _) in states.items():
            self.rows[lead_id] = orjson.dumps(state.to_dict())


def run_batches(
    batches: list[list[InputRecord]],
    scorer: Scorer,
    *,
    on_batch: Callable[[Any], None] | None = None,
    time_write_out: Callable[[float], None] | None = None,
) -> tuple[float, dict[str, int]]:
    """Process every batch in order; return the seconds spent in ``process_batch`` and counts."""
    table = Table()
    limits = Limits()
    spent = 0.0
    counts = {"records": 0, "batches": 0, "leads": 0, "scores": 0, "dead_letters": 0}
    for batch in batches:
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        result = process_batch(
            batch,
            kind_of_topic=KIND_OF_TOPIC,
            load_state=table.load_state,
            scorer=scorer,
            limits=limits,
            now=now,
        )
        spent += time.perf_counter() - t0
        # What app.py does with the result, minus the I/O: state bytes for the table and
        # each score's JSON, encoded once for both Kafka and Redis.
        t1 = time.perf_counter()
        table.store(result.states)
        bodies = [orjson.dumps(score.model_dump(mode="json")) for score in result.scores]
        if time_write_out is not None:
            time_write_out(time.perf_counter() - t1)
        del bodies
        counts["records"] += len(batch)
        counts["batches"] += 1
        counts["leads"] += len(result.states)
        counts["scores"] += len(result.scores)
        counts["dead_letters"] += len(result.dead_letters)
        if on_batch is not None:
            on_batch(result)
    return spent, counts


# --- the split ----------------------------------------------------------------------------------


class Stopwatch:
    """Accumulated seconds and calls per stage; stages nest (an outer stage includes inner ones)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.rows: dict[str, int] = {}

    def wrap(
        self, stage: str, fn: Callable[..., Any], rows: Callable[..., int] | None = None
    ) -> Callable[..., Any]:
        seconds, calls, counted = self.seconds, self.calls, self.rows
        seconds.setdefault(stage, 0.0)
        calls.setdefault(stage, 0)
        counted.setdefault(stage, 0)
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[stage] += clock() - t0
                calls[stage] += 1
                if rows is not None:
                    counted[stage] += rows(*args, **kwargs)

        return timed


@contextlib.contextmanager
def instrumented(scorer: Scorer, watch: Stopwatch) -> Iterator[None]:
    """Put a stopwatch around each stage of ``process_batch`` (and take it off after)."""
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, stage: str, rows: Callable[..., int] | None = None) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        patches.append((owner, name, original))
        if isinstance(owner, type) and isinstance(original, classmethod):
            inner = original.__func__
            setattr(owner, name, classmethod(watch.wrap(stage, inner)))
        else:
            setattr(owner, name, watch.wrap(stage, original, rows))

    model = scorer.model
    patch(processing, "decode_event", "decode")
    patch(LeadState, "from_dict", "state load (from_dict)")
    patch(processing, "apply_event", "feature apply")
    patch(processing, "to_matrix", "to_matrix", rows=lambda states: len(states))
    patch(scorer, "probabilities", "predict_proba", rows=lambda x: len(x))
    patch(scorer, "explain", "explain (all)", rows=lambda x: len(x))
    patch(engine, "shap_values", "explain: TreeSHAP", rows=lambda e, x, **kw: len(x))
    patches.append((model, "score_and_explain", model.score_and_explain))
    object.__setattr__(
        model,
        "score_and_explain",
        watch.wrap(
            "explain: model.score_and_explain", model.score_and_explain, rows=lambda x: len(x)
        ),
    )
    patch(score_events, "LeadScored", "score events (LeadScored)")
    patch(score_events, "score_event_id", "score events (id)")
    try:
        yield
    finally:
        for owner, name, original in reversed(patches):
            if isinstance(owner, type) or owner in (processing, engine, score_events):
                setattr(owner, name, original)
            else:  # an instance attribute we added over a class method: remove it
                with contextlib.suppress(AttributeError):
                    object.__delattr__(owner, name)


def split(batches: list[list[InputRecord]], scorer: Scorer) -> dict[str, Any]:
    """Per-stage µs per event (and per row for the model calls)."""
    watch = Stopwatch()
    write_out = [0.0]
    orjson_loads = [0.0]
    original_load_state = Table.load_state

    def timed_load_state(self: Table, lead_id: str) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            return original_load_state(self, lead_id)
        finally:
            orjson_loads[0] += time.perf_counter() - t0

    def add_write_out(seconds: float) -> None:
        write_out[0] += seconds

    Table.load_state = timed_load_state  # type: ignore[method-assign]
    try:
        with instrumented(scorer, watch):
            total, counts = run_batches(batches, scorer, time_write_out=add_write_out)
    finally:
        Table.load_state = original_load_state  # type: ignore[method-assign]
    n = counts["records"]
    s = watch.seconds
    explain_all = s["explain (all)"]
    model_explain = s["explain: model.score_and_explain"]
    treeshap = s["explain: TreeSHAP"]
    stages = {
        "decode (pydantic validate_json)": s["decode"],
        "state load (orjson.loads + from_dict)": orjson_loads[0] + s["state load (from_dict)"],
        "feature apply (apply_event)": s["feature apply"],
        "to_matrix": s["to_matrix"],
        "predict_proba (compiled trees + linear)": s["predict_proba"],
        "explain: TreeSHAP forest+boosting": treeshap,
        "explain: linear part, points, glue": max(model_explain - treeshap, 0.0),
        "explain: reasons (Reason objects)": max(explain_all - model_explain, 0.0),
        "score events (LeadScored + id)": s["score events (LeadScored)"] + s["score events (id)"],
    }
    stages["other (loop, dedupe, bookkeeping)"] = max(total - sum(stages.values()), 0.0)
    us = {name: 1e6 * sec / n for name, sec in stages.items()}
    return {
        "records": n,
        "batches": counts["batches"],
        "scores": counts["scores"],
        "rescored_rows": watch.rows["predict_proba"],
        "explained_rows": watch.rows["explain (all)"],
        "total_us_per_event": 1e6 * total / n,
        "stages_us_per_event": us,
        "write_out_us_per_event": 1e6 * write_out[0] / n,
        "predict_us_per_row": 1e6 * s["predict_proba"] / max(watch.rows["predict_proba"], 1),
        "explain_us_per_row": 1e6 * explain_all / max(watch.rows["explain (all)"], 1),
    }


def profile(batches: list[list[InputRecord]], scorer: Scorer, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run_batches(batches, scorer)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def model_calls(scorer: Scorer, x_pool: np.ndarray, repeat: int) -> list[dict[str, float]]:
    """predict_proba and explain alone, by rows per call: the fixed cost per call shows."""
    rows = []
    for n in (1, 16, 64, 256):
        x = x_pool[:n] if len(x_pool) >= n else np.resize(x_pool, (n, x_pool.shape[1]))
        predict = _best_of(lambda: scorer.probabilities(x), repeat)
        explain = _best_of(
            lambda: scorer.model.score_and_explain(x), max(1, repeat // (1 + n // 64))
        )
        rows.append(
            {
                "rows": n,
                "predict_ms_per_call": 1e3 * predict,
                "predict_us_per_row": 1e6 * predict / n,
                "explain_ms_per_call": 1e3 * explain,
                "explain_us_per_row": 1e6 * explain / n,
            }
        )
    return rows


def _best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def feature_pool(batches: list[list[InputRecord]], scorer: Scorer) -> np.ndarray:
    """Realistic feature rows: the states after the batches, as a matrix."""
    from leadscore.models.features.vector import to_matrix

    states: dict[str, LeadState] = {}

    def keep(result: Any) -> None:
        for lead_id, (state, _) in result.states.items():
            states[lead_id] = state

    run_batches(batches[: min(len(batches), 8)], scorer, on_batch=keep)
    return to_matrix(list(states.values())[:256])


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=60, help="batches per run (default 60)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--leads", type=int, default=3000, help="simulated leads (30 days of history)"
    )
    parser.add_argument("--thresholds", default="3,0", help="score-change thresholds to run")
    parser.add_argument("--repeat", type=int, default=2, help="plain-timing runs per threshold")
    parser.add_argument(
        "--cprofile-top", type=int, default=18, help="functions to list (0: no cProfile)"
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=DEFAULT_MODEL_DIR,
        help="model registry; a small model is trained there if it is empty",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    info = machine()
    version = ensure_model(args.model_dir)
    records = simulated_records(args.batches * args.batch_size, args.leads, args.seed)
    batches = batches_of(records, args.batch_size)
    thresholds = [int(t) for t in args.thresholds.split(",")]
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, Python {info['python']}, "
        f"load {info['loadavg_1m_at_start']}"
    )
    print(
        f"model {version}; {len(batches)} batches of {args.batch_size} simulated records "
        f"({args.leads:,} leads, 30 days)\n"
    )

    results: dict[str, Any] = {
        "machine": info,
        "model_version": version,
        "batch_size": args.batch_size,
        "batches": len(batches),
        "thresholds": {},
    }
    for threshold in thresholds:
        scorer = load_scorer(args.model_dir, threshold)
        run_batches(batches[:4], scorer)  # warm caches (pydantic, numpy, sklearn) before timing
        plain = [run_batches(batches, scorer)[0] for _ in range(args.repeat)]
        plain_us = [1e6 * p / len(records) for p in plain]
        detail = split(batches, scorer)
        entry = {"plain_us_per_event": plain_us, **detail}
        results["thresholds"][str(threshold)] = entry
        _print_split(threshold, entry)
        if args.cprofile_top:
            text = profile(batches, scorer, args.cprofile_top)
            entry["cprofile"] = text
            print(_trim_profile(text))

    pool = feature_pool(batches, load_scorer(args.model_dir, 0))
    calls = model_calls(load_scorer(args.model_dir, 0), pool, repeat=20)
    results["model_calls"] = calls
    print("model calls alone (best of several; rows = leads in one call)")
    print(f"  {'rows':>5} {'predict ms':>11} {'µs/row':>8} {'explain ms':>11} {'µs/row':>8}")
    for row in calls:
        print(
            f"  {row['rows']:>5} {row['predict_ms_per_call']:>11.2f} {row['predict_us_per_row']:>8.1f}"
            f" {row['explain_ms_per_call']:>11.2f} {row['explain_us_per_row']:>8.1f}"
        )
    results["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(
        f"\nload average (1 min) at the end: {results['loadavg_1m_at_end']} "
        "(other work on the machine inflates every figure; compare runs)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nresults written to {args.json}")
    return 0


def _print_split(threshold: int, entry: dict[str, Any]) -> None:
    n = entry["records"]
    plain = entry["plain_us_per_event"]
    print(
        f"== threshold {threshold}: {n:,} records, {entry['rescored_rows']:,} lead rescores "
        f"({entry['rescored_rows'] / entry['batches']:.0f}/batch), {entry['explained_rows']:,} explained, "
        f"{entry['scores']:,} score events"
    )
    print(
        "   process_batch, plain: "
        + ", ".join(f"{p:.0f}" for p in plain)
        + f" µs/event; best {min(plain):.0f} = {1e6 / min(plain):,.0f} events/s on one core"
    )
    total = entry["total_us_per_event"]
    print(f"   split (instrumented, {total:.0f} µs/event):")
    for name, us in entry["stages_us_per_event"].items():
        print(f"     {name:<38} {us:>8.1f} µs/event {100 * us / total:>5.1f} %")
    print(
        f"   predict_proba {entry['predict_us_per_row']:.1f} µs/row rescored; "
        f"explain {entry['explain_us_per_row']:.0f} µs/row explained"
    )
    print(
        f"   + outside process_batch in app.py: state/score serialization "
        f"{entry['write_out_us_per_event']:.1f} µs/event\n"
    )


def _trim_profile(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return (
        "   cProfile, top functions by own time:\n"
        + "\n".join("   " + line for line in lines[start:] if line.strip())
        + "\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
