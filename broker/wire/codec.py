"""Strict encoding and decoding of the signed wire formats.

Decoding is strict because signatures cover exact bytes and protobuf is not canonical:
a signed message must carry no unknown fields (parser differentials) and must be the
canonical encoding of what it parses to (no duplicate fields, no reordering). Parse
errors become `MalformedMessage`; generated types never leave this module.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from broker.audit.events import AuditEvent
from broker.errors import MalformedMessage
from broker.model import (
    AttachmentEntry,
    AttachmentKey,
    Body,
    EnvelopeHeader,
    EvidenceCustody,
    MessageId,
    ObligationRef,
    Receipt,
    ReceiptBody,
    ReceiptStatus,
    SealedEnvelope,
)
from broker.model.audit_record import AuditEssentials, AuditRecord
from broker.model.checkpoint import SignedTreeHead, TreeHead
from broker.wire.gen.rogatory.v1 import audit_pb2
from broker.wire.gen.rogatory.v1 import envelope_pb2 as pb

M = TypeVar("M", bound=Message)


def _parse_strict(cls: type[M], data: bytes, what: str) -> M:
    try:
        msg = cls.FromString(data)
    except DecodeError as e:
        raise MalformedMessage(f"{what} is not a valid protobuf message") from e
    _reject_unknown(msg, what)
    if msg.SerializeToString(deterministic=True) != data:
        raise MalformedMessage(f"{what} is not canonically encoded", code="NON_CANONICAL")
    return msg


def _reject_unknown(msg: Message, what: str) -> None:
    if len(UnknownFieldSet(msg)):
        raise MalformedMessage(f"{what} carries unknown fields", code="UNKNOWN_FIELDS")
    for desc, value in msg.ListFields():
        if desc.message_type is None:
            continue
        items = value if desc.is_repeated else [value]
        for item in items:
            _reject_unknown(item, what)


def _encode(msg: Message) -> bytes:
    return msg.SerializeToString(deterministic=True)


# -- envelope -------------------------------------------------------------------------

def encode_header(h: EnvelopeHeader) -> bytes:
    msg = pb.EnvelopeHeader(
        version=h.version,
        suite=h.suite,
        envelope_id=h.envelope_id.raw,
        sender=h.sender,
        recipient=h.recipient,
        sender_key_id=h.sender_key_id,
        recipient_key_id=h.recipient_key_id,
        message_type=h.message_type,
        template_id=h.template_id,
        template_version=h.template_version,
        created_at_ms=h.created_at_ms,
        expires_at_ms=h.expires_at_ms,
        body_sha256=h.body_sha256,
        body_size=h.body_size,
        attachments=[
            pb.AttachmentEntry(index=a.index, size=a.size, sha256=a.sha256,
                               chunk_size=a.chunk_size, media_type=a.media_type)
            for a in h.attachments
        ],
        trust_list_version=h.trust_list_version,
        in_reply_to=h.in_reply_to.raw if h.in_reply_to else b"",
        legal_basis=h.legal_basis,
        obligations=[pb.ObligationRef(id=o.id, params_json=o.params_json)
                     for o in h.obligations],
        policy_set_hash=h.policy_set_hash,
    )
    return _encode(msg)


def decode_header(data: bytes) -> EnvelopeHeader:
    m = _parse_strict(pb.EnvelopeHeader, data, "envelope header")
    return EnvelopeHeader(
        version=m.version,
        suite=m.suite,
        envelope_id=MessageId(m.envelope_id),
        sender=m.sender,
        recipient=m.recipient,
        sender_key_id=m.sender_key_id,
        recipient_key_id=m.recipient_key_id,
        message_type=m.message_type,
        template_id=m.template_id,
        template_version=m.template_version,
        created_at_ms=m.created_at_ms,
        expires_at_ms=m.expires_at_ms,
        body_sha256=m.body_sha256,
        body_size=m.body_size,
        attachments=tuple(
            AttachmentEntry(index=a.index, size=a.size, sha256=a.sha256,
                            chunk_size=a.chunk_size, media_type=a.media_type)
            for a in m.attachments
        ),
        trust_list_version=m.trust_list_version,
        in_reply_to=MessageId(m.in_reply_to) if m.in_reply_to else None,
        legal_basis=m.legal_basis,
        obligations=tuple(ObligationRef(o.id, o.params_json) for o in m.obligations),
        policy_set_hash=m.policy_set_hash,
    )


def encode_body(b: Body) -> bytes:
    return _encode(pb.Body(
        sender=b.sender,
        recipient=b.recipient,
        envelope_id=b.envelope_id.raw,
        payload=b.payload,
        payload_media_type=b.payload_media_type,
        attachment_keys=[pb.AttachmentKey(index=k.index, key=k.key, filename=k.filename)
                         for k in b.attachment_keys],
        case_reference=b.case_reference,
        related_requests=[r.raw for r in b.related_requests],
        custody=[pb.EvidenceCustody(
            index=c.index, acquired_by=c.acquired_by, acquired_at_ms=c.acquired_at_ms,
            method=c.method, source=c.source,
            request_id=c.request_id.raw if c.request_id else b"",
            request_reference=c.request_reference) for c in b.custody],
    ))


def decode_body(data: bytes) -> Body:
    m = _parse_strict(pb.Body, data, "envelope body")
    return Body(
        sender=m.sender,
        recipient=m.recipient,
        envelope_id=MessageId(m.envelope_id),
        payload=m.payload,
        payload_media_type=m.payload_media_type,
        attachment_keys=tuple(AttachmentKey(index=k.index, key=k.key, filename=k.filename)
                              for k in m.attachment_keys),
        case_reference=m.case_reference,
        related_requests=tuple(MessageId(r) for r in m.related_requests),
        custody=tuple(EvidenceCustody(
            index=c.index, acquired_by=c.acquired_by, acquired_at_ms=c.acquired_at_ms,
            method=c.method, source=c.source,
            request_id=MessageId(c.request_id) if c.request_id else None,
            request_reference=c.request_reference) for c in m.custody),
    )


def encode_envelope(env: SealedEnvelope) -> bytes:
    return _encode(to_envelope_pb(env))


def to_envelope_pb(env: SealedEnvelope) -> pb.Envelope:
    return pb.Envelope(header=env.header, signature=env.signature, sealed_body=env.sealed_body)


def from_envelope_pb(m: pb.Envelope) -> SealedEnvelope:
    _reject_unknown(m, "envelope")
    return SealedEnvelope(header=m.header, signature=m.signature, sealed_body=m.sealed_body)


def decode_envelope(data: bytes) -> SealedEnvelope:
    m = _parse_strict(pb.Envelope, data, "envelope")
    return from_envelope_pb(m)


# -- receipt --------------------------------------------------------------------------

def encode_receipt_body(r: ReceiptBody) -> bytes:
    return _encode(pb.ReceiptBody(
        version=r.version,
        envelope_id=r.envelope_id.raw,
        receiver=r.receiver,
        sender=r.sender,
        receiver_key_id=r.receiver_key_id,
        header_sha256=r.header_sha256,
        body_sha256=r.body_sha256,
        attachment_sha256=list(r.attachment_sha256),
        received_at_ms=r.received_at_ms,
        status=int(r.status),  # type: ignore[arg-type]
        trust_list_version=r.trust_list_version,
        receiver_tree_head=r.receiver_tree_head,
    ))


def decode_receipt_body(data: bytes) -> ReceiptBody:
    m = _parse_strict(pb.ReceiptBody, data, "receipt")
    try:
        status = ReceiptStatus(m.status)
    except ValueError as e:
        raise MalformedMessage("receipt has an unknown status") from e
    return ReceiptBody(
        version=m.version,
        envelope_id=MessageId(m.envelope_id),
        receiver=m.receiver,
        sender=m.sender,
        receiver_key_id=m.receiver_key_id,
        header_sha256=m.header_sha256,
        body_sha256=m.body_sha256,
        attachment_sha256=tuple(m.attachment_sha256),
        received_at_ms=m.received_at_ms,
        status=status,
        trust_list_version=m.trust_list_version,
        receiver_tree_head=m.receiver_tree_head,
    )


def to_receipt_pb(r: Receipt) -> pb.Receipt:
    return pb.Receipt(body=r.body, signature=r.signature)


def from_receipt_pb(m: pb.Receipt) -> Receipt:
    return Receipt(body=m.body, signature=m.signature)


def encode_receipt(r: Receipt) -> bytes:
    return _encode(to_receipt_pb(r))


def decode_receipt(data: bytes) -> Receipt:
    return from_receipt_pb(_parse_strict(pb.Receipt, data, "receipt"))


# -- audit ----------------------------------------------------------------------------

def encode_audit_record(
    event: AuditEvent, *, node_id: str, sequence: int, time_ms: int, prev_hash: bytes
) -> bytes:
    """The exact bytes of one audit record; the chain hashes these bytes."""
    return _encode(audit_pb2.AuditRecord(
        node_id=node_id,
        sequence=sequence,
        time_ms=time_ms,
        actor=event.actor,
        event_type=str(event.event_type),
        envelope_id=event.envelope_id.raw if event.envelope_id else b"",
        peer=event.peer,
        message_type=event.message_type,
        template_id=event.template_id,
        template_version=event.template_version,
        header_sha256=event.header_sha256,
        body_sha256=event.body_sha256,
        reason=event.reason,
        policy_decision_ids=list(event.policy_decision_ids),
        citations=list(event.citations),
        prev_hash=prev_hash,
        attachment_sha256=list(event.attachment_sha256),
        case_id=event.case_id,
        checkpoint=(audit_pb2.SignedTreeHead.FromString(event.checkpoint)
                    if event.checkpoint else None),
        justification=event.justification,
        recipients=list(event.recipients),
        peer_tree_head=event.peer_tree_head,
        policy_set_hash=event.policy_set_hash,
    ))


def decode_audit(data: bytes) -> AuditRecord:
    """Strictly parse one audit record's exact bytes."""
    m = _parse_strict(audit_pb2.AuditRecord, data, "audit record")
    return AuditRecord(
        node_id=m.node_id, sequence=m.sequence, time_ms=m.time_ms, actor=m.actor,
        event_type=m.event_type, envelope_id=m.envelope_id, peer=m.peer,
        message_type=m.message_type, template_id=m.template_id,
        template_version=m.template_version, header_sha256=m.header_sha256,
        body_sha256=m.body_sha256, reason=m.reason,
        policy_decision_ids=tuple(m.policy_decision_ids), citations=tuple(m.citations),
        prev_hash=m.prev_hash, attachment_sha256=tuple(m.attachment_sha256),
        case_id=m.case_id,
        checkpoint=_encode(m.checkpoint) if m.HasField("checkpoint") else b"",
        justification=m.justification, recipients=tuple(m.recipients),
        peer_tree_head=m.peer_tree_head, policy_set_hash=m.policy_set_hash)


