"""Runs one API job (training, retraining or file scoring) in its own process: ``python -m leadscore.jobs.runner SPEC``.

The API starts this so CPU-heavy work never runs in the API's event loop. It reports on
stdout, one JSON object per line: ``{"stage", "done", "total"}`` while it works, then
``{"result": {...}}`` or ``{"error": "..."}`` (exit status 1).
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from leadscore.infra.model_admin import promote_model
from leadscore.jobs.retrain import retrain_job
from leadscore.jobs.score_file import score_file_job
from leadscore.jobs.train import train_job
from leadscore.settings import Settings


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(message).decode() + "\n")
    sys.stdout.flush()


def _progress_reporter(min_interval_s: float = 0.5) -> Any:
    last = [0.0]

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= min_interval_s or (total and done >= total):
            last[0] = now
            _say({"stage": stage, "done": done, "total": total})

    return report


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the job ``spec`` describes; returns its result."""
    settings = Settings()
    console = Console(file=io.StringIO(), width=120)  # the report is kept, not printed
    args = spec["args"]
    if spec["kind"] == "train":
        outcome = train_job(
            settings,
            events=Path(args["events_path"]) if args.get("events_path") else None,
            leads=args.get("leads", 4000),
            folds=args.get("folds", 5),
            search=args.get("search", "quick"),
            variant=args.get("variant"),
            seed=args.get("seed", 0),
            promote=False,
            console=console,
            on_progress=_progress_reporter(),
        )
        result: dict[str, Any] = {
            "version": outcome.version,
            "variant": outcome.manifest.variant,
            "metrics": outcome.manifest.metrics.get("cv"),
            "promoted": False,
        }
        if args.get("promote"):
            change = promote_model(settings, outcome.version, reason="trained by API job")
            result["promoted"] = True
            result["announce_error"] = change.announce_error
        return result
    if spec["kind"] == "retrain":
        # the decision record: outcome, reason, both models' holdout metrics, the candidate
        return retrain_job(settings, trigger="api", detail=args.get("detail", ""), console=console)
    if spec["kind"] == "score_file":
        out = Path(args["out"])
        rows = score_file_job(
            settings,
            Path(args["path"]),
            out,
            version=args.get("version"),
            id_column=args.get("id_column"),
            reasons=args.get("reasons", 3),
            console=console,
            on_progress=_progress_reporter(),
        )
        return {"rows": rows, "output": out.name, "log": console.file.getvalue()[-4000:]}  # type: ignore[attr-defined]
    raise ValueError(f"unknown job kind {spec['kind']!r}")


def main() -> int:
    spec = orjson.loads(Path(sys.argv[1]).read_bytes())
    try:
        result = run(spec)
    except (ValueError, RuntimeError, OSError) as exc:  # the user's data or request: say why
        _say({"error": str(exc)})
        return 1
    _say({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
