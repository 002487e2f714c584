"""load_scorer: the rules prior scores until the champion was trained on enough conversions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leadscore.infra.scorer import load_scorer
from leadscore.models.features.vector import FEATURE_NAMES, N_FEATURES
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.scoring.champion import NoModelError
from leadscore.models.training.ensemble import LeadScoringEnsemble
from leadscore.settings import Settings


def save_model(registry: ModelRegistry, positives: int, *, kind: str = "lead_events") -> str:
    rng = np.random.default_rng(positives)
    X = rng.poisson(1.5, size=(300, N_FEATURES)).astype(float)
    y = (X[:, 0] + rng.normal(size=300) > 2).astype(int)
    model = (
        LeadScoringEnsemble(
            rf_params={"n_estimators": 5, "max_depth": 3},
            gb_params={"n_estimators": 10},
            random_state=0,
        )
        .fit(X, y)
        .compile(FEATURE_NAMES)
    )
    manifest = registry.save(
        model, kind="lead_events", pipeline=None, report=None, metrics={},
        training_window=None, n_rows=300,
        class_balance={"negative": 300.0 - positives, "positive": float(positives), "positive_rate": positives / 300},
        params=None, reference_sample=X[:10],
    )  # fmt: skip
    return manifest.version


def test_empty_registry_scores_with_the_rules_prior(tmp_path: Path) -> None:
    scorer = load_scorer(Settings(model_dir=tmp_path / "models"))
    assert scorer.version.startswith("rules-v")
    assert scorer.champion is None
    (explanation,) = scorer.explain(np.zeros((1, N_FEATURES)))
    assert explanation.components is not None  # fit and engagement, as for the ML model


def test_a_champion_with_too_few_conversions_is_stood_in_for_by_the_rules(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    small = save_model(registry, positives=40)
    registry.promote(small)
    scorer = load_scorer(Settings(model_dir=registry.root, min_training_labels=100))
    assert scorer.version.startswith("rules-v") and scorer.champion == small

    big = save_model(registry, positives=120)
    registry.promote(big)
    scorer = load_scorer(Settings(model_dir=registry.root, min_training_labels=100))
    assert scorer.version == big == scorer.champion
    # 0 always takes the trained model
    registry.promote(small)
    assert load_scorer(Settings(model_dir=registry.root, min_training_labels=0)).version == small


def test_a_rules_file_changes_the_prior_version(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('{"industry_points": {"software": 12}}')
    default = load_scorer(Settings(model_dir=tmp_path / "m"))
    custom = load_scorer(Settings(model_dir=tmp_path / "m", rules_file=rules))
    assert custom.version != default.version


def test_a_broken_rules_file_is_refused_at_load(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text("{not json")
    with pytest.raises(ValueError, match="rules"):
        load_scorer(Settings(model_dir=tmp_path / "m", rules_file=rules))


def test_a_registry_holding_only_a_table_model_is_a_cold_start(tmp_path: Path) -> None:
    import pandas as pd

    from leadscore.models.tabular.pipeline import FeaturePipeline

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"visits": rng.poisson(3, 200).astype(str), "plan": rng.choice(["a", "b"], 200)}
    )
    y = (rng.random(200) < 0.3).astype(int)
    pipeline = FeaturePipeline.fit(df, y=y)
    X = pipeline.transform(df)
    model = LeadScoringEnsemble(rf_params={"n_estimators": 3}, gb_params={"n_estimators": 5}).fit(
        X, y
    )
    registry = ModelRegistry(tmp_path / "models")
    version = registry.save(
        model.compile(pipeline.feature_names), kind="table", pipeline=pipeline, report=None,
        metrics={}, training_window=None, n_rows=200, class_balance={"positive": 500.0},
        params=None, reference_sample=X[:5],
    ).version  # fmt: skip
    registry.promote(version, segment="table")
    assert load_scorer(Settings(model_dir=registry.root, min_training_labels=0)).version.startswith(
        "rules-v"
    )
    registry.promote(version)  # promoted for the stream by mistake: refused, with the reason
    with pytest.raises(NoModelError, match="trained on a table"):
        load_scorer(Settings(model_dir=registry.root, min_training_labels=0))
