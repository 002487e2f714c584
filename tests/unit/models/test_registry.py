"""ModelRegistry: atomic versions of compiled models, checksums, feature checks, champions."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from leadscore.models.engine.compiled import CompiledModel
from leadscore.models.features.vector import FEATURE_NAMES, FEATURE_SPEC_VERSION, N_FEATURES
from leadscore.models.registry import store as registry_module
from leadscore.models.registry.checks import MAX_REFERENCE_ROWS
from leadscore.models.registry.errors import (
    FeatureMismatchError,
    ModelNotFoundError,
    OutdatedModelError,
    RegistryError,
    UntrustedModelError,
)
from leadscore.models.registry.files import sha256
from leadscore.models.registry.manifest import Manifest
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.tabular.pipeline import FeaturePipeline
from leadscore.models.training.ensemble import LeadScoringEnsemble

WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
REPORT = {
    "data": {"rows": 200, "positive_rate": 0.25},
    "models": [{"name": "blend", "cv": {"roc_auc": {"mean": 0.8, "std": float("nan")}}}],
    "chosen": {"name": "blend", "reason": "the default", "threshold": 0.5},
}


def fit_small(X: np.ndarray, y: np.ndarray, seed: int = 0) -> LeadScoringEnsemble:
    model = LeadScoringEnsemble(
        rf_params={"n_estimators": 5, "max_depth": 3},
        gb_params={"n_estimators": 10},
        random_state=seed,
    )
    return model.fit(X, y)


@pytest.fixture(scope="module")
def lead_model() -> tuple[CompiledModel, np.ndarray]:
    """A compiled model over the stream's features, and its training matrix."""
    rng = np.random.default_rng(0)
    X = rng.poisson(1.5, size=(200, N_FEATURES)).astype(float)
    y = (X[:, 0] + rng.normal(size=200) > 2).astype(int)
    return fit_small(X, y).compile(FEATURE_NAMES), X


@pytest.fixture(scope="module")
def table_model() -> tuple[CompiledModel, FeaturePipeline, pd.DataFrame]:
    """A compiled model over a small CRM table, its pipeline and the table."""
    rng = np.random.default_rng(1)
    n = 120
    df = pd.DataFrame(
        {
            "age": [str(a) if a % 7 else "" for a in rng.integers(20, 70, size=n)],
            "channel": rng.choice(["web", "email", "event"], size=n),
            "converted": rng.choice(["yes", "no"], size=n),
        }
    )
    y = (df["converted"] == "yes").to_numpy().astype(int)
    pipeline = FeaturePipeline.fit(df, y=y, exclude=["converted"])
    X = pipeline.transform(df)
    return fit_small(X, y, seed=1).compile(pipeline.feature_names), pipeline, df


@pytest.fixture()
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def save(reg: ModelRegistry, model: CompiledModel, X: np.ndarray, **overrides: Any) -> Manifest:
    arguments: dict[str, Any] = {
        "kind": "lead_events",
        "pipeline": None,
        "report": REPORT,
        "metrics": {"cv": {"roc_auc": np.float64(0.8), "log_loss": float("nan")}},
        "training_window": WINDOW,
        "n_rows": len(X),
        "class_balance": {"negative": 150, "positive": 50, "positive_rate": 0.25},
        "params": {"rf_params": {"n_estimators": 5}},
        "reference_sample": X[:20],
        "source": "simulation",
    }
    arguments.update(overrides)
    return reg.save(model, **arguments)


def rewrite_json(version_dir: Path, name: str, change: Callable[[Any], None]) -> None:
    """Edit one JSON file of a version and re-sign it in the manifest, as an older
    leadscore (or someone with write access) would have written it."""
    path = version_dir / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    manifest_path = version_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][name] = sha256(path)
    manifest_path.write_text(json.dumps(manifest))


def rewrite_manifest(version_dir: Path, change: Callable[[Any], None]) -> None:
    path = version_dir / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- saving and loading --------------------------------------------------------------------------


