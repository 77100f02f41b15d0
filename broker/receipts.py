"""Signed receipts: issue on acceptance, verify on the sender's side. Pure."""

from __future__ import annotations

from broker.crypto import signing as sig
from broker.envelope import Signer
from broker.errors import PeerError, ReceiptInvalid
from broker.model import EnvelopeHeader, MessageId, Receipt, ReceiptBody, ReceiptStatus
from broker.trust import TrustList
from broker.wire import codec

RECEIPT_VERSION = 1


def issue_receipt(
    *,
    signer: Signer,
    header: EnvelopeHeader,
    header_sha256: bytes,
    status: ReceiptStatus,
    received_at_ms: int,
    trust_list_version: int,
    receiver_tree_head: bytes = b"",
) -> Receipt:
    """The receiver's signed statement that it holds exactly this envelope."""
    body = codec.encode_receipt_body(ReceiptBody(
        version=RECEIPT_VERSION,
        envelope_id=header.envelope_id,
        receiver=header.recipient,
        sender=header.sender,
        receiver_key_id=signer.key_id,
        header_sha256=header_sha256,
        body_sha256=header.body_sha256,
        attachment_sha256=tuple(a.sha256 for a in header.attachments),
        received_at_ms=received_at_ms,
        status=status,
        trust_list_version=trust_list_version,
        receiver_tree_head=receiver_tree_head,
    ))
    return Receipt(body=body, signature=signer.sign(sig.to_be_signed(sig.RECEIPT, body)))


def verify_receipt(
    receipt: Receipt,
    *,
    trust: TrustList,
    receiver: str,
    sender: str,
    envelope_id: MessageId,
    header_sha256: bytes,
    now_ms: int,
) -> ReceiptBody:
    """Check the receiver's signature and that the receipt names exactly our envelope."""
    try:
        body = codec.decode_receipt_body(receipt.body)
    except Exception as e:
        raise ReceiptInvalid("receipt is malformed") from e
    if body.version != RECEIPT_VERSION:
        raise ReceiptInvalid("unsupported receipt version")
    if body.receiver != receiver or body.sender != sender:
        raise ReceiptInvalid("receipt names other parties")
    if body.envelope_id != envelope_id or body.header_sha256 != header_sha256:
        raise ReceiptInvalid("receipt is for another envelope")
    try:
        key = trust.node(receiver).verify_key(body.receiver_key_id, now_ms)
    except PeerError as e:  # unknown or revoked key: a bad receipt, not a refusal
        raise ReceiptInvalid(f"receipt signing key is not usable ({e.code})") from e
    if not sig.verify(key, sig.RECEIPT, receipt.body, receipt.signature):
        raise ReceiptInvalid("receipt signature does not verify")
    return body
