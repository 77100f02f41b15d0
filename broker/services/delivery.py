"""The outbox sender loop: deliver, verify the receipt, retry with backoff, dead-letter.

At-least-once delivery with an exactly-once effect: the receiver dedupes by envelope id
and answers a re-delivery with its original receipt. A transport failure is ambiguous
(the peer may have stored the message), so it is retried, never reported as failed; a
peer's definite refusal ends delivery; expiry dead-letters the message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import random
from collections.abc import AsyncGenerator, Callable, Generator, Iterator

from broker.audit import AuditEvent, EventType
from broker.crypto import TAG_SIZE, chunk_count
from broker.errors import PeerError, ReceiptInvalid, RogatoryError
from broker.model import ReceiptStatus
from broker.model.stored import OutboxItem
from broker.ports import Transport, WireChunk
from broker.receipts import verify_receipt
from broker.services.cases import Cases
from broker.services.context import NodeContext, log
from broker.wire import codec


def backoff_ms(attempt: int, *, initial_ms: int, max_ms: int, multiplier: float,
               rng: random.Random) -> int:
    """Exponential backoff with full jitter for the `attempt`-th retry (1-based)."""
    try:
        growth = initial_ms * multiplier ** max(0, attempt - 1)
    except OverflowError:  # float power overflows after ~1024 doublings: the cap applies
        growth = max_ms
    ceiling = min(max_ms, growth)
    return int(rng.uniform(ceiling / 2, ceiling))


class Delivery:
    """Owns the sender loop task. `start()`, `wake()`, idempotent `stop()`."""

    def __init__(self, ctx: NodeContext, transport: Transport, *,
                 rng: random.Random | None = None) -> None:
        self.ctx = ctx
        self.transport = transport
        self._rng = rng or random.SystemRandom()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[bytes, asyncio.Task[None]] = {}
        self._per_peer: collections.Counter[str] = collections.Counter()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="delivery")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pending = list(self._in_flight.values())
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _run(self) -> None:
        limit = self.ctx.delivery.max_in_flight
        while True:
            self._wake.clear()
            free = limit - len(self._in_flight)
            next_due: int | None = None
            if free > 0:
                per_peer = self.ctx.delivery.max_in_flight_per_peer
                due = await self.ctx.store.due_outbox(
                    self.ctx.clock(), free, exclude=list(self._in_flight), per_peer=per_peer,
                    busy=dict(self._per_peer))
                for item in due.items:
                    if self._per_peer[item.recipient] >= per_peer:
                        continue  # that peer's next completion wakes the loop
                    self._per_peer[item.recipient] += 1
                    task = asyncio.create_task(self._deliver_one(item))
                    self._in_flight[item.envelope_id.raw] = task
                    task.add_done_callback(self._done(item.envelope_id.raw, item.recipient))
                next_due = due.next_due_ms
            await self._sleep_until_due(next_due)

    def _done(self, key: bytes, recipient: str) -> Callable[[asyncio.Task[None]], None]:
        def callback(task: asyncio.Task[None]) -> None:
            self._in_flight.pop(key, None)
            self._per_peer[recipient] -= 1
            if not task.cancelled() and task.exception() is not None:
                log.error("delivery.crashed", error=type(task.exception()).__name__)
            self._wake.set()
        return callback

    async def _sleep_until_due(self, next_due: int | None) -> None:
        """Until a send or a finished attempt wakes the loop, or the next retry falls due.

        Entries due now but not started (a peer at its limit, more than the free slots)
        wait for the wake of an attempt finishing, so the loop does not poll the store
        while deliveries are in flight.
        """
        timeout = 5.0
        if next_due is not None:
            timeout = min(timeout, max(0.0, (next_due - self.ctx.clock()) / 1000))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.005)):  # no task per wait, unlike wait_for
                await self._wake.wait()

    async def _deliver_one(self, item: OutboxItem) -> None:
        """One attempt; an unexpected failure is retried later, never in a hot loop."""
        try:
            await self._attempt(item)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error("delivery.internal_error", envelope_id=str(item.envelope_id),
                      error=type(e).__name__)
            delay = self.ctx.delivery.max_backoff_ms
            await self.ctx.store.mark_retry(
                item.envelope_id, self.ctx.clock() + delay, "INTERNAL",
                AuditEvent(EventType.DELIVERY_RETRY, actor=self.ctx.actor,
                           envelope_id=item.envelope_id, peer=item.recipient,
                           reason="INTERNAL"))

    async def _attempt(self, item: OutboxItem) -> None:
        ctx = self.ctx
        now = ctx.clock()
        if now >= item.expires_at_ms:
            await ctx.store.mark_failed(item.envelope_id, "expired", "EXPIRED",
                                        self._event(EventType.DELIVERY_EXPIRED, item, "EXPIRED"))
            log.error("delivery.expired", envelope_id=str(item.envelope_id), to=item.recipient)
            return
        envelope = codec.decode_envelope(item.envelope)
        total = sum(a.size for a in item.attachments)
        timeout = ctx.delivery.call_timeout_s + total / (1 << 20) * \
            ctx.delivery.stream_timeout_s_per_mib
        try:
            receipt = await self.transport.deliver(item.recipient, envelope,
                                                   self._chunks(item), timeout_s=timeout)
            body = verify_receipt(receipt, trust=ctx.trust, receiver=item.recipient,
                                  sender=ctx.node_id, envelope_id=item.envelope_id,
                                  header_sha256=item.header_sha256, now_ms=ctx.clock())
        except ReceiptInvalid as e:
            await ctx.store.audit(self._event(EventType.RECEIPT_INVALID, item, e.code))
            await self._retry(item, e)
            return
        except RogatoryError as e:
            if e.retriable:
                await self._retry(item, e)
            else:
                await ctx.store.mark_failed(item.envelope_id, "refused", e.code,
                                            self._event(EventType.DELIVERY_REFUSED, item, e.code))
                log.error("delivery.refused", envelope_id=str(item.envelope_id),
                          to=item.recipient, reason=e.code)
            return
        status = "duplicate" if body.status == ReceiptStatus.DUPLICATE else "accepted"
        delivered = dataclasses.replace(self._event(EventType.ENVELOPE_DELIVERED, item),
                                        peer_tree_head=body.receiver_tree_head,
                                        recipients=(item.recipient,))
        plan = await Cases.of(ctx).plan_receipt(item.envelope_id, body.received_at_ms)
        await ctx.store.mark_delivered(item.envelope_id, codec.encode_receipt(receipt), status,
                                       body.received_at_ms, delivered, changes=plan.changes)
        log.info("envelope.delivered", envelope_id=str(item.envelope_id), to=item.recipient,
                 receipt=status, attempts=item.attempts + 1)

    async def _retry(self, item: OutboxItem, error: RogatoryError) -> None:
        attempt = item.attempts + 1
        policy = self.ctx.delivery
        delay = backoff_ms(attempt, initial_ms=policy.initial_backoff_ms,
                           max_ms=policy.max_backoff_ms, multiplier=policy.multiplier,
                           rng=self._rng)
        await self.ctx.store.mark_retry(item.envelope_id, self.ctx.clock() + delay, error.code,
                                        self._event(EventType.DELIVERY_RETRY, item, error.code))
        log.warning("delivery.retry", envelope_id=str(item.envelope_id), to=item.recipient,
                    reason=error.code, attempt=attempt, delay_ms=delay,
                    peer_fault=isinstance(error, PeerError))

    async def _chunks(self, item: OutboxItem) -> AsyncGenerator[WireChunk]:
        """The stored wire ciphertext of every attachment, chunk by chunk, in order.

        Read one chunk ahead on a worker thread: the disk read overlaps the send of the
        chunk before, and the event loop never waits on the disk.
        """
        for a in item.attachments:
            count = chunk_count(a.size, a.chunk_size)
            pieces = self.ctx.blobs.read_chunks(a.path, _chunk_sizes(a.size, a.chunk_size, count))
            ahead = asyncio.ensure_future(asyncio.to_thread(next, pieces, None))
            try:
                counter = 0
                while (piece := await ahead) is not None:
                    ahead = asyncio.ensure_future(asyncio.to_thread(next, pieces, None))
                    yield a.index, counter, piece
                    counter += 1
            finally:
                # The file closes once no read is in flight (the generator cannot be
                # closed under a running read); never wait for it here.
                ahead.add_done_callback(functools.partial(_close_after_read, pieces))

    def _event(self, event_type: EventType, item: OutboxItem, reason: str = "") -> AuditEvent:
        return AuditEvent(event_type, actor=self.ctx.actor, envelope_id=item.envelope_id,
                          peer=item.recipient, message_type=item.message_type,
                          template_id=item.template_id, template_version=item.template_version,
                          header_sha256=item.header_sha256, reason=reason)


def _close_after_read(pieces: Generator[bytes], read: asyncio.Future[bytes | None]) -> None:
    if not read.cancelled():
        read.exception()  # retrieved: a failed read-ahead that nobody awaits is not an error
    pieces.close()


def _chunk_sizes(size: int, chunk_size: int, count: int) -> Iterator[int]:
    for i in range(count):
        last = i == count - 1
        yield (size - chunk_size * (count - 1) if last else chunk_size) + TAG_SIZE