def test_lead_events_round_trip(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray]
) -> None:
    model, X = lead_model
    manifest = save(reg, model, X)
    version_dir = reg.root / manifest.version
    assert sorted(p.name for p in version_dir.iterdir()) == [
        "manifest.json",
        "model.json",
        "model.npz",
        "report.json",
    ]
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp")]

    on_disk = json.loads((version_dir / "manifest.json").read_text())
    assert on_disk["kind"] == "lead_events" and on_disk["variant"] == "blend"
    assert on_disk["source"] == "simulation" and on_disk["pipeline"] is None
    assert on_disk["feature_spec_version"] == FEATURE_SPEC_VERSION
    assert on_disk["feature_names"] == list(FEATURE_NAMES)
    assert sorted(on_disk["files"]) == ["model.json", "model.npz", "report.json"]
    assert on_disk["files"]["model.npz"] == sha256(version_dir / "model.npz")
    assert "model_sha256" not in on_disk and "model_class" not in on_disk
    assert on_disk["training_window"]["start"].startswith("2026-01-01T00:00:00")
    assert on_disk["metrics"]["cv"] == {"roc_auc": 0.8, "log_loss": None}  # NaN is not JSON
    assert on_disk["params"] == {"rf_params": {"n_estimators": 5}}
    assert on_disk["n_rows"] == 200 and on_disk["class_balance"]["positive"] == 50
    assert on_disk["created_at"].endswith("Z")

    loaded = reg.load(manifest.version)
    assert loaded.version == manifest.version and loaded.manifest == manifest
    assert loaded.pipeline is None
    assert loaded.model.feature_names == FEATURE_NAMES
    np.testing.assert_array_equal(loaded.model.predict_proba(X), model.predict_proba(X))
    base, phi = loaded.model.explain_log_odds(X[:5])
    expected_base, expected_phi = model.explain_log_odds(X[:5])
    assert base == expected_base
    np.testing.assert_array_equal(phi, expected_phi)
    np.testing.assert_array_equal(loaded.manifest.reference_matrix(), X[:20])

    report = reg.report(manifest.version)
    assert report is not None and report["chosen"]["name"] == "blend"
    assert report["models"][0]["cv"]["roc_auc"] == {"mean": 0.8, "std": None}


def test_table_model_round_trips_its_pipeline(
    reg: ModelRegistry, table_model: tuple[CompiledModel, FeaturePipeline, pd.DataFrame]
) -> None:
    model, pipeline, df = table_model
    X = pipeline.transform(df)
    manifest = save(reg, model, X, kind="table", pipeline=pipeline, report=None, source="crm.csv")
    assert manifest.kind == "table" and manifest.feature_spec_version is None
    assert manifest.variant is None  # no report, and the compiled model names none
    assert manifest.pipeline == json.loads(json.dumps(pipeline.to_dict()))
    assert sorted(manifest.files) == ["model.json", "model.npz", "pipeline.json"]
    assert reg.report(manifest.version) is None

    loaded = reg.load(manifest.version)
    assert loaded.pipeline is not None
    assert loaded.pipeline.feature_names == pipeline.feature_names
    assert loaded.pipeline.to_dict() == pipeline.to_dict()
    rows = df.drop(columns=["converted"])
    np.testing.assert_array_equal(loaded.pipeline.transform(rows), X)
    record = {"age": "", "channel": "Email "}
    np.testing.assert_array_equal(
        loaded.model.predict_proba([loaded.pipeline.transform_one(record)]),
        model.predict_proba([pipeline.transform_one(record)]),
    )
    np.testing.assert_array_equal(loaded.model.explain_log_odds(X)[1], model.explain_log_odds(X)[1])


def test_variant_comes_from_the_model_before_the_report(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray]
) -> None:
    model, X = lead_model
    named = CompiledModel(
        feature_names=model.feature_names,
        trees=model.trees,
        linear=model.linear,
        offset=model.offset,
        info={**model.info, "variant": "trees_only"},
    )
    assert save(reg, named, X).variant == "trees_only"
    assert save(reg, model, X, report=None).variant is None


