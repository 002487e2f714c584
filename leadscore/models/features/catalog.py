"""The profile's categories and how free text maps onto them: industries, lead sources, seniority."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

INDUSTRIES: Final = (
    "software",
    "financial_services",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "government",
    "media",
    "telecom",
    "energy",
    "professional_services",
    "other",
)
INDUSTRY_ALIASES: Final[dict[str, str]] = {
    "saas": "software",
    "it": "software",
    "technology": "software",
    "tech": "software",
    "information_technology": "software",
    "finance": "financial_services",
    "banking": "financial_services",
    "insurance": "financial_services",
    "fintech": "financial_services",
    "health": "healthcare",
    "pharma": "healthcare",
    "life_sciences": "healthcare",
    "ecommerce": "retail",
    "e-commerce": "retail",
    "consumer_goods": "retail",
    "higher_education": "education",
    "public_sector": "government",
    "telecommunications": "telecom",
    "utilities": "energy",
    "consulting": "professional_services",
    "legal": "professional_services",
    "accounting": "professional_services",
}

LEAD_SOURCES: Final = (
    "website",
    "organic_search",
    "paid_search",
    "social",
    "email",
    "referral",
    "event",
    "partner",
    "outbound",
    "purchased_list",
    "other",
)
SOURCE_ALIASES: Final[dict[str, str]] = {
    "web": "website",
    "organic": "organic_search",
    "seo": "organic_search",
    "ppc": "paid_search",
    "paid": "paid_search",
    "ads": "paid_search",
    "webinar": "event",
    "trade_show": "event",
    "conference": "event",
    "cold_call": "outbound",
    "cold_email": "outbound",
    "list": "purchased_list",
}
# Aliases are looked up by the same key as the input ("e-commerce" -> "e_commerce").
INDUSTRY_ALIASES = {re.sub(r"[\s/&-]+", "_", k): v for k, v in INDUSTRY_ALIASES.items()}  # type: ignore[misc]
SOURCE_ALIASES = {re.sub(r"[\s/&-]+", "_", k): v for k, v in SOURCE_ALIASES.items()}  # type: ignore[misc]

#: 0 means unknown.
SENIORITY_RANK: Final[dict[str, int]] = {
    "student": 1,
    "individual": 2,
    "manager": 3,
    "director": 4,
    "vp": 5,
    "c_level": 6,
}
_TITLE_RULES: Final = (
    (re.compile(r"\b(chief|ceo|cto|cfo|coo|cmo|cio|founder|owner|president)\b", re.I), "c_level"),
    (re.compile(r"\b(vp|svp|evp|vice president)\b", re.I), "vp"),
    (re.compile(r"\b(director|head of)\b", re.I), "director"),
    (re.compile(r"\b(manager|lead|supervisor)\b", re.I), "manager"),
    (re.compile(r"\b(student|intern)\b", re.I), "student"),
)


def normalize_category(
    value: str | None, vocabulary: tuple[str, ...], aliases: dict[str, str]
) -> str | None:
    """Map free text to a vocabulary entry: lower-case, underscores, aliases, else ``other``."""
    if value is None:
        return None
    key = _category_key(value)
    key = aliases.get(key, key)
    return key if key in vocabulary else "other"


def _category_key(value: str) -> str:
    return re.sub(r"[\s/&-]+", "_", value.strip().lower())


def seniority_of(profile: dict[str, Any]) -> str | None:
    """The stated seniority, or the one inferred from the job title.

    A lead state keeps the level inferred from the title (``title_level``), never the
    title's text; states written before that keep ``job_title`` and get the same level.
    """
    if profile.get("seniority"):
        return str(profile["seniority"])
    if profile.get("title_level"):
        return str(profile["title_level"])
    title = profile.get("job_title")
    return title_level(title) if title else None


def title_level(title: str) -> str:
    """The seniority a job title says.

    Examples:
        >>> title_level("VP Sales"), title_level("Senior Data Engineer")
        ('vp', 'individual')
    """
    for pattern, level in _TITLE_RULES:
        if pattern.search(title):
            return level
    return "individual"


#: Free-text profile fields, each kept only as what the features read of it: a job title as
#: the seniority it says (``title_level``), an industry and a lead source as their
#: vocabulary entries. The text itself is personal data the features do not need.
PROFILE_TEXT_KEPT_AS: Final[dict[str, tuple[str, Callable[[str], Any]]]] = {
    "job_title": ("title_level", title_level),
    "industry": ("industry", lambda v: normalize_category(v, INDUSTRIES, INDUSTRY_ALIASES)),
    "lead_source": ("lead_source", lambda v: normalize_category(v, LEAD_SOURCES, SOURCE_ALIASES)),
}


def kept_profile_field(name: str, value: Any) -> tuple[str, Any]:
    """The name and value a profile field is kept as (see :data:`PROFILE_TEXT_KEPT_AS`).

    Examples:
        >>> kept_profile_field("job_title", "VP Sales, Acme EMEA")
        ('title_level', 'vp')
        >>> kept_profile_field("industry", "Banking & Insurance"), kept_profile_field("country", "DE")
        (('industry', 'other'), ('country', 'DE'))
    """
    rule = PROFILE_TEXT_KEPT_AS.get(name)
    return (name, value) if rule is None or value is None else (rule[0], rule[1](value))
