"""The one settings object: the only place that reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from leadscore.settings_feed import FeedSettings
from leadscore.settings_privacy import PrivacySettings
from leadscore.settings_values import (
    check_networks,
    check_persistence,
    check_thresholds,
    check_trends_bucket,
    parse_persistence,
    parse_thresholds,
)


class Settings(PrivacySettings, FeedSettings, BaseSettings):
    """leadscore configuration; every field can be set as ``LEADSCORE_<NAME>``.

    Build it once at start-up (``Settings()``) and pass it down. Tests construct it
    directly: ``Settings(kafka_bootstrap="127.0.0.1:9092", ...)``.
    """

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", frozen=True, extra="ignore")

    # --- infrastructure -------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "localhost:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "LEADSCORE_KAFKA_BOOTSTRAP"),
        description="Kafka bootstrap servers, comma-separated host:port",
    )
    redis_url: str = Field(
        "redis://localhost:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "LEADSCORE_REDIS_URL"),
    )
    redis_prefix: str = Field("leadscore:", description="prefix of every Redis key we write")
    redis_max_connections: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Redis connections per process (API, worker); a command "
        "waits up to 10 s for a free one",
    )
    kafka_security_protocol: str = Field(
        "PLAINTEXT", pattern=r"^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$"
    )
    kafka_sasl_mechanism: str | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None

    # --- topics (keyed by lead id) ----------------------------------------------------------
    activity_topic: str = "leads.activity.v1"
    profile_topic: str = "leads.profile.v1"
    outcome_topic: str = "leads.outcome.v1"
    scores_topic: str = "leads.scores.v1"
    dead_letter_topic: str = "leads.dead-letter.v1"
    model_events_topic: str = "models.events.v1"
    features_topic: str = Field(
        "leads.features.v1", description="scored vectors, for the drift agent"
    )
    training_topic: str = Field(
        "leads.training.v1",
        description="labelled point-in-time examples, one per lead's first outcome",
    )
    drift_topic: str = Field("models.drift.v1", description="drift reports, one per tested window")
    topic_partitions: int = Field(8, ge=1, description="partitions of every topic we create")
    topic_replication: int = Field(1, ge=1)

    # --- worker ---------------------------------------------------------------------------
    app_id: str = Field("leadscore", description="Faust app id: consumer group and table prefix")
    batch_size: int = Field(256, ge=1, le=100_000)
    batch_window_s: float = Field(0.05, gt=0, le=10)
    # Tansu holds a JoinGroup for half the *session* timeout, so a short session timeout
    # is what makes restarts and rebalances fast there (docs/operations.md).
    broker_session_timeout_s: float = Field(6.0, gt=0)
    broker_heartbeat_interval_s: float = Field(1.0, gt=0)
    broker_rebalance_timeout_s: float = Field(10.0, gt=0)
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        le=30_000,
        description="longest a consumer fetch waits for records; Faust hard-codes 1500. Tansu "
        "answers only after about half of it even when records arrive, so it bounds latency there",
    )
    dedupe_window: int = Field(
        256, ge=1, description="event ids remembered per lead to drop repeats"
    )
    max_event_bytes: int = Field(65_536, ge=256)
    max_future_skew_s: float = Field(300.0, ge=0)

    # --- scoring --------------------------------------------------------------------------
    model_dir: Path = Path("artifacts/models")
    score_change_threshold: int = Field(
        3, ge=0, le=100, description="publish a score event when the score moves this many points"
    )
    grade_thresholds: Annotated[tuple[int, int, int], NoDecode] = Field(
        (80, 60, 40), description="lowest score of grades A, B, C (below the last: D)"
    )
    top_reasons: int = Field(5, ge=0, le=50)
    model_variant: str = Field(
        "auto",
        pattern=r"^(auto|ensemble|ensemble_hgb|ensemble_fitted|random_forest|gradient_boosting|hist_gradient_boosting|logistic_regression)$",
        description="which candidate `leadscore train` deploys: auto keeps the 40/40/20 ensemble "
        "unless another variant beats it by more than the cross-validation noise",
    )
    min_training_labels: int = Field(
        100,
        ge=0,
        description="conversions the champion must have been trained on before it replaces the "
        "rules prior (cold start); 0 always uses the trained model",
    )
    rules_file: Path | None = Field(
        None, description="JSON file overriding the rules prior's points (docs/rules.md)"
    )
    top_changes: int = Field(3, ge=0, le=50, description="moved contributions listed per score")
    model_poll_s: float = Field(
        10.0, gt=0, description="how often a worker checks for a new champion"
    )
    shutdown_timeout_s: float = Field(8.0, gt=0, description="longest a worker takes to stop")
    broker_watch_s: float = Field(
        5.0, ge=0, description="how often a worker checks the broker kept its topics (0: never)"
    )
    history_length: int = Field(100, ge=0, description="score changes kept per lead in Redis")
    activity_length: int = Field(
        50,
        ge=0,
        le=100_000,
        description="recent input events kept per lead in Redis "
        "(GET /v1/leads/{id}/activity); 0 keeps none",
    )
    trends_bucket_s: int = Field(
        3600,
        ge=60,
        le=86_400,
        description="event-time bucket of the stored score trends "
        "(GET /v1/trends); must divide a day, so hours (if it divides an hour), days and weeks "
        "can be merged from it",
    )
    trends_retention_days: float = Field(
        400.0,
        gt=0,
        le=36_500,
        description="how long a trend bucket is kept (wall clock)",
    )

    # --- api -----------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="address `leadscore api` listens on")
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    api_cache_ttl_s: float = Field(
        5.0,
        ge=0,
        description="how long the API caches a lead's latest score (score events "
        "for the lead invalidate it sooner)",
    )
    api_key_cache_s: float = Field(
        5.0,
        ge=0,
        description="how long a verified API key is trusted before Redis is asked "
        "again: the longest a revoked key keeps working on one API process",
    )
    api_max_batch: int = Field(1000, ge=1, le=100_000, description="leads per POST /v1/score/batch")
    api_rate_limit: float = Field(
        1000.0,
        ge=0,
        description="requests per second each API key may send to one API process "
        "(429 with Retry-After above it); 0: no limit",
    )
    api_rate_burst: float = Field(
        2000.0, ge=1, description="requests an API key may send at once above the rate"
    )
    api_max_upload_bytes: int = Field(200 * 1024 * 1024, ge=1024, description="largest batch file")
    api_max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="largest request body but a file upload; 413 before it is parsed",
    )
    api_jobs_dir: Path = Path("artifacts/jobs")
    api_data_dir: Path = Field(
        Path("artifacts/data"),
        description="the only directory POST /v1/models/train reads training files from",
    )
    dashboard_dir: Path | None = Field(
        None,
        description="built dashboard files `leadscore api` serves at / (default: dashboard/dist "
        "of a source checkout)",
    )
    audit_max_entries: int = Field(100_000, ge=100, description="audit log entries kept in Redis")
    # --- webhooks (docs/webhooks.md) -----------------------------------------------------------
    webhook_dead_letter_topic: str = Field(
        "webhooks.dead-letter.v1",
        description="where the worker publishes deliveries that used up their attempts",
    )
    webhook_max_attempts: int = Field(
        10, ge=1, le=50, description="HTTP attempts per delivery, the first included"
    )
    webhook_first_retry_s: float = Field(5.0, gt=0, description="wait before the first retry")
    webhook_retry_horizon_s: float = Field(
        86_400.0,
        gt=0,
        description="from the first attempt to the last: the exponential retry "
        "delays are sized to add up to it",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, le=300, description="longest one HTTP attempt may take"
    )
    webhook_concurrency: int = Field(
        32, ge=1, le=10_000, description="deliveries in flight per worker"
    )
    webhook_allow_private: bool = Field(
        False, description="let webhooks go to private, loopback and link-local addresses"
    )
    webhook_allowed_networks: str | None = Field(
        None, description="comma-separated networks webhooks may reach although not public"
    )
    webhook_log_ttl_s: float = Field(
        604_800.0, gt=0, description="how long a delivered delivery stays in the delivery log"
    )

    # --- closed loop: drift and retraining (docs/drift.md) -------------------------------------
    label_max_delay_s: float = Field(
        300.0,
        ge=0,
        description="longest an outcome waits for the activity and profile topics to "
        "be read up to its time before it becomes a training example anyway",
    )
    feature_sample_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="share of rescored vectors published to the features "
        "topic for the drift agent (0 turns drift detection off)",
    )
    drift_enabled: bool = Field(True, description="run the drift agent in `leadscore worker`")
    drift_window_size: int = Field(
        1000,
        ge=20,
        le=1_000_000,
        description="distinct leads per drift window (each lead's "
        "latest vector in the window counts once)",
    )
    drift_window_min_days: float = Field(
        0.0,
        ge=0,
        le=365,
        description="least event-time span of a drift window in days: a window "
        "with enough leads stays open until it spans this long (7: a whole week, so weekly "
        "seasonality is not drift); 0: close at the window size",
    )
    drift_baseline_windows: int = Field(
        3,
        ge=1,
        le=1000,
        description="windows of a new champion's live traffic that form its "
        "reference before windows are tested",
    )
    drift_alpha: float = Field(0.01, gt=0, lt=1, description="false discovery rate per window (BH)")
    drift_ks_min_effect: float = Field(0.1, ge=0, le=1, description="smallest KS D that counts")
    drift_psi_min_effect: float = Field(0.1, ge=0, description="smallest PSI that counts")
    drift_persistence: Annotated[tuple[int, int], NoDecode] = Field(
        (2, 3),
        description="a feature drifts persistently when it drifted in k of the last m windows: 'k,m'",
    )
    performance_window: int = Field(
        500,
        ge=20,
        le=1_000_000,
        description="labelled outcomes in the sliding performance window",
    )
    performance_auc_drop: float = Field(
        0.05,
        gt=0,
        le=1,
        description="ROC-AUC drop against the model's first performance window "
        "that raises a medium performance alert (twice it: high)",
    )
    retrain_enabled: bool = Field(
        True, description="retrain automatically (drift, labels, schedule)"
    )
    retrain_on_drift: str = Field(
        "medium",
        pattern=r"^(off|low|medium|high)$",
        description="drift alert level (or above) that triggers a retrain; off: never",
    )
    retrain_min_new_labels: int = Field(
        2000, ge=0, description="labelled outcomes since the last retrain that trigger one (0: off)"
    )
    retrain_interval_s: float = Field(
        0.0, ge=0, description="retrain on a schedule every this many seconds (0: off)"
    )
    retrain_cooldown_s: float = Field(
        3600.0,
        ge=0,
        description="least time between two automatic retrains (a persisting alert "
        "does not retrain again before it)",
    )
    retrain_min_labels: int = Field(
        300, ge=20, description="labelled outcomes needed to train a candidate at all"
    )
    retrain_training_set: str = Field(
        "snapshots",
        pattern=r"^(snapshots|outcomes)$",
        description="what a retrain learns from: snapshots (each lead's scored vectors, one per day, "
        "labelled by a conversion within retrain_horizon_days) or outcomes (only the vector just "
        "before each outcome)",
    )
    retrain_horizon_days: float = Field(
        30.0,
        gt=0,
        le=365,
        description="snapshots: a row is positive if the lead converts within this",
    )
    retrain_max_examples: int = Field(
        20_000,
        ge=100,
        description="the most recent rows a retrain uses (labelled outcomes, or snapshot rows)",
    )
    retrain_holdout_fraction: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="the most recent share of those, held out to compare the "
        "candidate with the champion",
    )
    retrain_margin: float = Field(
        0.005,
        ge=-1,
        le=1,
        description="ROC-AUC on the holdout by which the candidate must beat "
        "the champion to be promoted",
    )
    retrain_folds: int = Field(3, ge=2, le=20, description="cross-validation folds of a retrain")
    retrain_search: str = Field(
        "quick", pattern=r"^(quick|none)$", description="hyperparameter search of a retrain"
    )
    retrain_timeout_s: float = Field(3600.0, gt=0, description="a retrain running longer is killed")

    _check_trends_bucket = field_validator("trends_bucket_s")(check_trends_bucket)
    _parse_persistence = field_validator("drift_persistence", mode="before")(parse_persistence)
    _check_persistence = field_validator("drift_persistence")(check_persistence)
    _check_networks = field_validator("webhook_allowed_networks")(check_networks)
    _parse_thresholds = field_validator("grade_thresholds", mode="before")(parse_thresholds)
    _check_thresholds = field_validator("grade_thresholds")(check_thresholds)

    @property
    def input_topics(self) -> tuple[str, str, str]:
        return (self.activity_topic, self.profile_topic, self.outcome_topic)


#: Settings read from a variable other than LEADSCORE_<FIELD>.
_ENV_NAMES = {"kafka_bootstrap": "KAFKA_BOOTSTRAP", "redis_url": "REDIS_URL"}


def env_var(field: str) -> str:
    """The environment variable that sets ``field``.

    Examples:
        >>> env_var("batch_size"), env_var("redis_url")
        ('LEADSCORE_BATCH_SIZE', 'REDIS_URL')
    """
    return _ENV_NAMES.get(field, f"LEADSCORE_{field.upper()}")
