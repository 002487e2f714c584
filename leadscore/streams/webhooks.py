"""Webhooks in the worker: queue score events per subscription in Redis, deliver them signed.

Two loops, joined only by Redis (:mod:`leadscore.infra.webhook_store`):

1. **Queueing** (an agent on ``leads.scores.v1``): each micro-batch of score events is
   matched against the subscriptions and every match is appended, in one round trip, to the
   FIFO of its (subscription, lead). Only then does the agent return, and Faust commits the
   batch's offsets: a crash before that reads the batch again, and queuing is idempotent
   (delivery ids are derived from the subscription and the event id). The agent never
   waits on a receiver.
2. **Delivery** (a task): claims due (subscription, lead) pairs with a lease, POSTs the head
   of each queue with httpx, and on a 2xx moves on to the pair's next delivery. A failure
   schedules the pair's retry (exponential backoff with jitter, sized to the retry
   horizon) and leaves its later deliveries waiting behind it; other pairs carry on. After
   the last attempt the delivery is published on ``webhooks.dead-letter.v1``, kept in Redis
   as ``dead`` (replayable through the API), and the pair's next delivery goes.

Guarantee: at least once per (subscription, score event), in order per (subscription,
lead). A delivery can repeat (a worker dies after the receiver answered, before Redis
heard of it; a replay), never with another ``webhook-id``: receivers drop repeats by it.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import faust
import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import ValidationError
from redis.exceptions import RedisError

from leadscore.infra.webhook_store import QueuedDelivery, WebhookStore, connect
from leadscore.models.webhooks import (
    AddressPolicy,
    IPAddress,
    Target,
    WebhookUrlError,
    check_addresses,
    delivery_id,
    envelope_body,
    literal_address,
    next_attempt_delay,
    parse_networks,
    parse_target,
    passes,
    retry_delays,
    retry_delays_summary,
    sample_event,
    signature_headers,
)
from leadscore.schemas.scores import DeadLetter, LeadScored
from leadscore.schemas.webhooks import (
    DeliveryAttempt,
    DeliveryRecord,
    WebhookDeadLettered,
    WebhookSubscription,
    WebhookTestResult,
)
from leadscore.settings import Settings
from leadscore.streams.kafka import client_options

log = logging.getLogger(__name__)

#: Sends one record: (topic, key, value) -> acknowledged. The worker passes Faust's producer.
SendRecord = Callable[[str, bytes, bytes], Awaitable[Any]]

USER_AGENT = "leadscore-webhooks/1"
#: How often an idle delivery loop looks for due deliveries queued by other workers or
#: coming due after a backoff (queuing in this worker wakes it at once).
POLL_S = 0.25
#: A paused (disabled) subscription's pairs are looked at again after this long.
PAUSED_RECHECK_S = 10.0
#: A dead letter that could not be published is tried again after this long.
DEAD_LETTER_RETRY_S = 10.0
#: Attempts kept in a delivery's record (older ones are dropped; the count goes on).
MAX_KEPT_ATTEMPTS = 100
#: Response bytes read (and the first ones quoted in an error); the rest is not read.
_MAX_RESPONSE_BYTES = 65_536
_ERROR_EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are sent and retried, from the ``webhook_*`` settings."""

    max_attempts: int
    delays: tuple[float, ...]
    timeout_s: float
    concurrency: int
    addresses: AddressPolicy
    dead_letter_topic: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        """The policy the settings ask for."""
        return cls(
            max_attempts=settings.webhook_max_attempts,
            delays=tuple(
                retry_delays(
                    settings.webhook_max_attempts,
                    settings.webhook_first_retry_s,
                    settings.webhook_retry_horizon_s,
                )
            ),
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency,
            addresses=address_policy(settings),
            dead_letter_topic=settings.webhook_dead_letter_topic,
        )

    @property
    def lease_s(self) -> float:
        """How long a claimed pair stays with its worker: well over one attempt (DNS + HTTP)."""
        return 2 * self.timeout_s + 30.0


def address_policy(settings: Settings) -> AddressPolicy:
    """Where webhooks may go, from ``webhook_allow_private`` and ``webhook_allowed_networks``."""
    return AddressPolicy(
        allow_private=settings.webhook_allow_private,
        allowed_networks=parse_networks(settings.webhook_allowed_networks),
    )


