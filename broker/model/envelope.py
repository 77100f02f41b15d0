"""Envelope value objects. Built by `broker.wire.codec` from exact bytes, never re-encoded."""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.model.ids import MessageId, NodeId


@dataclass(frozen=True)
class AttachmentEntry:
    """One attachment as the signed manifest declares it."""

    index: int
    size: int
    sha256: bytes
    chunk_size: int
    media_type: str


@dataclass(frozen=True)
class ObligationRef:
    """An obligation attached by the sender's policy decision (id and canonical params)."""

    id: str
    params_json: str = ""


@dataclass(frozen=True)
class EnvelopeHeader:
    version: int
    suite: str
    envelope_id: MessageId
    sender: NodeId
    recipient: NodeId
    sender_key_id: str
    recipient_key_id: str
    message_type: str
    template_id: str
    template_version: str
    created_at_ms: int
    expires_at_ms: int
    body_sha256: bytes
    body_size: int
    attachments: tuple[AttachmentEntry, ...] = ()
    trust_list_version: int = 0
    in_reply_to: MessageId | None = None
    legal_basis: str = ""
    obligations: tuple[ObligationRef, ...] = ()
    policy_set_hash: bytes = b""


@dataclass(frozen=True)
class AttachmentKey:
    index: int
    key: bytes = field(repr=False)
    filename: str = field(repr=False)


@dataclass(frozen=True)
class EvidenceCustody:
    """Chain of custody of one evidence attachment (sealed: a source may name a person)."""

    index: int
    acquired_by: str = field(default="", repr=False)
    acquired_at_ms: int = 0
    method: str = field(default="", repr=False)
    source: str = field(default="", repr=False)
    request_id: MessageId | None = None
    request_reference: str = field(default="", repr=False)


@dataclass(frozen=True)
class Body:
    """The sealed plaintext: payload and attachment keys. Holds content: never log it."""

    sender: NodeId
    recipient: NodeId
    envelope_id: MessageId
    payload: bytes = field(repr=False)
    payload_media_type: str = "application/json"
    attachment_keys: tuple[AttachmentKey, ...] = field(default=(), repr=False)
    case_reference: str = field(default="", repr=False)
    related_requests: tuple[MessageId, ...] = ()
    custody: tuple[EvidenceCustody, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class SealedEnvelope:
    """The three byte strings that travel: signed header, signature, sealed body."""

    header: bytes
    signature: bytes
    sealed_body: bytes

    @property
    def size(self) -> int:
        return len(self.header) + len(self.signature) + len(self.sealed_body)


@dataclass(frozen=True)
class VerifiedEnvelope:
    """An envelope whose signature, binding, times and seal all checked out."""

    raw: SealedEnvelope
    header: EnvelopeHeader
    body: Body = field(repr=False)
    header_sha256: bytes
    body_bytes: bytes = field(default=b"", repr=False)   # the exact plaintext Body bytes

    @property
    def envelope_id(self) -> MessageId:
        return self.header.envelope_id
