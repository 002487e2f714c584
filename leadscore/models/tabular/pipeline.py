"""Turn a tabular lead file (a CRM export) into the model's feature matrix, one record or many.

The user's file is one we have never seen: any columns, any types, missing values.
:class:`FeaturePipeline` decides once, at training, what each column is (numeric,
boolean, categorical, or dropped with a reason) and then builds the same vector for
one record (:meth:`FeaturePipeline.transform_one`, pure Python, per request) and for a
whole table (:meth:`FeaturePipeline.transform`, vectorized, for training and batch).

One definition of every value: both paths run each *distinct* cell value through the
same scalar functions (:func:`_normalize`, :func:`_parse_number`, :func:`_parse_bool`),
so a record and the matching table row give the same floats, bit for bit.
:func:`~leadscore.models.tabular.tables.load_table` therefore reads text files as text: ``"02134"``
stays a zip code and ``"1,234"`` is decided by the pipeline's number rules, not by the CSV
reader.

Missing values: ``""``, ``"NA"``, ``"n/a"``, ``"NULL"``, ``"-"`` … are missing everywhere;
``"unknown"`` is missing in numeric and boolean columns but stays a level in
categorical ones, where it is often informative.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = ["FeaturePipeline", "TableError"]

#: Version of the serialized pipeline (``to_dict``); bump when the meaning of a field changes.
PIPELINE_FORMAT_VERSION: Final = 1
_FORMAT_NAME: Final = "leadscore.tabular.FeaturePipeline"

#: A column at least this empty is dropped.
MOSTLY_MISSING_SHARE: Final = 0.95
#: Integer columns with at most this many distinct values get a "maybe codes" note.
FEW_INTEGER_VALUES: Final = 20
#: At least this share of a text column must look like dates for it to be a time column.
DATE_SHARE: Final = 0.95

_HARD_MISSING: Final = frozenset(
    {"", "na", "n/a", "n.a.", "nan", "null", "none", "nil", "-", "--", "?", "#n/a", "missing"}
)
_SOFT_MISSING: Final = frozenset({"unknown", "unk"})
_TRUE: Final = frozenset({"yes", "true", "y", "t", "1"})
_FALSE: Final = frozenset({"no", "false", "n", "f", "0"})
_BOOL_PAIRS: Final = (
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
_LEADING_ZERO = re.compile(r"[+-]?0\d")
_DATE = re.compile(
    r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?: ?[ap]m)?)?(?:z|[+-]\d{2}:?\d{2})?"
)


class TableError(ValueError):
    """A table, target or pipeline we refuse; the message says what was wrong and what to do."""


# ---------------------------------------------------------------------------------------------
# The scalar definitions of a value. Both transform paths use exactly these.


def _is_missing_object(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT


def _normalize(v: Any) -> str | None:
    """A cell as a categorical level: stripped, case-folded text; ``None`` when missing.

    Numbers get one spelling whatever their type (``1``, ``1.0``, ``"1.0"`` -> ``"1"``) so a
    JSON request matches a typed table. Leading zeros are kept (``"007"`` is a code).

    Examples:
        >>> [_normalize(v) for v in (" Admin. ", 3.0, "3.0", True, "N/A", "unknown", None)]
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


def _parse_number(v: Any, number_format: str = "plain") -> float:
    """A cell as a number; NaN when missing, ``"unknown"`` or not a number in this format.

    Examples:
        >>> _parse_number("1,234.5", "comma_thousands"), _parse_number("1.234,5", "decimal_comma")
        (1234.5, 1234.5)
        >>> _parse_number("unknown"), _parse_number("12abc"), _parse_number(True)
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
    if folded in _HARD_MISSING or folded in _SOFT_MISSING:
        return math.nan
    return _parse_text_number(s, number_format)


def _looks_numeric(s: str) -> bool:
    return bool(_PLAIN.fullmatch(s) or _COMMA_GROUPED.fullmatch(s) or _DECIMAL_COMMA.fullmatch(s))


def _value_parser(kind: str, number_format: str) -> Callable[[Any], float]:
    return _parse_bool if kind == "boolean" else partial(_parse_number, number_format=number_format)


def _parse_bool(v: Any) -> float:
    """A cell as 1.0 / 0.0; NaN when missing or not a yes/no-like value."""
    s = _normalize(v)
    if s in _TRUE:
        return 1.0
    if s in _FALSE:
        return 0.0
    return math.nan


# ---------------------------------------------------------------------------------------------
# Applying them to a whole column: once per distinct value, then indexed.


def _apply(values: np.ndarray, fn: Callable[[Any], Any]) -> np.ndarray:
    """``fn`` of every element of an object array, calling ``fn`` once per distinct value."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(values)  # missing -> code -1 -> the last slot
        mapped = [fn(u) for u in uniques] + [fn(None)]
        out = np.empty(len(mapped), dtype=object)
        out[:] = mapped
        return out[codes]
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


