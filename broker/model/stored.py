"""What the node store holds, as plain values (sealed fields stay sealed)."""

from __future__ import annotations

from dataclasses import dataclass

from broker.model.ids import MessageId


@dataclass(frozen=True)
class StoredAttachment:
    index: int
    size: int
    sha256: bytes
    chunk_size: int
    media_type: str
    filename: bytes        # sealed at rest
    wrapped_key: bytes     # sealed at rest
    path: str


@dataclass(frozen=True)
class StoredMessage:
    direction: str
    envelope_id: MessageId
    peer: str
    message_type: str
    template_id: str
    template_version: str
    created_at_ms: int
    expires_at_ms: int
    header: bytes
    signature: bytes
    header_sha256: bytes
    payload: bytes         # sealed at rest
    status: str
    stored_at_ms: int
    attachments: tuple[StoredAttachment, ...] = ()
    legal_basis: str = ""
    obligations: str = "[]"    # JSON list of {id, params}: enforced on access and onward use
    body: bytes = b""          # sealed at rest: the exact plaintext Body bytes (for export)


@dataclass(frozen=True)
class OutboxItem:
    """A pending delivery, with what an attempt needs of its message (read with it, so
    an attempt does not read the stored message again)."""

    envelope_id: MessageId
    recipient: str
    envelope: bytes
    attempts: int
    expires_at_ms: int
    message_type: str = ""
    template_id: str = ""
    template_version: str = ""
    header_sha256: bytes = b""
    attachments: tuple[StoredAttachment, ...] = ()


@dataclass(frozen=True)
class DueOutbox:
    """The deliveries due now, and when the next pending one not due yet falls due."""

    items: tuple[OutboxItem, ...]
    next_due_ms: int | None
