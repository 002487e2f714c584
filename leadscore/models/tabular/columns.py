"""What each column of a lead table is: numeric, boolean, categorical, or dropped, and why.

:func:`infer_column` decides once, at training, from a column's training values; the
:class:`Column` it returns is what :class:`~leadscore.models.tabular.pipeline.FeaturePipeline`
encodes, saves and explains.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import pandas as pd

from leadscore.models.tabular.values import (
    BOOL_PAIRS,
    LEADING_ZERO,
    SOFT_MISSING,
    detect_number_format,
    looks_like_dates,
    looks_numeric,
    map_distinct,
    normalize,
    to_floats,
    value_parser,
)

__all__ = [
    "FEW_INTEGER_VALUES",
    "MOSTLY_MISSING_SHARE",
    "Column",
    "close_names_hint",
    "infer_column",
]

#: A column at least this empty is dropped.
MOSTLY_MISSING_SHARE: Final = 0.95
#: Integer columns with at most this many distinct values get a "maybe codes" note.
FEW_INTEGER_VALUES: Final = 20


@dataclass(frozen=True)
class Column:
    """One input column: what it is, why, and what it needs at transform time."""

    name: str
    kind: str  # numeric | boolean | categorical | datetime | excluded
    used: bool
    action: str = ""
    reason: str = ""
    missing_share: float = 0.0
    n_distinct: int = 0
    number_format: str = "plain"  # numeric: plain | comma_thousands | decimal_comma
    fill: float = 0.0  # numeric/boolean: training median
    indicator: bool = False  # numeric/boolean: add <name>__missing
    integer: bool = False  # numeric: training values were whole numbers (for describe)
    levels: tuple[str, ...] = ()  # categorical: normalized kept levels
    labels: tuple[str, ...] = ()  # categorical: their most common original spelling
    other: bool = False  # categorical: add <name>=__other__
    missing_level: bool = False  # categorical: add <name>=__missing__

    def feature_names(self) -> list[str]:
        if not self.used:
            return []
        if self.kind == "categorical":
            names = [f"{self.name}={lvl}" for lvl in self.levels]
            names += [f"{self.name}=__other__"] * self.other
            return names + [f"{self.name}=__missing__"] * self.missing_level
        return [self.name] + [f"{self.name}__missing"] * self.indicator


def infer_column(
    name: str,
    values: np.ndarray,
    *,
    force: str | None,
    max_levels: int,
    min_level_count: int,
) -> Column:
    """Decide the kind of one column from its training values (see FeaturePipeline.fit)."""
    n = len(values)
    if values.dtype.kind == "M":
        return Column(name, "datetime", False, "dropped", _DATE_REASON, n_distinct=0)
    norm = map_distinct(values.astype(object, copy=False), normalize)
    present = norm[norm != None]  # noqa: E711 - elementwise comparison with None
    counts = pd.Series(present, dtype=object).value_counts(sort=True)
    distinct = [str(s) for s in counts.index]
    hard_missing_share = 1.0 - len(present) / n if n else 1.0

    kind, number_format, why_not_numeric = force, "plain", ""
    numeric_dtype = values.dtype.kind in "iuf"
    if kind is None:
        if values.dtype.kind == "b" or (
            len(distinct) == 2 and any(set(distinct) <= pair for pair in BOOL_PAIRS)
        ):
            kind = "boolean"
        elif numeric_dtype:
            kind = "numeric"
        else:
            numeric_values = [s for s in distinct if s not in SOFT_MISSING]
            leading = next((s for s in numeric_values if LEADING_ZERO.match(s)), None)
            fmt, why_not_numeric = detect_number_format(numeric_values)
            if fmt is not None and numeric_values and leading is None:
                kind, number_format = "numeric", fmt
            elif looks_like_dates(distinct, list(counts.to_numpy())):
                return Column(
                    name, "datetime", False, "dropped", _DATE_REASON,
                    hard_missing_share, len(distinct),
                )  # fmt: skip
            else:
                kind = "categorical"
                if leading is not None and fmt is not None:
                    why_not_numeric = f"leading zeros ({leading!r}): codes, not numbers"
                numberish = sum(int(c) for s, c in counts.items() if looks_numeric(s))
                if numberish < 0.5 * len(present):  # plainly text: no need to say why
                    why_not_numeric = ""
    elif kind == "numeric" and not numeric_dtype:
        fmt, _ = detect_number_format([s for s in distinct if s not in SOFT_MISSING])
        number_format = fmt or "comma_thousands"

    if kind == "categorical":
        return _categorical(
            name, norm, values, counts, hard_missing_share, forced=force is not None,
            max_levels=max_levels, min_level_count=min_level_count, note=why_not_numeric,
        )  # fmt: skip

    parse = value_parser(kind, number_format)
    x = to_floats(values, parse)
    ok = ~np.isnan(x)
    missing_share = float(1.0 - ok.mean()) if n else 1.0
    xs = x[ok]
    n_distinct = int(len(np.unique(xs)))
    base = Column(name, kind, False, "dropped", "", missing_share, n_distinct)
    if missing_share >= MOSTLY_MISSING_SHARE:
        return replace(base, reason=f"mostly missing ({missing_share:.0%} of rows)")
    if n_distinct <= 1 and not (~ok).any():
        return replace(base, reason="constant: one value in every row")
    integer = bool(np.all(xs == np.floor(xs)))
    notes = []
    if force is None and kind == "numeric" and integer and n_distinct == len(xs) >= 20:
        return replace(
            base,
            reason="id-like: a different whole number in every row; "
            "force it numeric if it is a real quantity",
        )
    unparsed = sum(v is not None and v not in SOFT_MISSING for v in norm[~ok])
    if force == "numeric" and unparsed:
        notes.append(f"forced numeric: {unparsed} non-numeric values count as missing")
    if number_format != "plain":
        notes.append(
            "numbers with ',' thousands separators"
            if number_format == "comma_thousands"
            else "numbers with a decimal comma"
        )
    if force is None and kind == "numeric" and integer and n_distinct <= FEW_INTEGER_VALUES:
        notes.append(
            f"whole numbers with {n_distinct} distinct values, kept numeric: "
            "force it categorical if they are codes"
        )
    indicator = bool((~ok).any())
    action = "numeric" if kind == "numeric" else "boolean 0/1"
    return replace(
        base,
        used=True,
        action=action + (" + missing indicator" if indicator else ""),
        reason="; ".join(notes),
        number_format=number_format,
        fill=float(np.median(xs)) if len(xs) else 0.0,
        indicator=indicator,
        integer=integer,
    )


_DATE_REASON: Final = "dates are not a feature; a candidate time column for time-ordered validation"


def _categorical(
    name: str,
    norm: np.ndarray,
    raw: np.ndarray,
    counts: pd.Series,
    missing_share: float,
    *,
    forced: bool,
    max_levels: int,
    min_level_count: int,
    note: str,
) -> Column:
    n_present = int(counts.sum())
    base = Column(name, "categorical", False, "dropped", "", missing_share, len(counts))
    if missing_share >= MOSTLY_MISSING_SHARE:
        return replace(base, reason=f"mostly missing ({missing_share:.0%} of rows)")
    if len(counts) <= 1 and missing_share == 0:
        return replace(base, reason="constant: one value in every row")
    if not forced and len(counts) == n_present >= 20:
        return replace(base, reason="id-like: a different value in every row (an id or free text)")
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    levels = [str(lvl) for lvl, c in ranked if c >= min_level_count][:max_levels]
    if not levels:
        return replace(
            base,
            reason=f"free text / too many levels: {len(counts)} distinct values, "
            f"none occurs {min_level_count} times",
        )
    other = len(levels) < len(counts)
    missing_level = missing_share > 0
    kept = set(levels)
    mask = np.fromiter((v in kept for v in norm), dtype=bool, count=len(norm))
    spellings = pd.DataFrame({"n": norm[mask], "raw": [str(r).strip() for r in raw[mask]]})
    label_of = spellings.groupby("n")["raw"].agg(lambda s: s.value_counts().index[0]).to_dict()
    action = f"one-hot {len(levels)} levels" + " + other" * other + " + missing" * missing_level
    notes = [note] if note else []
    if other:
        notes.append(
            f"{len(counts) - len(levels)} rarer values (< {min_level_count} rows or beyond "
            f"the top {max_levels}) -> __other__"
        )
    return replace(
        base,
        used=True,
        action=action,
        reason="; ".join(notes),
        levels=tuple(levels),
        labels=tuple(label_of[lvl] for lvl in levels),
        other=other,
        missing_level=missing_level,
    )


def close_names_hint(name: str, columns: Sequence[str]) -> str:
    """The table's columns, the closest to ``name`` first suggested: for "no such column" errors."""
    folded = {c.casefold(): c for c in columns}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(folded[c]) for c in close)}?" if close else ""
    return f"the columns are {', '.join(map(repr, columns))}{hint}"
