"""The replayed history of requests: per-envelope lifecycles, cases, node activity.

Values built by :class:`broker.audit.replay.Replay` from audit records alone, and read
by the CLI and the HTML report. Times are each logging node's clock, in ms.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime

_SECOND, _MINUTE, _HOUR, _DAY = 1000, 60_000, 3_600_000, 86_400_000


def _datetime(ms: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def utc(ms: int | None) -> str:
    """``2026-03-01 09:30:05.123Z`` for a time in ms since the epoch; ``-`` for none."""
    if ms is None:
        return "-"
    at = _datetime(ms)
    if at is None:
        return f"{ms} ms (out of range)"
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def utc_day(ms: int) -> str:
    """The UTC calendar day of a time, ``2026-03-01``."""
    at = _datetime(ms)
    return at.strftime("%Y-%m-%d") if at is not None else "out-of-range"


def visible(text: str) -> str:
    """`text` with control and invisible format characters (ANSI escapes, bidi
    overrides, zero-width marks) shown as escapes, so that a record field can neither
    restyle the auditor's terminal nor reorder what the auditor reads."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def duration(ms: int | None) -> str:
    """A duration for people: ``850 ms``, ``12.4 s``, ``3 min 05 s``, ``2 d 04 h``."""
    if ms is None:
        return "-"
    sign, ms = ("-" if ms < 0 else ""), abs(ms)
    if ms < _SECOND:
        text = f"{ms} ms"
    elif ms < _MINUTE:
        text = f"{ms / _SECOND:.1f} s"
    elif ms < _HOUR:
        text = f"{ms // _MINUTE} min {ms % _MINUTE // _SECOND:02d} s"
    elif ms < _DAY:
        text = f"{ms // _HOUR} h {ms % _HOUR // _MINUTE:02d} min"
    else:
        text = f"{ms // _DAY} d {ms % _DAY // _HOUR:02d} h"
    return sign + text


@dataclass(frozen=True)
class TimelineEvent:
    """One line of a request's timeline; `count` > 1 for collapsed repeats."""

    time_ms: int
    node_id: str
    sequence: int
    event_type: str
    actor: str
    detail: str
    count: int = 1
    until_ms: int = 0          # time of the last repeat when count > 1

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Consultation:
    """An operator read a message or one of its attachments (LED Art. 25 consultation)."""

    time_ms: int
    node_id: str
    actor: str
    what: str                  # "message" or "attachment"
    justification: str

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass
class Lifecycle:
    """Everything the logs say about one envelope. Built by :class:`Replay`."""

    envelope_id: str
    case_id: str = ""
    sender: str = ""
    recipient: str = ""
    message_type: str = ""
    template_id: str = ""
    template_version: str = ""
    sent_ms: int | None = None          # committed to the sender's outbox
    delivered_ms: int | None = None     # receipt verified at the sender (sender's clock)
    received_ms: int | None = None      # accepted and stored (recipient's clock)
    refused_ms: int | None = None
    refused_reason: str = ""
    expired_ms: int | None = None
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    invalid_receipts: int = 0
    duplicates: int = 0
    rejections: list[tuple[int, str, str]] = field(default_factory=list)  # time, node, reason
    consultations: list[Consultation] = field(default_factory=list)
    policy_decision_ids: list[str] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)
    omitted_events: int = 0
    first_ms: int = 0

    @property
    def template(self) -> str:
        return f"{self.template_id}@{self.template_version}" if self.template_id else ""

    @property
    def status(self) -> str:
        """refused, expired, delivered, received, rejected, pending or unknown."""
        if self.refused_ms is not None:
            return "refused"
        if self.expired_ms is not None:
            return "expired"
        if self.delivered_ms is not None:
            return "delivered"
        if self.received_ms is not None:
            return "received"
        if self.rejections:
            return "rejected"
        return "pending" if self.sent_ms is not None else "unknown"

    @property
    def delivery_ms(self) -> int | None:
        """Sent -> receipt verified, both on the sender's clock."""
        if self.sent_ms is None or self.delivered_ms is None:
            return None
        return self.delivered_ms - self.sent_ms

    @property
    def transit_ms(self) -> int | None:
        """Sent (sender's clock) -> received (recipient's clock): includes clock skew."""
        if self.sent_ms is None or self.received_ms is None:
            return None
        return self.received_ms - self.sent_ms

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "envelope_id": self.envelope_id, "case_id": self.case_id, "status": self.status,
            "sender": self.sender, "recipient": self.recipient,
            "message_type": self.message_type, "template_id": self.template_id,
            "template_version": self.template_version}
        for name in ("sent", "delivered", "received", "refused", "expired"):
            ms = getattr(self, f"{name}_ms")
            out[f"{name}_ms"], out[f"{name}_at"] = ms, utc(ms) if ms is not None else None
        out.update({
            "refused_reason": self.refused_reason, "retries": self.retries,
            "retry_reasons": dict(self.retry_reasons), "invalid_receipts": self.invalid_receipts,
            "duplicates": self.duplicates, "delivery_ms": self.delivery_ms,
            "transit_ms": self.transit_ms,
            "rejections": [{"time_ms": t, "node_id": n, "reason": r}
                           for t, n, r in self.rejections],
            "consultations": [c.as_dict() for c in self.consultations],
            "policy_decision_ids": list(self.policy_decision_ids),
            "citations": list(self.citations),
            "timeline": [e.as_dict() for e in self.timeline],
            "omitted_events": self.omitted_events})
        return out


@dataclass(frozen=True)
class Case:
    """Requests grouped by case id; an envelope without one is its own case."""

    key: str
    case_id: str
    lifecycles: tuple[Lifecycle, ...]

    @property
    def timeline(self) -> list[tuple[str, TimelineEvent]]:
        """Every (envelope id, event) of the case, in time order."""
        rows = [(lc.envelope_id, e) for lc in self.lifecycles for e in lc.timeline]
        return sorted(rows, key=lambda r: (r[1].time_ms, r[1].node_id, r[1].sequence))


@dataclass
class NodeActivity:
    records: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    events: collections.Counter[str] = field(default_factory=collections.Counter)


@dataclass(frozen=True)
class StrayRejection:
    """Refusals with no envelope id (transport-level or unauthenticated), aggregated."""

    node_id: str
    peer: str
    reason: str
    count: int
    first_ms: int
    last_ms: int


@dataclass(frozen=True)
class History:
    lifecycles: tuple[Lifecycle, ...]        # by first appearance in time
    cases: tuple[Case, ...]
    nodes: dict[str, NodeActivity]
    volumes: dict[tuple[str, str], tuple[int, int]]   # (UTC day, node) -> (sent, received)
    stray_rejections: tuple[StrayRejection, ...]
    records: int
    repeated_records: int                    # (node, sequence) seen before: skipped
    malformed_records: int

    def lifecycle(self, envelope_id: str) -> Lifecycle:
        return next(lc for lc in self.lifecycles if lc.envelope_id == envelope_id)
