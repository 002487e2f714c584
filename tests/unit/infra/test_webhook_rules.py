"""Webhook logic with no services: signing, messages and filters, the retry schedule, URLs."""

from __future__ import annotations

import base64
import ipaddress
import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from leadscore.infra.webhooks.addresses import (
    AddressPolicy,
    check_addresses,
    parse_networks,
    parse_target,
)
from leadscore.infra.webhooks.errors import WebhookSecretError, WebhookUrlError
from leadscore.infra.webhooks.messages import delivery_id, envelope_body, passes, sample_event
from leadscore.infra.webhooks.retry_schedule import (
    JITTER,
    jittered,
    next_attempt_delay,
    retry_delays,
)
from leadscore.infra.webhooks.signing import generate_secret, secret_key, signature_headers
from leadscore.schemas.scores import LeadScored
from leadscore.schemas.webhooks import WebhookCreate, WebhookEnvelope, WebhookFilters
from leadscore.settings import Settings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(
    score: int = 85,
    previous: int | None = 70,
    grade: str = "A",
    previous_grade: str | None = "B",
    lead_id: str = "lead-1",
) -> LeadScored:
    return sample_event("sc_0123", NOW).model_copy(
        update={"score": score, "previous_score": previous, "grade": grade,
                "previous_grade": previous_grade, "lead_id": lead_id}
    )  # fmt: skip


# --- signing ---------------------------------------------------------------------------------------


def test_a_signed_body_verifies_with_the_stock_standardwebhooks_package() -> None:
    secret = generate_secret()
    body = envelope_body(event())
    now = int(datetime.now(UTC).timestamp())
    headers = signature_headers(secret, "sc_0123", now, body)

    payload = Webhook(secret).verify(body, headers)

    assert payload["type"] == "lead.score_changed"
    assert payload["data"]["score"] == 85 and payload["data"]["previous_score"] == 70
    assert headers["webhook-id"] == "sc_0123" and headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")


def test_the_signature_fails_for_another_secret_a_changed_body_or_another_id() -> None:
    secret = generate_secret()
    body = envelope_body(event())
    now = int(datetime.now(UTC).timestamp())
    headers = signature_headers(secret, "sc_0123", now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"85", b"86", 1), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "sc_other"})


def test_an_old_timestamp_is_refused_by_the_verifier() -> None:
    secret = generate_secret()
    body = envelope_body(event())
    stale = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp())
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, signature_headers(secret, "sc_0123", stale, body))


def test_generated_secrets_are_whsec_base64_of_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert (
        WebhookCreate(url="https://example.com/hook", secret=first).secret == first
    )  # the API accepts it


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"x" * 8).decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
    ],
    ids=["no-prefix", "not-base64", "too-short", "too-long"],
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(WebhookSecretError):
        secret_key(secret)


def test_the_envelope_carries_the_event_whole_and_its_time() -> None:
    scored = event()
    body = orjson.loads(envelope_body(scored))
    assert set(body) == {"type", "timestamp", "data"}
    assert WebhookEnvelope.model_validate(body).data == scored
    assert body["timestamp"] == body["data"]["scored_at"]


def test_delivery_ids_are_stable_and_differ_per_subscription() -> None:
    assert delivery_id("wh_a", "sc_1") == delivery_id("wh_a", "sc_1")
    assert (
        len({delivery_id("wh_a", "sc_1"), delivery_id("wh_b", "sc_1"), delivery_id("wh_a", "sc_2")})
        == 3
    )


# --- filters ---------------------------------------------------------------------------------------


def test_no_filter_passes_everything() -> None:
    assert passes(WebhookFilters(), event(score=0, previous=0, grade="D", previous_grade="D"))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (WebhookFilters(min_score=85), True),
        (WebhookFilters(min_score=86), False),
        (WebhookFilters(grade_change_only=True), True),
        (WebhookFilters(lead_ids=frozenset({"lead-1", "lead-2"})), True),
        (WebhookFilters(lead_ids=frozenset({"lead-2"})), False),
        (
            WebhookFilters(min_score=80, grade_change_only=True, lead_ids=frozenset({"lead-1"})),
            True,
        ),
        (
            WebhookFilters(min_score=90, grade_change_only=True, lead_ids=frozenset({"lead-1"})),
            False,
        ),
    ],
)
def test_an_event_passes_when_every_given_filter_passes(
    filters: WebhookFilters, expected: bool
) -> None:
    assert passes(filters, event(score=85, grade="A", previous_grade="B")) is expected


def test_grade_change_only_drops_same_grade_and_keeps_a_first_score() -> None:
    only_changes = WebhookFilters(grade_change_only=True)
    assert not passes(only_changes, event(score=88, previous=85, grade="A", previous_grade="A"))
    assert passes(only_changes, event(previous=None, previous_grade=None))


def test_filters_refuse_an_empty_lead_set_and_scores_out_of_range() -> None:
    with pytest.raises(ValueError):
        WebhookFilters(lead_ids=frozenset())
    with pytest.raises(ValueError):
        WebhookFilters(min_score=101)


# --- retries ---------------------------------------------------------------------------------------


def test_the_default_schedule_starts_at_the_first_retry_and_ends_at_the_horizon() -> None:
    settings = Settings()
    delays = retry_delays(settings.webhook_max_attempts, settings.webhook_first_retry_s,
                          settings.webhook_retry_horizon_s)  # fmt: skip
    assert len(delays) == settings.webhook_max_attempts - 1
    assert delays[0] == pytest.approx(settings.webhook_first_retry_s)
    assert sum(delays) == pytest.approx(settings.webhook_retry_horizon_s, rel=1e-9)
    ratios = {round(b / a, 9) for a, b in zip(delays, delays[1:])}
    assert len(ratios) == 1 and ratios.pop() > 1  # exponential: one common ratio


