"""The audit event catalogue and the event value object.

An event carries ids, hashes, decisions and reasons only: never personal data or
request content. The journal turns an event into a hash-chained `AuditRecord`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from broker.model import MessageId


class EventType(enum.StrEnum):
    NODE_STARTED = "node.started"
    NODE_STOPPED = "node.stopped"
    TRUST_LIST_LOADED = "trust_list.loaded"
    ENVELOPE_SENT = "envelope.sent"                # committed to the outbox (collection)
    ENVELOPE_DELIVERED = "envelope.delivered"      # signed receipt verified (disclosure)
    DELIVERY_RETRY = "delivery.retry"              # an attempt failed, will retry
    DELIVERY_REFUSED = "delivery.refused"          # the peer refused it for good
    DELIVERY_EXPIRED = "delivery.expired"          # dead-lettered at expiry
    RECEIPT_INVALID = "receipt.invalid"
    ENVELOPE_RECEIVED = "envelope.received"        # accepted and stored
    ENVELOPE_DUPLICATE = "envelope.duplicate"      # re-delivery, original receipt returned
    ENVELOPE_REJECTED = "envelope.rejected"        # refused, nothing stored
    MESSAGE_CONSULTED = "message.consulted"        # an operator read a message
    ATTACHMENT_CONSULTED = "attachment.consulted"  # an operator read an attachment
    MESSAGE_EXPORTED = "message.exported"          # a message and its evidence put in a bundle
    CASE_EXPORTED = "case.exported"                # a case bundle written (case.json digest)
    POLICY_DENIED = "policy.denied"                # a send or access refused by policy
    SEND_REFUSED = "envelope.send_refused"         # an operator's send refused (any other reason)
    ONWARD_TRANSFER = "envelope.forwarded"         # stored data passed on to another node
    AUDIT_CHECKPOINT = "audit.checkpoint"          # a signed tree head over the log so far
    # The request lifecycle (broker.lifecycle): one record per step of a request.
    REQUEST_DRAFTED = "request.drafted"
    REQUEST_APPROVED = "request.approved"
    REQUEST_SENT = "request.sent"
    REQUEST_DELIVERED = "request.delivered"        # requesting side: receipt of the request
    REQUEST_RECEIVED = "request.received"          # executing side
    REQUEST_ACKNOWLEDGED = "request.acknowledged"
    REQUEST_EXECUTION_STARTED = "request.execution_started"
    REQUEST_INFO_REQUESTED = "request.additional_information_requested"
    REQUEST_INFO_SUPPLIED = "request.additional_information_supplied"
    REQUEST_EXECUTED = "request.executed"
    REQUEST_PARTIALLY_EXECUTED = "request.partially_executed"
    REQUEST_REFUSED = "request.refused"
    REQUEST_PARTIALLY_REFUSED = "request.partially_refused"
    REQUEST_POSTPONED = "request.postponed"
    REQUEST_WITHDRAWN = "request.withdrawn"
    REQUEST_PARTIALLY_WITHDRAWN = "request.partially_withdrawn"
    REQUEST_CLOSED = "request.closed"
    REQUEST_REFUSED_STEP = "request.step_refused"  # an illegal or unapproved step, refused
    PRESERVATION_CONFIRMED = "preservation.confirmed"
    PRESERVATION_EXTENDED = "preservation.extended"
    PRESERVATION_FOLLOWED_UP = "preservation.followed_up"
    PRESERVATION_EXPIRED = "preservation.expired"
    PRESERVATION_LIFTED = "preservation.lifted"
    CASE_REFERENCE_SET = "case.reference_set"     # an agency's own reference for a case
    DEADLINE_APPROACHING = "deadline.approaching"
    DEADLINE_PASSED = "deadline.passed"
    DEADLINE_ELAPSED = "deadline.elapsed"          # a minimum period has run



@dataclass(frozen=True)
class AuditEvent:
    event_type: EventType
    actor: str                                      # node:<id> or person:<subject>
    envelope_id: MessageId | None = None
    peer: str = ""
    message_type: str = ""
    template_id: str = ""
    template_version: str = ""
    header_sha256: bytes = b""
    body_sha256: bytes = b""
    reason: str = ""                                # an error code, never free text
    attachment_sha256: tuple[bytes, ...] = field(default=())
    policy_decision_ids: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    case_id: str = ""
    checkpoint: bytes = b""                         # SignedTreeHead bytes
    justification: str = ""                         # LED Art. 25, a code or reference
    recipients: tuple[str, ...] = ()
    peer_tree_head: bytes = b""                     # the receiver's tree head from a receipt
    policy_set_hash: bytes = b""                    # the policy set that decided
