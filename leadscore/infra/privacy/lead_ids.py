"""The way back from pseudonyms to lead ids, kept only in Redis, and the erasure receipts.

Keys (``P`` is the configured prefix; ``X`` a pseudonym, ``E`` an erasure id):

- ``P ids``          hash: X -> lead id. The worker writes a lead's entry before it
  publishes anything about the lead; consumers of leadscore's topics (webhooks, the
  WebSocket feed, the demo view) read it to show the lead id. Erasure deletes the entry,
  and with it the only link from what is on the topics back to the person.
- ``P erasing``      hash: X -> E while the erasure's ``lead.erased`` is on its way to the
  webhook receivers (the entry in ``P ids`` goes when it has been queued).
- ``P seen``         sorted set: X -> the lead's last event time (epoch s), for retention.
- ``P erasure:E``    hash: the receipt (``receipt`` JSON, counters ``erased``,
  ``notified``, ``removed:<kind>``, ``completed_at``). No lead ids.
- ``P erasures``     sorted set: E -> requested at (ms), newest last.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from leadscore.infra.privacy.keys import LeadRefs
from leadscore.schemas.privacy import ErasureReceipt, is_erased_event

#: The worker erased a lead: it leaves the retention index, it is being erased by E (until
#: its lead.erased is queued for webhooks), and the receipt counts it once. KEYS: erasing,
#: receipt, the receipt's set of erased pseudonyms, the retention index. ARGV: pseudonym,
#: erasure id, then (kind, count) pairs removed elsewhere.
_ERASED = """
local indexed = redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('HEXISTS', KEYS[2], 'completed_at') == 0
    and redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[3], redis.call('PTTL', KEYS[2]))
  redis.call('HINCRBY', KEYS[2], 'erased', 1)
  if indexed == 1 then redis.call('HINCRBY', KEYS[2], 'removed:retention_index', 1) end
  for i = 3, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[2], 'removed:' .. ARGV[i], ARGV[i + 1])
  end
end
return 1
"""

#: A lead's lead.erased is queued for webhooks: its entry in ``P ids`` goes, unless the lead
#: came back with new events since (then the entry is theirs). The receipt counts the lead
#: once and is complete when every lead is. KEYS: ids, erasing, receipt, the receipt's set
#: of notified pseudonyms, its set of erased ones. ARGV: pseudonym, erasure id, now (ISO).
_FINISH = """
local mine = redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2]
if mine then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
if redis.call('EXISTS', KEYS[3]) == 1 and redis.call('HEXISTS', KEYS[3], 'completed_at') == 0
    and redis.call('SADD', KEYS[4], ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[4], redis.call('PTTL', KEYS[3]))
  local n = redis.call('HINCRBY', KEYS[3], 'notified', 1)
  if n >= tonumber(redis.call('HGET', KEYS[3], 'leads') or '0') then
    redis.call('HSET', KEYS[3], 'completed_at', ARGV[3])
    redis.call('DEL', KEYS[4], KEYS[5])
  end
