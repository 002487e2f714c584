"""Plain-text views of the closed loop for ``leadscore retrain`` and ``leadscore drift``.

Pure formatting of what the retrainer returns and the drift agent keeps in Redis (a
decision record, ``DriftEvent`` JSON, ``PerformanceWindow.summary()``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["decision_lines", "drift_lines"]


def _num(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _span(span: dict[str, Any] | None) -> str:
    if not span or not span.get("n"):
        return "none"
    return (
        f"{span['n']:,} ({span['positives']:,} converted), {span['from'][:19]} to {span['to'][:19]}"
    )


def decision_lines(record: dict[str, Any]) -> list[str]:
    """A retrain decision, readably.

    Examples:
        >>> print("\\n".join(decision_lines({"id": "rt_1", "trigger": "manual", "outcome": "skipped",
        ...     "reason": "50 labelled outcomes; a retrain needs retrain_min_labels=300",
        ...     "examples": {"n": 50, "positives": 9}, "champion": None, "seconds": 0.4})))
        retrain rt_1 (manual): SKIPPED
          reason:    50 labelled outcomes; a retrain needs retrain_min_labels=300
          examples:  50 labelled outcomes (9 converted)
          took 0.4 s
    """
    lines = [
        f"retrain {record.get('id', '?')} ({record.get('trigger', '?')}): {str(record.get('outcome')).upper()}",
        f"  reason:    {record.get('reason', '')}",
    ]
    if record.get("detail"):
        lines.append(f"  why:       {record['detail']}")
    examples = record.get("examples")
    if examples:
        lines.append(
            f"  examples:  {examples['n']:,} labelled outcomes ({examples['positives']:,} converted)"
        )
    if "training" in record:
        lines.append(f"  training:  {_span(record['training'])}")
        lines.append(f"  holdout:   {_span(record.get('holdout'))}")
    metrics = record.get("metrics") or {}
    if metrics:
        lines.append("  on the holdout    ROC-AUC   Brier  accuracy")
        champion_name = record.get("champion_scored_as") or record.get("champion") or "-"
        for role, name in (
            ("candidate", record.get("candidate") or "-"),
            ("champion", champion_name),
        ):
            m = metrics.get(role)
            if m is None:
                lines.append(
                    f"    {role:<9} {name}: not scored ({record.get('champion_error', 'no champion')})"
                )
                continue
            lines.append(
                f"    {role:<9}      {_num(m.get('roc_auc')):>7} {_num(m.get('brier')):>7} "
                f"{_num(m.get('accuracy'), '.3f'):>9}  {name}"
            )
        lines.append(f"  margin:    {record.get('margin')}")
    if record.get("outcome") == "promoted":
        lines.append(
            f"  champion:  {record.get('candidate')} (was {record.get('champion') or 'the rules prior'})"
        )
    elif record.get("candidate"):
        lines.append(
            f"  champion:  {record.get('champion') or 'the rules prior'} (unchanged; the candidate is kept)"
        )
    if record.get("announce_warning"):
        lines.append(f"  warning:   {record['announce_warning']}")
    took = f"  took {record.get('seconds', 0)} s"
    if "train_seconds" in record:
        took += f" (training {record['train_seconds']} s)"
    lines.append(took)
    return lines


def _features(report: dict[str, Any], top: int) -> list[str]:
    features = sorted(
        report.get("features") or [],
        key=lambda f: (bool(f.get("persistent")), bool(f.get("drifted")), f.get("effect") or 0.0),
        reverse=True,
    )[:top]
    if not features:
        return ["  no feature statistics in this window"]
    lines = [f"  {'FEATURE':<28} {'TEST':<5} {'STATISTIC':>9} {'P-VALUE':>9} {'ADJ. P':>9}  DRIFT"]
    for f in features:
        flag = "persistent" if f.get("persistent") else "this window" if f.get("drifted") else "-"
        lines.append(
            f"  {f.get('feature', '?'):<28} {f.get('test', '?'):<5} {_num(f.get('statistic')):>9} "
            f"{_num(f.get('p_value'), '.2e'):>9} {_num(f.get('adjusted_p'), '.2e'):>9}  {flag}"
        )
    return lines


def _performance(summary: dict[str, Any]) -> str:
    window = summary.get("window") or {}
    baseline = summary.get("baseline") or {}
    return (
        f"  performance: {window.get('n', 0):,} latest labelled outcomes: ROC-AUC {_num(window.get('roc_auc'))} "
        f"(baseline {_num(baseline.get('roc_auc'))}), Brier {_num(window.get('brier'))}, "
        f"accuracy {_num(window.get('accuracy'), '.3f')}, F1 {_num(window.get('f1'), '.3f')}; "
        f"alert {summary.get('level', 'none')} ({summary.get('labels_seen', 0):,} labels seen)"
    )


def drift_lines(
    latest: dict[str, Any],
    performance: dict[str, Any],
    decisions: list[dict[str, Any]],
    *,
    top: int = 5,
) -> list[str]:
    """The latest drift report and live performance of each model version, then recent retrains.

    Examples:
        >>> drift_lines({}, {}, [])
        ['no drift reports yet (the drift agent reports once a window of scored leads is full)']
    """
    lines: list[str] = []
    for version in sorted(set(latest) | set(performance)):
        event = latest.get(version)
        if event is None:
            lines.append(f"model {version}: no drift report yet")
        else:
            report = event.get("report") or {}
            when = f", {str(event.get('window_start'))[:19]} to {str(event.get('window_end'))[:19]}"
            lines.append(
                f"model {version}: drift {str(event.get('level')).upper()} in window {event.get('window_index')} "
                f"({event.get('n_rows', 0):,} leads{when if event.get('window_start') else ''}), "
                f"reported {str(event.get('at'))[:19]}"
            )
            if report.get("reason"):
                lines.append(f"  {report['reason']}")
            lines.extend(_features(report, top))
            score = report.get("score")
            if score:
                lines.append(
                    f"  score distribution: {score.get('test')} {_num(score.get('statistic'))}, "
                    f"p {_num(score.get('p_value'), '.2e')}{', drifting' if score.get('drifted') else ''}"
                )
        if version in performance:
            lines.append(_performance(performance[version]))
    if not lines:
        lines.append(
            "no drift reports yet (the drift agent reports once a window of scored leads is full)"
        )
    if decisions:
        lines.append("recent retrains (newest first):")
        for d in decisions:
            lines.append(
                f"  {str(d.get('finished_at') or d.get('started_at'))[:19]}  {d.get('trigger', '?'):<8} "
                f"{d.get('outcome', '?'):<9} {d.get('candidate') or '-':<24} {d.get('reason', '')}"
            )
    return lines