def http_client(
    timeout_s: float, *, connections: int = 8, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """A client for webhook requests: no redirects, no proxies from the environment.

    Redirects are not followed (a 3xx is a failed attempt): a receiver could otherwise
    send us to an address the URL check never saw. Environment proxies are ignored for
    the same reason: the request must go to the address that was checked.

    Args:
        timeout_s: per attempt.
        connections: open connections it keeps (keep-alive), over all receivers.
        verify: TLS verification, or a shared context (loading the CA store costs ~60 ms).
    """
    # httpx logs every request at INFO: at thousands of deliveries a second (or a receiver
    # down) that floods the worker's log. Every attempt is in the delivery log instead.
    logging.getLogger("httpx").setLevel(max(logging.getLogger("httpx").level, logging.WARNING))
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
        trust_env=False,
        verify=verify,
    )


class ClientSlots:
    """One small httpx client per delivery in flight, lent out and given back.

    httpcore's connection pool does work proportional to its connections times its
    waiting requests on every request, so one client shared by 32 concurrent deliveries
    spends most of its CPU there: measured to a local receiver, 244 deliveries/s through
    one client with 32 connections, 1,060/s through 32 clients of one connection each.
    A slot runs one request at a time, so its pool stays tiny. Slots are reused last in,
    first out: the one lent next is the one with the warmest keep-alive connections.

    Args:
        size: how many deliveries run at once (``webhook_concurrency``).
        timeout_s: per attempt.
    """

    #: Connections one slot keeps open (to the last few receivers it talked to).
    CONNECTIONS_PER_SLOT = 4

    def __init__(self, size: int, timeout_s: float) -> None:
        context = ssl.create_default_context()
        self._all = [
            http_client(timeout_s, connections=self.CONNECTIONS_PER_SLOT, verify=context) for _ in range(size)
        ]
        self._free = list(self._all)

    def lend(self) -> httpx.AsyncClient:
        """A free client; give it back with :meth:`give_back`.

        Raises:
            RuntimeError: more deliveries at once than slots (a bug in the caller).
        """
        if not self._free:
            raise RuntimeError(f"all {len(self._all)} webhook client slots are lent out")
        return self._free.pop()

    def give_back(self, client: httpx.AsyncClient) -> None:
        """Return a client lent by :meth:`lend`."""
        self._free.append(client)

    async def aclose(self) -> None:
        """Close every client (their connections)."""
        await asyncio.gather(*(client.aclose() for client in self._all))


# --- the receiver's address ----------------------------------------------------------------------


async def resolve(target: Target, policy: AddressPolicy, timeout_s: float) -> IPAddress:
    """The address to send to: ``target``'s host resolved now, every address checked.

    Done before every attempt, and the request then goes to that very address (the
    host name only in ``Host`` and TLS SNI), so a name that resolved to a public address
    when the subscription was made cannot later be pointed at a private one (DNS rebinding).

    Raises:
        WebhookUrlError: the name does not resolve, or to an address that is refused.
    """
    literal = literal_address(target.host)
    if literal is not None:
        return check_addresses(target, [literal], policy)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM), timeout_s
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookUrlError(f"{target.host} does not resolve ({exc})") from exc
    except TimeoutError as exc:
        raise WebhookUrlError(f"{target.host} did not resolve within {timeout_s:g} s") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # drop an IPv6 zone
        if address not in addresses:
            addresses.append(address)
    return check_addresses(target, addresses, policy)


async def check_url(url: str, policy: AddressPolicy, timeout_s: float = 5.0) -> Target:
    """Check a receiver URL as a subscription is made or changed: its form and its addresses.

    Raises:
        WebhookUrlError: the message says what is wrong and which setting allows it.
    """
    target = parse_target(url)
    await resolve(target, policy, timeout_s)
    return target


# --- one signed request ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How one HTTP attempt ended."""

    ok: bool
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None

    def as_attempt(self, number: int) -> DeliveryAttempt:
        """The attempt as the delivery log keeps it."""
        return DeliveryAttempt(
            number=number,
            started_at=self.started_at,
            duration_ms=round(self.duration_ms, 1),
            status_code=self.status_code,
            error=self.error,
        )


