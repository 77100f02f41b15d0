"""Strict wire codec: exact round trips, and refusal of anything that is not the single
canonical encoding of a known message (garbage, unknown fields, duplicates, reordering).

Signatures cover exact bytes, and protobuf keeps unknown fields and lets duplicate
scalars win last; so a decoder that accepts either opens a parser differential between
the layer that verifies and the layer that acts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit.events import AuditEvent, EventType
from broker.errors import MalformedMessage
from broker.model import (
    AttachmentEntry,
    AttachmentKey,
    Body,
    EnvelopeHeader,
    MessageId,
    Receipt,
    ReceiptBody,
    ReceiptStatus,
    SealedEnvelope,
)
from broker.wire import codec
from broker.wire.gen.rogatory.v1 import audit_pb2
from broker.wire.gen.rogatory.v1 import envelope_pb2 as pb

pytestmark = [pytest.mark.unit, pytest.mark.adversarial]

UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=40)
DIGEST = st.binary(min_size=0, max_size=48)
MESSAGE_IDS = st.binary(min_size=16, max_size=16).map(MessageId)

ATTACHMENT_ENTRIES = st.builds(AttachmentEntry, index=UINT32, size=UINT64, sha256=DIGEST,
                               chunk_size=UINT32, media_type=TEXT)
HEADERS = st.builds(
    EnvelopeHeader, version=UINT32, suite=TEXT, envelope_id=MESSAGE_IDS, sender=TEXT,
    recipient=TEXT, sender_key_id=TEXT, recipient_key_id=TEXT, message_type=TEXT,
    template_id=TEXT, template_version=TEXT, created_at_ms=INT64, expires_at_ms=INT64,
    body_sha256=DIGEST, body_size=UINT64,
    attachments=st.lists(ATTACHMENT_ENTRIES, max_size=4).map(tuple),
    trust_list_version=UINT64, in_reply_to=st.none() | MESSAGE_IDS)
BODIES = st.builds(
    Body, sender=TEXT, recipient=TEXT, envelope_id=MESSAGE_IDS,
    payload=st.binary(max_size=200), payload_media_type=TEXT,
    attachment_keys=st.lists(st.builds(AttachmentKey, index=UINT32, key=st.binary(max_size=40),
                                       filename=TEXT), max_size=4).map(tuple))
RECEIPT_BODIES = st.builds(
    ReceiptBody, version=UINT32, envelope_id=MESSAGE_IDS, receiver=TEXT, sender=TEXT,
    receiver_key_id=TEXT, header_sha256=DIGEST, body_sha256=DIGEST,
    attachment_sha256=st.lists(DIGEST, max_size=4).map(tuple), received_at_ms=INT64,
    status=st.sampled_from(ReceiptStatus), trust_list_version=UINT64)
SEALED = st.builds(SealedEnvelope, header=st.binary(max_size=100),
                   signature=st.binary(max_size=80), sealed_body=st.binary(max_size=100))
RECEIPTS = st.builds(Receipt, body=st.binary(max_size=100), signature=st.binary(max_size=80))
AUDIT_EVENTS = st.builds(
    AuditEvent, event_type=st.sampled_from(EventType), actor=TEXT,
    envelope_id=st.none() | MESSAGE_IDS, peer=TEXT, message_type=TEXT, template_id=TEXT,
    template_version=TEXT, header_sha256=DIGEST, body_sha256=DIGEST, reason=TEXT,
    attachment_sha256=st.lists(DIGEST, max_size=3).map(tuple),
    policy_decision_ids=st.lists(TEXT, max_size=3).map(tuple),
    citations=st.lists(TEXT, max_size=3).map(tuple))

DECODERS: dict[str, Callable[[bytes], object]] = {
    "header": codec.decode_header,
    "body": codec.decode_body,
    "envelope": codec.decode_envelope,
    "receipt": codec.decode_receipt,
    "receipt_body": codec.decode_receipt_body,
    "audit_record": codec.decode_audit_record,
}
ENCODE_DECODE = pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())

EID = MessageId(bytes(range(16)))
HEADER = EnvelopeHeader(
    version=1, suite="suite", envelope_id=EID, sender="DE-BFJ", recipient="NL-24X7",
    sender_key_id="ed25519:aa", recipient_key_id="x25519:bb", message_type="preservation",
    template_id="eu.preservation", template_version="1.0", created_at_ms=1_000,
    expires_at_ms=2_000, body_sha256=b"\x11" * 32, body_size=99,
    attachments=(AttachmentEntry(0, 10, b"\x22" * 32, 64, "application/pdf"),
                 AttachmentEntry(1, 0, b"\x33" * 32, 64, "text/plain")))
BODY = Body(sender="DE-BFJ", recipient="NL-24X7", envelope_id=EID, payload=b"{}",
            attachment_keys=(AttachmentKey(0, b"\x01" * 32, "a.pdf"),))
RECEIPT_BODY = ReceiptBody(
    version=1, envelope_id=EID, receiver="NL-24X7", sender="DE-BFJ",
    receiver_key_id="ed25519:cc", header_sha256=b"\x44" * 32, body_sha256=b"\x55" * 32,
    attachment_sha256=(b"\x22" * 32,), received_at_ms=1_500, status=ReceiptStatus.ACCEPTED,
    trust_list_version=3)
EVENT = AuditEvent(EventType.ENVELOPE_RECEIVED, actor="node:NL-24X7", envelope_id=EID,
                   peer="DE-BFJ", message_type="preservation", template_id="eu.preservation",
                   template_version="1.0", header_sha256=b"\x44" * 32,
                   body_sha256=b"\x55" * 32, reason="", attachment_sha256=(b"\x22" * 32,),
                   policy_decision_ids=("p-1",), citations=("Art. 6 GDPR",))


def audit_record(event: AuditEvent = EVENT, *, sequence: int = 7) -> bytes:
    return codec.encode_audit_record(event, node_id="NL-24X7", sequence=sequence,
                                     time_ms=1_600, prev_hash=b"\x66" * 32)


VALID: dict[str, bytes] = {
    "header": codec.encode_header(HEADER),
    "body": codec.encode_body(BODY),
    "envelope": codec.encode_envelope(SealedEnvelope(b"h" * 5, b"s" * 64, b"b" * 7)),
    "receipt": codec.encode_receipt(Receipt(b"r" * 9, b"s" * 64)),
    "receipt_body": codec.encode_receipt_body(RECEIPT_BODY),
    "audit_record": audit_record(),
}
VALID_CASES = pytest.mark.parametrize(("decode", "valid"),
                                      [(DECODERS[k], VALID[k]) for k in DECODERS],
                                      ids=DECODERS.keys())


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def length_delimited(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def varint_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


# -- round trips -------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(header=HEADERS)
def test_header_round_trip(header: EnvelopeHeader) -> None:
    raw = codec.encode_header(header)
    assert codec.decode_header(raw) == header
    assert codec.encode_header(codec.decode_header(raw)) == raw


@settings(max_examples=150, deadline=None)
@given(body=BODIES)
def test_body_round_trip(body: Body) -> None:
    raw = codec.encode_body(body)
    assert codec.decode_body(raw) == body


@settings(max_examples=150, deadline=None)
@given(body=RECEIPT_BODIES)
def test_receipt_body_round_trip(body: ReceiptBody) -> None:
    raw = codec.encode_receipt_body(body)
    assert codec.decode_receipt_body(raw) == body


@settings(max_examples=100, deadline=None)
@given(env=SEALED)
def test_envelope_round_trip(env: SealedEnvelope) -> None:
    raw = codec.encode_envelope(env)
    assert codec.decode_envelope(raw) == env
    assert codec.from_envelope_pb(codec.to_envelope_pb(env)) == env


@settings(max_examples=100, deadline=None)
@given(receipt=RECEIPTS)
def test_receipt_round_trip(receipt: Receipt) -> None:
    raw = codec.encode_receipt(receipt)
    assert codec.decode_receipt(raw) == receipt
    assert codec.from_receipt_pb(codec.to_receipt_pb(receipt)) == receipt


@settings(max_examples=150, deadline=None)
@given(event=AUDIT_EVENTS, node_id=TEXT, sequence=UINT64, time_ms=INT64, prev_hash=DIGEST)
def test_audit_record_round_trip(event: AuditEvent, node_id: str, sequence: int,
                                 time_ms: int, prev_hash: bytes) -> None:
    raw = codec.encode_audit_record(event, node_id=node_id, sequence=sequence,
                                    time_ms=time_ms, prev_hash=prev_hash)
    view = codec.decode_audit_record(raw)
    expected = {
        "node_id": node_id, "sequence": sequence, "time_ms": time_ms, "actor": event.actor,
        "event_type": str(event.event_type),
        "envelope_id": event.envelope_id.raw.hex() if event.envelope_id else "",
        "peer": event.peer, "message_type": event.message_type,
        "template_id": event.template_id, "template_version": event.template_version,
        "header_sha256": event.header_sha256.hex(), "body_sha256": event.body_sha256.hex(),
        "reason": event.reason, "prev_hash": prev_hash.hex(),
        "attachment_sha256": [h.hex() for h in event.attachment_sha256],
    }
    assert {k: view[k] for k in expected} == expected
    # Policy decisions and citations are in the hashed bytes even though the plain view
    # leaves them out.
    record = audit_pb2.AuditRecord.FromString(raw)
    assert tuple(record.policy_decision_ids) == event.policy_decision_ids
    assert tuple(record.citations) == event.citations


def test_audit_records_differ_in_every_chained_field() -> None:
    base = audit_record()
    assert audit_record(sequence=8) != base
    assert codec.encode_audit_record(EVENT, node_id="NL-24X7", sequence=7, time_ms=1_600,
                                     prev_hash=b"\x67" * 32) != base
    assert audit_record(AuditEvent(EventType.ENVELOPE_RECEIVED, actor="node:NL-24X7")) != base


def test_encoding_is_deterministic() -> None:
    assert codec.encode_header(HEADER) == codec.encode_header(HEADER)
    assert codec.encode_audit_record(EVENT, node_id="n", sequence=1, time_ms=2,
                                     prev_hash=b"") == codec.encode_audit_record(
        EVENT, node_id="n", sequence=1, time_ms=2, prev_hash=b"")


# -- garbage -------------------------------------------------------------------------------

@ENCODE_DECODE
@pytest.mark.parametrize("garbage", [
    b"\xff", b"\xff\xff\xff\xff", b"\x07", b"\x0a\x05ab", b"\x0a", b"\x80",
    b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", b"not a protobuf at all",
])
def test_garbage_rejected(decode: Callable[[bytes], object], garbage: bytes) -> None:
    """Timeline: a peer sends bytes that are not a protobuf message."""
    with pytest.raises(MalformedMessage):
        decode(garbage)


@ENCODE_DECODE
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_another_error(decode: Callable[[bytes], object],
                                                   data: bytes) -> None:
    """Any input decodes, or is refused as MalformedMessage: never another exception."""
    try:
        decode(data)
    except MalformedMessage:
        return


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_header_decodes_only_its_canonical_encoding(data: bytes) -> None:
    try:
        header = codec.decode_header(data)
    except MalformedMessage:
        return
    assert codec.encode_header(header) == data


@VALID_CASES
def test_truncated_message_never_raises_another_error(decode: Callable[[bytes], object],
                                                       valid: bytes) -> None:
    """A cut at a field boundary may leave a valid shorter message; any other cut must be
    refused as MalformedMessage."""
    decode(valid)
    for cut in range(len(valid)):
        try:
            decode(valid[:cut])
        except MalformedMessage:
            continue


def test_header_truncated_inside_a_field_rejected() -> None:
    raw = VALID["header"]
    for cut in range(1, len(raw)):
        try:
            header = codec.decode_header(raw[:cut])
        except MalformedMessage:
            continue
        assert codec.encode_header(header) == raw[:cut]
        assert header != HEADER


@pytest.mark.parametrize("length", [0, 15, 17])
def test_envelope_id_of_wrong_length_rejected(length: int) -> None:
    """Timeline: a header with an envelope id that is not 16 bytes."""
    msg = pb.EnvelopeHeader.FromString(VALID["header"])
    msg.envelope_id = b"\x01" * length
    with pytest.raises(MalformedMessage):
        codec.decode_header(msg.SerializeToString(deterministic=True))


def test_invalid_utf8_in_string_field_rejected() -> None:
    """Timeline: a string field carries invalid UTF-8."""
    raw = VALID["header"]
    field = length_delimited(4, b"DE-BFJ")
    assert field in raw
    with pytest.raises(MalformedMessage):
        codec.decode_header(raw.replace(field, length_delimited(4, b"DE-\xff\xfeJ"), 1))


def test_receipt_body_with_unknown_status_rejected() -> None:
    """Timeline: a receipt status outside the enum (or unspecified)."""
    msg = pb.ReceiptBody.FromString(VALID["receipt_body"])
    for status in (0, 3, 99):
        msg.status = status  # type: ignore[assignment]
        with pytest.raises(MalformedMessage):
            codec.decode_receipt_body(msg.SerializeToString(deterministic=True))


# -- unknown fields ------------------------------------------------------------------------

@VALID_CASES
@pytest.mark.parametrize("extra", [b"\xf8\x3f\x01", varint_field(99, 5),
                                   length_delimited(500, b"smuggled"),
                                   b"\x9d\x06\x01\x02\x03\x04"])  # field 99, fixed32
def test_unknown_field_appended_rejected(decode: Callable[[bytes], object], valid: bytes,
                                         extra: bytes) -> None:
    """Timeline: a signer's bytes get an extra field that this version does not know;
    a newer parser elsewhere might act on it. Refused, not silently carried along.
    """
    with pytest.raises(MalformedMessage) as exc:
        decode(valid + extra)
    assert exc.value.code == "UNKNOWN_FIELDS"


def _header_with_attachment_bytes(entry: bytes) -> bytes:
    """HEADER without attachments, then one attachment entry given as raw bytes (field
    15 sorts after every other set field, so the outer message stays in order).
    """
    bare = codec.encode_header(dataclasses.replace(HEADER, attachments=()))
    return bare + length_delimited(15, entry)


def test_unknown_field_nested_in_attachment_entry_rejected() -> None:
    """Timeline: the unknown field is hidden one level down, inside an AttachmentEntry of
    the signed manifest. Re-serialising keeps it, so only an explicit check finds it.
    """
    entry = pb.AttachmentEntry(index=0, size=10, sha256=b"\x22" * 32, chunk_size=64,
                               media_type="application/pdf")
    plain = entry.SerializeToString(deterministic=True)
    assert codec.decode_header(_header_with_attachment_bytes(plain)).attachments == (
        AttachmentEntry(0, 10, b"\x22" * 32, 64, "application/pdf"),)
    for extra in (b"\xf8\x3f\x01", varint_field(6, 1), length_delimited(7, b"x")):
        data = _header_with_attachment_bytes(plain + extra)
        with pytest.raises(MalformedMessage) as exc:
            codec.decode_header(data)
        assert exc.value.code == "UNKNOWN_FIELDS"


def test_unknown_field_nested_in_attachment_key_rejected() -> None:
    """Timeline: an unknown field hidden inside an AttachmentKey of the body."""
    key = pb.AttachmentKey(index=0, key=b"\x01" * 32, filename="a.pdf")
    plain = key.SerializeToString(deterministic=True)
    bare = codec.encode_body(Body(sender="DE-BFJ", recipient="NL-24X7", envelope_id=EID,
                                  payload=b"{}"))
    assert codec.decode_body(bare + length_delimited(6, plain)).attachment_keys == (
        AttachmentKey(0, b"\x01" * 32, "a.pdf"),)
    with pytest.raises(MalformedMessage) as exc:
        codec.decode_body(bare + length_delimited(6, plain + b"\xf8\x3f\x01"))
    assert exc.value.code == "UNKNOWN_FIELDS"


def test_known_field_with_wrong_wire_type_rejected() -> None:
    """Field 4 (`sender`, a string) sent as a varint: protobuf files it as unknown."""
    with pytest.raises(MalformedMessage):
        codec.decode_header(VALID["header"] + varint_field(4, 1))


# -- non-canonical encodings -------------------------------------------------------------

def test_duplicate_scalar_field_rejected() -> None:
    """Timeline: a second `sender` (field 4) follows the first; last-wins would make the
    parsed sender differ from what a first-wins reader of the same bytes sees.
    """
    raw = VALID["header"]
    for second in ("DE-BFJ", "US-OIA"):
        with pytest.raises(MalformedMessage) as exc:
            codec.decode_header(raw + length_delimited(4, second.encode()))
        assert exc.value.code == "NON_CANONICAL"


def test_duplicate_field_in_each_message_rejected() -> None:
    """Timeline: a duplicate field appended to every other strictly decoded message."""
    cases = {
        "body": (codec.decode_body, VALID["body"] + length_delimited(1, b"US-OIA")),
        "receipt_body": (codec.decode_receipt_body,
                         VALID["receipt_body"] + length_delimited(3, b"US-OIA")),
        "envelope": (codec.decode_envelope, VALID["envelope"] + length_delimited(1, b"h2")),
        "receipt": (codec.decode_receipt, VALID["receipt"] + length_delimited(1, b"r2")),
        "audit_record": (codec.decode_audit_record,
                         VALID["audit_record"] + varint_field(2, 8)),
    }
    for name, (decode, data) in cases.items():
        with pytest.raises(MalformedMessage) as exc:
            decode(data)
        assert exc.value.code == "NON_CANONICAL", name


def test_reordered_fields_rejected() -> None:
    """Timeline: the same fields in another order: same parse, other bytes."""
    raw = VALID["header"]
    first = varint_field(1, 1)        # version
    assert raw.startswith(first)
    sender = length_delimited(4, b"DE-BFJ")
    reordered = raw[len(first):].replace(sender, b"", 1)
    with pytest.raises(MalformedMessage) as exc:
        codec.decode_header(sender + first + reordered)
    assert exc.value.code == "NON_CANONICAL"


def test_explicit_default_value_rejected() -> None:
    """`trust_list_version = 0` written out: parses the same, encodes differently."""
    with pytest.raises(MalformedMessage) as exc:
        codec.decode_header(VALID["header"] + varint_field(16, 0))
    assert exc.value.code == "NON_CANONICAL"


def test_overlong_varint_rejected() -> None:
    """Timeline: `version = 1` written as a two-byte varint: same parse, other bytes."""
    raw = VALID["header"]
    assert raw.startswith(b"\x08\x01")
    with pytest.raises(MalformedMessage) as exc:
        codec.decode_header(b"\x08\x81\x00" + raw[2:])
    assert exc.value.code == "NON_CANONICAL"


def test_duplicate_field_nested_in_attachment_entry_rejected() -> None:
    """A duplicate scalar inside an attachment entry is non-canonical too."""
    entry = pb.AttachmentEntry(index=0, size=10, sha256=b"\x22" * 32, chunk_size=64,
                               media_type="application/pdf").SerializeToString(
        deterministic=True)
    with pytest.raises(MalformedMessage) as exc:
        codec.decode_header(_header_with_attachment_bytes(entry + varint_field(2, 11)))
    assert exc.value.code == "NON_CANONICAL"
