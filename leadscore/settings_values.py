"""How single setting values are parsed and checked: pure functions for leadscore.settings.

They read no environment; :class:`~leadscore.settings.Settings` runs them as its field
validators, and their messages name the variable to fix.
"""

from __future__ import annotations

import ipaddress


def check_trends_bucket(value: int) -> int:
    """LEADSCORE_TRENDS_BUCKET_S: a bucket must divide a day, so hours, days and weeks merge from it."""
    if 86_400 % value:
        raise ValueError(
            f"LEADSCORE_TRENDS_BUCKET_S must divide a day (86400) exactly, e.g. 900, 3600 or "
            f"86400; got {value}"
        )
    return value


def parse_persistence(value: object) -> object:
    """LEADSCORE_DRIFT_PERSISTENCE given as text: ``'k,m'`` -> ``(k, m)``; other values pass."""
    if isinstance(value, str):
        try:
            value = tuple(int(part) for part in value.split(","))
        except ValueError as exc:
            raise ValueError(
                f"LEADSCORE_DRIFT_PERSISTENCE must be 'k,m' like '2,3', got {value!r}"
            ) from exc
    return value


def check_persistence(value: tuple[int, int]) -> tuple[int, int]:
    """Drift persistence ``(k, m)``: ``1 <= k <= m <= 100``."""
    k, m = value
    if not 1 <= k <= m <= 100:
        raise ValueError(f"drift persistence needs 1 <= k <= m <= 100, got {value}")
    return value


def check_networks(value: str | None) -> str | None:
    """LEADSCORE_WEBHOOK_ALLOWED_NETWORKS: every comma-separated part is a network."""
    for part in (value or "").split(","):
        if part.strip():
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(
                    "LEADSCORE_WEBHOOK_ALLOWED_NETWORKS must be networks like "
                    f"'10.0.0.0/8,::1/128', got {part.strip()!r}"
                ) from exc
    return value


def parse_thresholds(value: object) -> object:
    """LEADSCORE_GRADE_THRESHOLDS given as text: ``'80,60,40'`` -> ``(80, 60, 40)``; other values pass."""
    if isinstance(value, str):
        try:
            value = tuple(int(part) for part in value.split(","))
        except ValueError as exc:
            raise ValueError(
                f"LEADSCORE_GRADE_THRESHOLDS must be three integers like '80,60,40', got {value!r}"
            ) from exc
    return value


def check_thresholds(value: tuple[int, int, int]) -> tuple[int, int, int]:
    """Grade thresholds fall strictly from A to C within 0..100."""
    a, b, c = value
    if not 100 >= a > b > c >= 0:
        raise ValueError(
            f"grade thresholds must fall strictly from A to C within 0..100, got {value}"
        )
    return value