async def post_signed(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    webhook_id: str,
    body: bytes,
    policy: AddressPolicy,
    timeout_s: float,
) -> AttemptOutcome:
    """POST ``body`` to ``url``, signed for this moment; a 2xx is success, anything else not.

    Never raises for what the receiver or the network does: every failure comes back as
    an outcome with its reason (refused address, DNS, connection, timeout, status).
    """
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        target = parse_target(url)
        address = await resolve(target, policy, timeout_s)
        headers = signature_headers(secret, webhook_id, int(time.time()), body)
        headers |= {"host": target.host_header, "user-agent": USER_AGENT}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        # httpx's timeout bounds each phase; this bounds the whole request, so a receiver
        # that answers a byte at a time cannot hold an attempt past its lease.
        async with asyncio.timeout(timeout_s), client.stream(
            "POST", target.pinned_url(address), content=body, headers=headers, extensions=extensions
        ) as response:
            status = response.status_code
            excerpt = b""
            async for chunk in response.aiter_raw():  # read a little, so the connection is reused
                if len(excerpt) < _ERROR_EXCERPT_CHARS:
                    excerpt += chunk[: _ERROR_EXCERPT_CHARS - len(excerpt)]
                if response.num_bytes_downloaded > _MAX_RESPONSE_BYTES:
                    break
        if not 200 <= status < 300:
            said = excerpt.decode(errors="replace").strip()
            error = f"the receiver answered {status}" + (f": {said}" if said else "")
    except WebhookUrlError as exc:
        error = f"refused: {exc}"
    except (httpx.TimeoutException, TimeoutError):
        what = "no answer" if status is None else f"the answer ({status}) did not finish"
        error = f"{what} within {timeout_s:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return AttemptOutcome(
        ok=error is None,
        started_at=started_at,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        status_code=status,
        error=error,
    )


async def fire_test_event(subscription: WebhookSubscription, settings: Settings) -> WebhookTestResult:
    """Send one signed sample event to a subscription now (not queued, not retried)."""
    now = datetime.now(timezone.utc)
    webhook_id = "test_" + delivery_id(subscription.id, f"{time.time_ns()}")[4:]
    body = envelope_body(sample_event(webhook_id, now))
    async with http_client(settings.webhook_timeout_s, connections=1) as client:
        outcome = await post_signed(
            client, subscription.url, subscription.secret, webhook_id, body,
            address_policy(settings), settings.webhook_timeout_s,
        )  # fmt: skip
    return WebhookTestResult(
        webhook_id=webhook_id,
        delivered=outcome.ok,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=round(outcome.duration_ms, 1),
        payload=orjson.loads(body),
    )


# --- queuing -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """A record of the scores topic as consumed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, event: faust.EventT) -> ScoreRecord:
        """The record a Faust stream event carries."""
        message = event.message
        return cls(message.topic, message.partition, message.offset, message.key, message.value)


@dataclass(slots=True)
class QueueResult:
    """What queuing one batch did."""

    queued: int
    matched: int
    undecodable: list[tuple[ScoreRecord, str]]


class SubscriptionCache:
    """The subscriptions, read once per batch (one HGETALL) and parsed only when they change."""

    def __init__(self, store: WebhookStore) -> None:
        self.store = store
        self._parsed: dict[bytes, WebhookSubscription] = {}

    async def active(self) -> list[WebhookSubscription]:
        """The enabled subscriptions, as Redis has them now."""
        raw = await self.store.raw_subscriptions()
        parsed: dict[bytes, WebhookSubscription] = {}
        for value in raw.values():
            cached = self._parsed.get(value)
            parsed[value] = cached if cached is not None else WebhookSubscription.model_validate_json(value)
        self._parsed = parsed
        return [sub for sub in parsed.values() if sub.enabled]


def deliveries_for(
    event: LeadScored, subscriptions: Sequence[WebhookSubscription], now: datetime
) -> list[QueuedDelivery]:
    """The deliveries one score event makes: one per subscription it passes.

    A subscription gets the events scored after it was made, never older history (a new
    worker group reads the scores topic from its beginning).
    """
    out: list[QueuedDelivery] = []
    body: str | None = None
    for sub in subscriptions:
        if event.scored_at < sub.created_at or not passes(sub.filters, event):
            continue
        if body is None:
            body = envelope_body(event).decode()
        record = DeliveryRecord(
            id=delivery_id(sub.id, event.id),
            subscription_id=sub.id,
            webhook_id=event.id,
            lead_id=event.lead_id,
            status="pending",
            created_at=now,
            body=body,
            round_attempts=0,
            next_attempt_at=None,
            replays=0,
        )
        out.append(QueuedDelivery(sub.id, event.lead_id, record))
    return out


