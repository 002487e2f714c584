"""Data keys against the real Redis (and broker): states and activity sealed at rest,
rotation by reseal (also while values change, and through the CLI), dead letters that open
while their day's key lives and not after it expires or its lead is erased; a lead's dead
webhooks found by erasure after the delivery log expired."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from worker_harness import send_records, worker_env, worker_settings

from leadscore.infra.kafka.client import ensure_topics
from leadscore.infra.privacy.crypto import (
    DATA_KEYS_FILE,
    Keyring,
    KeyringError,
    key_id_of,
    read_key_file,
)
from leadscore.infra.privacy.dead_letters import (
    DAYS_INDEX,
    DeadLetterKeys,
    forget_dead_letter_keys,
    ref_of,
)
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.reseal import (
    _KINDS,
    ATTEMPTS,
    ResealReport,
    _Kind,
    _Resealer,
    reseal,
)
from leadscore.infra.redis_store import ScoreStore
from leadscore.infra.webhooks.forget import forget_leads
from leadscore.infra.webhooks.queue import erased_deliveries
from leadscore.infra.webhooks.store import WebhookStore
from leadscore.schemas.privacy import LeadErased
from leadscore.schemas.scores import DeadLetter
from leadscore.schemas.webhooks import WebhookSubscription

K1 = ("k1", b"\x01" * 32)
K2 = ("k2", b"\x02" * 32)
DAY_S = 86_400.0
# 2026-12-08 12:00 UTC and the day after
NOON = datetime(2026, 12, 8, 12, tzinfo=UTC).timestamp()


def _letter(key: bytes | None, value: bytes, offset: int = 7) -> DeadLetter:
    return DeadLetter(
        reason_code="json", reason=f"not JSON: {value[:12]!r}", topic="t", partition=0,
        offset=offset, key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value).decode(), received_at=datetime.now(UTC),
    )  # fmt: skip


async def test_states_and_activity_are_sealed_and_a_reseal_moves_them_to_the_new_key(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    state = orjson.dumps({"profile": {"title_level": "vp"}, "counts": {"lead.page_viewed": 3}})
    entries = [orjson.dumps({"id": f"e{i}", "data": {"url": f"/p{i}"}}) for i in range(3)]
    old = ScoreStore(redis_client, name_prefix, keyring=Keyring([K1]))
    await old.write_batch([], [], {}, {"jane": state}, {"jane": entries})
    raw = await redis_client.get(f"{name_prefix}state:jane")
    assert key_id_of(raw) == "k1" and b"title_level" not in raw
    assert await old.state("jane") == orjson.loads(state)
    assert await old.states_many(["jane", "nobody"]) == [orjson.loads(state), None]
    # a value written before encryption (plain JSON) is read as it is, and resealed too
    await redis_client.lpush(f"{name_prefix}activity:jane", b'{"id": "e-plain"}')
    # a dead-letter key sealed with k1, with its expiry
    letters = DeadLetterKeys(redis_client, name_prefix, 3600, keyring=Keyring([K1]))
    (closed,) = await letters.seal([("p_1", _letter(b"jane", b"{oops"))])
    assert closed.sealed is not None
    assert key_id_of(await redis_client.get(name_prefix + closed.sealed)) == "k1"

    rotated = Keyring([K2, K1])
    new = ScoreStore(redis_client, name_prefix, keyring=rotated)
    assert await new.state("jane") == orjson.loads(state), "the old key still opens"
    report = await reseal(redis_client, name_prefix, rotated)
    assert report.resealed == {"k1": 5, "plain": 1}, report
    assert not report.old_keys_left and not report.changed_meanwhile and report.current == 0
    assert key_id_of(await redis_client.get(f"{name_prefix}state:jane")) == "k2"
    assert 3500 < await redis_client.ttl(name_prefix + closed.sealed) <= 3600, "expiry kept"

    only_k2 = Keyring([K2])
    assert await ScoreStore(redis_client, name_prefix, keyring=only_k2).state("jane") == (
        orjson.loads(state)
    ), "k1 can go"
    activity = await ScoreStore(redis_client, name_prefix, keyring=only_k2).activity("jane")
    assert [e["id"] for e in activity] == ["e-plain", "e2", "e1", "e0"]
    (opened,) = await DeadLetterKeys(redis_client, name_prefix, 3600, keyring=only_k2).open(
        [closed]
    )
    assert opened is not None and opened.reason == "not JSON: b'{oops'"
    again = await reseal(redis_client, name_prefix, only_k2)
    assert again.resealed == {} and again.current == 6 and not again.old_keys_left


async def test_a_reseal_never_overwrites_what_a_worker_wrote_meanwhile(
    redis_url: str, redis_client: aioredis.Redis, name_prefix: str
) -> None:
    k1, k2 = Keyring([K1]), Keyring([K2, K1])
    state_key, list_key = f"{name_prefix}state:ann", f"{name_prefix}activity:ann"
    await redis_client.set(state_key, k1.seal(b'{"v": 1}', b"ann"))
    first = k1.seal(b'{"id": "a"}', b"ann")
    await redis_client.rpush(list_key, first)
    worker = redis.Redis.from_url(redis_url)  # a worker still on k1, between read and write

    class Raced(_Resealer):
        def _again(self, kind: _Kind, key: str, value: bytes) -> bytes:
            if key == state_key:
                worker.set(key, k1.seal(b'{"v": 2}', b"ann"))
            elif value == first:  # once per read of the list
                worker.lpush(key, k1.seal(b'{"id": "b"}', b"ann"))
            return super()._again(kind, key, value)

    report = ResealReport(current_key="k2")
    raced = Raced(redis_client, name_prefix, k2, report)
    try:
        await raced.page(_KINDS[0], [state_key])
        await raced.page(_KINDS[1], [list_key])
    finally:
        worker.close()
    # every compare-and-set found the value changed since it was read: nothing overwritten
    assert report.changed_meanwhile == 2 and report.resealed == {}, report
    assert orjson.loads(k1.open(await redis_client.get(state_key), b"ann")) == {"v": 2}
    assert await redis_client.llen(list_key) == 1 + ATTEMPTS
    # once the writer is on the new key (or stops), a reseal finishes the job
    final = await reseal(redis_client, name_prefix, k2)
    assert final.resealed == {"k1": 2 + ATTEMPTS} and not final.old_keys_left


async def test_a_dead_letter_opens_while_its_day_key_lives_and_never_after(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    now = [NOON]
    keyring = Keyring([K1])
    refs = LeadRefs(b"s" * 32)
    keys = DeadLetterKeys(
        redis_client, name_prefix, 7 * DAY_S, keyring=keyring, refs=refs, clock=lambda: now[0]
    )
    jane = refs.table("jane@example.com")
    raw = b'{"subject": "jane@example.com", "oops'
    monday = await keys.seal_batch(
        [_letter(b"jane@example.com", raw), _letter(None, b"\xff\xfe", 8)]
    )
    assert [letter.sealed for letter in monday] == [
        f"dlkey:2026-12-08:{jane}",
        "dlkey:2026-12-08:-",
    ]
    assert [ref_of(letter) for letter in monday] == [jane, None]
    assert b"jane" not in b"".join(m.model_dump_json().encode() for m in monday)
    assert monday[0].reason_code == "json" and "oops" not in monday[0].reason
    name = f"{name_prefix}dlkey:2026-12-08:{jane}"
    assert 0 < await redis_client.ttl(name) <= 7 * DAY_S
    stored = await redis_client.get(name)
    assert key_id_of(stored) == "k1", "the key is itself sealed with the data key"
    opened = await keys.open(monday)
    assert opened[0] is not None and base64.b64decode(opened[0].value_b64 or "") == raw
    assert opened[0].reason.startswith("not JSON") and opened[1] is not None
    assert opened[1].key_b64 is None and base64.b64decode(opened[1].value_b64 or "") == b"\xff\xfe"
    # Without the data keys, Redis alone opens nothing.
    with pytest.raises(KeyringError, match="data key 'k1'"):
        await DeadLetterKeys(redis_client, name_prefix, 7 * DAY_S).open(monday)

    # The next day has its own key; erasure deletes the lead's keys of every day.
    now[0] += DAY_S
    tuesday = await keys.seal_batch([_letter(b"jane@example.com", raw, 9)])
    assert tuesday[0].sealed == f"dlkey:2026-12-09:{jane}"
    other = await keys.seal([("p_other", _letter(b"bob", b"{", 10))])
    assert await forget_dead_letter_keys(redis_client, name_prefix, jane) == {jane: 2}
    after = await keys.open([*monday, *tuesday, *other])
    assert [letter is not None for letter in after] == [False, True, False, True]
    # Expiry does the same: a letter whose day key expired does not open...
    await redis_client.pexpire(f"{name_prefix}dlkey:2026-12-08:-", 50)
    await asyncio.sleep(0.2)
    assert await keys.open([monday[1]]) == [None]
    # ... even once a later letter of that day made a new key under the same name.
    now[0] -= DAY_S
    again = await keys.seal_batch([_letter(None, b"x", 11)])
    assert again[0].sealed == "dlkey:2026-12-08:-" and (await keys.open(again))[0] is not None
    assert await keys.open([monday[1]]) == [None]
    days = await redis_client.zrange(f"{name_prefix}{DAYS_INDEX}", 0, -1)
    assert days == [b"2026-12-08", b"2026-12-09"]


async def test_dead_letters_sealed_before_keys_were_per_day_still_open_and_are_erased(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = b"\x07" * 32
    await redis_client.set(f"{name_prefix}dlkey:p_old", key, ex=600)
    nonce = b"\x00" * 12
    value = base64.b64encode(nonce + AESGCM(key).encrypt(nonce, b"{bad", b"p_old")).decode()
    reason = base64.b64encode(nonce + AESGCM(key).encrypt(nonce, b"why", b"p_old")).decode()
    legacy = _letter(None, b"").model_copy(
        update={"value_b64": value, "reason": reason, "sealed": "dlkey:p_old"}
    )
    keys = DeadLetterKeys(redis_client, name_prefix, 600, keyring=Keyring([K1]))
    (opened,) = await keys.open([legacy])
    assert opened is not None and base64.b64decode(opened.value_b64 or "") == b"{bad"
    assert opened.reason == "why"
    assert await forget_dead_letter_keys(redis_client, name_prefix, "p_old", "p_x") == {
        "p_old": 1,
        "p_x": 0,
    }
    assert await keys.open([legacy]) == [None]


async def test_the_dead_letters_command_reads_the_topic_and_opens_what_it_can(
    kafka_bootstrap: str, redis_url: str, redis_client: aioredis.Redis, name_prefix: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings = worker_settings(
        name_prefix, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_dir=tmp_path
    )
    await ensure_topics(settings)
    keys = DeadLetterKeys(
        redis_client,
        settings.redis_prefix,
        settings.dead_letter_retention_days * DAY_S,
        keyring=Keyring.from_settings(settings),
        refs=LeadRefs.from_settings(settings),
    )
    sealed = await keys.seal_batch(
        [_letter(b"jane@example.com", b'{"jane": 1', 1), _letter(b"bob@example.com", b"{bob", 2)]
    )
    await send_records(
        kafka_bootstrap,
        [
            (settings.dead_letter_topic, (ref_of(s) or "").encode(), s.model_dump_json().encode())
            for s in sealed
        ],
    )
    bob = ref_of(sealed[1])
    assert bob is not None
    await forget_dead_letter_keys(redis_client, settings.redis_prefix, bob)  # bob is erased

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "leadscore", "dead-letters", *args],
            env=worker_env(settings), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    as_json = await asyncio.to_thread(run, "--json")
    assert as_json.returncode == 0, as_json.stderr
    rows = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["offset"], r["record"], r["key"]) for r in rows] == [
        (1, '{"jane": 1', "jane@example.com"),
        (2, None, None),
    ]
    assert rows[0]["reason"].startswith("not JSON") and rows[1]["reason"] is None
    assert "expired or erased" in rows[1]["note"] and "1 opened, 1 expired or erased" in (
        as_json.stderr
    )
    text = await asyncio.to_thread(run, "--limit", "1")
    assert text.returncode == 0, text.stderr
    assert "expired or erased" in text.stdout and "jane" not in text.stdout
    later = await asyncio.to_thread(run, "--since", "2999-01-01")
    assert later.returncode == 0 and later.stdout == "", later.stderr


async def test_rotation_through_the_commands(
    redis_url: str, redis_client: aioredis.Redis, name_prefix: str, tmp_path: Path
) -> None:
    settings = worker_settings(
        name_prefix, kafka_bootstrap="127.0.0.1:1", redis_url=redis_url, model_dir=tmp_path,
        keys_dir=tmp_path / "keys", data_keys=None,
    )  # fmt: skip
    first = Keyring.from_settings(settings)  # makes keys/data.keys with one key
    store = ScoreStore(redis_client, name_prefix, keyring=first)
    await store.write_batch([], [], {}, {"ann": b'{"a": 1}', "bo": b'{"b": 2}'}, {})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "leadscore", "data-keys", *args],
            env=worker_env(settings), capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    new = await asyncio.to_thread(cli, "new")
    assert new.returncode == 0, new.stderr
    path = tmp_path / "keys" / DATA_KEYS_FILE
    ids = [kid for kid, _ in read_key_file(path)]
    assert ids[1] == first.current_id and f"data key {ids[0]} is now current" in new.stdout
    done = await asyncio.to_thread(cli, "reseal")
    assert done.returncode == 0, done.stderr
    assert f"resealed 2 values with data key {ids[0]} (they were under {ids[1]}: 2)" in (
        done.stdout
    )
    assert f"no value in Redis uses another key than {ids[0]}" in done.stdout
    # the old key can go
    path.write_text(path.read_text().splitlines()[0] + "\n")
    only_new = ScoreStore(redis_client, name_prefix, keyring=Keyring.from_settings(settings))
    assert await only_new.states_many(["ann", "bo"]) == [{"a": 1}, {"b": 2}]


async def test_erasing_a_lead_finds_its_dead_webhooks_after_the_log_has_expired(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    """Dead deliveries are kept for replay; the lead's index of them must outlive the log."""
    store = WebhookStore(redis_client, name_prefix, log_ttl_s=60.0)
    now = datetime.now(UTC)
    sub = WebhookSubscription(
        id="wh_1", url="https://example.com/hook", secret="s" * 32, created_at=now, updated_at=now
    )
    await store.save_subscription(sub)
    (queued,) = erased_deliveries(
        LeadErased(id="le_1", lead_id="jane", erasure_id="er_1", erased_at=now), [sub], now
    )  # any delivery will do
    await store.enqueue([queued])
    index = store.lead_index_key("wh_1", "jane")
    await redis_client.pexpire(index, 50)  # as if the log's TTL were almost over
    dead = queued.record.model_copy(update={"status": "dead"})
    assert await store.finish("wh_1", "jane", dead)
    await asyncio.sleep(0.1)
    assert await redis_client.ttl(index) == -1, "a dead delivery's index does not expire"
    assert await forget_leads(store, ["jane"]) == 1
    assert await redis_client.get(store.record_key("wh_1", queued.record.id)) is None
    assert not await redis_client.zrange(store.dead_key("wh_1"), 0, -1)
