"""The operator's view of the store: list, read (consultation is audited), receipts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from broker.audit import AuditEvent, EventType
from broker.crypto import StreamOpener, chunk_count, fingerprint
from broker.errors import NotFound, PeerError, ReceiptInvalid, StateError
from broker.model import MessageId, ReceiptBody
from broker.model.stored import StoredAttachment, StoredMessage
from broker.receipts import verify_receipt
from broker.services.context import NodeContext
from broker.services.policy_gate import Decided, PolicyRefused, audited, decide
from broker.wire import codec


@dataclass(frozen=True)
class AttachmentView:
    index: int
    filename: str
    media_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class MessageView:
    message: StoredMessage
    payload: bytes
    attachments: tuple[AttachmentView, ...]
    signer_key_id: str
    signature_fingerprint: str
    body_sha256: str
    delivery: tuple[str, int, str] | None


@dataclass(frozen=True)
class ReceiptView:
    direction: str
    body: ReceiptBody | None
    raw: bytes
    verified: bool
    error: str
    key_status: str = ""     # the receiver's key now: valid | revoked_after_receipt


class Mailbox:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    async def list(self, direction: str | None, limit: int) -> list[tuple[StoredMessage, int]]:
        messages = await self.ctx.store.list_messages(direction, limit)
        counts = await self.ctx.store.attachment_counts(
            [(m.direction, m.envelope_id.raw) for m in messages])
        return [(m, counts.get(m.envelope_id.raw, 0)) for m in messages]

    async def show(self, message_id: MessageId, *, actor: str,
                   justification: str = "") -> MessageView:
        ctx = self.ctx
        m = await ctx.store.get_message(message_id)
        payload = ctx.at_rest.open("payload", message_id.raw, m.payload)
        decision = await self.access(m, payload, actor=actor, justification=justification)
        header = codec.decode_header(m.header)
        atts = tuple(self._attachment_view(m, a) for a in m.attachments)
        delivery = await ctx.store.outbox_state(message_id) if m.direction == "out" else None
        await ctx.store.audit(AuditEvent(
            EventType.MESSAGE_CONSULTED, actor=actor, envelope_id=message_id, peer=m.peer,
            message_type=m.message_type, template_id=m.template_id,
            template_version=m.template_version, header_sha256=m.header_sha256,
            justification=justification, **audited(decision.decision)))
        return MessageView(m, payload, atts, header.sender_key_id, fingerprint(m.signature),
                           header.body_sha256.hex(), delivery)

    async def access(self, m: StoredMessage, payload: bytes, *, actor: str,
                      justification: str) -> Decided:
        """Local access is a policy decision too (LED Art. 25: justification logged)."""
        ctx = self.ctx
        template = ctx.templates.get(m.template_id, m.template_version)
        source = m.peer if m.direction == "in" else ctx.node_id
        try:
            return decide(ctx, action="access", sender=source, recipient=ctx.node_id,
                          template=template, message_type=m.message_type,
                          payload=json.loads(payload), legal_basis=m.legal_basis,
                          declared={"justification": justification} if justification else {},
                          obligations=[o["id"] for o in json.loads(m.obligations)])
        except PolicyRefused as refused:
            await ctx.store.audit(AuditEvent(
                EventType.POLICY_DENIED, actor=actor, envelope_id=m.envelope_id, peer=m.peer,
                message_type=m.message_type, template_id=m.template_id,
                template_version=m.template_version, reason=refused.code,
                **audited(refused.decision)))
            raise

    def _attachment_view(self, m: StoredMessage, a: StoredAttachment) -> AttachmentView:
        rid = m.envelope_id.raw + a.index.to_bytes(4, "big")
        name = self.ctx.at_rest.open("filename", rid, a.filename).decode()
        return AttachmentView(a.index, name, a.media_type, a.size, a.sha256.hex())

    async def receipt(self, message_id: MessageId) -> ReceiptView:
        """The receipt of a message, re-verified against the current trust list.

        The receiver's key is checked as it was when the receipt was stored (this node
        verified it then and logged it, which countersigns its time): a key revoked
        since does not void the receipts it signed before (matrix C09); the view says
        so in ``key_status``.
        """
        ctx = self.ctx
        m = await ctx.store.get_message(message_id)
        try:
            direction, raw, _status, stored_at = await ctx.store.get_receipt(message_id)
        except NotFound:
            raise NotFound(f"no receipt yet for {message_id}") from None
        receiver, sender = ((m.peer, ctx.node_id) if direction == "out"
                            else (ctx.node_id, m.peer))
        receipt = codec.decode_receipt(raw)
        now = ctx.clock()
        try:
            body = verify_receipt(receipt, trust=ctx.trust, receiver=receiver, sender=sender,
                                  envelope_id=message_id, header_sha256=m.header_sha256,
                                  now_ms=min(stored_at, now))
        except ReceiptInvalid as e:
            return ReceiptView(direction, None, raw, False, e.code)
        try:
            ctx.trust.node(receiver).verify_key(body.receiver_key_id, now)
            key_status = "valid"
        except PeerError:
            key_status = "revoked_after_receipt"
        return ReceiptView(direction, body, raw, True, "", key_status)

    async def read_attachment(self, message_id: MessageId, index: int, *, actor: str,
                              justification: str = "") -> AsyncIterator[bytes]:
        """Decrypt a stored attachment chunk by chunk, checking its SHA-256 at the end."""
        ctx = self.ctx
        m = await ctx.store.get_message(message_id)
        found = [a for a in m.attachments if a.index == index]
        if not found:
            raise NotFound(f"message {message_id} has no attachment {index}")
        a = found[0]
        decision = await self.access(m, ctx.at_rest.open("payload", message_id.raw, m.payload),
                                      actor=actor, justification=justification)
        rid = message_id.raw + index.to_bytes(4, "big")
        key = ctx.at_rest.open("attachment-key", rid, a.wrapped_key)
        await ctx.store.audit(AuditEvent(
            EventType.ATTACHMENT_CONSULTED, actor=actor, envelope_id=message_id, peer=m.peer,
            message_type=m.message_type, header_sha256=m.header_sha256,
            attachment_sha256=(a.sha256,), justification=justification,
            **audited(decision.decision)))
        return self._decrypt(m, a, key)

    def stored_plaintext(self, m: StoredMessage, a: StoredAttachment) -> AsyncIterator[bytes]:
        """An attachment's plaintext for an onward transfer (the transfer's own policy
        decision and audit record stand in for a consultation)."""
        rid = m.envelope_id.raw + a.index.to_bytes(4, "big")
        return self._decrypt(m, a, self.ctx.at_rest.open("attachment-key", rid, a.wrapped_key))

    async def _decrypt(self, m: StoredMessage, a: StoredAttachment,
                       key: bytes) -> AsyncIterator[bytes]:
        opener = StreamOpener(key, envelope_id=m.envelope_id.raw, index=a.index, size=a.size,
                              chunk_size=a.chunk_size)
        count = chunk_count(a.size, a.chunk_size)
        sizes = (opener.expected_ciphertext_size(i) for i in range(count))
        digest = hashlib.sha256()
        for counter, piece in enumerate(self.ctx.blobs.read_chunks(a.path, sizes)):
            plaintext = opener.open(counter, piece)
            digest.update(plaintext)
            yield plaintext
        opener.finish()
        if digest.digest() != a.sha256:
            raise StateError("stored attachment does not match its digest", code="STORE_CORRUPT")


__all__ = ["Mailbox", "MessageView", "ReceiptView"]
