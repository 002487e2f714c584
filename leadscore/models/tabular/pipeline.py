"""Turn a tabular lead file (a CRM export) into the model's feature matrix, one record or many.

The user's file is one we have never seen: any columns, any types, missing values.
:class:`FeaturePipeline` decides once, at training, what each column is (numeric,
boolean, categorical, or dropped with a reason) and then builds the same vector for
one record (:meth:`FeaturePipeline.transform_one`, pure Python, per request) and for a
whole table (:meth:`FeaturePipeline.transform`, vectorized, for training and batch).

One definition of every value: both paths run each *distinct* cell value through the
same scalar functions of :mod:`leadscore.models.tabular.values`, so a record and the
matching table row give the same floats, bit for bit.
:func:`~leadscore.models.tabular.tables.load_table` therefore reads text files as text: ``"02134"``
stays a zip code and ``"1,234"`` is decided by the pipeline's number rules, not by the CSV
reader. How the kind of each column is decided: :mod:`leadscore.models.tabular.columns`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any, Final

import numpy as np
import pandas as pd

from leadscore.models.tabular.columns import Column, close_names_hint, infer_column
from leadscore.models.tabular.values import (
    column_array,
    map_distinct,
    normalize,
    parse_bool,
    parse_number,
    to_floats,
    value_parser,
)

__all__ = ["FeaturePipeline", "TableError"]

#: Version of the serialized pipeline (``to_dict``); bump when the meaning of a field changes.
PIPELINE_FORMAT_VERSION: Final = 1
_FORMAT_NAME: Final = "leadscore.tabular.FeaturePipeline"


class TableError(ValueError):
    """A table, target or pipeline we refuse; the message says what was wrong and what to do."""


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

    def __init__(self, columns: Sequence[Column]) -> None:
        self._columns: tuple[Column, ...] = tuple(columns)
        names: list[str] = []
        sources: list[str] = []
        # feature -> (column, role, level index); role: value | missing | level | other | nolevel
        self._feature_info: dict[str, tuple[Column, str, int]] = {}
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
                        + close_names_hint(name, columns)
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
                specs.append(Column(name, "excluded", False, "dropped", "excluded by request"))
                continue
            force = "categorical" if name in categorical else "numeric" if name in numeric else None
            values = column_array(df, name, n)
            specs.append(
                infer_column(
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
        specs = [Column(c, "numeric", True, "numeric") for c in numeric]
        for name, levels in categorical.items():
            norm = [normalize(lvl) for lvl in levels]
            if any(v is None for v in norm) or len(set(norm)) != len(norm):
                raise TableError(f"levels of {name!r} must be distinct and non-empty: {levels!r}")
            specs.append(
                Column(
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
                s = normalize(v)
                if s is None:
                    j = len(col.levels) + col.other if col.missing_level else -1
                else:
                    j = level_index.get(s, len(col.levels) if col.other else -1)
                if j >= 0:
                    out[off + j] = 1.0
                continue
            x = parse_bool(v) if col.kind == "boolean" else parse_number(v, col.number_format)
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
            values = column_array(data, col.name, n)
            if col.kind == "categorical":
                n_levels = len(col.levels)
                missing_j = n_levels + col.other if col.missing_level else -1
                unseen_j = n_levels if col.other else -1

                def slot(v: Any, idx: dict[str, int] = level_index,
                         mj: int = missing_j, uj: int = unseen_j) -> int:  # fmt: skip
                    s = normalize(v)
                    return mj if s is None else idx.get(s, uj)

                j = map_distinct(values.astype(object, copy=False), slot).astype(np.int64)
                hit = j >= 0
                out[rows[hit], off + j[hit]] = 1.0
                continue
            x = to_floats(values, value_parser(col.kind, col.number_format))
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
        known = {f.name for f in fields(Column)}
        specs = []
        for c in d["columns"]:
            unknown = set(c) - known
            if unknown:
                raise TableError(f"saved column {c.get('name')!r} has unknown fields {unknown}")
            c = dict(c, levels=tuple(c.get("levels", ())), labels=tuple(c.get("labels", ())))
            specs.append(Column(**c))
        return cls(specs)
