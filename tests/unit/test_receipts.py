"""Signed receipts: the receiver's statement that it holds exactly one envelope.

A sender marks an envelope delivered only on a receipt that verifies; every forged,
misdirected or damaged receipt must be refused as `ReceiptInvalid` (which delivery
treats as "retry", never as the peer's refusal).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto import KemPrivateKey, SigningKey, sha256
from broker.crypto import signing as sig
from broker.envelope import OutgoingAttachment, build_envelope
from broker.errors import ReceiptInvalid
from broker.model import (
    AttachmentEntry,
    EnvelopeHeader,
    MessageId,
    Receipt,
    ReceiptBody,
    ReceiptStatus,
)
from broker.receipts import RECEIPT_VERSION, issue_receipt, verify_receipt
from broker.trust import TrustList, admin_set_of, load_trust_list, now_iso, sign_trust_list
from broker.wire import codec
from broker.wire.gen.rogatory.v1 import envelope_pb2

pytestmark = [pytest.mark.unit, pytest.mark.adversarial]

T0 = 1_750_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR


@dataclass(frozen=True)
class World:
    de: SigningKey            # the sender
    nl: SigningKey            # the receiver
    us: SigningKey            # a third member
    nl_revoked: SigningKey    # NL-24X7's old key, revoked at T0 - 1 h
    nl_kem: KemPrivateKey
    trust: TrustList
    header: EnvelopeHeader
    header_sha256: bytes


@functools.cache
def world() -> World:
    de, nl, us, nl_revoked, admin = (SigningKey.generate() for _ in range(5))
    kems = {n: KemPrivateKey.generate() for n in ("DE-BFJ", "NL-24X7", "US-OIA")}

    def spec(node_id: str, key: SigningKey, *extra: dict[str, str]) -> dict[str, object]:
        return {"node_id": node_id, "jurisdiction": node_id[:2],
                "roles": ["central_authority"], "endpoint": "127.0.0.1:7001",
                "signing_keys": [{"public": key.verify_key.b64()}, *extra],
                "kem_keys": [{"public": kems[node_id].public.b64()}]}

    doc = {
        "federation": "test", "version": 5, "issued_at": now_iso(T0 - DAY),
        "expires_at": now_iso(T0 + 90 * DAY),
        "admins": {"threshold": 1, "keys": [admin.verify_key.b64()]},
        "nodes": [spec("DE-BFJ", de),
                  spec("NL-24X7", nl, {"public": nl_revoked.verify_key.b64(),
                                       "revoked_at": now_iso(T0 - HOUR)}),
                  spec("US-OIA", us)],
    }
    trust = load_trust_list(sign_trust_list(doc, [admin]), trusted_admins=admin_set_of(doc),
                            now_ms=T0)
    data = b"%PDF-1.7 exhibit"
    entry = AttachmentEntry(0, len(data), sha256(data), 1 << 16, "application/pdf")
    env, header = build_envelope(
        signer=de, trust=trust, sender="DE-BFJ", recipient="NL-24X7",
        message_type="preservation", template_id="eu.preservation", template_version="1.0",
        payload=b"{}", attachments=[OutgoingAttachment(entry, b"\x01" * 32, "a.pdf")],
        now_ms=T0, ttl_ms=HOUR)
    return World(de, nl, us, nl_revoked, kems["NL-24X7"], trust, header, sha256(env.header))


def issue(*, signer: SigningKey | None = None, header: EnvelopeHeader | None = None,
          header_sha256: bytes | None = None,
          status: ReceiptStatus = ReceiptStatus.ACCEPTED) -> Receipt:
    w = world()
    return issue_receipt(signer=signer or w.nl, header=header or w.header,
                         header_sha256=header_sha256 or w.header_sha256, status=status,
                         received_at_ms=T0 + 5, trust_list_version=5)


def check(receipt: Receipt, *, receiver: str = "NL-24X7", sender: str = "DE-BFJ",
          envelope_id: MessageId | None = None, header_sha256: bytes | None = None,
          now_ms: int = T0 + 10) -> ReceiptBody:
    w = world()
    return verify_receipt(receipt, trust=w.trust, receiver=receiver, sender=sender,
                          envelope_id=envelope_id or w.header.envelope_id,
                          header_sha256=header_sha256 or w.header_sha256, now_ms=now_ms)


def signed(body: ReceiptBody, key: SigningKey, label: bytes = sig.RECEIPT) -> Receipt:
    raw = codec.encode_receipt_body(body)
    return Receipt(body=raw, signature=key.sign(sig.to_be_signed(label, raw)))


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- the genuine receipt -------------------------------------------------------------------

@pytest.mark.parametrize("status", list(ReceiptStatus))
def test_receipt_round_trip(status: ReceiptStatus) -> None:
    w = world()
    receipt = issue(status=status)
    body = check(receipt)
    assert body == codec.decode_receipt_body(receipt.body)
    assert body.version == RECEIPT_VERSION
    assert body.envelope_id == w.header.envelope_id
    assert body.receiver == "NL-24X7"
    assert body.sender == "DE-BFJ"
    assert body.receiver_key_id == w.nl.key_id
    assert body.header_sha256 == w.header_sha256
    assert body.body_sha256 == w.header.body_sha256
    assert body.attachment_sha256 == tuple(a.sha256 for a in w.header.attachments)
    assert body.received_at_ms == T0 + 5
    assert body.status == status
    assert body.trust_list_version == 5
    assert check(codec.decode_receipt(codec.encode_receipt(receipt))) == body


# -- receipts for something else -------------------------------------------------------------

def test_receipt_for_another_envelope_rejected() -> None:
    """Timeline: the receiver acknowledges envelope X; the sender is shown that receipt
    as proof for envelope Y.
    """
    with pytest.raises(ReceiptInvalid):
        check(issue(), envelope_id=MessageId(b"\x09" * 16))


def test_receipt_for_another_header_digest_rejected() -> None:
    """Timeline: the receiver stored a different header under the same envelope id
    (e.g. a forged copy that won a race); its receipt must not confirm ours.
    """
    with pytest.raises(ReceiptInvalid):
        check(issue(), header_sha256=sha256(b"another header"))
    other = issue(header_sha256=sha256(b"another header"))
    with pytest.raises(ReceiptInvalid):
        check(other)


@pytest.mark.parametrize(("receiver", "sender"), [
    ("US-OIA", "DE-BFJ"), ("NL-24X7", "US-OIA"), ("DE-BFJ", "NL-24X7"), ("FR-PNF", "DE-BFJ"),
])
def test_receipt_naming_other_parties_rejected(receiver: str, sender: str) -> None:
    """Timeline: NL-24X7's receipt (to DE-BFJ) is presented as another pair's receipt."""
    with pytest.raises(ReceiptInvalid):
        check(issue(), receiver=receiver, sender=sender)


def test_receipt_whose_body_names_other_parties_rejected() -> None:
    """Timeline: NL-24X7's key signs a receipt naming another receiver or sender."""
    w = world()
    body = codec.decode_receipt_body(issue().body)
    for change in ({"receiver": "US-OIA"}, {"sender": "US-OIA"}):
        forged = signed(dataclasses.replace(body, **change), w.nl)  # type: ignore[arg-type]
        with pytest.raises(ReceiptInvalid):
            check(forged)


