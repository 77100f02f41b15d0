"""Rebuild each request's lifecycle from audit records alone.

Pure: record bytes (or decoded records) in, a :class:`History` out; no clock, no I/O.
One pass over any interleaving of the nodes' logs (each node's records in sequence
order, as the stores and the Kafka topic hand them out). Memory grows with the number
of envelopes, not of records: repeated events (retries, duplicate deliveries, invalid
receipts) collapse into one timeline entry with a count, and each envelope keeps at
most :data:`MAX_TIMELINE` entries besides its milestones (the others are counted).

Replay proves nothing: it reads what the logs say. Run
:class:`broker.audit.verifier.AuditVerifier` over the same records to know whether the
logs can be believed (the CLI and the report do both in one pass).

Example::

    replay = Replay()
    for position, data, key in read_store(path):
        replay.feed(data)
    history = replay.result()
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Collection

from broker.audit.events import EventType
from broker.audit.lifecycle import (
    Case,
    Consultation,
    History,
    Lifecycle,
    NodeActivity,
    StrayRejection,
    TimelineEvent,
    utc_day,
)
from broker.errors import RogatoryError
from broker.model.audit_record import AuditRecord
from broker.wire import codec

__all__ = ["MAX_TIMELINE", "History", "Lifecycle", "Replay"]

MAX_TIMELINE = 100     # timeline entries kept per envelope besides its milestones
MAX_KEPT = 32          # consultations, rejections, decision ids, citations kept per envelope

_MILESTONES = frozenset({EventType.ENVELOPE_SENT, EventType.ENVELOPE_DELIVERED,
                         EventType.ENVELOPE_RECEIVED, EventType.DELIVERY_REFUSED,
                         EventType.DELIVERY_EXPIRED})
_REPEATING = frozenset({EventType.DELIVERY_RETRY, EventType.ENVELOPE_DUPLICATE,
                        EventType.RECEIPT_INVALID})
_SENDER_SIDE = frozenset({EventType.ENVELOPE_SENT, EventType.ENVELOPE_DELIVERED,
                          EventType.DELIVERY_RETRY, EventType.DELIVERY_REFUSED,
                          EventType.DELIVERY_EXPIRED, EventType.RECEIPT_INVALID})
_RECEIVER_SIDE = frozenset({EventType.ENVELOPE_RECEIVED, EventType.ENVELOPE_DUPLICATE,
                            EventType.ENVELOPE_REJECTED})
_KNOWN = frozenset(str(e) for e in EventType)
_CONSULTED = {EventType.MESSAGE_CONSULTED: "message",
              EventType.ATTACHMENT_CONSULTED: "attachment"}
_DETAIL = {
    EventType.ENVELOPE_SENT: "{message_type} ({template}) to {peer}",
    EventType.ENVELOPE_DELIVERED: "receipt from {peer} verified",
    EventType.DELIVERY_RETRY: "attempt to reach {peer} failed: {reason}",
    EventType.DELIVERY_REFUSED: "refused by {peer}: {reason}",
    EventType.DELIVERY_EXPIRED: "expired before {peer} receipted it",
    EventType.RECEIPT_INVALID: "invalid receipt from {peer}: {reason}",
    EventType.ENVELOPE_RECEIVED: "{message_type} ({template}) from {peer}",
    EventType.ENVELOPE_DUPLICATE: "duplicate delivery from {peer}, first receipt returned",
    EventType.ENVELOPE_REJECTED: "rejected from {peer}: {reason}",
    EventType.MESSAGE_CONSULTED: "message read",
    EventType.ATTACHMENT_CONSULTED: "attachment read",
}


def event_type_of(rec: AuditRecord) -> EventType | None:
    """The record's event type, or None for one outside the catalogue."""
    return EventType(rec.event_type) if rec.event_type in _KNOWN else None


