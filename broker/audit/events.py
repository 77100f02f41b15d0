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
    POLICY_DENIED = "policy.denied"                # a send or access refused by policy
    SEND_REFUSED = "envelope.send_refused"         # an operator's send refused (any other reason)
    ONWARD_TRANSFER = "envelope.forwarded"         # stored data passed on to another node
    AUDIT_CHECKPOINT = "audit.checkpoint"          # a signed tree head over the log so far



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
