"""Reading and judging a table: load_table, parse_target, detect_time_column, single_column_auc."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.models.tabular.pipeline import FeaturePipeline, TableError
from leadscore.models.tabular.tables import (
    detect_time_column,
    load_table,
    parse_target,
    single_column_auc,
)


def report_of(p: FeaturePipeline, name: str) -> dict:
    return next(r for r in p.columns_report() if r["name"] == name)


# --- load_table ------------------------------------------------------------------------------


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_load_table_sniffs_the_separator_and_keeps_text(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "leads.csv"
    rows = [["zip", "amount", "note"], ["02134", "1,5", "a; b"], ["10001", "2,0", "c"]]
    with path.open("w", newline="") as fh:
        csv.writer(fh, delimiter=sep).writerows(rows)
    df = load_table(path)
    assert list(df.columns) == ["zip", "amount", "note"]
    assert df["zip"].tolist() == ["02134", "10001"]  # text: leading zeros kept


def test_load_table_gzip_tsv_and_parquet(tmp_path: Path) -> None:
    gz = tmp_path / "leads.csv.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("a;b\n1;x\n2;y\n")
    assert load_table(gz).shape == (2, 2)
    tsv = tmp_path / "leads.tsv"
    tsv.write_text(" a \tb\n1\tx\n")
    assert list(load_table(tsv).columns) == ["a", "b"]  # header names stripped
    pq = tmp_path / "leads.parquet"
    pd.DataFrame({"a": [1.5, None], "b": ["x", "y"]}).to_parquet(pq)
    df = load_table(pq)
    assert df["a"].dtype == np.float64 and df.shape == (2, 2)


def test_load_table_refusals(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="no such file"):
        load_table(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(TableError, match=r"unknown file type '.xlsx'.*export spreadsheets as CSV"):
        load_table(tmp_path / "x.xlsx")
    (tmp_path / "empty.csv").write_text("  \n")
    with pytest.raises(TableError, match="is empty"):
        load_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(TableError, match="no data rows"):
        load_table(tmp_path / "header.csv")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(TableError, match="cannot parse.*as many fields as the header"):
        load_table(tmp_path / "ragged.csv")
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01\x02abc")
    with pytest.raises(TableError, match="looks binary"):
        load_table(tmp_path / "bin.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(TableError, match="not a readable Parquet"):
        load_table(tmp_path / "bad.parquet")


def test_load_table_reads_cp1252_exports(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("city,n\nMünchen,1\n".encode("cp1252"))
    assert load_table(path)["city"].tolist() == ["München"]


# --- parse_target ----------------------------------------------------------------------------


def target_frame(values: list) -> pd.DataFrame:
    return pd.DataFrame({"converted": values, "x": range(len(values))})


@pytest.mark.parametrize(
    ("neg", "pos"),
    [("no", "yes"), ("FALSE", "TRUE"), ("0", "1"), ("n", "y"), ("f", "t"), (False, True),
     (0, 1), ("not converted", "converted"), ("non-buyer", "buyer")],
)  # fmt: skip
def test_parse_target_reads_binary_pairs(neg: object, pos: object) -> None:
    y, label = parse_target(target_frame([neg] * 40 + [pos] * 20), "converted")
    assert y.dtype == np.int8 and y.tolist() == [0] * 40 + [1] * 20
    assert label == str(pos).strip()


def test_parse_target_positive_given_and_spelling() -> None:
    df = target_frame(["Won"] * 15 + [" won"] * 5 + ["lost"] * 30 + ["open"] * 10)
    y, label = parse_target(df, "converted", positive="WON")
    assert y.sum() == 20 and label == "Won"
    with pytest.raises(TableError, match="3 values .*'lost' \\(30\\).*--positive"):
        parse_target(df, "converted")
    with pytest.raises(TableError, match="positive='maybe' is not a value"):
        parse_target(df, "converted", positive="maybe")
    two = target_frame(["won"] * 20 + ["lost"] * 40)
    with pytest.raises(TableError, match="neither is clearly the positive one"):
        parse_target(two, "converted")


def test_parse_target_refusals() -> None:
    df = target_frame(["yes"] * 20 + ["no"] * 40)
    with pytest.raises(TableError, match="'convertd' not found.*did you mean 'converted'"):
        parse_target(df, "convertd")
    with pytest.raises(TableError, match="missing in 2 of 62 rows"):
        parse_target(target_frame(["yes"] * 20 + ["no"] * 40 + ["", None]), "converted")
    with pytest.raises(TableError, match="one class only"):
        parse_target(target_frame(["yes"] * 60), "converted")
    with pytest.raises(TableError, match="only 30 rows; at least 50"):
        parse_target(target_frame(["yes"] * 15 + ["no"] * 15), "converted")
    with pytest.raises(TableError, match="only 9 rows of the rarer class"):
        parse_target(target_frame(["yes"] * 9 + ["no"] * 100), "converted")


# --- detect_time_column ---------------------------------------------------------------------


def test_detect_time_column() -> None:
    df = pd.DataFrame(
        {"n": range(40), "month": ["may", "jun"] * 20,
         "created": [f"{d:02d}/03/2024" for d in range(1, 21)] * 2}
    )  # fmt: skip
    assert detect_time_column(df) == "created"
    assert detect_time_column(df.drop(columns="created")) is None
    typed = pd.DataFrame({"n": range(3), "t": pd.date_range("2024-01-01", periods=3, tz="UTC")})
    assert detect_time_column(typed) == "t"
    assert report_of(FeaturePipeline.fit(typed), "t")["kind"] == "datetime"


# --- single_column_auc ---------------------------------------------------------------------------


def test_single_column_auc_finds_leaks_not_ids() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    y = (rng.uniform(size=n) < 0.2).astype(np.int8)
    df = pd.DataFrame(
        {
            "after_call": np.where(y == 1, rng.normal(5, 1, n), rng.normal(0, 1, n)).astype(str),
            "inverse": (-y * 10 + rng.normal(size=n)).astype(str),
            "stage": np.where(y == 1, "closed", rng.choice(["open", "new"], n)),
            "noise": rng.normal(size=n),
            "lead_id": [f"L{i}" for i in range(n)],
        }
    )
    auc = single_column_auc(df, y, list(df.columns))
    assert auc["after_call"] > 0.99 and auc["inverse"] > 0.99 and auc["stage"] > 0.99
    assert abs(auc["noise"] - 0.5) < 0.05 and abs(auc["lead_id"] - 0.5) < 0.05