def test_save_refuses_mismatches_and_writes_nothing(
    reg: ModelRegistry,
    lead_model: tuple[CompiledModel, np.ndarray],
    table_model: tuple[CompiledModel, FeaturePipeline, pd.DataFrame],
) -> None:
    model, X = lead_model
    t_model, pipeline, df = table_model
    TX = pipeline.transform(df)
    stream_only = r"must use the stream's features .* features only in the model: \['age'"
    with pytest.raises(ValueError, match=stream_only):
        save(reg, t_model, TX)
    renamed = fit_small(X, (X[:, 0] > 1).astype(int)).compile((*FEATURE_NAMES[:-1], "shoe_size"))
    with pytest.raises(ValueError, match=r"only in the model: \['shoe_size'\]"):
        save(reg, renamed, X)
    with pytest.raises(ValueError, match="a table model needs its FeaturePipeline"):
        save(reg, t_model, TX, kind="table")
    other = FeaturePipeline.fixed(["age"], {"channel": ["web"]})
    with pytest.raises(ValueError, match=r"the pipeline does not produce the model's features"):
        save(reg, t_model, TX, kind="table", pipeline=other)
    with pytest.raises(ValueError, match=r"kind must be one of \['lead_events', 'table'\]"):
        save(reg, model, X, kind="crm")
    ensemble = fit_small(X, (X[:, 0] > 1).astype(int))
    with pytest.raises(TypeError, match="must be a CompiledModel"):
        save(reg, ensemble, X)  # type: ignore[arg-type]
    wrong_shape = rf"reference_sample must have shape \(rows, {N_FEATURES}\)"
    with pytest.raises(ValueError, match=wrong_shape):
        save(reg, model, X, reference_sample=X[:, :3])
    with pytest.raises(ValueError, match="NaN or infinite"):
        save(reg, model, X, reference_sample=np.full((2, N_FEATURES), np.nan))
    too_many = np.zeros((MAX_REFERENCE_ROWS + 1, N_FEATURES))
    with pytest.raises(ValueError, match="keep it at most"):
        save(reg, model, X, reference_sample=too_many)
    with pytest.raises(ValueError, match="timezone-aware"):
        save(reg, model, X, training_window=(datetime(2026, 1, 1), datetime(2026, 2, 1)))  # noqa: DTZ001 (naive on purpose)
    assert reg.list() == []
    assert list(reg.root.iterdir()) == []


def test_a_failure_inside_save_leaves_no_version(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray]
) -> None:
    """The manifest fails to build after the model files are written: nothing remains."""
    model, X = lead_model
    with pytest.raises(Exception, match="class_balance"):
        save(reg, model, X, class_balance={"positive": "many"})
    assert reg.list() == []
    assert list(reg.root.iterdir()) == []


def test_a_reader_never_sees_a_partial_version(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray]
) -> None:
    """A reader polling during saves only ever finds versions whose files are all there."""
    model, X = lead_model
    done = threading.Event()
    partial: list[str] = []
    seen: set[str] = set()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not done.is_set():
                for version in reg.list():
                    seen.add(version)
                    files = reg.manifest(version).files
                    if not all((reg.root / version / name).is_file() for name in files):
                        partial.append(version)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        saved = [save(reg, model, X).version for _ in range(15)]
    finally:
        done.set()
        reader.join()
    assert errors == [] and partial == []
    assert seen and seen <= set(saved) and sorted(reg.list()) == sorted(saved)


# --- refusing what must not load ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.npz", "model.json", "report.json"])
def test_a_changed_file_is_refused_by_name(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray], name: str
) -> None:
    model, X = lead_model
    version = save(reg, model, X).version
    target = reg.root / version / name
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(UntrustedModelError, match=rf"{name}: checksum does not match"):
        if name == "report.json":
            reg.report(version)
        else:
            reg.load(version)


