"""Pure value objects: ids, envelopes, receipts. No I/O, no generated code."""

from broker.model.envelope import (
    AttachmentEntry,
    AttachmentKey,
    Body,
    EnvelopeHeader,
    EvidenceCustody,
    ObligationRef,
    SealedEnvelope,
    VerifiedEnvelope,
)
from broker.model.ids import MessageId, NodeId, validate_node_id
from broker.model.receipt import Receipt, ReceiptBody, ReceiptStatus

__all__ = [
    "AttachmentEntry",
    "AttachmentKey",
    "Body",
    "EnvelopeHeader",
    "EvidenceCustody",
    "MessageId",
    "NodeId",
    "ObligationRef",
    "Receipt",
    "ReceiptBody",
    "ReceiptStatus",
    "SealedEnvelope",
    "VerifiedEnvelope",
    "validate_node_id",
]
