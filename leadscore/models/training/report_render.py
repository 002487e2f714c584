"""Print a model evaluation report (the dict of :mod:`leadscore.models.training.report`) in a terminal."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from leadscore.models.training.report import check_report

__all__ = ["render"]


def render(report: Mapping[str, Any], console: Console) -> None:
    """Print ``report`` for a terminal of 100 columns or more.

    Prints the data summary, the models side by side (cross-validated mean and, dimmed,
    std; the best value of each column in bold), the chosen model and why, then for the
    chosen model its time-ordered check, lift by decile, calibration, confusion matrix,
    top feature importances, and the warnings.

    Raises:
        ReportError: ``report`` breaks the contract (see :func:`check_report`).
    """
    check_report(report)
    _render_data(report, console)
    chosen = report["chosen"]
    _render_models(report["models"], chosen["name"], console)
    console.print(
        f"[bold]chosen:[/] {escape(chosen['name'])} at threshold "
        f"{_fmt(chosen.get('threshold'))}: {escape(str(chosen.get('reason', '')))}"
    )
    model = next(m for m in report["models"] if m["name"] == chosen["name"])
    _render_time_split(model.get("time_split"), console)
    oof = model.get("oof")
    if oof:
        _render_oof(oof, console)
    _render_importance(report.get("feature_importance") or [], console)
    for warning in report.get("warnings") or []:
        console.print(f"[bold yellow]warning:[/] {escape(str(warning))}")


# --- rendering helpers -------------------------------------------------------------------

# column header, metric key, higher is better
_MODEL_COLUMNS = (
    ("accuracy", "accuracy", True),
    ("majority\naccuracy", "majority_accuracy", None),
    ("ROC-AUC", "roc_auc", True),
    ("PR-AUC", "pr_auc", True),
    ("Brier", "brier", False),
    ("log-loss", "log_loss", False),
    ("F1", "f1", True),
)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _render_data(report: Mapping[str, Any], console: Console) -> None:
    data = report["data"]
    cv = data.get("cv") or {}
    console.print(f"[bold]data:[/] {escape(str(data.get('source', '?')))}")
    console.print(
        f"  {data.get('rows', '?')} rows, {data.get('positives', '?')} positive "
        f"({_fmt(data.get('positive_rate'))}), {data.get('features', '?')} features; "
        f"cross-validation {escape(str(cv.get('scheme', '?')))}, {cv.get('folds', '?')} folds"
    )
    for column in report.get("columns") or []:
        rest = dict(column)
        name = next((rest.pop(k) for k in ("column", "name", "feature") if k in rest), "?")
        text = f"{name}: " + "; ".join(f"{k}={v}" for k, v in rest.items())
        console.print(f"  [dim]column[/] {escape(text)}", overflow="ellipsis", no_wrap=True)


def _render_models(models: Sequence[Mapping[str, Any]], chosen: str, console: Console) -> None:
    table = Table(
        title="models compared (cross-validation: mean, std below)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
    )
    table.add_column("model", overflow="fold", min_width=16)
    for header, _, _ in _MODEL_COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("fit s", justify="right")
    best: dict[str, float] = {}
    for _, key, higher in _MODEL_COLUMNS:
        values = [m["cv"].get(key) for m in models]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if higher is not None and len(finite) > 1:
            best[key] = max(finite) if higher else min(finite)
    for model in models:
        cv, std = model["cv"], model["cv"].get("std") or {}
        cells = [("[bold]*" if model["name"] == chosen else "") + escape(model["name"])]
        for _, key, _ in _MODEL_COLUMNS:
            mean = _fmt(cv.get(key))
            if key in best and cv.get(key) == best[key]:
                mean = f"[bold]{mean}[/]"
            cells.append(f"{mean}\n[dim]±{_fmt(std.get(key))}[/]")
        shared = "[dim]†[/]" if model.get("fit_shared") else ""
        cells.append(_fmt(model.get("fit_seconds"), 1) + shared)
        table.add_row(*cells)
    console.print(table)
    legend = Table.grid(padding=(0, 1))
    legend.add_column(style="dim", overflow="fold")  # as wide as the longest name allows
    legend.add_column(style="dim")
    for model in models:
        if model.get("description"):
            legend.add_row(f"  {escape(model['name'])}:", escape(str(model["description"])))
    legend.add_row("  *", "chosen; bold: best in column (majority accuracy is the baseline)")
    if any(m.get("fit_shared") for m in models):
        legend.add_row(
            "  †", "one set of member fits per fold, shared by these variants: their total time"
        )
    console.print(legend)


def _render_time_split(time_split: Mapping[str, Any] | None, console: Console) -> None:
    if not time_split:
        console.print("time-ordered check: not run")
        return
    skipped = len(time_split.get("skipped") or [])
    head = (
        f"time-ordered check ({escape(str(time_split.get('scheme', '?')))}, "
        f"{time_split.get('folds', '?')} folds scored, {skipped} skipped)"
    )
    if "roc_auc" not in time_split:
        console.print(f"{head}: no fold could be scored")
        return
    console.print(
        f"{head}: ROC-AUC {_fmt(time_split.get('roc_auc'))}, "
        f"PR-AUC {_fmt(time_split.get('pr_auc'))}, Brier {_fmt(time_split.get('brier'))}, "
        f"accuracy {_fmt(time_split.get('accuracy'))} vs majority "
        f"{_fmt(time_split.get('majority_accuracy'))}"
    )


def _render_oof(oof: Mapping[str, Any], console: Console) -> None:
    lift = Table(title="lift by decile (out-of-fold)", box=box.SIMPLE_HEAD, padding=(0, 1))
    for header in ("decile", "rows", "pos", "rate", "lift", "capture"):
        lift.add_column(header, justify="right")
    for row in oof.get("lift_by_decile") or []:
        pos = row["positives"]
        lift.add_row(
            str(row["decile"]),
            str(row["rows"]),
            f"{pos:.0f}" if float(pos).is_integer() else f"{pos:.1f}",
            _fmt(row["rate"]),
            _fmt(row["lift"], 2),
            _fmt(row["cumulative_capture"], 2),
        )
    calibration = oof.get("calibration") or {}
    cal = Table(
        title=f"calibration (equal-width bins), ECE {_fmt(calibration.get('ece'))}",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for header in ("bin", "rows", "predicted", "observed"):
        cal.add_column(header, justify="right")
    for b in calibration.get("bins") or []:
        cal.add_row(
            f"{b['lower']:.1f}-{b['upper']:.1f}",
            str(b["count"]),
            _fmt(b["mean_predicted"]),
            _fmt(b["observed_rate"]),
        )
    side_by_side = Table.grid(padding=(0, 4))
    side_by_side.add_row(lift, cal)
    console.print(side_by_side)

    c = oof.get("confusion") or {}
    console.print(f"confusion at threshold {_fmt(oof.get('threshold'))} (out-of-fold):")
    confusion = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    confusion.add_column("")
    confusion.add_column("predicted 1", justify="right")
    confusion.add_column("predicted 0", justify="right")
    confusion.add_row("actual 1", str(c.get("tp", "?")), str(c.get("fn", "?")))
    confusion.add_row("actual 0", str(c.get("fp", "?")), str(c.get("tn", "?")))
    console.print(confusion)
    console.print(
        f"  precision {_fmt(oof.get('precision'))}, recall {_fmt(oof.get('recall'))}, "
        f"F1 {_fmt(oof.get('f1'))}, accuracy {_fmt(oof.get('accuracy'))} vs majority "
        f"{_fmt(oof.get('majority_accuracy'))}"
    )


def _render_importance(
    importance: Sequence[Mapping[str, Any]], console: Console, top: int = 10
) -> None:
    if not importance:
        return
    rows = sorted(importance, key=lambda r: -abs(r["importance"] or 0.0))[:top]
    scale = max(abs(r["importance"] or 0.0) for r in rows) or 1.0
    table = Table(
        title=f"top {len(rows)} of {len(importance)} feature importances",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    table.add_column("feature", overflow="fold", max_width=40)
    table.add_column("importance", justify="right")
    table.add_column("", no_wrap=True)
    for row in rows:
        value = row["importance"] or 0.0
        bar = "█" * round(30 * abs(value) / scale)
        table.add_row(escape(str(row["feature"])), _fmt(value, 4), bar)
    console.print(table)
