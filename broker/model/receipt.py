"""Receipts: the receiver's signed statement of what it received and when."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from broker.model.ids import MessageId, NodeId


class ReceiptStatus(enum.IntEnum):
    ACCEPTED = 1
    DUPLICATE = 2


@dataclass(frozen=True)
class ReceiptBody:
    version: int
    envelope_id: MessageId
    receiver: NodeId
    sender: NodeId
    receiver_key_id: str
    header_sha256: bytes
    body_sha256: bytes
    attachment_sha256: tuple[bytes, ...]
    received_at_ms: int
    status: ReceiptStatus
    trust_list_version: int
    receiver_tree_head: bytes = b""    # the receiver's latest SignedTreeHead bytes


@dataclass(frozen=True)
class Receipt:
    """Signed receipt bytes as they travel (`body` is ReceiptBody bytes verbatim)."""

    body: bytes
    signature: bytes
