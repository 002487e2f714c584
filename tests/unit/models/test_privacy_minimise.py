"""What is kept of events and profiles, and the pseudonyms: no services needed."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from leadscore.infra.privacy.keys import KeyFileError, LeadRefs, secret_file
from leadscore.models.batch.outputs import recent_activity
from leadscore.models.batch.processing import apply_records
from leadscore.models.batch.records import InputRecord, Limits
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import FEATURE_NAMES, to_vector
from leadscore.models.privacy.minimise import (
    DEFAULT_KEEP,
    _clean,
    _cut,
    clean_url,
    minimised,
    parse_keep,
)
from leadscore.models.privacy.pseudonyms import is_pseudonym, pseudonym
from leadscore.models.training.dataset import build_training_set
from leadscore.schemas.decode import EventKind
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
    assert clean_url("/p?utm_source=ad&ref=x", ()) == "/p"


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        # a ';' separates parameters: nothing rides along inside a kept one
        ("/p?utm_source=ad;email=jane@x.example", "/p?utm_source=ad"),
        ("/p?email=jane@x.example;utm_source=ad", "/p?utm_source=ad"),
        # kept parameters are copied as written; names are compared decoded
        ("/p?utm_term=a%20b+c&x=1", "/p?utm_term=a%20b+c"),
        ("/p?utm_source=%E9%ZZ", "/p?utm_source=%E9%ZZ"),
        ("/p?utm%5Fsource=ad&%75tm_medium=m", "/p?utm%5Fsource=ad&%75tm_medium=m"),
        ("/p?utm_source", "/p?utm_source"),
        ("/p?&&utm_source=ad&&", "/p?utm_source=ad"),
        # an e-mail address in a kept parameter goes too
        ("/p?utm_content=jane%40x.example&utm_source=ad", "/p?utm_source=ad"),
        # user info, however it is written
        ("https://jane%40x.example:pw@x.example/p", "https://x.example/p"),
        ("https://a@b@x.example:8443/p", "https://x.example:8443/p"),
        ("//jane:pw@x.example/p?q=1", "//x.example/p"),
        ("HTTPS://JANE:PW@X.EXAMPLE/P", "HTTPS://X.EXAMPLE/P"),
        ("https:/jane:pw@x.example/p", "https://x.example/p"),
        ("https:\\\\jane:pw@x.example/p", "https://x.example/p"),
        ("https:jane:pw@x.example/pricing", "https://x.example/pricing"),
        (" \t https://jane:pw@x.example/p \n", "https://x.example/p"),
        ("https://jane:p\tw@x.example/p", "https://x.example/p"),
        ("https://x.example\\@evil.example/p", "https://x.example\\@evil.example/p"),  # a path
        # path parameters (session ids) of every segment
        ("/a;jsessionid=1/b;v=2/pricing?utm_source=ad", "/a/b/pricing?utm_source=ad"),
        # fragments, whatever they hold
        ("/p#access_token=abc?utm_source=ad", "/p"),
        ("/p?utm_source=ad#", "/p?utm_source=ad"),
        # contact addresses are the person: the scheme only
        ("mailto:jane@x.example?subject=hi", "mailto:"),
        ("TEL:+441234567890", "TEL:"),
        # relative and odd inputs
        ("", ""),
        ("#", ""),
        ("?", ""),
        ("pricing?email=a", "pricing"),
        ("../demo?name=Jane", "../demo"),
        ("https://[::1]:8080/p?x=1", "https://[::1]:8080/p"),
        ("https://x.example/caf\u00e9?n=J\u00f6rg", "https://x.example/caf\u00e9"),
        ("\ud800/p?x=\udfff", "\ud800/p"),
        ("https://x.example/p?" + "a=1&" * 500, "https://x.example/p"),
    ],
)
def test_clean_url_on_hostile_urls(url: str, kept: str) -> None:
    assert clean_url(url) == kept


def test_the_last_resort_cuts_at_the_query_and_drops_user_info() -> None:
    assert _cut("https://jane:pw@x.example/p;s=1?e=a#f") == "https://x.example/p"
    assert _cut("/p?e=a") == "/p" and _cut("") == ""


_ALPHABET = "aZ09_-.~:/\\?#[]@!$&'()*+,;=% \t\n\x00\x7f\u00e9\u2100\ud800\U0001f600"


def test_clean_url_never_raises_and_is_stable_on_random_input() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        url = "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 40)))
        once = clean_url(url)
        assert "#" not in once and clean_url(once) == once, url
        assert once == _clean(url, DEFAULT_KEEP), f"the short cut differs on {url!r}"


def _hostile_url(rng: random.Random) -> tuple[str, list[str], str]:
    """A URL with secrets in every place that can hold one, the kept pairs and the path."""
    scheme = rng.choice(["https://", "http://", "//", "HTTPS://", ""])
    user = rng.choice(["", "SECRETu@", "SECRETu:SECRETp@", "SECRET%40x:y@"]) if scheme else ""
    host = rng.choice(["x.example", "x.example:8080", "[2001:db8::1]"]) if scheme else ""
    segments = [rng.choice(["pricing", "a", "caf%C3%A9", "b+c"]) for _ in range(rng.randrange(4))]
    path = "".join(
        "/" + s + (rng.choice(["", ";SECRETs=1", ";SECRET"])) for s in segments
    ) or rng.choice(["", "/"])
    pairs, kept = [], []
    for i in range(rng.randrange(6)):
        if rng.random() < 0.4:
            pair = rng.choice([f"utm_{i}=v{i}", f"utm_{i}", f"utm%5F{i}=a%20b"])
            kept.append(pair)
        else:
            pair = rng.choice([f"e{i}=SECRET", f"SECRET{i}=1", f"utm_{i}=SECRET%40x", "SECRET"])
        pairs.append(pair)
    query = "".join(rng.choice("&;") + p for p in pairs)[1:]
    fragment = rng.choice(["", "#", "#SECRETf", "#a=SECRET&utm_x=1"])
    url = scheme + user + host + path + ("?" + query if pairs or rng.random() < 0.5 else "")
    return (
        url + fragment,
        kept,
        scheme + host + path.replace(";SECRETs=1", "").replace(";SECRET", ""),
    )


def test_no_secret_survives_in_any_place_of_a_url() -> None:
    rng = random.Random(11)
    for _ in range(5_000):
        url, kept, address = _hostile_url(rng)
        cleaned = clean_url(url)
        assert "SECRET" not in cleaned, (url, cleaned)
        assert cleaned == address + ("?" + "&".join(kept) if kept else ""), url


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


def _record(offset: int, topic: str, type_: str, data: dict[str, object]) -> InputRecord:
    value = orjson.dumps(
        {
            "specversion": "1.0", "id": f"e{offset}", "source": "t", "type": type_,
            "time": f"2026-01-01T10:0{offset}:00Z", "subject": "jane@x.example", "data": data,
        }
    )  # fmt: skip
    return InputRecord(topic, 0, offset, b"jane@x.example", value)


def test_what_a_batch_keeps_holds_no_query_title_reason_or_other_persons_id() -> None:
    """Through the worker's batch logic: the state and the Redis activity entries."""
    kinds = {"a": EventKind.ACTIVITY, "p": EventKind.PROFILE, "o": EventKind.OUTCOME}
    records = [
        _record(0, "a", "lead.page_viewed", {"url": "https://j:pw@x.example/pricing?email=j%40x#t"}),
        _record(1, "a", "lead.email_clicked", {"url": "/demo;s=1?utm_source=ad&name=Jane"}),
        _record(2, "a", "lead.referral_made", {"referred_lead_id": "bob@x.example"}),
        _record(3, "p", "lead.profile_updated", {
            "job_title": "VP Sales, Acme EMEA", "industry": "Banking", "lead_source": "Trade Show",
            "country": "DE",
        }),
        _record(4, "o", "lead.converted", {"reason": "Jane's boss signed", "value": 10}),
    ]  # fmt: skip
    applied = apply_records(
        records,
        kind_of_topic=kinds,
        load_state=lambda _: None,
        limits=Limits(url_keep_params=parse_keep("utm_*")),
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )
    state, _ = applied.result.states["jane@x.example"]
    assert state.high_intent_views == 1
    assert state.profile == {
        "title_level": "vp", "industry": "financial_services", "lead_source": "event",
        "country": "DE",
    }  # fmt: skip
    entries = [
        orjson.loads(e) for e in recent_activity(applied.result.activity, 10)["jane@x.example"]
    ]
    assert [e["data"] for e in entries] == [
        {"url": "https://x.example/pricing", "duration_s": 0.0},
        {"url": "/demo?utm_source=ad"},
        {},
        {"title_level": "vp", "industry": "financial_services", "lead_source": "event",
         "country": "DE"},
        {"value": 10.0},
    ]  # fmt: skip
    kept = orjson.dumps([state.to_dict(), entries])
    for secret in (b"pw", b"j%40x", b"Jane", b"Acme", b"Banking", b"Trade", b"bob", b"#"):
        assert secret not in kept, secret


def test_a_training_set_from_events_cleans_urls_as_the_stream_does() -> None:
    """A word in a dropped query string counts in no snapshot, as it counts in no live vector."""

    def log(url: str) -> list[dict[str, object]]:
        return [
            {"specversion": "1.0", "id": f"{url}-{i}", "source": "t", "type": type_,
             "time": f"2026-01-0{i + 1}T10:00:00Z", "subject": "l", "data": data}
            for i, (type_, data) in enumerate([
                ("lead.page_viewed", {"url": url}), ("lead.email_opened", {}),
                ("lead.converted", {}),
            ])
        ]  # fmt: skip

    column = FEATURE_NAMES.index("high_intent_page_views")
    for url, views in [("/blog?next=/pricing", 0), ("/pricing?email=j%40x", 1)]:
        ts = build_training_set(
            log(url),
            horizon_days=1,
            snapshots_per_lead=None,
            as_of=datetime(2026, 3, 1, tzinfo=UTC),
        )
        assert len(ts) == 2, url
        assert set(ts.X[:, column]) == {views}, url
