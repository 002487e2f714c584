"""Read a lead table from a file and judge it before training: the target, leaks, a time column.

:func:`load_table` reads text files as text so that
:class:`~leadscore.models.tabular.pipeline.FeaturePipeline` alone decides what is a number;
:func:`parse_target` turns the label column into 0/1; :func:`single_column_auc` flags
columns that predict the label almost on their own (likely leaks); :func:`detect_time_column`
finds a column for time-ordered validation. Cells are read with the pipeline's own scalar
rules, so "missing" and "yes" mean the same here as in the pipeline.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from leadscore.models.tabular.columns import close_names_hint, infer_column
from leadscore.models.tabular.pipeline import TableError
from leadscore.models.tabular.values import (
    FALSE_VALUES,
    TRUE_VALUES,
    column_array,
    looks_like_dates,
    map_distinct,
    normalize,
    to_floats,
    value_parser,
)

__all__ = [
    "LEAK_AUC_WARNING",
    "detect_time_column",
    "load_table",
    "parse_target",
    "single_column_auc",
]

#: Refuse to train on fewer rows, or fewer rows of the rarer class (5-fold CV needs both).
MIN_ROWS: Final = 50
MIN_MINORITY: Final = 10
#: single_column_auc at or above this: "predicts the label almost on its own" (a likely leak).
#: On the public files it flags exactly the documented leaks: bank `duration` (0.81, 0.82) and
#: shoppers `PageValues` (0.86); the next column is bank-additional `nr.employed` at 0.75.
LEAK_AUC_WARNING: Final = 0.8
_TEXT_SUFFIXES: Final = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
_PARQUET_SUFFIXES: Final = (".parquet", ".pq")
_SEPARATORS: Final = (",", ";", "\t", "|")


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV-like file (separator sniffed) as text columns, or a Parquet file as typed.

    Text files are read as text so the pipeline alone decides what is a number; empty
    cells are ``""``. Header names are stripped. Accepted: .csv, .tsv, .txt, each optionally
    .gz, and .parquet / .pq.

    Raises:
        TableError: a missing file, an unknown extension, an empty file, unparseable content.
    """
    p = Path(path)
    if not p.is_file():
        what = " (it is a directory)" if p.is_dir() else ""
        raise TableError(f"no such file: {str(p)!r}{what}")
    name = p.name.casefold()
    if name.endswith(_PARQUET_SUFFIXES):
        try:
            df = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise TableError(f"{str(p)!r} is not a readable Parquet file: {exc}") from exc
    elif name.endswith(_TEXT_SUFFIXES):
        df = _read_text_table(p)
    else:
        raise TableError(
            f"unknown file type {p.suffix!r} for {str(p)!r}: expected "
            + ", ".join(_TEXT_SUFFIXES + _PARQUET_SUFFIXES)
            + " (export spreadsheets as CSV)"
        )
    if df.shape[1] == 0 or len(df) == 0:
        raise TableError(f"{str(p)!r} has no data rows (only a header, or nothing)")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _read_text_table(p: Path) -> pd.DataFrame:
    opener = gzip.open if p.name.casefold().endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise TableError(f"cannot read {str(p)!r}: {exc}") from exc
    if not head.strip():
        raise TableError(f"{str(p)!r} is empty")
    if b"\x00" in head:
        raise TableError(f"{str(p)!r} looks binary, not text; expected a CSV export")
    encoding = "utf-8-sig"
    try:
        text = head.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the 64 KiB sample
            encoding, text = "cp1252", head.decode("cp1252", errors="replace")
        else:
            text = head.decode(encoding, errors="ignore")
    if p.name.casefold().endswith((".tsv", ".tsv.gz")):
        sep = "\t"
    else:
        sep = _sniff_separator(text)
    try:
        return pd.read_csv(
            p, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
            encoding=encoding, encoding_errors="replace", compression="infer",
        )  # fmt: skip
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TableError(
            f"cannot parse {str(p)!r} as a table separated by {sep!r}: {str(exc).strip()}; "
            "check that every "
            "row has as many fields as the header and that quotes are balanced"
        ) from exc


def _sniff_separator(text: str) -> str:
    """The separator giving the same field count (> 1) on most sample lines, most fields first."""
    lines = [ln for ln in text.splitlines()[:30] if ln.strip()]
    if len(lines) > 1:
        lines = lines[:-1]  # the last line of the sample may be cut
    best, best_score = ",", (0.0, 0)
    for sep in _SEPARATORS:
        widths = [len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=sep)]
        if not widths or widths[0] < 2:
            continue
        score = (sum(w == widths[0] for w in widths) / len(widths), widths[0])
        if score > best_score:
            best, best_score = sep, score
    return best


