"""Replay: request lifecycles rebuilt from synthetic audit records (no node, no I/O)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest

from broker.audit import AuditEvent, EventType
from broker.audit.lifecycle import duration, utc, visible
from broker.audit.replay import MAX_TIMELINE, Replay
from broker.model import MessageId
from broker.wire import codec

pytestmark = pytest.mark.unit

T0 = 1_767_225_600_000          # 2026-01-01 00:00:00Z
DE, NL = "DE-BFJ", "NL-24X7"


@dataclass
class Log:
    """One node's journal: sequence numbers and the hash chain, as the node keeps them."""

    node_id: str
    records: list[bytes] = field(default_factory=list)

    def add(self, at_ms: int, event_type: EventType, envelope: MessageId | None = None,
            **fields: object) -> bytes:
        actor = str(fields.pop("actor", f"node:{self.node_id}"))
        prev = hashlib.sha256(self.records[-1]).digest() if self.records else b""
        record = codec.encode_audit_record(
            AuditEvent(event_type, actor=actor, envelope_id=envelope, **fields),  # type: ignore[arg-type]
            node_id=self.node_id, sequence=len(self.records) + 1, time_ms=at_ms,
            prev_hash=prev)
        self.records.append(record)
        return record


def _request(de: Log, nl: Log, at: int, *, retries: int = 0, case_id: str = "",
             message_type: str = "preservation") -> MessageId:
    """DE-BFJ sends one request to NL-24X7, retried `retries` times, then delivered."""
    mid = MessageId.new()
    what = {"message_type": message_type, "template_id": "coe-art29-preservation",
            "template_version": "1.0.0", "case_id": case_id}
    de.add(at, EventType.ENVELOPE_SENT, mid, peer=NL, actor="person:clerk-de",
           recipients=(NL,), **what)
    for i in range(retries):
        de.add(at + 100 + i, EventType.DELIVERY_RETRY, mid, peer=NL,
               reason="TRANSPORT_UNAVAILABLE", **what)
    nl.add(at + 5_000, EventType.ENVELOPE_RECEIVED, mid, peer=DE, **what)
    de.add(at + 5_020, EventType.ENVELOPE_DELIVERED, mid, peer=NL, recipients=(NL,), **what)
    return mid


def _replay(*logs: Log, **kwargs: object) -> Replay:
    replay = Replay(**kwargs)  # type: ignore[arg-type]
    for log in logs:
        for record in log.records:
            replay.feed(record)
    return replay


def test_lifecycle_of_a_retried_request_read_by_the_recipient() -> None:
    de, nl = Log(DE), Log(NL)
    mid = _request(de, nl, T0, retries=3)
    nl.add(T0 + 60_000, EventType.MESSAGE_CONSULTED, mid, peer=DE, actor="person:officer-nl",
           justification="NL-2026-0042")
    nl.add(T0 + 61_000, EventType.ATTACHMENT_CONSULTED, mid, peer=DE, actor="person:analyst")
    lc = _replay(de, nl).result().lifecycle(str(mid))
    assert (lc.sender, lc.recipient, lc.message_type, lc.template) == (
        DE, NL, "preservation", "coe-art29-preservation@1.0.0")
    assert (lc.sent_ms, lc.received_ms, lc.delivered_ms) == (T0, T0 + 5_000, T0 + 5_020)
    assert (lc.status, lc.delivery_ms, lc.transit_ms) == ("delivered", 5_020, 5_000)
    assert lc.retries == 3 and lc.retry_reasons == {"TRANSPORT_UNAVAILABLE": 3}
    assert [(c.actor, c.node_id, c.what, c.justification) for c in lc.consultations] == [
        ("person:officer-nl", NL, "message", "NL-2026-0042"),
        ("person:analyst", NL, "attachment", "")]
    events = [(e.event_type, e.node_id, e.count) for e in lc.timeline]
    assert events == [("envelope.sent", DE, 1), ("delivery.retry", DE, 3),
                      ("envelope.received", NL, 1), ("envelope.delivered", DE, 1),
                      ("message.consulted", NL, 1), ("attachment.consulted", NL, 1)]
    assert lc.timeline[1].until_ms == T0 + 102
    assert lc.timeline[0].actor == "person:clerk-de"


