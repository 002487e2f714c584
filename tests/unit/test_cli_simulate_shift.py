"""`leadscore simulate --shift-at`: the shift reaches the labeled files; bad values exit 2 with a message."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from leadscore.cli import app

runner = CliRunner()


def test_simulate_with_a_shift_half_way_writes_both_regimes(tmp_path: Path) -> None:
    events, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--out",
            str(events),
            "--truth",
            str(truth),
            "--leads",
            "200",
            "--days",
            "20",
            "--seed",
            "2",
            "--shift-at",
            "0.5",
            "--shift-open-factor",
            "0.3",
        ],
    )
    assert result.exit_code == 0, result.output
    with open(truth) as f:
        regimes = [row["regime"] for row in csv.DictReader(f)]
    assert set(regimes) == {"0", "1"}


def test_bad_shift_options_are_refused_with_a_message() -> None:
    cases = [
        (["--out", "e.jsonl", "--shift-at", "tomorrow"], "ISO-8601"),
        (["--out", "e.jsonl", "--shift-at", "2026-02-01T00:00:00"], "time zone"),
        (["--shift-at", "0.5"], "needs --duration"),
        (["--out", "e.jsonl", "--shift-open-factor", "0.5"], "needs --shift-at"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["simulate", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