def decode_audit_essentials(data: bytes) -> AuditEssentials:
    """What the auditor checks, from exact bytes; strict like every signed-log parse
    (no unknown fields, canonical encoding) but without building the full record."""
    try:
        m = _audit_record_from(data)
    except DecodeError as e:
        raise MalformedMessage("audit record is not a valid protobuf message") from e
    # `deterministic` only orders map entries, and an AuditRecord has no maps: the plain
    # serialization is the canonical one, without the cost of parsing a keyword argument.
    if m.SerializeToString() != data or len(UnknownFieldSet(m)):
        raise MalformedMessage("audit record is not canonically encoded", code="NON_CANONICAL")
    # tuple.__new__: the NamedTuple's own __new__ is a Python frame per record
    return _new_essentials(AuditEssentials, (
        m.node_id, m.sequence, m.prev_hash, m.event_type, m.envelope_id, m.peer,
        m.header_sha256, _encode(m.checkpoint) if m.HasField("checkpoint") else b"",
        m.peer_tree_head))


_audit_record_from = audit_pb2.AuditRecord.FromString
_new_essentials = tuple.__new__


def decode_audit_record(data: bytes) -> dict[str, object]:
    """A plain JSON-ready view of one audit record (reports, CLI, tests)."""
    r = decode_audit(data)
    return {
        "node_id": r.node_id, "sequence": r.sequence, "time_ms": r.time_ms, "actor": r.actor,
        "event_type": r.event_type, "envelope_id": r.envelope_id.hex(), "peer": r.peer,
        "message_type": r.message_type, "template_id": r.template_id,
        "template_version": r.template_version, "header_sha256": r.header_sha256.hex(),
        "body_sha256": r.body_sha256.hex(), "reason": r.reason,
        "prev_hash": r.prev_hash.hex(),
        "attachment_sha256": [h.hex() for h in r.attachment_sha256],
        "policy_decision_ids": list(r.policy_decision_ids), "citations": list(r.citations),
        "case_id": r.case_id, "justification": r.justification,
        "recipients": list(r.recipients), "checkpoint": r.checkpoint.hex(),
        "policy_set_hash": r.policy_set_hash.hex(),
    }


# -- tree heads -----------------------------------------------------------------------

def encode_tree_head(t: TreeHead) -> bytes:
    return _encode(audit_pb2.TreeHead(node_id=t.node_id, tree_size=t.tree_size,
                                      root_hash=t.root_hash, time_ms=t.time_ms,
                                      key_id=t.key_id))


def decode_tree_head(data: bytes) -> TreeHead:
    m = _parse_strict(audit_pb2.TreeHead, data, "tree head")
    return TreeHead(node_id=m.node_id, tree_size=m.tree_size, root_hash=m.root_hash,
                    time_ms=m.time_ms, key_id=m.key_id)


def encode_signed_tree_head(sth: SignedTreeHead) -> bytes:
    return _encode(audit_pb2.SignedTreeHead(tree_head=sth.tree_head, signature=sth.signature))


def decode_signed_tree_head(data: bytes) -> SignedTreeHead:
    m = _parse_strict(audit_pb2.SignedTreeHead, data, "signed tree head")
    return SignedTreeHead(tree_head=m.tree_head, signature=m.signature,
                          head=decode_tree_head(m.tree_head))