def test_logs_may_arrive_in_any_interleaving() -> None:
    """The recipient's log first, or record by record alternating: same lifecycle."""
    de, nl = Log(DE), Log(NL)
    mid = _request(de, nl, T0, retries=1)
    first = _replay(nl, de).result().lifecycle(str(mid))
    replay = Replay()
    for a, b in zip(de.records, [*nl.records, *[b""] * 5], strict=False):
        replay.feed(a)
        if b:
            replay.feed(b)
    second = replay.result().lifecycle(str(mid))
    assert first.as_dict() == second.as_dict()
    assert first.timeline[0].event_type == "envelope.sent"


def test_repeated_records_are_counted_once_and_malformed_ones_skipped() -> None:
    de, nl = Log(DE), Log(NL)
    mid = _request(de, nl, T0, retries=2)
    replay = _replay(de, nl)
    for record in de.records:       # Kafka redelivery after an ambiguous produce
        replay.feed(record)
    replay.feed(b"\xff\x00 not a record")
    history = replay.result()
    assert history.lifecycle(str(mid)).retries == 2
    assert (history.repeated_records, history.malformed_records) == (len(de.records), 1)
    assert history.nodes[DE].records == len(de.records)


def test_refusal_expiry_rejection_and_duplicates() -> None:
    de, nl = Log(DE), Log(NL)
    refused, expired, rejected, duplicated = (MessageId.new() for _ in range(4))
    de.add(T0, EventType.ENVELOPE_SENT, refused, peer=NL)
    de.add(T0 + 1, EventType.DELIVERY_REFUSED, refused, peer=NL, reason="TEMPLATE_INVALID")
    de.add(T0 + 2, EventType.ENVELOPE_SENT, expired, peer=NL)
    de.add(T0 + 3, EventType.DELIVERY_EXPIRED, expired, peer=NL, reason="EXPIRED")
    nl.add(T0 + 4, EventType.ENVELOPE_REJECTED, rejected, peer=DE, reason="SIGNATURE_INVALID")
    duplicated_at = T0 + 10
    de.add(duplicated_at, EventType.ENVELOPE_SENT, duplicated, peer=NL)
    nl.add(duplicated_at + 1, EventType.ENVELOPE_RECEIVED, duplicated, peer=DE)
    for i in range(2):
        nl.add(duplicated_at + 2 + i, EventType.ENVELOPE_DUPLICATE, duplicated, peer=DE)
    de.add(duplicated_at + 5, EventType.ENVELOPE_DELIVERED, duplicated, peer=NL)
    history = _replay(de, nl).result()
    r = history.lifecycle(str(refused))
    assert (r.status, r.refused_reason) == ("refused", "TEMPLATE_INVALID")
    assert history.lifecycle(str(expired)).status == "expired"
    j = history.lifecycle(str(rejected))
    assert (j.status, j.sender, j.recipient) == ("rejected", DE, NL)
    assert j.rejections == [(T0 + 4, NL, "SIGNATURE_INVALID")]
    d = history.lifecycle(str(duplicated))
    assert (d.status, d.duplicates) == ("delivered", 2)
    assert [e.count for e in d.timeline if e.event_type == "envelope.duplicate"] == [2]


def test_rejections_without_an_envelope_are_aggregated_per_peer_and_reason() -> None:
    nl = Log(NL)
    for i in range(5):
        nl.add(T0 + i, EventType.ENVELOPE_REJECTED, peer="XX-EVIL", reason="UNKNOWN_SENDER")
    nl.add(T0 + 9, EventType.ENVELOPE_REJECTED, peer="", reason="RATE_LIMITED")
    history = _replay(nl).result()
    assert not history.lifecycles
    assert [(s.peer, s.reason, s.count, s.first_ms, s.last_ms)
            for s in history.stray_rejections] == [
        ("", "RATE_LIMITED", 1, T0 + 9, T0 + 9),
        ("XX-EVIL", "UNKNOWN_SENDER", 5, T0, T0 + 4)]