async def queue_score_events(
    records: Sequence[ScoreRecord], subscriptions: SubscriptionCache, store: WebhookStore
) -> QueueResult:
    """Queue a batch of score events for every subscription they pass, in one round trip.

    Within a (subscription, lead) the queue order is the order of ``records`` (one lead's
    events share a partition, and a batch keeps each partition's order).
    """
    subs = await subscriptions.active()
    result = QueueResult(queued=0, matched=0, undecodable=[])
    if not subs:
        return result
    now = datetime.now(timezone.utc)
    items: list[QueuedDelivery] = []
    for record in records:
        try:
            event = LeadScored.model_validate_json(record.value or b"")
        except ValidationError as exc:
            result.undecodable.append((record, f"not a LeadScored event: {exc.errors()[0]['msg']}"))
            continue
        items.extend(deliveries_for(event, subs, now))
    result.matched = len(items)
    result.queued = await store.enqueue(items)
    return result


# --- delivering ---------------------------------------------------------------------------------------


async def cancel_until_done(task: asyncio.Task[Any], retry_s: float = 1.0) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if a cancellation is lost.

    On Python 3.11, ``asyncio.wait_for`` can swallow a cancellation that arrives as its inner
    call completes (CPython gh-86296, fixed in 3.12), and redis-py wraps every command in it:
    a delivery loop cancelled during a Redis call then runs on (seen in 2 of ~55 drains).
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
    if not task.cancelled() and task.exception() is not None:
        log.debug("task %s ended with %r while being cancelled", task.get_name(), task.exception())