def parse_target(
    df: pd.DataFrame, target: str, *, positive: str | None = None
) -> tuple[np.ndarray, str]:
    """The label column as 0/1, and the label taken as positive.

    Two-valued targets are read without help when one side is clearly positive (yes/no,
    true/false, 1/0, y/n, t/f, ``X``/``not X``); otherwise name it with ``positive`` (which
    also turns a multi-class column into ``positive`` vs the rest). Rows with a missing
    target are refused, not dropped: dropping them here would misalign ``y`` with ``df``;
    the message says how many so the user can remove or fill them.

    Returns:
        (y as int8 of shape (n,), the positive label as spelt most often in the file).

    Raises:
        TableError: the column is absent, has missing values, one class only, more than
            two classes without ``positive``, or too few rows to cross-validate.
    """
    columns = [str(c) for c in df.columns]
    if target not in df.columns:
        raise TableError(
            f"target column {target!r} not found; " + close_names_hint(target, columns)
        )
    raw = df[target].to_numpy(dtype=object)
    norm = map_distinct(raw, normalize)
    missing = int(sum(v is None for v in norm))
    if missing:
        raise TableError(
            f"target {target!r} is missing in {missing} of {len(raw)} rows; remove those rows "
            "or fill in their outcome"
        )
    counts = pd.Series(norm, dtype=object).value_counts()
    shown = ", ".join(f"{v!r} ({c})" for v, c in counts.items())
    if len(counts) < 2:
        raise TableError(
            f"target {target!r} has one class only ({shown}); a model needs both outcomes"
        )
    values = set(counts.index)
    if positive is not None:
        pos = normalize(positive)
        if pos not in values:
            raise TableError(f"positive={positive!r} is not a value of {target!r}: {shown}")
    elif len(values) > 2:
        raise TableError(
            f"target {target!r} has {len(values)} values ({shown}); say which one is the "
            "positive outcome with --positive"
        )
    else:
        pos = _positive_of_pair(*sorted(values))
        if pos is None:
            raise TableError(
                f"target {target!r} has two values ({shown}) and neither is clearly the "
                "positive one; say which with --positive"
            )
    y = (norm == pos).astype(np.int8)
    n, n_pos = len(y), int(y.sum())
    minority = min(n_pos, n - n_pos)
    if n < MIN_ROWS:
        raise TableError(f"only {n} rows; at least {MIN_ROWS} are needed to cross-validate")
    if minority < MIN_MINORITY:
        raise TableError(
            f"only {minority} rows of the rarer class ({n_pos} positive of {n}); at least "
            f"{MIN_MINORITY} are needed to cross-validate"
        )
    spelt = pd.Series([str(r).strip() for r in raw[y == 1]]).value_counts().index[0]
    return y, str(spelt)


def _positive_of_pair(a: str, b: str) -> str | None:
    for p, q in ((a, b), (b, a)):
        if p in TRUE_VALUES and q in FALSE_VALUES:
            return p
        m = re.fullmatch(r"(?:not|non|no)[-_ ]?(.+)", q)
        if m and m.group(1) == p:
            return p
    return None


def single_column_auc(
    df: pd.DataFrame, y: np.ndarray, columns: Sequence[str] | None = None
) -> dict[str, float]:
    """How well each column alone ranks the label, as ROC AUC (0.5 = not at all).

    Numeric and boolean columns: the rank AUC of the value (missing ranked lowest), as
    ``max(auc, 1 - auc)``. Other columns: the AUC of an out-of-fold (5 folds, fixed seed)
    smoothed target-mean encoding of the normalized value, so an id column scores ~0.5.
    A column near 1.0 may only be known after the outcome (a leak).
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(df)
    if len(y) != n:
        raise TableError(f"y has {len(y)} labels for {n} rows")
    fold = np.random.default_rng(0).permutation(n) % 5
    result = {}
    for name in columns if columns is not None else list(df.columns):
        values = column_array(df, name, n)
        spec = infer_column(name, values, force=None, max_levels=1, min_level_count=n + 1)
        if spec.kind in ("numeric", "boolean") and "id-like" not in spec.reason:
            x = to_floats(values, value_parser(spec.kind, spec.number_format))
            auc = _rank_auc(np.where(np.isnan(x), -np.inf, x), y)
            result[name] = max(auc, 1.0 - auc)
        else:
            result[name] = _target_encoding_auc(
                map_distinct(values.astype(object), normalize), y, fold
            )
    return result


def _rank_auc(score: np.ndarray, y: np.ndarray) -> float:
    n1 = float(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return 0.5
    ranks = rankdata(score)  # ties get their average rank
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _target_encoding_auc(
    norm: np.ndarray, y: np.ndarray, fold: np.ndarray, smooth: float = 10.0
) -> float:
    codes, _ = pd.factorize(norm)  # None -> -1: missing is its own value
    codes = np.where(codes < 0, codes.max() + 1, codes)
    k = int(codes.max()) + 1
    count, total = np.bincount(codes, minlength=k), np.bincount(codes, weights=y, minlength=k)
    enc = np.empty(len(y))
    for f in range(5):
        m = fold == f
        c = count - np.bincount(codes[m], minlength=k)
        s = total - np.bincount(codes[m], weights=y[m], minlength=k)
        prior = y[~m].mean() if (~m).any() else 0.5
        enc[m] = ((s + prior * smooth) / (c + smooth))[codes[m]]
    return _rank_auc(enc, y)


def detect_time_column(df: pd.DataFrame) -> str | None:
    """The first column holding dates (typed, or text that parses as dates), if any."""
    for name in df.columns:
        col = df[name]
        if col.dtype.kind == "M" or isinstance(col.dtype, pd.DatetimeTZDtype):
            return str(name)
        if col.dtype.kind in "iufb":
            continue
        counts = pd.Series(map_distinct(col.to_numpy(dtype=object), normalize)).value_counts()
        if len(counts) and looks_like_dates([str(s) for s in counts.index], list(counts)):
            return str(name)
    return None
