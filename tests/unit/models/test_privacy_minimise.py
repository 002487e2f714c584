"""What is kept of events and profiles, and the pseudonyms: no services needed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadscore.infra.privacy.keys import KeyFileError, LeadRefs, secret_file
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import to_vector
from leadscore.models.privacy.minimise import clean_url, minimised, parse_keep
from leadscore.models.privacy.pseudonyms import is_pseudonym, pseudonym
from leadscore.schemas.events import lead_event_adapter


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://x.example/pricing?email=a%40b.c&name=Jane", "https://x.example/pricing"),
        ("https://u:p@x.example/p?utm_source=ad&token=1#frag", "https://x.example/p?utm_source=ad"),
        ("/demo?name=Jane#email=a@b.c", "/demo"),
        ("/a;jsessionid=ABC?x=1", "/a"),
        ("https://[::1/broken?email=a", "https://[::1/broken"),  # unparseable: cut at '?'
        ("pricing", "pricing"),
        ("?email=a@b.c", ""),
    ],
)
def test_clean_url_keeps_the_path_and_the_named_parameters_only(url: str, kept: str) -> None:
    assert clean_url(url, parse_keep("utm_*")) == kept


def test_a_setting_keeps_named_parameters() -> None:
    assert clean_url("/p?ref=partner&refx=1&email=x", parse_keep("ref, utm_*")) == "/p?ref=partner"


def _event(type_: str, data: dict[str, object], i: int = 0) -> object:
    return lead_event_adapter.validate_python(
        {
            "specversion": "1.0", "id": f"e{i}", "source": "t", "type": type_,
            "time": datetime(2026, 1, 1, 10, i, tzinfo=UTC), "subject": "jane@x.example",
            "data": data,
        }
    )  # fmt: skip


def test_the_state_keeps_a_titles_level_not_its_text_and_the_vector_is_unchanged() -> None:
    profile = _event("lead.profile_updated", {"job_title": "VP Sales, Acme EMEA"})
    now = LeadState("jane@x.example")
    apply_event(now, profile)
    assert "job_title" not in now.profile and now.profile["title_level"] == "vp"
    before = LeadState("jane@x.example", profile={"job_title": "VP Sales, Acme EMEA"})
    before.profile_t = dict(now.profile_t)
    before.first_event_t = before.last_event_t = now.last_event_t
    assert (to_vector(now) == to_vector(before)).all()


def test_minimised_events_drop_query_strings_and_other_peoples_ids() -> None:
    view = minimised(_event("lead.page_viewed", {"url": "/pricing?email=a@b.c"}))
    assert view.data.url == "/pricing"
    referral = minimised(_event("lead.referral_made", {"referred_lead_id": "bob@x.example"}))
    assert referral.data.referred_lead_id is None
    plain = _event("lead.page_viewed", {"url": "/pricing"})
    assert minimised(plain) is plain


def test_pseudonyms_are_stable_secret_dependent_and_shaped() -> None:
    a, b = pseudonym(b"s" * 32, "jane@x.example"), pseudonym(b"t" * 32, "jane@x.example")
    assert a == pseudonym(b"s" * 32, "jane@x.example") != b
    assert is_pseudonym(a) and not is_pseudonym("jane@x.example")
    refs = LeadRefs(b"s" * 32, plain_topics=True)
    assert refs.topic("jane") == "jane" and refs.table("jane") == pseudonym(b"s" * 32, "jane")


def test_the_secret_file_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "pseudonym.key"
    first = secret_file(path)
    assert len(first) == 32 and secret_file(path) == first
    assert path.stat().st_mode & 0o077 == 0, "only the owner may read it"
    path.write_text("not base64!\n")
    with pytest.raises(KeyFileError, match="base64"):
        secret_file(path)
