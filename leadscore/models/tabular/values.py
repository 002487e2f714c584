"""The scalar meaning of a cell in a lead table: missing, a categorical level, a number, yes/no.

Both paths of :class:`~leadscore.models.tabular.pipeline.FeaturePipeline` (one record, a
whole table) and the checks of :mod:`leadscore.models.tabular.tables` run each *distinct*
cell value through the same scalar functions (:func:`normalize`, :func:`parse_number`,
:func:`parse_bool`), so a record and the matching table row give the same floats, bit
for bit. Number formats (plain, ``1,234.5``, ``1.234,5``) and dates are recognized here
too.

Missing values: ``""``, ``"NA"``, ``"n/a"``, ``"NULL"``, ``"-"`` … are missing everywhere;
``"unknown"`` is missing in numeric and boolean columns but stays a level in
categorical ones, where it is often informative.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = [
    "BOOL_PAIRS",
    "DATE_SHARE",
    "FALSE_VALUES",
    "LEADING_ZERO",
    "SOFT_MISSING",
    "TRUE_VALUES",
    "column_array",
    "detect_number_format",
    "looks_like_dates",
    "looks_numeric",
    "map_distinct",
    "normalize",
    "parse_bool",
    "parse_number",
    "to_floats",
    "value_parser",
]

#: At least this share of a text column must look like dates for it to be a time column.
DATE_SHARE: Final = 0.95

_HARD_MISSING: Final = frozenset(
    {"", "na", "n/a", "n.a.", "nan", "null", "none", "nil", "-", "--", "?", "#n/a", "missing"}
)
SOFT_MISSING: Final = frozenset({"unknown", "unk"})
TRUE_VALUES: Final = frozenset({"yes", "true", "y", "t", "1"})
FALSE_VALUES: Final = frozenset({"no", "false", "n", "f", "0"})
BOOL_PAIRS: Final = (
    frozenset({"yes", "no"}),
    frozenset({"true", "false"}),
    frozenset({"y", "n"}),
    frozenset({"t", "f"}),
)

_ZERO_FRACTION = re.compile(r"([+-]?\d+)\.0+")
_PLAIN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_COMMA_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")  # 1,234,567.5
_DOT_GROUPED = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d+)?")  # 1.234.567,5
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")  # 3,5
LEADING_ZERO = re.compile(r"[+-]?0\d")
_DATE = re.compile(
    r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?: ?[ap]m)?)?(?:z|[+-]\d{2}:?\d{2})?"
)


# ---------------------------------------------------------------------------------------------
# The scalar definitions of a value. Both transform paths use exactly these.


def _is_missing_object(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT


def normalize(v: Any) -> str | None:
    """A cell as a categorical level: stripped, case-folded text; ``None`` when missing.

    Numbers get one spelling whatever their type (``1``, ``1.0``, ``"1.0"`` -> ``"1"``) so a
    JSON request matches a typed table. Leading zeros are kept (``"007"`` is a code).

    Examples:
        >>> [normalize(v) for v in (" Admin. ", 3.0, "3.0", True, "N/A", "unknown", None)]
        ['admin.', '3', '3', 'true', None, 'unknown', None]
    """
    if _is_missing_object(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    s = str(v).strip().casefold()
    if s in _HARD_MISSING:
        return None
    m = _ZERO_FRACTION.fullmatch(s)
    return m.group(1) if m else s


def _parse_text_number(s: str, number_format: str) -> float:
    if number_format == "decimal_comma":
        if _INTEGER.fullmatch(s):
            return float(s)
        if _DOT_GROUPED.fullmatch(s) or _DECIMAL_COMMA.fullmatch(s):
            return float(s.replace(".", "").replace(",", "."))
        return math.nan
    if _PLAIN.fullmatch(s):
        return float(s)
    if number_format == "comma_thousands" and _COMMA_GROUPED.fullmatch(s):
        return float(s.replace(",", ""))
    return math.nan


def parse_number(v: Any, number_format: str = "plain") -> float:
    """A cell as a number; NaN when missing, ``"unknown"`` or not a number in this format.

    Examples:
        >>> parse_number("1,234.5", "comma_thousands"), parse_number("1.234,5", "decimal_comma")
        (1234.5, 1234.5)
        >>> parse_number("unknown"), parse_number("12abc"), parse_number(True)
        (nan, nan, 1.0)
    """
    if _is_missing_object(v):
        return math.nan
    if isinstance(v, (bool, np.bool_)):
        return 1.0 if v else 0.0
    if isinstance(v, (int, np.integer, float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else math.nan
    s = str(v).strip()
    folded = s.casefold()
    if folded in _HARD_MISSING or folded in SOFT_MISSING:
        return math.nan
    return _parse_text_number(s, number_format)


def looks_numeric(s: str) -> bool:
    """Whether a normalized text value reads as a number in any of the formats."""
    return bool(_PLAIN.fullmatch(s) or _COMMA_GROUPED.fullmatch(s) or _DECIMAL_COMMA.fullmatch(s))


def value_parser(kind: str, number_format: str) -> Callable[[Any], float]:
    """The scalar parser of a numeric or boolean column: :func:`parse_bool` or :func:`parse_number`."""
    return parse_bool if kind == "boolean" else partial(parse_number, number_format=number_format)


def parse_bool(v: Any) -> float:
    """A cell as 1.0 / 0.0; NaN when missing or not a yes/no-like value."""
    s = normalize(v)
    if s in TRUE_VALUES:
        return 1.0
    if s in FALSE_VALUES:
        return 0.0
    return math.nan


# ---------------------------------------------------------------------------------------------
# Applying them to a whole column: once per distinct value, then indexed.


def map_distinct(values: np.ndarray, fn: Callable[[Any], Any]) -> np.ndarray:
    """``fn`` of every element of an object array, calling ``fn`` once per distinct value."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(values)  # missing -> code -1 -> the last slot
        mapped = [fn(u) for u in uniques] + [fn(None)]
        out = np.empty(len(mapped), dtype=object)
        out[:] = mapped
        per_row: np.ndarray = out[codes]
        return per_row
    cache: dict[tuple[type, Any], Any] = {}  # keyed by type too: 1, 1.0 and True hash alike
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        key = (type(v), v)
        try:
            out[i] = cache[key]
        except KeyError:
            out[i] = cache[key] = fn(v)
        except TypeError:  # unhashable cell (a list from JSON): no cache
            out[i] = fn(v)
    return out


