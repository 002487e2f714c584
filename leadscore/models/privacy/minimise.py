"""What is kept of an event: URLs without their query strings and fragments.

Page and e-mail URLs often carry who the visitor is (``?email=…&name=…``, tokens in the
fragment, ``user:password@`` in the authority). leadscore needs the path (high-intent
pages); it keeps the parameters the deployment names as not personal (campaign tags such
as ``utm_*``) and drops the rest before anything is stored or published.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: The query parameters kept by default: campaign tags, which name no one.
DEFAULT_KEEP: tuple[str, ...] = ("utm_*",)


def parse_keep(text: str) -> tuple[str, ...]:
    """``"utm_*, ref"`` -> ``("utm_*", "ref")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _kept(name: str, keep: Sequence[str]) -> bool:
    return any(
        name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
        for pattern in keep
    )


def clean_url(url: str, keep: Sequence[str] = DEFAULT_KEEP) -> str:
    """``url`` without its fragment, its user info and every query parameter not in ``keep``
    (names; a trailing ``*`` matches a prefix). Never raises: what cannot be parsed loses
    everything from the first ``?``, ``#`` or ``;`` on.

    Examples:
        >>> clean_url("https://jane:pw@shop.example/pricing?email=j%40x.com&utm_source=ad#t=1")
        'https://shop.example/pricing?utm_source=ad'
        >>> clean_url("/demo?name=Jane"), clean_url("/a;jsessionid=1?x=2")
        ('/demo', '/a')
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        path = parts.path.split(";", 1)[0]
        query = urlencode(
            [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if _kept(k, keep)]
        )
        return urlunsplit((parts.scheme, netloc, path, query, ""))
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0].split(";", 1)[0]


def minimised(event: Any, keep: Sequence[str] = DEFAULT_KEEP) -> Any:
    """The event with clean URLs in its ``data`` (the same object if it has none to clean),
    and without the id of another person it may name (a referral's ``referred_lead_id``)."""
    data = event.data
    update: dict[str, Any] = {}
    url = getattr(data, "url", None)
    if url:
        cleaned = clean_url(url, keep)
        if cleaned != url:
            update["url"] = cleaned
    if getattr(data, "referred_lead_id", None) is not None:
        update["referred_lead_id"] = None
    if not update:
        return event
    return event.model_copy(update={"data": data.model_copy(update=update)})
