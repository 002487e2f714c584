"""Cross-validated comparison on the real lead data in ../shared/data (or any folder you point at).

Runs `leadscore train --data` (the same code path: :func:`leadscore.jobs.train.train_job`)
on each public data set, with and without the columns that leak the label, and with a
time-ordered split where rows are in date order; prints one markdown table of accuracy,
ROC-AUC, PR-AUC and Brier per model, and writes every report as JSON.

    .venv/bin/python benchmarks/real_data.py [--data ../shared/data] [--out artifacts/real-data]
        [--only bank-full] [--folds 5] [--search quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench_common import machine
from rich.console import Console

from leadscore.jobs.train import TableSpec, train_job
from leadscore.settings import Settings

#: name, file under the data folder, target, columns to drop, rows in time order
RUNS = (
    ("bank-full, all", "bank_marketing/bank-full.csv", "y", (), False),
    ("bank-full, without duration", "bank_marketing/bank-full.csv", "y", ("duration",), False),
    (
        "bank-full, without duration, time-ordered",
        "bank_marketing/bank-full.csv",
        "y",
        ("duration",),
        True,
    ),
    ("bank-additional, all", "bank_marketing/bank-additional-full.csv", "y", (), False),
    (
        "bank-additional, without duration",
        "bank_marketing/bank-additional-full.csv",
        "y",
        ("duration",),
        False,
    ),
    (
        "bank-additional, without duration, time-ordered",
        "bank_marketing/bank-additional-full.csv",
        "y",
        ("duration",),
        True,
    ),
    ("online shoppers, all", "online_shoppers/online_shoppers_intention.csv", "Revenue", (), False),
    (
        "online shoppers, without PageValues",
        "online_shoppers/online_shoppers_intention.csv",
        "Revenue",
        ("PageValues",),
        False,
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--out", type=Path, default=Path("artifacts/real-data"))
    parser.add_argument("--only", default="", help="run only the runs whose name contains this")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--search", default="quick")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    quiet = Console(file=open("/dev/null", "w"))
    rows = []
    print(machine())
    for name, file, target, drop, ordered in RUNS:
        if args.only and args.only not in name:
            continue
        slug = name.replace(", ", "_").replace(" ", "-")
        report_path = args.out / f"{slug}.json"
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as registry:
            outcome = train_job(
                Settings(model_dir=Path(registry)),
                table=TableSpec(
                    path=args.data / file, target=target, drop=drop, rows_in_time_order=ordered
                ),
                folds=args.folds,
                search=args.search,
                report_path=report_path,
                console=quiet,
            )
        seconds = time.perf_counter() - started
        chosen = outcome.report["chosen"]["name"]
        for model in outcome.report["models"]:
            cv = model["cv"]
            rows.append(
                f"| {name} | {'**' + model['name'] + '**' if model['name'] == chosen else model['name']} "
                f"| {cv['accuracy']:.3f} | {cv['majority_accuracy']:.3f} | {cv['roc_auc']:.3f} "
                f"| {cv['pr_auc']:.3f} | {cv['brier']:.4f} |"
            )
        print(f"{name}: {seconds:.0f} s, chose {chosen}", flush=True)
    print("\n| data | model (chosen in bold) | accuracy | majority | ROC-AUC | PR-AUC | Brier |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    (args.out / "table.md").write_text("\n".join(rows) + "\n")
    json.dumps(rows)


if __name__ == "__main__":
    main()
