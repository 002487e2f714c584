"""ModelRegistry: atomic versions, safe loading, feature checks, the champion pointer."""

from __future__ import annotations

import json
import os
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from leadscore.models import registry as registry_module
from leadscore.models.ensemble import LeadScoringEnsemble
from leadscore.models.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, N_FEATURES
from leadscore.models.registry import (
    TRUSTED_TYPES,
    FeatureMismatchError,
    ModelNotFoundError,
    ModelRegistry,
    RegistryError,
    UntrustedModelError,
)


class Payload:
    """Stands for any type a tampered file might smuggle in."""


WINDOW = (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 3, 1, tzinfo=timezone.utc))


def small_model(seed: int = 0, **params: object) -> tuple[LeadScoringEnsemble, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.poisson(1.5, size=(200, N_FEATURES)).astype(float)
    y = (X[:, 0] + rng.normal(size=200) > 2).astype(int)
    params.setdefault("random_state", seed)
    model = LeadScoringEnsemble(rf_n_estimators=5, gb_n_estimators=5, **params)  # type: ignore[arg-type]
    return model.fit(X, y), X


def save(reg: ModelRegistry, model: LeadScoringEnsemble, X: np.ndarray, auc: float = 0.8):  # type: ignore[no-untyped-def]
    return reg.save(
        model,
        metrics={"cv": {"roc_auc": np.float64(auc), "log_loss": float("nan")}},
        training_window=WINDOW,
        n_rows=len(X),
        class_balance={"negative": 150, "positive": 50, "positive_rate": 0.25},
        params=None,
        reference_sample=X[:20],
    )


@pytest.fixture()
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def test_save_and_load_round_trip(reg: ModelRegistry) -> None:
    model, X = small_model()
    manifest = save(reg, model, X)
    version_dir = reg.root / manifest.version
    assert sorted(p.name for p in version_dir.iterdir()) == ["manifest.json", "model.skops"]
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp")]

    on_disk = json.loads((version_dir / "manifest.json").read_text())
    assert on_disk["feature_spec_version"] == FEATURE_SPEC_VERSION
    assert on_disk["feature_names"] == list(FEATURE_NAMES)
    assert on_disk["training_window"]["start"].startswith("2026-01-01T00:00:00")
    assert on_disk["metrics"]["cv"] == {"roc_auc": 0.8, "log_loss": None}  # NaN is not JSON
    assert on_disk["params"]["rf_n_estimators"] == 5
    assert on_disk["n_rows"] == 200 and on_disk["class_balance"]["positive"] == 50
    assert on_disk["created_at"].endswith("Z")

    loaded = reg.load(manifest.version)
    assert loaded.version == manifest.version and loaded.manifest == manifest
    np.testing.assert_array_equal(loaded.model.predict_proba(X), model.predict_proba(X))
    base, contrib = loaded.model.explain(X[:3])
    np.testing.assert_allclose(
        base + contrib.sum(axis=1), model.predict_proba(X[:3])[:, 1], atol=1e-9
    )
    np.testing.assert_array_equal(loaded.manifest.reference_matrix(), X[:20])


def test_versions_sort_by_creation_and_champion_falls_back_to_newest(reg: ModelRegistry) -> None:
    assert reg.list() == [] and reg.latest() is None and reg.champion() is None
    assert reg.load_champion() is None
    model, X = small_model()
    versions = [save(reg, model, X).version for _ in range(3)]  # same second: suffix is random
    assert reg.list() == versions
    assert reg.latest() == versions[-1]
    assert reg.champion() == versions[-1]  # no pointer yet
    assert registry_module._VERSION_RE.match(versions[0])


def test_promote_rollback_and_history(reg: ModelRegistry) -> None:
    model, X = small_model()
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


def test_unknown_or_malformed_versions(reg: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError, match="no model version"):
        reg.load("20990101T000000Z-abcdef")
    with pytest.raises(ModelNotFoundError, match="not a model version"):
        reg.load("../../etc")


def test_half_written_versions_are_invisible(reg: ModelRegistry) -> None:
    model, X = small_model()
    good = save(reg, model, X).version
    (reg.root / ".tmp-20990101T000000Z-abcdef-1234").mkdir()  # a crashed save
    (reg.root / "20990101T000000Z-abcdef").mkdir()  # no manifest: not a version
    assert reg.list() == [good]


def test_feature_mismatch_says_what_differs(reg: ModelRegistry) -> None:
    model, X = small_model()
    version = save(reg, model, X).version
    path = reg.root / version / "manifest.json"
    data = json.loads(path.read_text())
    data["feature_spec_version"] = FEATURE_SPEC_VERSION + 1
    data["feature_names"] = data["feature_names"][:-1] + ["shoe_size"]
    path.write_text(json.dumps(data))
    with pytest.raises(FeatureMismatchError) as info:
        reg.load(version)
    message = str(info.value)
    assert f"model {FEATURE_SPEC_VERSION + 1}, code {FEATURE_SPEC_VERSION}" in message
    assert repr(FEATURE_NAMES[-1]) in message and "'shoe_size'" in message
    assert reg.load(version, check_features=False).model is not None

    data["feature_spec_version"] = FEATURE_SPEC_VERSION
    names = list(FEATURE_NAMES)
    names[0], names[1] = names[1], names[0]
    data["feature_names"] = names
    path.write_text(json.dumps(data))
    with pytest.raises(FeatureMismatchError, match="another order .* column 0"):
        reg.load(version)


def test_refuses_untrusted_types(reg: ModelRegistry, tmp_path: Path) -> None:
    model, X = small_model()
    version = save(reg, model, X).version
    # Swap in a file holding a type outside the allow-list (and fix up the checksum, as an
    # attacker with write access would).
    evil = tmp_path / "evil.skops"
    sio.dump({"model": model, "extra": Payload()}, evil)
    target = reg.root / version / "model.skops"
    os.replace(evil, target)
    path = reg.root / version / "manifest.json"
    data = json.loads(path.read_text())
    data["model_sha256"] = registry_module._sha256(target)
    path.write_text(json.dumps(data))
    with pytest.raises(UntrustedModelError, match=r"outside the allow-list: \['[\w.]*Payload'\]"):
        reg.load(version)


def test_refuses_changed_or_broken_files(reg: ModelRegistry) -> None:
    model, X = small_model()
    version = save(reg, model, X).version
    target = reg.root / version / "model.skops"
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(UntrustedModelError, match="checksum does not match"):
        reg.load(version)
    with pytest.raises(UntrustedModelError, match="not a readable skops file"):
        registry_module._check_types(target)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"class_weight": "balanced", "rf_max_depth": None, "rf_max_features": 0.5},
        {"random_state": np.random.RandomState(0)},
        {"class_weight": {0: 1.0, 1: 3.0}},
    ],
)
def test_allow_list_covers_every_model_variant(params: dict[str, object], tmp_path: Path) -> None:
    model, _ = small_model(**params)
    path = tmp_path / "m.skops"
    sio.dump(model, path)
    types = set(
        registry_module._types_in_schema(json.loads(zipfile.ZipFile(path).read("schema.json")))
    )
    assert types <= TRUSTED_TYPES, sorted(types - TRUSTED_TYPES)
    registry_module._check_types(path)