def describe(rec: AuditRecord) -> str:
    """The timeline detail of one record: ids, codes and references, never content."""
    et = event_type_of(rec)
    pattern = _DETAIL.get(et) if et is not None else None
    parts = [pattern.format(message_type=rec.message_type, peer=rec.peer, reason=rec.reason,
                            template=f"{rec.template_id}@{rec.template_version}")
             if pattern else f"{rec.event_type} {rec.reason}".strip()]
    if rec.justification:
        parts.append(f"justification: {rec.justification}")
    if rec.policy_decision_ids:
        parts.append("decisions: " + ", ".join(rec.policy_decision_ids))
    if rec.citations:
        parts.append("citing: " + "; ".join(rec.citations))
    return "; ".join(parts)


class Replay:
    """Feed records (in each node's order), then call :meth:`result`."""

    def __init__(self, *, envelope_ids: Collection[bytes] | None = None) -> None:
        """An empty replay.

        Args:
            envelope_ids: keep only these envelopes' lifecycles (node activity, volumes
                and counts still cover every record).
        """
        self._only = frozenset(envelope_ids) if envelope_ids is not None else None
        self._lifecycles: dict[bytes, Lifecycle] = {}
        self._nodes: dict[str, NodeActivity] = {}
        self._last_seq: dict[str, int] = {}
        self._volumes: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._stray: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        self.records = 0
        self.repeated = 0
        self.malformed = 0

    def feed(self, data: bytes) -> None:
        """One record's exact bytes; malformed ones are counted (the verifier names them)."""
        try:
            rec = codec.decode_audit(data)
        except RogatoryError:
            self.records += 1
            self.malformed += 1
            return
        self.add(rec)

    def add(self, rec: AuditRecord) -> None:
        """One decoded record. A (node, sequence) already seen is skipped: Kafka may
        redeliver a record, and the verifier decides whether a repeat is harmless."""
        self.records += 1
        if rec.sequence <= self._last_seq.get(rec.node_id, 0):
            self.repeated += 1
            return
        self._last_seq[rec.node_id] = rec.sequence
        self._activity(rec)
        et = event_type_of(rec)
        if not rec.envelope_id:
            if et == EventType.ENVELOPE_REJECTED:
                self._stray_rejection(rec)
            return
        if self._only is not None and rec.envelope_id not in self._only:
            return
        lc = self._lifecycles.get(rec.envelope_id)
        if lc is None:
            lc = self._lifecycles[rec.envelope_id] = Lifecycle(rec.envelope_id.hex(),
                                                               first_ms=rec.time_ms)
        self._apply(lc, rec, et)

    # -- per record -------------------------------------------------------------------

    def _activity(self, rec: AuditRecord) -> None:
        node = self._nodes.setdefault(rec.node_id, NodeActivity())
        node.records += 1
        node.first_ms = rec.time_ms if node.first_ms is None else min(node.first_ms,
                                                                       rec.time_ms)
        node.last_ms = rec.time_ms if node.last_ms is None else max(node.last_ms, rec.time_ms)
        node.events[rec.event_type] += 1
        if rec.event_type in (EventType.ENVELOPE_SENT, EventType.ENVELOPE_RECEIVED):
            self._volumes[(utc_day(rec.time_ms), rec.node_id, rec.event_type)] += 1

    def _stray_rejection(self, rec: AuditRecord) -> None:
        key = (rec.node_id, rec.peer, rec.reason)
        count, first, last = self._stray.get(key, (0, rec.time_ms, rec.time_ms))
        self._stray[key] = (count + 1, min(first, rec.time_ms), max(last, rec.time_ms))

    def _apply(self, lc: Lifecycle, rec: AuditRecord, et: EventType | None) -> None:
        lc.first_ms = min(lc.first_ms, rec.time_ms)
        _learn_parties(lc, rec, et)
        lc.case_id = lc.case_id or rec.case_id
        lc.message_type = lc.message_type or rec.message_type
        if rec.template_id and not lc.template_id:
            lc.template_id, lc.template_version = rec.template_id, rec.template_version
        _extend(lc.policy_decision_ids, rec.policy_decision_ids)
        _extend(lc.citations, rec.citations)
        if et == EventType.ENVELOPE_SENT:
            lc.sent_ms = _first(lc.sent_ms, rec.time_ms)
        elif et == EventType.ENVELOPE_DELIVERED:
            lc.delivered_ms = _first(lc.delivered_ms, rec.time_ms)
        elif et == EventType.ENVELOPE_RECEIVED:
            lc.received_ms = _first(lc.received_ms, rec.time_ms)
        elif et == EventType.DELIVERY_REFUSED:
            lc.refused_ms, lc.refused_reason = rec.time_ms, rec.reason
        elif et == EventType.DELIVERY_EXPIRED:
            lc.expired_ms = rec.time_ms
        elif et == EventType.DELIVERY_RETRY:
            lc.retries += 1
            lc.retry_reasons[rec.reason] = lc.retry_reasons.get(rec.reason, 0) + 1
        elif et == EventType.RECEIPT_INVALID:
            lc.invalid_receipts += 1
        elif et == EventType.ENVELOPE_DUPLICATE:
            lc.duplicates += 1
        elif et == EventType.ENVELOPE_REJECTED and len(lc.rejections) < MAX_KEPT:
            lc.rejections.append((rec.time_ms, rec.node_id, rec.reason))
        elif et in _CONSULTED and len(lc.consultations) < MAX_KEPT:
            lc.consultations.append(Consultation(rec.time_ms, rec.node_id, rec.actor,
                                                 _CONSULTED[et], rec.justification))
        self._timeline(lc, rec, et)

    def _timeline(self, lc: Lifecycle, rec: AuditRecord, et: EventType | None) -> None:
        entry = TimelineEvent(rec.time_ms, rec.node_id, rec.sequence, rec.event_type,
                              rec.actor, describe(rec))
        last = lc.timeline[-1] if lc.timeline else None
        if (et in _REPEATING and last is not None and last.node_id == entry.node_id
                and last.event_type == entry.event_type and last.detail == entry.detail):
            lc.timeline[-1] = dataclasses.replace(last, count=last.count + 1,
                                                  until_ms=rec.time_ms)
        elif et in _MILESTONES or len(lc.timeline) < MAX_TIMELINE:
            lc.timeline.append(entry)
        else:
            lc.omitted_events += 1

    # -- the end --------------------------------------------------------------------------

    def result(self) -> History:
        """The history so far (feeding may go on; each call builds a fresh view)."""
        lifecycles = sorted(self._lifecycles.values(),
                            key=lambda lc: (lc.first_ms, lc.envelope_id))
        for lc in lifecycles:
            lc.timeline.sort(key=lambda e: (e.time_ms, e.node_id, e.sequence))
        grouped: dict[str, list[Lifecycle]] = {}
        for lc in lifecycles:
            key = f"case:{lc.case_id}" if lc.case_id else f"envelope:{lc.envelope_id}"
            grouped.setdefault(key, []).append(lc)
        cases = tuple(Case(key, group[0].case_id, tuple(group))
                      for key, group in grouped.items())
        volumes: dict[tuple[str, str], tuple[int, int]] = {}
        for (day, node, et), n in sorted(self._volumes.items()):
            sent, received = volumes.get((day, node), (0, 0))
            volumes[(day, node)] = ((sent + n, received) if et == EventType.ENVELOPE_SENT
                                    else (sent, received + n))
        stray = tuple(StrayRejection(node, peer, reason, *seen)
                      for (node, peer, reason), seen in sorted(self._stray.items()))
        return History(tuple(lifecycles), cases, dict(sorted(self._nodes.items())), volumes,
                       stray, self.records, self.repeated, self.malformed)


def _learn_parties(lc: Lifecycle, rec: AuditRecord, et: EventType | None) -> None:
    if et in _SENDER_SIDE:
        lc.sender, lc.recipient = lc.sender or rec.node_id, lc.recipient or rec.peer
    elif et in _RECEIVER_SIDE:
        lc.sender, lc.recipient = lc.sender or rec.peer, lc.recipient or rec.node_id


def _first(current: int | None, time_ms: int) -> int:
    return time_ms if current is None else min(current, time_ms)


def _extend(kept: list[str], new: tuple[str, ...]) -> None:
    for item in new:
        if item not in kept and len(kept) < MAX_KEPT:
            kept.append(item)