@pytest.mark.parametrize(
    ("attempts", "first", "horizon"), [(2, 1.0, 30.0), (6, 0.1, 4.0), (50, 5.0, 86_400.0)]
)
def test_schedules_add_up_to_the_horizon(attempts: int, first: float, horizon: float) -> None:
    delays = retry_delays(attempts, first, horizon)
    assert len(delays) == attempts - 1
    assert sum(delays) == pytest.approx(horizon, rel=1e-9)
    assert delays == sorted(delays)


def test_a_first_retry_too_long_for_the_horizon_gives_equal_delays() -> None:
    assert retry_delays(5, 10.0, 8.0) == [2.0, 2.0, 2.0, 2.0]


def test_jitter_shortens_by_at_most_its_fraction_so_the_horizon_holds() -> None:
    rng = random.Random(7)
    samples = [jittered(10.0, rng) for _ in range(2000)]
    assert min(samples) >= 10.0 * (1 - JITTER) and max(samples) <= 10.0
    assert max(samples) - min(samples) > 10.0 * JITTER * 0.9  # actually spread


def test_next_attempt_delay_runs_out_after_the_last_attempt() -> None:
    delays = retry_delays(3, 1.0, 3.0)  # two retries
    rng = random.Random(0)
    assert next_attempt_delay(1, delays, rng) is not None
    assert next_attempt_delay(2, delays, rng) is not None
    assert next_attempt_delay(3, delays, rng) is None
    assert next_attempt_delay(1, retry_delays(1, 1.0, 3.0), rng) is None  # one attempt, no retry


# --- receiver URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "https:///nohost",
        "https://user:pw@example.com/",
        "https://example.com/#frag",
        "https://example.com:99999/",
        "example.com/hook",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookUrlError):
        parse_target(url)


def test_a_target_keeps_host_port_and_path_and_pins_an_address() -> None:
    target = parse_target("https://Hooks.Example.com./in/leadscore?tenant=7")
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert target.host_header == "hooks.example.com"
    assert (
        target.pinned_url(ipaddress.ip_address("93.184.215.14"))
        == "https://93.184.215.14:443/in/leadscore?tenant=7"
    )
    local = parse_target("http://[::1]:8080")
    assert local.host_header == "[::1]:8080"
    assert local.pinned_url(ipaddress.ip_address("::1")) == "http://[::1]:8080/"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused_by_default(address: str) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    ("address", "form"),
    [
        ("::ffff:127.0.0.1", "IPv4-mapped address of 127.0.0.1"),
        ("::ffff:169.254.169.254", "IPv4-mapped address of 169.254.169.254"),
        ("64:ff9b::7f00:1", "NAT64 address of 127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "NAT64 address of 169.254.169.254"),
        ("64:ff9b:1::a00:1", "NAT64 address of 10.0.0.1"),
        ("2002:7f00:1::", "6to4 address of 127.0.0.1"),
        ("2002:c0a8:101::1", "6to4 address of 192.168.1.1"),
        ("2001:0:7f00:1::ffff:fffe", "Teredo address of 127.0.0.1"),  # server 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo address of 10.0.0.1"),  # client
        ("::127.0.0.1", "IPv4-compatible"),
        ("::8.8.8.8", "IPv4-compatible"),
    ],
)
def test_ipv6_forms_that_carry_an_ipv4_address_are_judged_by_it(address: str, form: str) -> None:
    reason = AddressPolicy().refusal(ipaddress.ip_address(address))
    assert reason is not None and form in reason
    # ... also as a URL literal
    with pytest.raises(WebhookUrlError, match="may not go to"):
        target = parse_target(f"http://[{address}]:8080/hook")
        check_addresses(target, [ipaddress.ip_address(target.host)], AddressPolicy())


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 of a public address: how IPv6-only hosts reach IPv4
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None


def test_allowed_networks_and_allow_private_open_exactly_what_they_say() -> None:
    loopback_only = AddressPolicy(allowed_networks=parse_networks("127.0.0.0/8,::1"))
    assert loopback_only.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert loopback_only.refusal(ipaddress.ip_address("::1")) is None
    assert loopback_only.refusal(ipaddress.ip_address("10.0.0.1")) is not None
    assert AddressPolicy(allow_private=True).refusal(ipaddress.ip_address("10.0.0.1")) is None
    # An allowed IPv4 network covers the IPv6 forms that carry its addresses.
    assert loopback_only.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert loopback_only.refusal(ipaddress.ip_address("64:ff9b::7f00:1")) is None
    assert loopback_only.refusal(ipaddress.ip_address("64:ff9b::a00:1")) is not None


def test_a_name_with_any_refused_address_is_refused_and_the_message_says_how_to_allow_it() -> None:
    target = parse_target("https://mixed.example.com/hook")
    addresses = [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.5")]
    with pytest.raises(
        WebhookUrlError,
        match=r"mixed\.example\.com \(10\.0\.0\.5\).*private.*LEADSCORE_WEBHOOK_ALLOW_PRIVATE",
    ):
        check_addresses(target, addresses, AddressPolicy())
    assert check_addresses(target, addresses[:1], AddressPolicy()) == addresses[0]


def test_settings_refuse_a_malformed_allowed_network() -> None:
    with pytest.raises(ValueError, match="LEADSCORE_WEBHOOK_ALLOWED_NETWORKS"):
        Settings(webhook_allowed_networks="127.0.0.0/8,not-a-network")
    assert parse_networks(Settings(webhook_allowed_networks="127.0.0.0/8").webhook_allowed_networks)