def test_a_changed_or_missing_pipeline_is_refused(
    reg: ModelRegistry, table_model: tuple[CompiledModel, FeaturePipeline, pd.DataFrame]
) -> None:
    model, pipeline, df = table_model
    version = save(reg, model, pipeline.transform(df), kind="table", pipeline=pipeline).version
    version_dir = reg.root / version
    with open(version_dir / "pipeline.json", "a") as handle:
        handle.write(" ")
    with pytest.raises(UntrustedModelError, match=r"pipeline.json: checksum does not match"):
        reg.load(version)
    (version_dir / "pipeline.json").unlink()
    with pytest.raises(UntrustedModelError, match=r"pipeline.json: listed in the manifest but"):
        reg.load(version)


def test_files_that_disagree_with_each_other_are_refused(
    reg: ModelRegistry, table_model: tuple[CompiledModel, FeaturePipeline, pd.DataFrame]
) -> None:
    model, pipeline, df = table_model
    version = save(reg, model, pipeline.transform(df), kind="table", pipeline=pipeline).version
    version_dir = reg.root / version
    # A re-signed model.json whose feature names no longer match the manifest's.
    rewrite_json(version_dir, "model.json", lambda d: d["feature_names"].reverse())
    with pytest.raises(UntrustedModelError, match="disagrees with its manifest: same features in"):
        reg.load(version)
    # The manifest names a file outside the version directory.
    rewrite_manifest(version_dir, lambda d: d["files"].update({"../champion.json": "0" * 64}))
    with pytest.raises(UntrustedModelError, match="not a file of the version"):
        reg.load(version)
    # The manifest no longer lists the model arrays.
    rewrite_manifest(version_dir, lambda d: d["files"].clear())
    with pytest.raises(UntrustedModelError, match="lists no checksum for model.npz"):
        reg.load(version)


def test_feature_mismatch_says_what_differs(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray]
) -> None:
    """A model saved by code with other features is refused, and can still be inspected."""
    model, X = lead_model
    version = save(reg, model, X).version
    version_dir = reg.root / version
    older = [*FEATURE_NAMES[:-1], "shoe_size"]

    def older_names(data: dict[str, Any]) -> None:
        data["feature_names"] = older

    rewrite_json(version_dir, "model.json", older_names)
    rewrite_manifest(
        version_dir,
        lambda d: d.update(feature_names=older, feature_spec_version=FEATURE_SPEC_VERSION + 1),
    )
    with pytest.raises(FeatureMismatchError) as info:
        reg.load(version)
    message = str(info.value)
    assert f"model {FEATURE_SPEC_VERSION + 1}, code {FEATURE_SPEC_VERSION}" in message
    assert "features only in the model: ['shoe_size']" in message
    assert f"features only in the code: [{FEATURE_NAMES[-1]!r}]" in message
    inspected = reg.load(version, check_features=False)
    assert inspected.model.feature_names[-1] == "shoe_size"

    swapped = list(FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    rewrite_json(version_dir, "model.json", lambda d: d.update(feature_names=swapped))
    rewrite_manifest(
        version_dir,
        lambda d: d.update(feature_names=swapped, feature_spec_version=FEATURE_SPEC_VERSION),
    )
    with pytest.raises(FeatureMismatchError, match="another order .* column 0"):
        reg.load(version)


def test_a_version_of_the_old_skops_layout_is_refused(reg: ModelRegistry) -> None:
    version = "20251120T101500Z-abcdef"
    version_dir = reg.root / version
    version_dir.mkdir()
    (version_dir / "model.skops").write_bytes(b"PK\x03\x04 an old skops archive")
    old_manifest = {
        "version": version,
        "created_at": "2025-11-20T10:15:00.123456Z",
        "model_class": "leadscore.models.ensemble.LeadScoringEnsemble",
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "training_window": None,
        "n_rows": 100,
        "class_balance": {"positive": 10.0},
        "metrics": {"cv": {"roc_auc": 0.7}},
        "params": {},
        "reference_sample": [],
        "model_sha256": "0" * 64,
        "library_versions": {"skops": "0.10"},
    }
    (version_dir / "manifest.json").write_text(json.dumps(old_manifest))
    assert reg.list() == [version]
    manifest = reg.manifest(version)  # still listed and shown
    assert manifest.kind == "lead_events" and manifest.files == {}
    with pytest.raises(OutdatedModelError, match=r"trained by an older leadscore .* retrain"):
        reg.load(version)
    with pytest.raises(RegistryError, match="older leadscore"):
        reg.load_champion()


def test_unknown_or_malformed_versions(reg: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError, match="no model version"):
        reg.load("20990101T000000Z-abcdef")
    with pytest.raises(ModelNotFoundError, match="not a model version"):
        reg.load("../../etc")
    with pytest.raises(ModelNotFoundError, match="no model version"):
        reg.report("20990101T000000Z-abcdef")


# --- listing and the champion ---------------------------------------------------------------------


def test_versions_sort_by_creation_and_champion_falls_back_to_newest(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray]
) -> None:
    assert reg.list() == [] and reg.latest() is None and reg.champion() is None
    assert reg.load_champion() is None
    model, X = lead_model
    versions = [save(reg, model, X).version for _ in range(3)]  # same second: suffix is random
    assert reg.list() == versions
    assert reg.latest() == versions[-1]
    assert reg.champion() == versions[-1]  # no pointer yet
    assert registry_module._VERSION_RE.match(versions[0])


