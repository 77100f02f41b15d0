"""Cases, requests and deadlines as the node store keeps them (plain values).

A *request* is one lifecycle (``broker.lifecycle``) on this node's side, named by the
envelope id of the message that opened it: both sides use that id, which is how the
exchange correlates their copies. A *case* is this node's own grouping of requests
(e.g. a preservation, the MLA request that follows it, the evidence returned); each side
keeps its own case id and reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.audit import AuditEvent
from broker.model.ids import MessageId
from broker.model.stored import StoredAttachment


@dataclass(frozen=True)
class CaseRecord:
    case_id: str                 # local, e.g. C-4f9a1c2e
    reference: bytes             # sealed at rest: the agency's own case reference
    opened_at_ms: int


@dataclass(frozen=True)
class RequestRecord:
    request_id: MessageId        # envelope id of the opening message (same on both sides)
    case_id: str
    side: str                    # requesting | executing
    kind: str                    # broker.lifecycle.Kind
    state: str                   # broker.lifecycle.State
    peer: str
    message_type: str
    template_id: str
    template_version: str
    header_sha256: bytes         # of the opening message (empty while a draft)
    opened_at_ms: int
    updated_at_ms: int
    peer_reference: bytes = b""  # sealed at rest: the other side's case reference
    drafter: str = ""
    approver: str = ""


@dataclass(frozen=True)
class StepRecord:
    """One applied transition, for the case's history."""

    request_id: MessageId
    at_ms: int
    event: str
    source: str
    target: str
    actor: str
    envelope_id: MessageId | None = None


@dataclass(frozen=True)
class DeadlineRecord:
    request_id: MessageId
    name: str
    kind: str                    # maximum | minimum | "" (as in the template)
    basis: str                   # the legal citation (data from the template or config)
    verification: str            # V | R | U
    started_at_ms: int
    due_at_ms: int
    approaching_at_ms: int
    status: str = "running"      # pending | running | approaching | passed | elapsed |
                                 # met | met_late | stopped
    raised: str = ""             # comma-separated deadline events already raised
    value: str = ""              # ISO 8601 duration, as in the template
    starts: str = "receipt"      # the clock token that starts it
    extends: str = ""            # the deadline it prolongs, if any
    met_by: str = ""             # comma-separated events that meet it (agency deadlines)


@dataclass(frozen=True)
class LifecycleChange:
    """What one step does to the store, applied in the transaction of its cause.

    ``expected_state`` guards against a concurrent step: the request must be in that
    state (None: the request must not exist yet) or the whole transaction is refused.
    """

    request: RequestRecord
    expected_state: str | None
    steps: tuple[StepRecord, ...] = ()
    link: MessageId | None = None          # a message that belongs to this request
    case: CaseRecord | None = None         # a case to open with it
    start: tuple[DeadlineRecord, ...] = ()
    stop: tuple[str, ...] = ()             # names of running deadlines met or replaced
    stop_all: bool = False
    events: tuple[AuditEvent, ...] = field(default=())
    optional: bool = False                 # skip (not fail) if the state moved on
    draft: bytes | None = None             # sealed at rest: a draft to keep until approved
    draft_attachments: tuple[StoredAttachment, ...] = ()   # sealed with the draft
    drop_draft: bool = False