def _floats(values: np.ndarray, fn: Callable[[Any], float]) -> np.ndarray:
    """``fn`` over a column as float64; numeric numpy columns take the exact fast path."""
    if values.dtype.kind in "iuf" and fn is not _parse_bool:
        x = values.astype(np.float64)
        x[~np.isfinite(x)] = np.nan
        return x
    if values.dtype.kind == "b":
        return values.astype(np.float64)
    return _apply(values.astype(object, copy=False), fn).astype(np.float64)


def _column_array(
    data: pd.DataFrame | Sequence[Mapping[str, Any]], name: str, n: int
) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        if name not in data.columns:
            return np.full(n, None, dtype=object)
        col = data[name]
        if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iufb":
            return col.to_numpy()
        return col.to_numpy(dtype=object)
    out = np.empty(n, dtype=object)
    out[:] = [r.get(name) for r in data]
    return out


# ---------------------------------------------------------------------------------------------
# What each column is.


@dataclass(frozen=True)
class _Column:
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


def _detect_number_format(distinct: Sequence[str]) -> tuple[str | None, str]:
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


def _looks_like_dates(distinct: Sequence[str], counts: Sequence[int] | None = None) -> bool:
    if not distinct:
        return False
    weights = counts if counts is not None else [1] * len(distinct)
    matching = sum(w for s, w in zip(distinct, weights) if _DATE.fullmatch(s))
    if matching < DATE_SHARE * sum(weights):
        return False
    sample = pd.Series(list(distinct[:1000]))  # "mixed" parses one value at a time: ~50 us each
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= DATE_SHARE)


def _infer_column(
    name: str,
    values: np.ndarray,
    *,
    force: str | None,
    max_levels: int,
    min_level_count: int,
) -> _Column:
    """Decide the kind of one column from its training values (see FeaturePipeline.fit)."""
    n = len(values)
    if values.dtype.kind == "M":
        return _Column(name, "datetime", False, "dropped", _DATE_REASON, n_distinct=0)
    norm = _apply(values.astype(object, copy=False), _normalize)
    present = norm[norm != None]  # noqa: E711 - elementwise comparison with None
    counts = pd.Series(present, dtype=object).value_counts(sort=True)
    distinct = [str(s) for s in counts.index]
    hard_missing_share = 1.0 - len(present) / n if n else 1.0

    kind, number_format, why_not_numeric = force, "plain", ""
    numeric_dtype = values.dtype.kind in "iuf"
    if kind is None:
        if values.dtype.kind == "b" or (
            len(distinct) == 2 and any(set(distinct) <= pair for pair in _BOOL_PAIRS)
        ):
            kind = "boolean"
        elif numeric_dtype:
            kind = "numeric"
        else:
            numeric_values = [s for s in distinct if s not in _SOFT_MISSING]
            leading = next((s for s in numeric_values if _LEADING_ZERO.match(s)), None)
            fmt, why_not_numeric = _detect_number_format(numeric_values)
            if fmt is not None and numeric_values and leading is None:
                kind, number_format = "numeric", fmt
            elif _looks_like_dates(distinct, list(counts.to_numpy())):
                return _Column(
                    name, "datetime", False, "dropped", _DATE_REASON,
                    hard_missing_share, len(distinct),
                )  # fmt: skip
            else:
                kind = "categorical"
                if leading is not None and fmt is not None:
                    why_not_numeric = f"leading zeros ({leading!r}): codes, not numbers"
                numberish = sum(int(c) for s, c in counts.items() if _looks_numeric(s))
                if numberish < 0.5 * len(present):  # plainly text: no need to say why
                    why_not_numeric = ""
    elif kind == "numeric" and not numeric_dtype:
        fmt, _ = _detect_number_format([s for s in distinct if s not in _SOFT_MISSING])
        number_format = fmt or "comma_thousands"

    if kind == "categorical":
        return _categorical(
            name, norm, values, counts, hard_missing_share, forced=force is not None,
            max_levels=max_levels, min_level_count=min_level_count, note=why_not_numeric,
        )  # fmt: skip

    parse = _value_parser(kind, number_format)
    x = _floats(values, parse)
    ok = ~np.isnan(x)
    missing_share = float(1.0 - ok.mean()) if n else 1.0
    xs = x[ok]
    n_distinct = int(len(np.unique(xs)))
    base = _Column(name, kind, False, "dropped", "", missing_share, n_distinct)
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
    unparsed = sum(v is not None and v not in _SOFT_MISSING for v in norm[~ok])
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
) -> _Column:
    n_present = int(counts.sum())
    base = _Column(name, "categorical", False, "dropped", "", missing_share, len(counts))
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


