"""Personal-data settings (docs/privacy.md), mixed into :class:`leadscore.settings.Settings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings


class PrivacySettings(BaseSettings):
    """What leadscore keeps about leads, for how long, and the keys that protect it."""

    keys_dir: Path = Field(
        Path("artifacts/keys"),
        description="where the pseudonym secret and the data keys live when not given "
        "in the environment (made on first start; share it like the model directory)",
    )
    pseudonym_secret: str | None = Field(
        None,
        repr=False,
        description="secret of the lead pseudonyms (HMAC-SHA256); default: "
        "keys_dir/pseudonym.key, made on first start",
    )
    topic_lead_ids: str = Field(
        "pseudonymous",
        pattern=r"^(pseudonymous|plain)$",
        description="lead ids in the records leadscore writes to Kafka: 'pseudonymous' "
        "(an HMAC of the id; erasure leaves nothing readable) or 'plain'",
    )
    erasures_topic: str = Field(
        "leads.erasures.v1", description="erasure requests, to the worker that holds the lead"
    )
    erasure_receipt_days: float = Field(
        3 * 365.0, gt=0, description="how long erasure receipts are kept (they hold no lead ids)"
    )
    url_keep_params: str = Field(
        "utm_*",
        description="query parameters kept in page and e-mail URLs, comma-separated (a "
        "trailing * matches a prefix); every other parameter, path parameters, the fragment "
        "and user info are dropped before anything is stored (empty: keep none)",
    )
    dead_letter_retention_days: float = Field(
        7.0,
        gt=0,
        description="how long dead letters can be read: the key that seals them is "
        "destroyed after this; also the retention of the dead-letter topics leadscore creates",
    )
    lead_retention_days: float = Field(
        0.0,
        ge=0,
        description="forget a lead (as an erasure) when its last event is older than this; "
        "0 keeps leads until erased",
    )
    retention_sweep_s: float = Field(
        60.0, gt=0, description="how often each worker looks for leads past the retention"
    )
    data_keys: str | None = Field(
        None,
        repr=False,
        description="keys that seal lead states and activity at rest: 'kid:base64,...' (the "
        "first seals, all open); default: keys_dir/data.keys, made on first start",
    )
    encrypt_at_rest: bool = Field(
        True, description="seal lead states and activity (Redis and the worker's table)"
    )
    topic_retention_days: float = Field(
        30.0,
        ge=0,
        description="retention.ms of the scores and features topics leadscore creates "
        "(0: kept); existing topics are not changed (a differing one is named at start)",
    )
    training_retention_days: float = Field(
        0.0,
        ge=0,
        description="retention.ms of the training topic leadscore creates (0: kept, it is "
        "the training set)",
    )
    erasures_retention_days: float = Field(
        7.0,
        gt=0,
        description="retention.ms of the erasures topic leadscore creates (each request is "
        "read within seconds; the worker keeps when each lead was erased)",
    )