def to_floats(values: np.ndarray, fn: Callable[[Any], float]) -> np.ndarray:
    """``fn`` over a column as float64; numeric numpy columns take the exact fast path."""
    if values.dtype.kind in "iuf" and fn is not parse_bool:
        x = values.astype(np.float64)
        x[~np.isfinite(x)] = np.nan
        return x
    if values.dtype.kind == "b":
        return values.astype(np.float64)
    return map_distinct(values.astype(object, copy=False), fn).astype(np.float64)


def column_array(data: pd.DataFrame | Sequence[Mapping[str, Any]], name: str, n: int) -> np.ndarray:
    """Column ``name`` of a table or of a list of records (all ``None`` when absent)."""
    if isinstance(data, pd.DataFrame):
        if name not in data.columns:
            return np.full(n, None, dtype=object)
        col = data[name]
        numeric = isinstance(col.dtype, np.dtype) and col.dtype.kind in "iufb"
        values: np.ndarray = col.to_numpy() if numeric else col.to_numpy(dtype=object)
        return values
    out = np.empty(n, dtype=object)
    out[:] = [r.get(name) for r in data]
    return out


# ---------------------------------------------------------------------------------------------
# What a column's distinct values look like: numbers in which format, dates.


def detect_number_format(distinct: Sequence[str]) -> tuple[str | None, str]:
    """(format or None, why not) for distinct normalized, non-missing text values."""
    if all(_PLAIN.fullmatch(s) for s in distinct):
        return "plain", ""
    thousands = all(_PLAIN.fullmatch(s) or _COMMA_GROUPED.fullmatch(s) for s in distinct)
    decimal = all(
        _INTEGER.fullmatch(s) or _DECIMAL_COMMA.fullmatch(s) or _DOT_GROUPED.fullmatch(s)
        for s in distinct
    )
    if thousands and decimal:
        example = next(s for s in distinct if "," in s)
        return None, (
            f"values like {example!r} could use ',' as thousands separator or as decimal comma"
        )
    if thousands:
        return "comma_thousands", ""
    if decimal:
        return "decimal_comma", ""
    bad = next(
        (s for s in distinct if not (_PLAIN.fullmatch(s) or _COMMA_GROUPED.fullmatch(s))), ""
    )
    return None, f"{bad!r} is not a number"


def looks_like_dates(distinct: Sequence[str], counts: Sequence[int] | None = None) -> bool:
    """Whether at least :data:`DATE_SHARE` of the values (weighted by ``counts``) are dates."""
    if not distinct:
        return False
    weights = counts if counts is not None else [1] * len(distinct)
    matching = sum(w for s, w in zip(distinct, weights) if _DATE.fullmatch(s))
    if matching < DATE_SHARE * sum(weights):
        return False
    sample = pd.Series(list(distinct[:1000]))  # "mixed" parses one value at a time: ~50 us each
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= DATE_SHARE)
