"""FeaturePipeline and friends: every inference rule and refusal, and one-record == table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.models.tabular.pipeline import FeaturePipeline, TableError
from leadscore.models.tabular.tables import load_table, parse_target

DATA = Path("/work/shared/data")
REAL_FILES = [
    (DATA / "bank_marketing/bank-full.csv", "y"),
    (DATA / "bank_marketing/bank-additional-full.csv", "y"),
    (DATA / "online_shoppers/online_shoppers_intention.csv", "Revenue"),
]


def report_of(p: FeaturePipeline, name: str) -> dict:
    return next(r for r in p.columns_report() if r["name"] == name)


def assert_one_equals_many(p: FeaturePipeline, records: list[dict]) -> np.ndarray:
    X = p.transform(records)
    X1 = np.vstack([p.transform_one(r) for r in records])
    assert np.array_equal(X, X1)
    return X


# --- FeaturePipeline.fit: one rule at a time ------------------------------------------------


def test_numeric_missing_tokens_median_fill_and_indicator() -> None:
    raw = ["1", "2", "3", "", "n/a", "NULL", "-", "unknown", "10", "4"] * 10
    p = FeaturePipeline.fit(pd.DataFrame({"n": raw}))
    assert p.feature_names == ("n", "n__missing")
    rep = report_of(p, "n")
    assert rep["kind"] == "numeric" and rep["action"] == "numeric + missing indicator"
    assert rep["missing_share"] == 0.5
    assert p.transform_one({"n": "n/a"}).tolist() == [3.0, 1.0]  # median of 1 2 3 4 10
    assert p.transform_one({}).tolist() == [3.0, 1.0]  # missing key
    assert p.transform_one({"n": 7}).tolist() == [7.0, 0.0]
    assert p.transform_one({"n": "garbage"}).tolist() == [3.0, 1.0]
    assert p.describe("n__missing", 1.0) == "n unknown"


def test_numeric_without_missing_has_no_indicator() -> None:
    p = FeaturePipeline.fit(pd.DataFrame({"n": np.arange(100) % 37 * 1.5}))
    assert p.feature_names == ("n",)
    assert p.transform_one({"n": None}).tolist() == [float(np.median(np.arange(100) % 37 * 1.5))]


def test_unknown_stays_a_level_in_categorical_columns() -> None:
    df = pd.DataFrame({"job": ["admin.", "unknown", "Admin. ", "", "tech"] * 20})
    p = FeaturePipeline.fit(df)
    assert p.feature_names == (
        "job=admin.", "job=tech", "job=unknown", "job=__missing__",
    )  # fmt: skip
    assert report_of(p, "job")["action"] == "one-hot 3 levels + missing"
    assert p.transform_one({"job": " ADMIN."}).tolist() == [1, 0, 0, 0]
    assert p.transform_one({"job": "n/a"}).tolist() == [0, 0, 0, 1]
    assert p.transform_one({"job": "pilot"}).tolist() == [0, 0, 0, 0]  # unseen, no other column
    assert p.describe("job=admin.", 1.0) == "job: admin."
    assert p.describe("job=tech", 0.0) == "job is not tech"
    assert p.describe("job=__missing__", 1.0) == "job unknown"


def test_rare_and_unseen_levels_go_to_other_and_max_levels_keeps_the_top() -> None:
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 20 + ["rare1", "rare2", "rare3"]
    p = FeaturePipeline.fit(pd.DataFrame({"src": values}), min_level_count=5, max_levels=2)
    assert p.feature_names == ("src=a", "src=b", "src=__other__")
    rep = report_of(p, "src")
    assert rep["action"] == "one-hot 2 levels + other" and "4 rarer values" in rep["reason"]
    assert p.transform_one({"src": "c"}).tolist() == [0, 0, 1]
    assert p.transform_one({"src": "never seen"}).tolist() == [0, 0, 1]
    assert p.describe("src=__other__", 1.0) == "src: a rare or new value"


def test_booleans_map_to_0_1() -> None:
    df = pd.DataFrame(
        {"a": ["Yes", "no"] * 30, "b": ["TRUE", "FALSE", ""] * 20, "c": [True, False] * 30}
    )
    p = FeaturePipeline.fit(df)
    assert p.feature_names == ("a", "b", "b__missing", "c")
    assert [report_of(p, c)["kind"] for c in "abc"] == ["boolean"] * 3
    assert p.transform_one({"a": "YES", "b": True, "c": "false"}).tolist() == [1, 1, 0, 0]
    assert p.transform_one({"a": "maybe", "b": None}).tolist()[:3] == [0.5, 0.5, 1]
    assert p.describe("a", 1.0) == "a: yes" and p.describe("c", 0.0) == "c: no"


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (["same"] * 60, "constant"),
        ([7] * 60, "constant"),
        ([""] * 58 + ["1", "2"], "mostly missing (97% of rows)"),
        ([f"lead-{i:05d}" for i in range(60)], "id-like"),
        (list(range(1000, 1060)), "id-like: a different whole number"),
        ([f"note {i % 30} about call" for i in range(60)], "free text / too many levels"),
        ([f"2024-01-{d:02d} 10:00" for d in range(1, 31)] * 2, "dates are not a feature"),
    ],
)
def test_dropped_columns_say_why(values: list, reason: str) -> None:
    df = pd.DataFrame({"x": values, "keep": np.arange(60) % 7})
    p = FeaturePipeline.fit(df, min_level_count=5)
    rep = report_of(p, "x")
    assert rep["action"] == "dropped" and reason in rep["reason"]
    assert p.input_columns == ("keep",)
    json.dumps(p.columns_report())


def test_free_text_keeps_frequent_values() -> None:
    values = ["see website"] * 30 + [f"long note {i}" for i in range(70)]
    p = FeaturePipeline.fit(pd.DataFrame({"note": values}))
    assert p.feature_names == ("note=see website", "note=__other__")


@pytest.mark.parametrize(
    ("values", "kind", "parsed", "note"),
    [
        (["1,234.5", "12", "999,999", "7.25"], "numeric", 1234.5, "thousands separators"),
        (["3,5", "12", "1.234,5", "0,25"], "numeric", 3.5, "decimal comma"),
        (["1,234", "5", "12,000"], "categorical", None, "could use ',' as thousands"),
        (["02134", "10001", "00501"], "categorical", None, "leading zeros"),
        (["12", "15", "approx 20", "18"], "categorical", None, "'approx 20' is not a number"),
    ],
)
def test_numbers_as_text_are_parsed_only_when_unambiguous(
    values: list[str], kind: str, parsed: float | None, note: str
) -> None:
    df = pd.DataFrame({"v": values * 15})
    p = FeaturePipeline.fit(df)
    rep = report_of(p, "v")
    assert rep["kind"] == kind and note in rep["reason"]
    if parsed is not None:
        assert p.transform_one({"v": values[0]})[0] == parsed
        assert_one_equals_many(p, [{"v": v} for v in values])


def test_few_integer_values_stay_numeric_unless_forced() -> None:
    df = pd.DataFrame({"region": ["1", "2", "3", "9"] * 20})
    rep = report_of(FeaturePipeline.fit(df), "region")
    assert rep["kind"] == "numeric" and "force it categorical if they are codes" in rep["reason"]
    p = FeaturePipeline.fit(df, categorical=["region"])
    assert p.feature_names == ("region=1", "region=2", "region=3", "region=9")
    # 3, 3.0, "3.0" and " 3" are the same level
    for v in (3, 3.0, "3.0", " 3", np.int64(3)):
        assert p.transform_one({"region": v}).tolist() == [0, 0, 1, 0]


def test_forced_numeric_counts_non_numbers_as_missing() -> None:
    df = pd.DataFrame({"v": ["1", "2", "lots", "4"] * 20})
    p = FeaturePipeline.fit(df, numeric=["v"])
    rep = report_of(p, "v")
    assert rep["kind"] == "numeric" and "20 non-numeric values count as missing" in rep["reason"]
    assert p.feature_names == ("v", "v__missing")


def test_fit_refusals() -> None:
    df = pd.DataFrame({"amount": [1, 2] * 30, "y": [0, 1] * 30})
    with pytest.raises(TableError, match="exclude names column 'Y'.*did you mean 'y'"):
        FeaturePipeline.fit(df, exclude=["Y"])
    with pytest.raises(TableError, match="forced both categorical and numeric"):
        FeaturePipeline.fit(df, categorical=["amount"], numeric=["amount"])
    with pytest.raises(TableError, match="no usable feature column: amount: excluded"):
        FeaturePipeline.fit(df, exclude=["amount", "y"])
    with pytest.raises(TableError, match="2 labels for 60 rows"):
        FeaturePipeline.fit(df, y=np.array([0, 1]))
    with pytest.raises(TableError, match="has no rows"):
        FeaturePipeline.fit(df.iloc[:0])
    report = FeaturePipeline.fit(df, exclude=["y"]).columns_report()
    assert report[1] == {
        "name": "y", "kind": "excluded", "action": "dropped", "reason": "excluded by request",
        "missing_share": 0.0, "distinct": 0,
    }  # fmt: skip


# --- transform, describe, saving ---------------------------------------------------------------


def mixed_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(str),
            "score": np.where(
                rng.uniform(size=n) < 0.1, "", rng.normal(size=n).round(3).astype(str)
            ),
            "job": rng.choice(["admin.", "tech", "sales", "", "unknown", "rare"], n,
                              p=[0.3, 0.3, 0.2, 0.1, 0.08, 0.02]),
            "optin": rng.choice(["yes", "no", ""], n),
        }
    )  # fmt: skip


def test_transform_one_equals_transform_with_unseen_values_and_missing_keys() -> None:
    p = FeaturePipeline.fit(mixed_frame(), min_level_count=10)
    assert "job=__other__" in p.feature_names and "score__missing" in p.feature_names
    records = [
        {},
        {"age": None, "job": "astronaut", "optin": "maybe", "extra": "ignored"},
        {"age": 42, "score": 1.25, "job": " TECH", "optin": True},
        {"age": "42.0", "score": "1.25", "job": "tech", "optin": "YES"},
        {"age": float("nan"), "score": float("inf"), "job": 3, "optin": 1},
        {"age": [1], "score": {"a": 1}, "job": ["x"], "optin": None},  # junk from JSON
    ]
    X = assert_one_equals_many(p, records)
    assert np.array_equal(X[2], X[3])
    assert np.array_equal(X[1], X[5])  # junk that is not a number / not a known level
    assert X.shape == (6, len(p.feature_names))
    assert np.array_equal(p.transform(pd.DataFrame(records)), X)


def test_absent_columns_of_a_batch_file() -> None:
    p = FeaturePipeline.fit(mixed_frame(), min_level_count=10)
    assert p.absent_columns(["age", "job", "other"]) == ["score", "optin"]


def test_source_column_groups_features() -> None:
    p = FeaturePipeline.fit(mixed_frame(), min_level_count=10)
    assert len(p.source_column) == len(p.feature_names)
    assert {f.split("=")[0].split("__missing")[0] for f in p.feature_names} == set(p.input_columns)
    assert all(f.startswith(s) for f, s in zip(p.feature_names, p.source_column))


def test_describe_numbers_and_unknown_feature() -> None:
    p = FeaturePipeline.fit(mixed_frame(), min_level_count=10)
    assert p.describe("age", 42.0) == "age 42"
    assert p.describe("score", 0.123456789) == "score 0.123457"
    assert p.describe("job=__other__", 0.0) == "job is a common value"
    with pytest.raises(TableError, match="no feature 'agee'"):
        p.describe("agee", 1.0)


def test_to_dict_from_dict_round_trip_through_json() -> None:
    df = mixed_frame()
    p = FeaturePipeline.fit(df, min_level_count=10)
    q = FeaturePipeline.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q.feature_names == p.feature_names and q.source_column == p.source_column
    assert q.columns_report() == p.columns_report()
    assert np.array_equal(q.transform(df), p.transform(df))
    assert q.describe("job=admin.", 1.0) == p.describe("job=admin.", 1.0)
    with pytest.raises(TableError, match="version 1: got format .* version 99; retrain"):
        FeaturePipeline.from_dict({**p.to_dict(), "version": 99})


def test_fixed_pipeline() -> None:
    p = FeaturePipeline.fixed(["visits"], {"industry": ["Software", "Retail"]})
    assert p.feature_names == ("visits", "industry=software", "industry=retail")
    assert p.source_column == ("visits", "industry", "industry")
    assert p.transform_one({"industry": "RETAIL"}).tolist() == [0.0, 0.0, 1.0]
    assert p.describe("industry=software", 1.0) == "industry: Software"
    assert_one_equals_many(p, [{"visits": 3}, {"industry": "mining"}, {}])
    with pytest.raises(TableError, match="distinct and non-empty"):
        FeaturePipeline.fixed([], {"x": ["a", "A"]})


# --- the real public files ---------------------------------------------------------------


@pytest.mark.slow  # ~1-3 s each: every row of 12k-45k, one record at a time
@pytest.mark.parametrize(("path", "target"), REAL_FILES, ids=lambda v: str(v).split("/")[-1])
def test_real_files_one_record_equals_the_table_on_every_row(path: Path, target: str) -> None:
    if not path.exists():
        pytest.skip(f"{path} not present (public data, see /work/shared/data/README.md)")
    df = load_table(path)
    y, _ = parse_target(df, target)
    p = FeaturePipeline.fit(df, y=y, exclude=[target])
    X = p.transform(df)
    assert X.shape == (len(df), len(p.feature_names)) and np.isfinite(X).all()
    with path.open(newline="") as fh:
        records = list(csv.DictReader(fh))  # the raw text, as a REST client would send it
    assert np.array_equal(np.vstack([p.transform_one(r) for r in records]), X)
    typed = pd.read_csv(path)  # typed values (ints, floats, bools) give the same matrix
    assert np.array_equal(p.transform(typed), X)
    assert np.array_equal(p.transform_one(typed.iloc[-1].to_dict()), X[-1])