def test_list_skips_an_unreadable_version_made_in_the_same_second(
    reg: ModelRegistry,
    lead_model: tuple[CompiledModel, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    model, X = lead_model
    first, second = (save(reg, model, X).version for _ in range(2))
    # Give both the same creation second, then break the second one's manifest.
    good, broken = "20260101T000000Z-aaaaaa", "20260101T000000Z-bbbbbb"
    os.rename(reg.root / first, reg.root / good)
    os.rename(reg.root / second, reg.root / broken)
    (reg.root / broken / "manifest.json").write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="leadscore.models.registry.store"):
        assert reg.list() == [good]
    assert f"skipping model version {broken}" in caplog.text


def test_half_written_versions_are_invisible(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray]
) -> None:
    model, X = lead_model
    good = save(reg, model, X).version
    (reg.root / ".tmp-20990101T000000Z-abcdef-1234").mkdir()  # a crashed save
    (reg.root / "20990101T000000Z-abcdef").mkdir()  # no manifest: not a version
    assert reg.list() == [good]


def test_promote_rollback_and_history(
    reg: ModelRegistry, lead_model: tuple[CompiledModel, np.ndarray]
) -> None:
    model, X = lead_model
    a, b, c = (save(reg, model, X).version for _ in range(3))
    reg.promote(a)
    assert reg.champion() == a  # not the newest: the pointer wins
    reg.promote(b)
    reg.promote(b)  # promoting the champion again changes nothing
    assert reg.champion() == b
    assert reg.rollback() == a
    assert reg.champion() == a
    with pytest.raises(RegistryError, match="no previous champion"):
        reg.rollback()
    assert [(e["action"], e["version"]) for e in reg.champion_history()] == [
        ("promote", a),
        ("promote", b),
        ("rollback", a),
    ]
    with pytest.raises(ModelNotFoundError):
        reg.promote("20990101T000000Z-abcdef")
    # segments: their own pointer, falling back to the default champion
    assert reg.champion(segment="emea") == a
    reg.promote(c, segment="emea")
    assert reg.champion(segment="emea") == c and reg.champion() == a
    assert reg.load_champion(segment="emea").version == c  # type: ignore[union-attr]
    assert reg.champion_history(segment="emea") == [
        {"action": "promote", "version": c, "at": reg.champion_history(segment="emea")[0]["at"]}
    ]
    with pytest.raises(ValueError, match="segment must match"):
        reg.champion(segment="../x")