@pytest.mark.parametrize("version", [0, 2])
def test_receipt_with_unsupported_version_rejected(version: int) -> None:
    """Timeline: a receipt claims another format version."""
    w = world()
    body = dataclasses.replace(codec.decode_receipt_body(issue().body), version=version)
    with pytest.raises(ReceiptInvalid):
        check(signed(body, w.nl))


# -- forged signatures ---------------------------------------------------------------------

def test_receipt_signed_by_another_key_rejected() -> None:
    """Timeline: a man in the middle drops the delivery and forges NL-24X7's receipt with
    its own key, keeping NL-24X7's key id.
    """
    attacker = SigningKey.generate()
    body = codec.decode_receipt_body(issue().body)
    with pytest.raises(ReceiptInvalid):
        check(signed(body, attacker))


def test_receipt_signed_by_another_members_key_rejected() -> None:
    """Timeline: US-OIA, a member, forges NL-24X7's receipt with its own listed key."""
    w = world()
    with pytest.raises(ReceiptInvalid):
        check(issue(signer=w.us))


def test_receipt_naming_an_unlisted_key_rejected() -> None:
    """Timeline: the forger names its own (unlisted) key id in the receipt body."""
    with pytest.raises(ReceiptInvalid):
        check(issue(signer=SigningKey.generate()))