class WebhookDeliverer:
    """Claims due (subscription, lead) pairs and delivers the head of each; see the module doc.

    Any number of deliverers (one per worker) can share one Redis: a claimed pair is
    leased to one of them, and a lease that runs out (its worker died) frees the pair.

    Args:
        store: the webhook store.
        policy: retries, timeouts, concurrency and address rules.
        send: publishes a dead letter and returns once the broker acknowledged it.
        rng: the jitter's random source.
    """

    def __init__(
        self,
        store: WebhookStore,
        policy: DeliveryPolicy,
        send: SendRecord,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.send = send
        self.clients: ClientSlots | None = None
        self.rng = rng or random.Random()
        self.delays = list(policy.delays)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now (something was just queued)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; on the way out, hand claimed pairs back and close the clients."""
        self.clients = ClientSlots(self.policy.concurrency, self.policy.timeout_s)
        inflight: dict[asyncio.Task[None], tuple[str, str]] = {}
        waker: asyncio.Future[Any] | None = None
        redis_backoff_s = 0.2
        log.info(
            "webhook delivery: up to %d in flight, %d attempts, retries after %s",
            self.policy.concurrency, self.policy.max_attempts,
            retry_delays_summary(self.delays) or "none",
        )  # fmt: skip
        try:
            while True:
                self._wake.clear()
                free = self.policy.concurrency - len(inflight)
                try:
                    pairs = await self.store.claim(free, self.policy.lease_s) if free > 0 else []
                    redis_backoff_s = 0.2
                except RedisError as exc:  # Redis down: deliveries wait in it, nothing is lost
                    log.warning("webhook delivery cannot reach Redis (%r); retrying in %.1f s", exc, redis_backoff_s)
                    await asyncio.sleep(redis_backoff_s)
                    redis_backoff_s = min(redis_backoff_s * 2, 10.0)
                    continue
                for pair in pairs:
                    inflight[asyncio.create_task(self.deliver(*pair), name="webhook-delivery")] = pair
                waiting: set[asyncio.Future[Any]] = set(inflight)
                waker = None
                if not (pairs and len(pairs) == free):
                    # Not at capacity, so nothing more is due now: wait for a slot, new work
                    # queued here (wake) or the next poll. At capacity: for a slot only.
                    waker = asyncio.ensure_future(self._wake.wait())
                    waiting.add(waker)
                done, _ = await asyncio.wait(
                    waiting, timeout=None if waker is None else POLL_S, return_when=asyncio.FIRST_COMPLETED
                )
                if waker is not None:
                    waker.cancel()
                for task in inflight.keys() & done:
                    self._reap(task, inflight.pop(task))
        finally:
            if waker is not None:
                waker.cancel()  # else "Task was destroyed but it is pending" at exit
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)
            try:
                await asyncio.wait_for(self.store.release(list(inflight.values())), 2.0)
            except (RedisError, TimeoutError) as exc:  # the leases run out on their own
                log.warning("could not hand back %d webhook leases (%r)", len(inflight), exc)
            await self.clients.aclose()
            self.clients = None

    async def drain(self, timeout_s: float) -> None:
        """Deliver until nothing is queued (or ``timeout_s`` passed): for benchmarks and tools."""
        task = asyncio.create_task(self.run())
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and await self.store.backlog() > 0:
                await asyncio.sleep(0.05)
        finally:
            await cancel_until_done(task)

    def _reap(self, task: asyncio.Task[None], pair: tuple[str, str]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, RedisError):
            log.warning("webhook delivery of %s stopped on a Redis error (%r); retried when its "
                        "lease runs out", pair, exc)
        elif exc is not None:
            log.error("webhook delivery of %s failed; retried when its lease runs out (%.0f s)",
                      pair, self.policy.lease_s, exc_info=exc)

    async def deliver(self, subscription_id: str, lead_id: str) -> None:
        """Attempt the head delivery of one claimed pair, and settle it."""
        sub, record = await self.store.head(subscription_id, lead_id)
        if sub is None or record is None:
            return  # the subscription was deleted, or the queue emptied: cleaned up in Redis
        if not sub.enabled:
            await self.store.postpone(subscription_id, lead_id, time.time() + PAUSED_RECHECK_S)
            return
        if record.round_attempts >= self.policy.max_attempts:  # out of attempts, letter not out yet
            await self._dead_letter(sub, record)
            return
        if self.clients is None:
            raise RuntimeError("WebhookDeliverer.deliver() runs inside run(), which opens the clients")
        client = self.clients.lend()
        try:
            outcome = await post_signed(
                client, sub.url, sub.secret, record.webhook_id, record.body.encode(),
                self.policy.addresses, self.policy.timeout_s,
            )  # fmt: skip
        finally:
            self.clients.give_back(client)
        number = (record.attempts[-1].number if record.attempts else 0) + 1
        record = record.model_copy(
            update={
                "attempts": [*record.attempts[-(MAX_KEPT_ATTEMPTS - 1) :], outcome.as_attempt(number)],
                "round_attempts": record.round_attempts + 1,
                "next_attempt_at": None,
            }
        )
        now = datetime.now(timezone.utc)
        if outcome.ok:
            await self.store.finish(
                subscription_id, lead_id, record.model_copy(update={"status": "delivered", "delivered_at": now})
            )
            return
        delay = next_attempt_delay(record.round_attempts, self.delays, self.rng)
        if delay is None:
            await self._dead_letter(sub, record)
            return
        due = time.time() + delay
        log.debug("webhook %s to %s failed (attempt %d: %s); retrying in %.1f s",
                 record.id, sub.url, number, outcome.error, delay)
        await self.store.retry(
            subscription_id, lead_id,
            record.model_copy(update={"next_attempt_at": datetime.fromtimestamp(due, timezone.utc)}), due,
        )  # fmt: skip

    async def _dead_letter(self, sub: WebhookSubscription, record: DeliveryRecord) -> None:
        """Publish the delivery on the dead-letter topic, then mark it dead (its lead moves on).

        The letter goes first: if the broker cannot take it, the delivery stays at the head
        of its queue and the letter is tried again (so it may go out twice, never zero times).
        """
        now = datetime.now(timezone.utc)
        last_error = record.attempts[-1].error if record.attempts else None
        letter = WebhookDeadLettered(
            subscription_id=sub.id,
            url=sub.url,
            delivery_id=record.id,
            webhook_id=record.webhook_id,
            lead_id=record.lead_id,
            attempts=record.attempts,
            last_error=last_error,
            payload=orjson.loads(record.body),
            dead_lettered_at=now,
        )
        try:
            await asyncio.wait_for(
                self.send(self.policy.dead_letter_topic, record.lead_id.encode(),
                          orjson.dumps(letter.model_dump(mode="json"))),
                30.0,
            )  # fmt: skip
        except Exception as exc:  # whatever the producer raises: keep the delivery, try later
            due = time.time() + DEAD_LETTER_RETRY_S
            log.warning("could not publish dead letter of webhook %s on %s (%r); trying again in %.0f s",
                        record.id, self.policy.dead_letter_topic, exc, DEAD_LETTER_RETRY_S)
            await self.store.retry(sub.id, record.lead_id, record, due, failed_attempt=False)
            return
        log.warning("webhook %s to %s dead-lettered after %d attempts: %s",
                    record.id, sub.url, record.round_attempts, last_error)
        await self.store.finish(
            sub.id, record.lead_id,
            record.model_copy(update={"status": "dead", "dead_lettered_at": now, "next_attempt_at": None}),
        )  # fmt: skip


# --- in the worker ------------------------------------------------------------------------------------


class WebhookWorker:
    """What ``leadscore.streams.app`` wires in: queue score events, run the delivery loop.

    Args:
        settings: configuration.
        send: publishes (topic, key, value) and returns once acknowledged.
    """

    def __init__(self, settings: Settings, send: SendRecord) -> None:
        self.settings = settings
        self.send = send
        self.policy = DeliveryPolicy.from_settings(settings)
        self._store: WebhookStore | None = None
        self._subscriptions: SubscriptionCache | None = None
        self._deliverer: WebhookDeliverer | None = None

    @property
    def store(self) -> WebhookStore:
        """The store, connected on first use (inside the worker's event loop)."""
        if self._store is None:
            # one connection per delivery in flight, plus the queuing agent's
            client = connect(self.settings.redis_url, max_connections=self.policy.concurrency + 4)
            self._store = WebhookStore(client, self.settings.redis_prefix, self.settings.webhook_log_ttl_s)
            self._subscriptions = SubscriptionCache(self._store)
        return self._store

    @property
    def deliverer(self) -> WebhookDeliverer:
        """The delivery loop of this worker."""
        if self._deliverer is None:
            self._deliverer = WebhookDeliverer(self.store, self.policy, self.send)
        return self._deliverer

    async def queue(self, records: Sequence[ScoreRecord]) -> QueueResult:
        """Queue a batch; returns once Redis has it (retrying while Redis is down).

        Undecodable records go to the dead-letter topic (``leads.dead-letter.v1``) whole.
        The caller's offsets must be committed only after this returns.
        """
        store = self.store
        subscriptions = self._subscriptions
        if subscriptions is None:
            raise RuntimeError("the subscription cache is made with the store")
        delay_s = 0.2
        while True:
            try:
                result = await queue_score_events(records, subscriptions, store)
                break
            except RedisError as exc:  # an outage: wait it out, never skip the batch
                log.warning("could not queue webhooks in Redis (%r); retrying in %.1f s", exc, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 10.0)
        for record, reason in result.undecodable:
            letter = DeadLetter(
                reason_code="undecodable_score_event",
                reason=reason,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key_b64=_b64(record.key),
                value_b64=_b64(record.value),
                received_at=datetime.now(timezone.utc),
            )
            await self.send(self.settings.dead_letter_topic, record.key or b"",
                            orjson.dumps(letter.model_dump(mode="json")))
        if result.queued:
            self.deliverer.wake()
        return result

    async def deliver_forever(self) -> None:
        """Create the dead-letter topic if needed, then run the delivery loop until cancelled."""
        await ensure_dead_letter_topic(self.settings)
        await self.deliverer.run()


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


async def ensure_dead_letter_topic(settings: Settings) -> None:
    """Create ``webhook_dead_letter_topic`` (lead-keyed, ``topic_partitions`` partitions) if missing.

    A broker that cannot be reached is logged and left: the delivery loop does not need
    the broker, and a dead letter that cannot be published waits in Redis.
    """
    topic = settings.webhook_dead_letter_topic
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        if topic not in set(await admin.list_topics()):
            await admin.create_topics(
                [NewTopic(topic, num_partitions=settings.topic_partitions,
                          replication_factor=settings.topic_replication)]
            )  # fmt: skip
            log.info("created topic %s", topic)
    except TopicAlreadyExistsError:  # another worker won the race
        pass
    except (KafkaError, OSError) as exc:
        log.warning("could not check or create %s (%r); dead letters will wait for it", topic, exc)
    finally:
        await admin.close()