end
return mine and 1 or 0
"""


class LeadIds:
    """Pseudonym <-> lead id in Redis, and the erasure receipts.

    Args:
        client: an asyncio Redis client.
        prefix: the key prefix.
        plain_topics: the topics carry plain lead ids (then :meth:`resolve` is the identity).
        refs: the deployment's pseudonyms (needed with plain topics, to find a lead's
            entries from its id).
        cache_size: pseudonyms resolved and kept in this process (0: none).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "leadscore:",
        *,
        plain_topics: bool = False,
        cache_size: int = 0,
        refs: LeadRefs | None = None,
    ) -> None:
        self.client = client
        self.refs = refs
        self.prefix = prefix
        self.plain_topics = plain_topics
        self.ids_key = f"{prefix}ids"
        self.erasing_key = f"{prefix}erasing"
        self.seen_key = f"{prefix}seen"
        self.erasures_key = f"{prefix}erasures"
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._finish: Any = None
        self._erased: Any = None

    def table_ref(self, topic_ref: str) -> str:
        """The pseudonym of the lead a topic record names (its key or ``lead_id``)."""
        if not self.plain_topics:
            return topic_ref
        if self.refs is None:
            raise RuntimeError("LeadIds needs the deployment's LeadRefs when topics are plain")
        return self.refs.table(topic_ref)

    def receipt_key(self, erasure_id: str) -> str:
        return f"{self.prefix}erasure:{erasure_id}"

    # --- the map ------------------------------------------------------------------------

    def remember(self, pipe: Any, mapping: Mapping[str, str]) -> None:
        """Queue on ``pipe``: these pseudonyms stand for these lead ids (and are not being erased)."""
        if mapping:
            pipe.hset(self.ids_key, mapping=dict(mapping))
            pipe.hdel(self.erasing_key, *mapping)

    async def lead_ids(self, pseudonyms: Iterable[str]) -> dict[str, str]:
        """Pseudonym -> lead id for those Redis knows (erased and unknown ones are left out)."""
        wanted = list(dict.fromkeys(pseudonyms))
        if not wanted:
            return {}
        rows = await self.client.hmget(self.ids_key, wanted)
        return {p: _text(row) for p, row in zip(wanted, rows) if row is not None}

    async def resolve(self, refs: Iterable[str]) -> dict[str, str]:
        """What each lead reference read from a topic stands for (see :class:`LeadIds`).

        Plain topics: the identity. Pseudonyms this process resolved before come from its
        cache; the others from one HMGET. A pseudonym Redis does not know is left out: the
        lead was erased (or the Redis data was lost).
        """
        refs = list(dict.fromkeys(refs))
        if self.plain_topics:
            return {ref: ref for ref in refs}
        found: dict[str, str] = {}
        missing = []
        for ref in refs:
            hit = self._cache.get(ref)
            if hit is None:
                missing.append(ref)
            else:
                found[ref] = hit
                self._cache.move_to_end(ref)
        if missing:
            fetched = await self.lead_ids(missing)
            found.update(fetched)
            if self._cache_size:
                self._cache.update(fetched)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return found

    def forget_cached(self, ref: str) -> str | None:
        """Drop ``ref`` from this process's cache; the lead id it stood for, if cached."""
        return self._cache.pop(ref, None)

    async def resolve_events(
        self, events: list[dict[str, Any] | None]
    ) -> list[dict[str, Any] | None]:
        """The events with ``lead_id`` turned back into the lead id; ``None`` where it cannot be
        (the lead was erased). A ``lead.erased`` event whose pseudonym is no longer known keeps
        its pseudonym (the receiver may know it; it holds no personal data)."""
        refs = [e["lead_id"] for e in events if e is not None]
        found = await self.resolve(refs)
        out: list[dict[str, Any] | None] = []
        for event in events:
            if event is None:
                out.append(None)
                continue
            lead_id = found.get(event["lead_id"])
            if is_erased_event(event):  # its last use: out of the cache, whatever it says
                lead_id = self.forget_cached(event["lead_id"]) or lead_id or event["lead_id"]
            if lead_id is None:
                out.append(None)
            else:
                out.append(event if lead_id == event["lead_id"] else {**event, "lead_id": lead_id})
        return out

    async def erased_many(self, leads: Sequence[tuple[str, str, Mapping[str, int]]]) -> None:
        """The worker has erased these leads: (pseudonym, erasure id, what was removed);
        one round trip (see :data:`_ERASED`)."""
        if self._erased is None:
            self._erased = self.client.register_script(_ERASED)
        pipe = self.client.pipeline(transaction=False)
        for pseudonym, erasure_id, removed in leads:
            receipt = self.receipt_key(erasure_id)
            args: list[Any] = [pseudonym, erasure_id]
            for kind, count in removed.items():
                args += (kind, int(count))
            await self._erased(
                keys=[self.erasing_key, receipt, f"{receipt}:erased", self.seen_key],
                args=args,
                client=pipe,
            )
        await pipe.execute()

    async def finish_many(self, leads: Sequence[tuple[str, str]]) -> None:
        """Each (pseudonym, erasure id)'s ``lead.erased`` is queued for webhooks: drop its
        entry in ``P ids`` (unless it came back since), count it on the receipt (one round
        trip; see :data:`_FINISH`)."""
        if not leads:
            return
        if self._finish is None:
            self._finish = self.client.register_script(_FINISH)
        now = datetime.now(UTC).isoformat()
        pipe = self.client.pipeline(transaction=False)
        for pseudonym, erasure_id in leads:
            receipt = self.receipt_key(erasure_id)
            await self._finish(
                keys=[
                    self.ids_key,
                    self.erasing_key,
                    receipt,
                    f"{receipt}:notified",
                    f"{receipt}:erased",
                ],
                args=[pseudonym, erasure_id, now],
                client=pipe,
            )
            self.forget_cached(pseudonym)
        await pipe.execute()

    # --- receipts -----------------------------------------------------------------------

    async def open_receipt(self, receipt: ErasureReceipt, ttl_s: int) -> None:
        key = self.receipt_key(receipt.id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={"receipt": receipt.model_dump_json(), "leads": receipt.leads})
        pipe.expire(key, ttl_s)
        pipe.zadd(self.erasures_key, {receipt.id: int(receipt.requested_at.timestamp() * 1000)})
        await pipe.execute()

    async def receipt(self, erasure_id: str) -> ErasureReceipt | None:
        raw = cast(dict[bytes, bytes], await self.client.hgetall(self.receipt_key(erasure_id)))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        base = orjson.loads(fields.pop("receipt"))
        removed = {
            name.removeprefix("removed:"): int(value)
            for name, value in fields.items()
            if name.startswith("removed:")
        }
        completed = fields.get("completed_at")
        return ErasureReceipt.model_validate(
            {
                **base,
                "erased": int(fields.get("erased", 0)),
                "notified": int(fields.get("notified", 0)),
                "removed": removed,
                "completed_at": completed,
                "status": "done" if completed else base["status"],
            }
        )

    async def recent_receipts(self, limit: int = 50) -> list[str]:
        rows = await self.client.zrevrange(self.erasures_key, 0, limit - 1)
        return [_text(row) for row in rows]


def decode_score(raw: bytes | None) -> dict[str, Any] | None:
    """A score record's value as a dict, or ``None`` if it is not a score event.

    Only what the feed relies on is checked (a JSON object with a string ``lead_id``):
    the worker validated the event against ``LeadScored`` when it published it.

    Examples:
        >>> decode_score(b'{"lead_id": "l1", "score": 71}')
        {'lead_id': 'l1', 'score': 71}
        >>> decode_score(b'not json') is None, decode_score(b'[1]') is None
        (True, True)
    """
    if raw is None:
        return None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("lead_id"), str):
        return None
    return event


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
