"""Two and three real nodes in process: gRPC over mutual TLS, SQLite, signed receipts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator

import pytest

from broker.errors import TemplateError, UnknownSender
from broker.model import MessageId, ReceiptStatus, SealedEnvelope
from broker.receipts import verify_receipt
from broker.services.mailbox import Mailbox
from broker.wire import codec
from nodes.node import AgencyNode
from tests.harness import (
    Federation,
    audit_events,
    db_path,
    nodes,
    now_ms,
    send,
    state_digest,
    wait_delivered,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
WHY = "case BfJ-RHS-2026-0412"


async def test_preservation_request_delivered_with_verified_receipt(fed: Federation) -> None:
    async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
        mid = await send(n["DE-BFJ"], "NL-24X7", "preservation")
        assert await wait_delivered(n["DE-BFJ"], mid) == "delivered"
        sender_ctx, receiver_ctx = n["DE-BFJ"].ctx, n["NL-24X7"].ctx
        assert sender_ctx is not None and receiver_ctx is not None
        direction, raw, status, _ = await sender_ctx.store.get_receipt(mid)
        assert (direction, status) == ("out", "accepted")
        stored = await sender_ctx.store.get_message(mid)
        body = verify_receipt(codec.decode_receipt(raw), trust=fed.trust(), receiver="NL-24X7",
                              sender="DE-BFJ", envelope_id=mid,
                              header_sha256=stored.header_sha256, now_ms=now_ms())
        assert body.status == ReceiptStatus.ACCEPTED
        inbox = await receiver_ctx.store.list_messages("in", 10)
        assert [m.envelope_id for m in inbox] == [mid]
        view = await Mailbox(receiver_ctx).show(mid, actor="person:officer", justification=WHY)
        assert view.payload == (await Mailbox(sender_ctx).show(
            mid, actor="person:t", justification=WHY)).payload
    sent = [e["event_type"] for e in audit_events(fed.configs["DE-BFJ"])]
    received = [e["event_type"] for e in audit_events(fed.configs["NL-24X7"])]
    assert "envelope.sent" in sent and "envelope.delivered" in sent
    assert "envelope.received" in received and "message.consulted" in received


async def test_attachments_arrive_intact_and_encrypted_at_rest(fed: Federation) -> None:
    evidence = [os.urandom(3 * (1 << 20) + 17), b"", os.urandom(1 << 20)]
    async with nodes(fed, "DE-BFJ", "US-OIA") as n:
        mid = await send(n["DE-BFJ"], "US-OIA", "mla_request", attachments=evidence)
        assert await wait_delivered(n["DE-BFJ"], mid) == "delivered"
        ctx = n["US-OIA"].ctx
        assert ctx is not None
        mailbox = Mailbox(ctx)
        for index, data in enumerate(evidence):
            got = b"".join([p async for p in await mailbox.read_attachment(
                mid, index, actor="person:t", justification=WHY)])
            assert got == data
        stored = await ctx.store.get_message(mid)
        for a, data in zip(stored.attachments, evidence, strict=True):
            on_disk = (ctx.blobs.root / a.path).read_bytes()
            assert len(on_disk) > len(data)
            if data:
                assert data[:4096] not in on_disk


async def test_redelivery_gets_the_original_receipt_and_one_inbox_entry(
        fed: Federation) -> None:
    """At-least-once delivery, exactly-once effect: the same envelope twice is stored once."""
    async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
        de, nl = n["DE-BFJ"], n["NL-24X7"]
        assert de.ctx is not None and de._transport is not None and nl.ctx is not None
        mid = await send(de, "NL-24X7")
        await wait_delivered(de, mid)
        stored = await de.ctx.store.get_message(mid)
        _, first, _, _ = await de.ctx.store.get_receipt(mid)
        envelope = await _stored_envelope(de, mid)
        before = state_digest(nl.config)
        again = await de._transport.deliver("NL-24X7", envelope, _no_chunks(), timeout_s=10)
        body = codec.decode_receipt_body(again.body)
        assert body.status == ReceiptStatus.ACCEPTED
        assert again == codec.decode_receipt(first)
        assert state_digest(nl.config) == before
        assert len(await nl.ctx.store.list_messages("in", 10)) == 1
        assert stored.header_sha256 == body.header_sha256
    events = [e["event_type"] for e in audit_events(fed.configs["NL-24X7"])]
    assert events.count("envelope.received") == 1
    assert events.count("envelope.duplicate") == 1


async def test_unreachable_recipient_is_retried_until_it_comes_up(fed: Federation) -> None:
    async with nodes(fed, "DE-BFJ") as n:
        de = n["DE-BFJ"]
        assert de.ctx is not None
        mid = await send(de, "US-OIA", "mla_request")
        for _ in range(200):
            state = await de.ctx.store.outbox_state(mid)
            if state and state[1] >= 1:
                break
            await asyncio.sleep(0.02)
        assert state is not None and state[0] == "pending" and state[1] >= 1
        assert state[2].startswith("TRANSPORT_")
        async with nodes(fed, "US-OIA"):
            assert await wait_delivered(de, mid, timeout_s=30) == "delivered"
    events = [e["event_type"] for e in audit_events(fed.configs["DE-BFJ"])]
    assert "delivery.retry" in events


async def test_invalid_payload_is_refused_before_anything_is_stored(fed: Federation) -> None:
    async with nodes(fed, "DE-BFJ") as n:
        before = state_digest(fed.configs["DE-BFJ"])
        with pytest.raises(TemplateError) as err:
            await send(n["DE-BFJ"], "NL-24X7", "preservation", payload=b'{"unknown": 1}')
        assert err.value.code == "TEMPLATE_INVALID"
        with pytest.raises(UnknownSender):
            await send(n["DE-BFJ"], "FR-NOPE", "preservation")
        assert state_digest(fed.configs["DE-BFJ"]) == before
    refused = [(e["reason"], e["peer"], e["actor"]) for e in audit_events(fed.configs["DE-BFJ"])
               if e["event_type"] == "envelope.send_refused"]
    assert refused == [("TEMPLATE_INVALID", "NL-24X7", "person:test"),
                       ("UNKNOWN_SENDER", "FR-NOPE", "person:test")]


async def _stored_envelope(node: AgencyNode, mid: MessageId) -> SealedEnvelope:
    with contextlib.closing(sqlite3.connect(db_path(node.config))) as db:
        row = db.execute("SELECT envelope FROM outbox WHERE envelope_id = ?",
                         (mid.raw,)).fetchone()
    return codec.decode_envelope(bytes(row[0]))


async def _no_chunks() -> AsyncIterator[tuple[int, int, bytes]]:
    for chunk in ():
        yield chunk


async def test_undeliverable_message_is_dead_lettered_at_expiry(fed: Federation) -> None:
    """Timeline: a request with a 1.5 s lifetime goes to a node that never comes up; the
    sender retries, then dead-letters it at expiry and audits that."""
    async with nodes(fed, "DE-BFJ") as n:
        de = n["DE-BFJ"]
        assert de.ctx is not None
        mid = await send(de, "US-OIA", "mla_request", ttl_ms=1500)
        assert await wait_delivered(de, mid, timeout_s=30) == "expired"
        stored = await de.ctx.store.get_message(mid)
        assert stored.status == "expired"
    events = [e["event_type"] for e in audit_events(fed.configs["DE-BFJ"])]
    assert "delivery.expired" in events and "envelope.delivered" not in events


async def test_unexpected_failure_in_delivery_is_retried_later_not_in_a_hot_loop(
        fed: Federation) -> None:
    """A bug in the transport (any exception) must neither stop the sender loop nor spin
    it: the attempt is recorded and pushed back by the maximum backoff."""
    async with nodes(fed, "DE-BFJ") as n:
        de = n["DE-BFJ"]
        assert de._delivery is not None and de.ctx is not None

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("simulated bug")

        de._delivery.transport.deliver = broken  # type: ignore[method-assign]
        mid = await send(de, "NL-24X7")
        await asyncio.sleep(1.0)
        state = await de.ctx.store.outbox_state(mid)
        assert state is not None and state[0] == "pending"
        assert state[1] == 1 and state[2] == "INTERNAL"
