"""The outbox as the delivery loop reads it, on a real SQLite store: one read per round
gives the due entries (with what an attempt needs of their message), respects the
entries in flight and each peer's limit, and says when the next retry falls due."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.adapters.sqlite import NodeStore
from broker.audit import AuditEvent, EventType
from broker.model import MessageId
from broker.model.stored import StoredAttachment, StoredMessage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
NOW = 1_800_000_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[NodeStore]:
    s = NodeStore(tmp_path / "node.db", node_id="DE-BFJ", clock=lambda: NOW)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _queue(store: NodeStore, peer: str, *, at_ms: int = NOW,
                 attachments: tuple[StoredAttachment, ...] = ()) -> MessageId:
    eid = MessageId.new()
    msg = StoredMessage(
        direction="out", envelope_id=eid, peer=peer, message_type="preservation",
        template_id="coe-art29-preservation", template_version="1.0.0", created_at_ms=at_ms,
        expires_at_ms=at_ms + 3_600_000, header=b"header", signature=b"sig",
        header_sha256=os.urandom(32), payload=b"sealed", status="pending", stored_at_ms=at_ms,
        attachments=attachments)
    await store.record_outgoing(msg, b"envelope-" + eid.raw, AuditEvent(
        EventType.ENVELOPE_SENT, actor="node:DE-BFJ", envelope_id=eid, peer=peer))
    return eid


async def test_due_entries_carry_their_message_and_attachments(store: NodeStore) -> None:
    att = StoredAttachment(index=0, size=10, sha256=b"\x01" * 32, chunk_size=1 << 20,
                           media_type="application/pdf", filename=b"f", wrapped_key=b"k",
                           path="out/x/0")
    eid = await _queue(store, "NL-24X7", attachments=(att,))
    stored = await store.get_message(eid)
    due = await store.due_outbox(NOW, 8)
    assert [i.envelope_id for i in due.items] == [eid]
    item = due.items[0]
    assert (item.recipient, item.envelope, item.attempts) == ("NL-24X7", b"envelope-" + eid.raw, 0)
    assert (item.message_type, item.template_id, item.template_version) == (
        stored.message_type, stored.template_id, stored.template_version)
    assert item.header_sha256 == stored.header_sha256
    assert item.attachments == stored.attachments == (att,)
    assert due.next_due_ms is None


async def test_in_flight_entries_and_full_peers_are_skipped(store: NodeStore) -> None:
    nl = [await _queue(store, "NL-24X7", at_ms=NOW - 10 + i) for i in range(4)]
    us = await _queue(store, "US-OIA", at_ms=NOW)
    due = await store.due_outbox(NOW, 8, exclude=[nl[0].raw], per_peer=2,
                                 busy={"NL-24X7": 1})
    # NL-24X7 has one in flight and room for one more; US-OIA comes after, not starved.
    assert [i.envelope_id for i in due.items] == [nl[1], us]
    assert [i.envelope_id for i in (await store.due_outbox(NOW, 2)).items] == nl[:2]


async def test_next_due_names_the_earliest_retry_not_yet_due(store: NodeStore) -> None:
    first, second = await _queue(store, "NL-24X7"), await _queue(store, "NL-24X7")
    retry = AuditEvent(EventType.DELIVERY_RETRY, actor="node:DE-BFJ", reason="UNAVAILABLE")
    await store.mark_retry(first, NOW + 5_000, "UNAVAILABLE", retry)
    await store.mark_retry(second, NOW + 2_000, "UNAVAILABLE", retry)
    due = await store.due_outbox(NOW, 8)
    assert due.items == ()
    assert due.next_due_ms == NOW + 2_000
    assert [i.envelope_id for i in (await store.due_outbox(NOW + 2_000, 8)).items] == [second]