def test_receipt_signed_by_revoked_key_rejected() -> None:
    """Timeline: NL-24X7's old key was revoked at T0 - 1 h; its thief issues a receipt."""
    with pytest.raises(ReceiptInvalid):
        check(issue(signer=world().nl_revoked))


def test_receipt_signed_in_another_domain_rejected() -> None:
    """Timeline: the receiver's key signed the same bytes as an envelope header."""
    w = world()
    body = codec.decode_receipt_body(issue().body)
    with pytest.raises(ReceiptInvalid):
        check(signed(body, w.nl, sig.ENVELOPE_HEADER))


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(0, 64 * 8 - 1))
def test_bit_flipped_receipt_signature_rejected(bit: int) -> None:
    """Timeline: one bit of the receipt signature changes in transit."""
    receipt = issue()
    with pytest.raises(ReceiptInvalid):
        check(dataclasses.replace(receipt, signature=flip(receipt.signature, bit)))


def test_bit_flip_anywhere_in_receipt_rejected_exhaustive() -> None:
    """Timeline: one bit of the receipt body or signature changes in transit (every bit
    position is tried); each copy is refused as ReceiptInvalid, never another error.
    """
    receipt = issue()
    for bit in range(len(receipt.body) * 8):
        with pytest.raises(ReceiptInvalid):
            check(dataclasses.replace(receipt, body=flip(receipt.body, bit)))
    for bit in range(len(receipt.signature) * 8):
        with pytest.raises(ReceiptInvalid):
            check(dataclasses.replace(receipt, signature=flip(receipt.signature, bit)))


@pytest.mark.parametrize("signature", [b"", b"\x00" * 64, b"\x00" * 63, b"\x00" * 65])
def test_receipt_with_malformed_signature_rejected(signature: bytes) -> None:
    """Timeline: the signature is empty, zero or of the wrong length."""
    with pytest.raises(ReceiptInvalid):
        check(dataclasses.replace(issue(), signature=signature))


# -- malformed bytes -----------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"", b"\xff\xff\xff", b"garbage", b"\x0a\x05ab"])
def test_malformed_receipt_body_rejected(raw: bytes) -> None:
    """Timeline: the receipt body is not a ReceiptBody at all (but is signed)."""
    w = world()
    receipt = Receipt(body=raw, signature=w.nl.sign(sig.to_be_signed(sig.RECEIPT, raw)))
    with pytest.raises(ReceiptInvalid):
        check(receipt)


def test_receipt_body_with_unknown_field_rejected() -> None:
    """Timeline: the receiver (or a buggy encoder) signs a body with an extra field 1023."""
    w = world()
    raw = issue().body + b"\xf8\x3f\x01"
    receipt = Receipt(body=raw, signature=w.nl.sign(sig.to_be_signed(sig.RECEIPT, raw)))
    with pytest.raises(ReceiptInvalid):
        check(receipt)


def test_receipt_body_with_unknown_status_rejected() -> None:
    """Timeline: a signed receipt carries a status this version does not define."""
    w = world()
    msg = envelope_pb2.ReceiptBody.FromString(issue().body)
    msg.status = 9  # type: ignore[assignment]
    raw = msg.SerializeToString(deterministic=True)
    receipt = Receipt(body=raw, signature=w.nl.sign(sig.to_be_signed(sig.RECEIPT, raw)))
    with pytest.raises(ReceiptInvalid):
        check(receipt)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_receipt_bytes_rejected(raw: bytes) -> None:
    """Timeline: arbitrary bytes, signed by the genuine key, as a receipt body."""
    w = world()
    receipt = Receipt(body=raw, signature=w.nl.sign(sig.to_be_signed(sig.RECEIPT, raw)))
    with pytest.raises(ReceiptInvalid):
        check(receipt)