def test_requests_sharing_a_case_id_form_one_case() -> None:
    de, nl = Log(DE), Log(NL)
    a = _request(de, nl, T0, case_id="CASE-1")
    b = _request(de, nl, T0 + 86_400_000, case_id="CASE-1")
    c = _request(de, nl, T0 + 2 * 86_400_000)
    history = _replay(de, nl).result()
    assert [(k.key, [lc.envelope_id for lc in k.lifecycles]) for k in history.cases] == [
        ("case:CASE-1", [str(a), str(b)]), (f"envelope:{c}", [str(c)])]
    timeline = history.cases[0].timeline
    assert [eid for eid, _ in timeline] == [str(a)] * 3 + [str(b)] * 3
    assert history.volumes == {("2026-01-01", DE): (1, 0), ("2026-01-01", NL): (0, 1),
                               ("2026-01-02", DE): (1, 0), ("2026-01-02", NL): (0, 1),
                               ("2026-01-03", DE): (1, 0), ("2026-01-03", NL): (0, 1)}


def test_policy_decisions_and_citations_are_collected() -> None:
    de, nl = Log(DE), Log(NL)
    mid = MessageId.new()
    de.add(T0, EventType.ENVELOPE_SENT, mid, peer=NL, policy_decision_ids=("pd-1",),
           citations=("Budapest Convention Art. 29",))
    nl.add(T0 + 1, EventType.ENVELOPE_RECEIVED, mid, peer=DE,
           policy_decision_ids=("pd-2", "pd-1"), citations=("LED Art. 25",))
    lc = _replay(de, nl).result().lifecycle(str(mid))
    assert lc.policy_decision_ids == ["pd-1", "pd-2"]
    assert lc.citations == ["Budapest Convention Art. 29", "LED Art. 25"]
    assert "decisions: pd-1" in lc.timeline[0].detail


def test_only_the_requested_envelopes_are_kept() -> None:
    de, nl = Log(DE), Log(NL)
    a, _b = _request(de, nl, T0), _request(de, nl, T0 + 1)
    history = _replay(de, nl, envelope_ids=[a.raw]).result()
    assert [lc.envelope_id for lc in history.lifecycles] == [str(a)]
    assert history.nodes[DE].events["envelope.sent"] == 2     # activity still counts all


def test_memory_is_bounded_per_envelope_not_per_record() -> None:
    """An envelope retried 5000 times and read 500 times keeps a bounded timeline,
    and its milestones still appear after the cap."""
    de, nl = Log(DE), Log(NL)
    mid = MessageId.new()
    de.add(T0, EventType.ENVELOPE_SENT, mid, peer=NL)
    for i in range(5000):
        de.add(T0 + 1 + i, EventType.DELIVERY_RETRY, mid, peer=NL,
               reason="TRANSPORT_UNAVAILABLE" if i % 2 else "TRANSPORT_TIMEOUT")
    for i in range(500):
        nl.add(T0 + 10_000 + i, EventType.MESSAGE_CONSULTED, mid, peer=DE,
               actor=f"person:reader-{i}")
    nl.add(T0 + 9_000, EventType.ENVELOPE_RECEIVED, mid, peer=DE)
    de.add(T0 + 9_001, EventType.ENVELOPE_DELIVERED, mid, peer=NL)
    lc = _replay(de, nl).result().lifecycle(str(mid))
    assert lc.retries == 5000
    assert len(lc.timeline) <= MAX_TIMELINE + 3
    assert lc.omitted_events > 0
    assert {"envelope.received", "envelope.delivered"} <= {e.event_type for e in lc.timeline}
    assert len(lc.consultations) < 500


def test_forged_values_do_not_break_the_replay() -> None:
    """A record with a time far outside the calendar and an unknown event type."""
    de = Log(DE)
    mid = MessageId.new()
    de.add(2**62, EventType.ENVELOPE_SENT, mid, peer=NL)
    history = _replay(de).result()
    assert "out of range" in utc(history.lifecycle(str(mid)).sent_ms)
    assert history.volumes == {("out-of-range", DE): (1, 0)}


def test_text_helpers() -> None:
    assert utc(T0 + 1_234) == "2026-01-01 00:00:01.234Z"
    assert [duration(v) for v in (None, 850, 12_400, 185_000, 7_500_000, 190_800_000)] == [
        "-", "850 ms", "12.4 s", "3 min 05 s", "2 h 05 min", "2 d 05 h"]
    assert visible("person:\u202eecilop\x1b[31m") == "person:\\u202eecilop\\x1b[31m"
    assert visible("DE-BFJ ok") == "DE-BFJ ok"
