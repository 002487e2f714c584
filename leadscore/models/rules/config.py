"""The rules prior's points table: :class:`RulesConfig`, its defaults, validation and JSON file.

:class:`~leadscore.models.rules.model.RulesModel` scores leads with a table; ``docs/rules.md``
describes the table and the JSON schema of :meth:`RulesConfig.from_file`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from leadscore.models.features.catalog import INDUSTRIES, LEAD_SOURCES, SENIORITY_RANK
from leadscore.models.features.vector import FEATURE_NAMES

__all__ = ["RulesConfig", "RulesConfigError", "SignalPoints"]

# The features the fit group reads, and the one the time rules read.
_SIZE, _SENIORITY, _COMPLETENESS, _RECENCY = (
    "company_size_log10",
    "seniority_rank",
    "contact_completeness",
    "recency_days",
)
_NOT_SIGNALS: Final = frozenset({_SIZE, _SENIORITY, _COMPLETENESS, _RECENCY, "has_profile"})
#: Numeric features an engagement rule may use (everything but fit, time and one-hots).
SIGNAL_FEATURES: Final = tuple(n for n in FEATURE_NAMES if "=" not in n and n not in _NOT_SIGNALS)


class RulesConfigError(ValueError):
    """A points table that cannot be used; the message names the entry and the file."""


@dataclass(frozen=True)
class SignalPoints:
    """Points for one engagement signal: ``min(points_per_unit * value, max_points)``.

    ``value`` is the feature's value (a count, or a rate where 1.0 is 100%).
    """

    points_per_unit: float
    max_points: float


_DEFAULT_COMPANY_SIZE: Final = ((1, 0.0), (10, 3.0), (50, 6.0), (200, 10.0), (1000, 12.0))
_DEFAULT_SENIORITY: Final = {
    "unknown": 0.0,
    "student": -10.0,
    "individual": 2.0,
    "manager": 6.0,
    "director": 9.0,
    "vp": 12.0,
    "c_level": 12.0,
}
_DEFAULT_INDUSTRY: Final = {
    "software": 8.0,
    "financial_services": 6.0,
    "telecom": 5.0,
    "professional_services": 5.0,
    "healthcare": 4.0,
    "manufacturing": 4.0,
    "media": 3.0,
    "energy": 3.0,
    "retail": 2.0,
    "education": 0.0,
    "government": 0.0,
    "other": 0.0,
}
_DEFAULT_LEAD_SOURCE: Final = {
    "referral": 8.0,
    "partner": 6.0,
    "event": 5.0,
    "website": 4.0,
    "organic_search": 4.0,
    "paid_search": 3.0,
    "email": 2.0,
    "social": 2.0,
    "outbound": 0.0,
    "other": 0.0,
    "purchased_list": -10.0,
}
_DEFAULT_ENGAGEMENT: Final = {
    "demo_requests": SignalPoints(25.0, 25.0),
    "meetings": SignalPoints(15.0, 30.0),
    "high_intent_page_views": SignalPoints(5.0, 20.0),
    "referrals": SignalPoints(10.0, 20.0),
    "form_submits": SignalPoints(8.0, 16.0),
    "email_clicks": SignalPoints(3.0, 12.0),
    "downloads": SignalPoints(4.0, 12.0),
    "call_answer_rate": SignalPoints(10.0, 10.0),
    "page_views": SignalPoints(1.0, 5.0),
    "email_opens": SignalPoints(1.0, 5.0),
    "social_engagements": SignalPoints(1.0, 5.0),
}
_DEFAULT_INACTIVITY: Final = ((30.0, -5.0), (90.0, -15.0))


@dataclass(frozen=True)
class RulesConfig:
    """The points table. Defaults are below; :meth:`from_file` overrides them from JSON.

    Args:
        base_points: points every lead starts with.
        fit_max_points: cap of the fit group (its floor is 0).
        engagement_max_points: cap of the engagement group before decay (its floor is 0).
        company_size_points: ``(min_employees, points)`` bands, ascending, the first at 1
            employee; a lead gets the band its size falls in (unknown size: the first band).
        seniority_points: points per seniority (``unknown`` included).
        industry_points: points per industry; unlisted industries get 0.
        lead_source_points: points per lead source; unlisted sources get 0.
        contact_completeness_points: points for 100% complete contact details (linear).
        engagement_points: feature name -> :class:`SignalPoints`.
        activity_half_life_days: engagement points halve every this many days of silence.
        inactivity_points: ``(min_days, points)`` bands of non-positive, non-increasing
            points for long silences; the last band reached applies (not cumulative).

    Raises:
        RulesConfigError: an entry is out of range or unknown (the message names it).
    """

    base_points: float = 0.0
    fit_max_points: float = 40.0
    engagement_max_points: float = 60.0
    company_size_points: tuple[tuple[int, float], ...] = _DEFAULT_COMPANY_SIZE
    seniority_points: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_SENIORITY))
    industry_points: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_INDUSTRY))
    lead_source_points: Mapping[str, float] = field(
        default_factory=lambda: dict(_DEFAULT_LEAD_SOURCE)
    )
    contact_completeness_points: float = 6.0
    engagement_points: Mapping[str, SignalPoints] = field(
        default_factory=lambda: dict(_DEFAULT_ENGAGEMENT)
    )
    activity_half_life_days: float = 30.0
    inactivity_points: tuple[tuple[float, float], ...] = _DEFAULT_INACTIVITY

    def __post_init__(self) -> None:
        # Own copies: a caller changing its dict later must not change this table.
        tables = ("seniority_points", "industry_points", "lead_source_points", "engagement_points")
        for name in tables:
            object.__setattr__(self, name, dict(getattr(self, name)))
        _validate(self)

    @classmethod
    def from_file(cls, path: str | Path) -> RulesConfig:
        """Read a JSON table (schema in ``docs/rules.md``); missing entries keep the defaults.

        Raises:
            RulesConfigError: the file cannot be read, is not JSON, or has a bad entry;
                the message starts with the path.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise RulesConfigError(f"rules config {path}: cannot read it ({exc})") from exc
        except json.JSONDecodeError as exc:
            raise RulesConfigError(
                f"rules config {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg})"
            ) from exc
        try:
            return cls.from_dict(data)
        except RulesConfigError as exc:
            raise RulesConfigError(f"rules config {path}: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Any) -> RulesConfig:
        """Build a table from the JSON schema of :meth:`to_dict`, over the defaults."""
        if not isinstance(data, dict):
            raise RulesConfigError(f"expected a JSON object at the top, got {_kind(data)}")
        default = cls()
        unknown = sorted(set(data) - set(default.to_dict()))
        if unknown:
            raise RulesConfigError(
                f"unknown key(s) {unknown}; expected some of {sorted(default.to_dict())}"
            )
        kw: dict[str, Any] = {}
        for key in (
            "base_points",
            "fit_max_points",
            "engagement_max_points",
            "contact_completeness_points",
            "activity_half_life_days",
        ):
            if key in data:
                kw[key] = _number(data[key], key)
        for key in ("seniority_points", "industry_points", "lead_source_points"):
            if key in data:
                table = _object(data[key], key)
                kw[key] = dict(getattr(default, key)) | {
                    k: _number(v, f"{key}.{k}") for k, v in table.items()
                }
        if "engagement_points" in data:
            table = _object(data["engagement_points"], "engagement_points")
            kw["engagement_points"] = dict(default.engagement_points) | {
                k: _signal(v, f"engagement_points.{k}") for k, v in table.items()
            }
        if "company_size_points" in data:
            kw["company_size_points"] = _bands(
                data["company_size_points"], "company_size_points", "min_employees"
            )
        if "inactivity_points" in data:
            kw["inactivity_points"] = _bands(
                data["inactivity_points"], "inactivity_points", "min_days"
            )
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The whole table in the JSON schema of :meth:`from_file` (all numbers as floats)."""
        return {
            "base_points": float(self.base_points),
            "fit_max_points": float(self.fit_max_points),
            "engagement_max_points": float(self.engagement_max_points),
            "company_size_points": [
                {"min_employees": int(m), "points": float(p)} for m, p in self.company_size_points
            ],
            "seniority_points": {k: float(v) for k, v in sorted(self.seniority_points.items())},
            "industry_points": {k: float(v) for k, v in sorted(self.industry_points.items())},
            "lead_source_points": {k: float(v) for k, v in sorted(self.lead_source_points.items())},
            "contact_completeness_points": float(self.contact_completeness_points),
            "engagement_points": {
                k: {"points_per_unit": float(s.points_per_unit), "max_points": float(s.max_points)}
                for k, s in sorted(self.engagement_points.items())
            },
            "activity_half_life_days": float(self.activity_half_life_days),
            "inactivity_points": [
                {"min_days": float(d), "points": float(p)} for d, p in self.inactivity_points
            ],
        }


# --- validation ----------------------------------------------------------------------------


def _validate(c: RulesConfig) -> None:
    for name in (
        "base_points",
        "fit_max_points",
        "engagement_max_points",
        "contact_completeness_points",
        "activity_half_life_days",
    ):
        _number(getattr(c, name), name)
    if c.base_points < 0 or c.fit_max_points < 0 or c.engagement_max_points < 0:
        raise RulesConfigError(
            "base_points, fit_max_points and engagement_max_points must be >= 0, got "
            f"{c.base_points}, {c.fit_max_points}, {c.engagement_max_points}"
        )
    top = c.base_points + c.fit_max_points + c.engagement_max_points
    if top > 100:
        raise RulesConfigError(
            f"base_points + fit_max_points + engagement_max_points must be <= 100 (the score is "
            f"0-100), got {c.base_points} + {c.fit_max_points} + {c.engagement_max_points} = {top}"
        )
    if c.activity_half_life_days <= 0:
        raise RulesConfigError(
            f"activity_half_life_days must be > 0, got {c.activity_half_life_days}"
        )
    _check_keys(c.seniority_points, "seniority_points", ("unknown", *SENIORITY_RANK))
    _check_keys(c.industry_points, "industry_points", INDUSTRIES)
    _check_keys(c.lead_source_points, "lead_source_points", LEAD_SOURCES)
    for table in ("seniority_points", "industry_points", "lead_source_points"):
        for key, value in getattr(c, table).items():
            _number(value, f"{table}.{key}")
    _check_keys(c.engagement_points, "engagement_points", SIGNAL_FEATURES)
    for key, s in c.engagement_points.items():
        if not isinstance(s, SignalPoints):
            raise RulesConfigError(
                f"engagement_points.{key} must be a SignalPoints, got {_kind(s)}"
            )
        for part in ("points_per_unit", "max_points"):
            if _number(getattr(s, part), f"engagement_points.{key}.{part}") < 0:
                raise RulesConfigError(
                    f"engagement_points.{key}.{part} must be >= 0 (engagement only adds points; "
                    f"long silences subtract via inactivity_points), got {getattr(s, part)}"
                )
    sizes = c.company_size_points
    _check_bands(sizes, "company_size_points", "min_employees")
    if sizes[0][0] != 1:
        raise RulesConfigError(
            f"company_size_points must start at min_employees 1 (it also covers unknown sizes), "
            f"got {sizes[0][0]}"
        )
    _check_bands(c.inactivity_points, "inactivity_points", "min_days", allow_empty=True)
    previous = 0.0
    for days, points in c.inactivity_points:
        if days < 0 or points > previous:
            raise RulesConfigError(
                "inactivity_points must have min_days >= 0 and points <= 0 that never rise as "
                f"days grow (so a longer silence never helps), got {list(c.inactivity_points)}"
            )
        previous = points


def _check_keys(table: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise RulesConfigError(
            f"{name}: unknown key(s) {unknown}; expected some of {list(allowed)}"
        )


def _check_bands(bands: Any, name: str, key: str, allow_empty: bool = False) -> None:
    if not isinstance(bands, tuple) or (not bands and not allow_empty):
        raise RulesConfigError(
            f"{name} must be a non-empty tuple of ({key}, points), got {bands!r}"
        )
    for i, band in enumerate(bands):
        if not isinstance(band, tuple) or len(band) != 2:
            raise RulesConfigError(f"{name}[{i}] must be a ({key}, points) pair, got {band!r}")
        _number(band[0], f"{name}[{i}].{key}")
        _number(band[1], f"{name}[{i}].points")
    starts = [b[0] for b in bands]
    if any(b <= a for a, b in zip(starts, starts[1:])):
        raise RulesConfigError(f"{name}: {key} must be strictly increasing, got {starts}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RulesConfigError(f"{name} must be a finite number, got {_kind(value)} {value!r}")
    return float(value)


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RulesConfigError(f"{name} must be a JSON object, got {_kind(value)}")
    return value


def _signal(value: Any, name: str) -> SignalPoints:
    table = _object(value, name)
    if set(table) != {"points_per_unit", "max_points"}:
        raise RulesConfigError(
            f"{name} must have exactly the keys 'points_per_unit' and 'max_points', "
            f"got {sorted(table)}"
        )
    return SignalPoints(
        _number(table["points_per_unit"], f"{name}.points_per_unit"),
        _number(table["max_points"], f"{name}.max_points"),
    )


def _bands(value: Any, name: str, key: str) -> tuple[tuple[Any, float], ...]:
    if not isinstance(value, list):
        raise RulesConfigError(
            f"{name} must be a JSON list of {{{key!r}, 'points'}} objects, got {_kind(value)}"
        )
    out = []
    for i, item in enumerate(value):
        band = _object(item, f"{name}[{i}]")
        if set(band) != {key, "points"}:
            raise RulesConfigError(
                f"{name}[{i}] must have exactly the keys {key!r} and 'points', got {sorted(band)}"
            )
        start = _number(band[key], f"{name}[{i}].{key}")
        if key == "min_employees":
            if start != int(start) or start < 1:
                raise RulesConfigError(
                    f"{name}[{i}].min_employees must be a whole number >= 1, got {band[key]!r}"
                )
            start = int(start)
        out.append((start, _number(band["points"], f"{name}[{i}].points")))
    return tuple(out)


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