def test_save_refuses_wrong_shapes(reg: ModelRegistry) -> None:
    model, X = small_model()
    with pytest.raises(ValueError, match=r"reference_sample must have shape"):
        reg.save(
            model,
            metrics={},
            training_window=None,
            n_rows=1,
            class_balance={},
            params={},
            reference_sample=X[:, :3],
        )
    wrong = LeadScoringEnsemble(rf_n_estimators=2, gb_n_estimators=2).fit(
        X[:, :3], np.arange(200) % 2
    )
    with pytest.raises(ValueError, match="n_features_in_=3"):
        reg.save(
            wrong,
            metrics={},
            training_window=None,
            n_rows=1,
            class_balance={},
            params={},
            reference_sample=X[:5],
        )
    assert reg.list() == []


def test_a_reader_never_sees_a_partial_version(
    reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While saving, the version dir does not exist; after, it is complete."""
    model, X = small_model()
    seen_partial = []
    original_dump = sio.dump

    def slow_dump(obj: object, file: Path) -> None:
        original_dump(obj, file)
        seen_partial.append(reg.list())  # mid-save: nothing visible yet
        time.sleep(0.01)

    monkeypatch.setattr(registry_module.sio, "dump", slow_dump)
    version = save(reg, model, X).version
    assert seen_partial == [[]]
    assert reg.list() == [version]
