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
    envelope_id: MessageId
    recipient: str
    envelope: bytes
    attempts: int
    expires_at_ms: int