def _close_names_hint(name: str, columns: Sequence[str]) -> str:
    folded = {c.casefold(): c for c in columns}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(folded[c]) for c in close)}?" if close else ""
    return f"the columns are {', '.join(map(repr, columns))}{hint}"


# ---------------------------------------------------------------------------------------------


class FeaturePipeline:
    """Input columns -> the model's feature matrix, the same for one record and for a table.

    Build it with :meth:`fit` (from training data), :meth:`fixed` (known up front) or
    :meth:`from_dict` (saved). Output features, in order, per used input column:

    - numeric / boolean: ``<col>`` (missing -> training median), then ``<col>__missing``
      (1.0 when missing) if the training data had missing values;
    - categorical: ``<col>=<level>`` per kept level, then ``<col>=__other__`` (rare and unseen
      values) if training had rare values, then ``<col>=__missing__`` if training had missing
      values. Without those columns an unseen or missing value gives all zeros.

    Examples:
        >>> p = FeaturePipeline.fixed(["age"], {"channel": ["web", "email"]})
        >>> p.feature_names
        ('age', 'channel=web', 'channel=email')
        >>> p.transform_one({"age": "42", "channel": " Email"}).tolist()
        [42.0, 0.0, 1.0]
        >>> p.describe("channel=web", 0.0)
        'channel is not web'
    """

    def __init__(self, columns: Sequence[_Column]) -> None:
        self._columns: tuple[_Column, ...] = tuple(columns)
        names: list[str] = []
        sources: list[str] = []
        # feature -> (column, role, level index); role: value | missing | level | other | nolevel
        self._feature_info: dict[str, tuple[_Column, str, int]] = {}
        self._offsets: list[int] = []
        self._level_index: list[dict[str, int]] = []
        for col in self._columns:
            self._offsets.append(len(names))
            self._level_index.append({lvl: i for i, lvl in enumerate(col.levels)})
            for i, feat in enumerate(col.feature_names()):
                if col.kind == "categorical":
                    role = "level" if i < len(col.levels) else feat.rsplit("=", 1)[1].strip("_")
                else:
                    role = "value" if i == 0 else "missing"
                self._feature_info[feat] = (col, role, i)
                names.append(feat)
                sources.append(col.name)
        if len(set(names)) != len(names):
            dup = sorted({f for f in names if names.count(f) > 1})
            raise TableError(f"feature names collide: {dup}; rename the input columns")
        self.feature_names: tuple[str, ...] = tuple(names)
        self.source_column: tuple[str, ...] = tuple(sources)
        self.input_columns: tuple[str, ...] = tuple(c.name for c in self._columns if c.used)
        self._used = [
            (c, off, idx)
            for c, off, idx in zip(self._columns, self._offsets, self._level_index)
            if c.used
        ]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        df: pd.DataFrame,
        *,
        y: np.ndarray | None = None,
        exclude: Sequence[str] = (),
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        max_levels: int = 30,
        min_level_count: int | None = None,
    ) -> FeaturePipeline:
        """Infer what each column of ``df`` is and how to encode it.

        Args:
            df: training table; text columns (as
                :func:`~leadscore.models.tabular.tables.load_table` returns) or typed ones.
            y: the labels, only checked to have one per row (the target column itself must be
                in ``exclude``).
            exclude: columns not to use (the target, known leaks); reported as excluded.
            categorical: columns forced categorical (e.g. integer codes).
            numeric: columns forced numeric; values that are not numbers count as missing.
            max_levels: at most this many one-hot levels per categorical column.
            min_level_count: a level needs this many rows to get its own feature; default
                ``max(5, 0.2 % of rows)``.

        Raises:
            TableError: no rows, a named column absent, a column both forced numeric and
                categorical, or no usable column left.
        """
        columns = [c for c in df.columns]
        if not all(isinstance(c, str) for c in columns):
            raise TableError(f"column names must be text, got {columns[:10]!r}")
        if len(set(columns)) != len(columns):
            raise TableError("duplicate column names; give every column a distinct name")
        n = len(df)
        if n == 0:
            raise TableError("the table has no rows")
        if y is not None and len(y) != n:
            raise TableError(f"y has {len(y)} labels for {n} rows; give one label per row")
        for what, names in (("exclude", exclude), ("categorical", categorical),
                            ("numeric", numeric)):  # fmt: skip
            for name in names:
                if name not in columns:
                    raise TableError(
                        f"{what} names column {name!r}, which is not in the table; "
                        + _close_names_hint(name, columns)
                    )
        both = set(categorical) & set(numeric)
        if both:
            raise TableError(f"columns forced both categorical and numeric: {sorted(both)}")
        if max_levels < 1:
            raise TableError(f"max_levels must be at least 1, got {max_levels}")
        min_count = min_level_count if min_level_count is not None else max(5, math.ceil(0.002 * n))
        specs = []
        for name in columns:
            if name in exclude:
                specs.append(_Column(name, "excluded", False, "dropped", "excluded by request"))
                continue
            force = "categorical" if name in categorical else "numeric" if name in numeric else None
            values = _column_array(df, name, n)
            specs.append(
                _infer_column(
                    name, values, force=force, max_levels=max_levels, min_level_count=min_count
                )
            )
        pipeline = cls(specs)
        if not pipeline.feature_names:
            dropped = "; ".join(f"{c.name}: {c.reason}" for c in specs)
            raise TableError(f"no usable feature column: {dropped}")
        return pipeline

    @classmethod
    def fixed(
        cls, numeric: Sequence[str], categorical: Mapping[str, Sequence[str]]
    ) -> FeaturePipeline:
        """A pipeline known up front: missing numbers -> 0.0; unseen or missing levels -> zeros."""
        specs = [_Column(c, "numeric", True, "numeric") for c in numeric]
        for name, levels in categorical.items():
            norm = [_normalize(lvl) for lvl in levels]
            if any(v is None for v in norm) or len(set(norm)) != len(norm):
                raise TableError(f"levels of {name!r} must be distinct and non-empty: {levels!r}")
            specs.append(
                _Column(
                    name,
                    "categorical",
                    True,
                    f"one-hot {len(norm)} levels",
                    levels=tuple(str(v) for v in norm),
                    labels=tuple(str(lvl).strip() for lvl in levels),
                )  # fmt: skip
            )
        return cls(specs)

    # -- transforming -------------------------------------------------------------------------

    def transform_one(self, record: Mapping[str, Any]) -> np.ndarray:
        """The feature vector of one record (missing keys are missing values); no pandas.

        Returns:
            float64 array of shape (n_features,), equal to the matching row of :meth:`transform`.
        """
        out = np.zeros(len(self.feature_names), dtype=np.float64)
        for col, off, level_index in self._used:
            v = record.get(col.name)
            if col.kind == "categorical":
                s = _normalize(v)
                if s is None:
                    j = len(col.levels) + col.other if col.missing_level else -1
                else:
                    j = level_index.get(s, len(col.levels) if col.other else -1)
                if j >= 0:
                    out[off + j] = 1.0
                continue
            x = _parse_bool(v) if col.kind == "boolean" else _parse_number(v, col.number_format)
            if x != x:  # NaN: missing
                out[off] = col.fill
                if col.indicator:
                    out[off + 1] = 1.0
            else:
                out[off] = x
        return out

    def transform(self, data: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The feature matrix of a table or of a list of records, shape (n, n_features)."""
        n = len(data)
        out = np.zeros((n, len(self.feature_names)), dtype=np.float64)
        rows = np.arange(n)
        for col, off, level_index in self._used:
            values = _column_array(data, col.name, n)
            if col.kind == "categorical":
                n_levels = len(col.levels)
                missing_j = n_levels + col.other if col.missing_level else -1
                unseen_j = n_levels if col.other else -1

                def slot(v: Any, idx: dict[str, int] = level_index,
                         mj: int = missing_j, uj: int = unseen_j) -> int:  # fmt: skip
                    s = _normalize(v)
                    return mj if s is None else idx.get(s, uj)

                j = _apply(values.astype(object, copy=False), slot).astype(np.int64)
                hit = j >= 0
                out[rows[hit], off + j[hit]] = 1.0
                continue
            x = _floats(values, _value_parser(col.kind, col.number_format))
            missing = np.isnan(x)
            out[:, off] = np.where(missing, col.fill, x)
            if col.indicator:
                out[:, off + 1] = missing
        return out

    def absent_columns(self, columns: Sequence[str]) -> list[str]:
        """The used input columns not among ``columns``: a batch file without them scores
        every row as if the value were missing, so callers should warn (or refuse)."""
        present = set(columns)
        return [c for c in self.input_columns if c not in present]

    # -- explaining ---------------------------------------------------------------------------

    def describe(self, feature: str, value: float) -> str:
        """Words for one feature's value, for a salesperson: ``"age 42"``, ``"job: admin."``."""
        try:
            col, role, i = self._feature_info[feature]
        except KeyError:
            raise TableError(
                f"no feature {feature!r} in this pipeline; it has {len(self.feature_names)} "
                f"features, e.g. {list(self.feature_names[:5])!r}"
            ) from None
        on = value >= 0.5
        if role == "missing":
            return f"{col.name} unknown" if on else f"{col.name} known"
        if role == "level":
            label = col.labels[i] if i < len(col.labels) else col.levels[i]
            return f"{col.name}: {label}" if on else f"{col.name} is not {label}"
        if role == "other":
            return f"{col.name}: a rare or new value" if on else f"{col.name} is a common value"
        if col.kind == "boolean":
            return f"{col.name}: yes" if on else f"{col.name}: no"
        text = str(int(value)) if float(value).is_integer() else f"{value:.6g}"
        return f"{col.name} {text}"

    def columns_report(self) -> list[dict[str, Any]]:
        """Per input column: name, kind, action, reason, missing share, distinct values."""
        return [
            {
                "name": c.name,
                "kind": c.kind,
                "action": c.action,
                "reason": c.reason,
                "missing_share": round(c.missing_share, 4),
                "distinct": c.n_distinct,
            }
            for c in self._columns
        ]

    # -- saving -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description from which :meth:`from_dict` rebuilds the same pipeline."""
        cols = []
        for c in self._columns:
            d = asdict(c)
            d["levels"], d["labels"] = list(c.levels), list(c.labels)
            cols.append(d)
        return {"format": _FORMAT_NAME, "version": PIPELINE_FORMAT_VERSION, "columns": cols}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeaturePipeline:
        """Rebuild a pipeline saved by :meth:`to_dict`; refuses other formats and versions."""
        if d.get("format") != _FORMAT_NAME or d.get("version") != PIPELINE_FORMAT_VERSION:
            raise TableError(
                f"not a saved feature pipeline of version {PIPELINE_FORMAT_VERSION}: got format "
                f"{d.get('format')!r} version {d.get('version')!r}; retrain the model"
            )
        if not isinstance(d.get("columns"), list):
            raise TableError("saved feature pipeline has no 'columns' list; retrain the model")
        known = {f.name for f in fields(_Column)}
        specs = []
        for c in d["columns"]:
            unknown = set(c) - known
            if unknown:
                raise TableError(f"saved column {c.get('name')!r} has unknown fields {unknown}")
            c = dict(c, levels=tuple(c.get("levels", ())), labels=tuple(c.get("labels", ())))
            specs.append(_Column(**c))
        return cls(specs)
