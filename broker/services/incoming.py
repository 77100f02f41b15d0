"""Accept one delivery: authenticate, dedupe, validate, stream attachments, commit, receipt.

Nothing is stored unless everything checks out: attachment ciphertext goes to temporary
blobs that are discarded on any failure, and the message, its attachments, the receipt
we issue and the audit record commit in one transaction. Every rejection is audited
with its error code (never content) and re-raised for the transport to map.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from broker.audit import AuditEvent, EventType
from broker.crypto import StreamOpener, chunk_count
from broker.envelope import verify_envelope
from broker.errors import (
    PeerError,
    ReplayDetected,
    RogatoryError,
    StreamError,
    TemplateError,
)
from broker.model import Receipt, ReceiptStatus, SealedEnvelope, VerifiedEnvelope
from broker.model.stored import StoredAttachment, StoredMessage
from broker.ports import BlobSink, WireChunk, discard_blobs
from broker.receipts import issue_receipt
from broker.services.cases import Cases, Plan
from broker.services.context import NodeContext, log
from broker.services.policy_gate import (
    Decided,
    PolicyRefused,
    audited,
    decide,
    obligation_refs,
    obligations_json,
)
from broker.services.spool import Spool
from broker.templating import Template
from broker.wire import codec


def _absorb(opener: StreamOpener, digest: Any, writer: BlobSink, counter: int,
            ciphertext: bytes) -> None:
    """Authenticate, hash and spool one chunk (in a worker thread: off the event loop)."""
    digest.update(opener.open(counter, ciphertext))
    writer.write(ciphertext)


def _finish(opener: StreamOpener, writer: BlobSink) -> None:
    opener.finish()
    writer.close()


class _ConcurrentDuplicate(Exception):
    """Another delivery of the same envelope committed while this one streamed."""

    def __init__(self, receipt: bytes) -> None:
        super().__init__("concurrent duplicate")
        self.receipt = receipt


@dataclass(frozen=True)
class Accepted:
    receipt: Receipt
    duplicate: bool


class Incoming:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    async def accept(self, envelope: SealedEnvelope, chunks: AsyncIterator[WireChunk],
                     *, peer_identity: str) -> Accepted:
        """Process one delivery stream from an authenticated peer."""
        ctx = self.ctx
        header_sha = hashlib.sha256(envelope.header).digest()
        verified: VerifiedEnvelope | None = None
        try:
            ctx.gate()
            now = ctx.clock()
            verified = verify_envelope(envelope, trust=ctx.trust, me=ctx.node_id,
                                       kem_key=ctx.kem_key, peer_identity=peer_identity,
                                       now_ms=now, limits=ctx.limits)
            duplicate = await self._check_duplicate(verified, header_sha)
            if duplicate is not None:
                return duplicate
            template, payload = self._validate_payload(verified)
            h = verified.header
            decision = decide(ctx, action="receive", sender=h.sender, recipient=ctx.node_id,
                              template=template, message_type=h.message_type, payload=payload,
                              legal_basis=h.legal_basis,
                              obligations=[o.id for o in h.obligations])
            plan = await Cases.of(ctx).plan_incoming(verified, template, payload, now)
            return await self._store(verified, chunks, now, decision, plan)
        except RogatoryError as e:
            await self._reject(e, envelope, verified, header_sha, peer_identity)
            raise

    async def reject_before_envelope(self, error: RogatoryError, *, peer_identity: str) -> None:
        """Audit a delivery refused at the transport (certificate, quota, framing)."""
        await self.ctx.store.audit(AuditEvent(EventType.ENVELOPE_REJECTED, actor=self.ctx.actor,
                                              peer=peer_identity, reason=error.code))
        log.warning("envelope.rejected", reason=error.code, peer=peer_identity)

    async def _check_duplicate(self, v: VerifiedEnvelope, header_sha: bytes) -> Accepted | None:
        found = await self.ctx.store.find_incoming(v.envelope_id)
        if found is None:
            return None
        peer, stored_sha, receipt = found
        if peer != v.header.sender or stored_sha != header_sha:
            raise ReplayDetected("envelope id reused with different content")
        await self.ctx.store.audit(self._event(EventType.ENVELOPE_DUPLICATE, v))
        log.info("envelope.duplicate", envelope_id=str(v.envelope_id), sender=peer)
        return Accepted(codec.decode_receipt(receipt), duplicate=True)

    def _validate_payload(self, v: VerifiedEnvelope) -> tuple[Template, dict[str, Any]]:
        h = v.header
        template = self.ctx.templates.get(h.template_id, h.template_version)
        if h.message_type not in template.message_types:
            raise TemplateError("template does not serve this message type",
                                code="TEMPLATE_MISMATCH")
        try:
            payload = json.loads(v.body.payload)
        except (ValueError, UnicodeDecodeError) as e:
            raise TemplateError("payload is not valid JSON", code="PAYLOAD_NOT_JSON") from e
        if not isinstance(payload, dict):
            raise TemplateError("payload must be a JSON object", code="PAYLOAD_NOT_JSON")
        template.validate(payload)
        return template, payload

    async def _store(self, v: VerifiedEnvelope, chunks: AsyncIterator[WireChunk],
                     now: int, decision: Decided, plan: Plan) -> Accepted:
        ctx = self.ctx
        writers: list[BlobSink] = []
        placed: list[str] = []
        try:
            await self._receive_attachments(v, chunks, writers)
            eid = v.envelope_id
            atts = []
            keys = {k.index: k for k in v.body.attachment_keys}
            for entry, w in zip(v.header.attachments, writers, strict=True):
                path = ctx.blobs.place(w, "in", eid.raw, entry.index)
                placed.append(path)
                rid = eid.raw + entry.index.to_bytes(4, "big")
                atts.append(StoredAttachment(
                    index=entry.index, size=entry.size, sha256=entry.sha256,
                    chunk_size=entry.chunk_size, media_type=entry.media_type,
                    filename=ctx.at_rest.seal("filename", rid,
                                              keys[entry.index].filename.encode()),
                    wrapped_key=ctx.at_rest.seal("attachment-key", rid, keys[entry.index].key),
                    path=path))
            receipt = issue_receipt(signer=ctx.signer, header=v.header,
                                    header_sha256=v.header_sha256,
                                    status=ReceiptStatus.ACCEPTED, received_at_ms=now,
                                    trust_list_version=ctx.trust.version,
                                    receiver_tree_head=ctx.store.latest_checkpoint())
            h = v.header
            msg = StoredMessage(
                direction="in", envelope_id=eid, peer=h.sender, message_type=h.message_type,
                template_id=h.template_id, template_version=h.template_version,
                created_at_ms=h.created_at_ms, expires_at_ms=h.expires_at_ms,
                header=v.raw.header, signature=v.raw.signature, header_sha256=v.header_sha256,
                payload=ctx.at_rest.seal("payload", eid.raw, v.body.payload),
                status="received", stored_at_ms=now, attachments=tuple(atts),
                legal_basis=decision.legal_basis,
                obligations=obligations_json(obligation_refs(decision.decision)),
                body=ctx.at_rest.seal("body", eid.raw, v.body_bytes))
            earlier = await ctx.store.record_incoming(
                msg, codec.encode_receipt(receipt), "accepted",
                dataclasses.replace(self._event(EventType.ENVELOPE_RECEIVED, v),
                                    case_id=plan.changes[-1].request.case_id
                                    if plan.changes else "",
                                    **audited(decision.decision)),
                self._event(EventType.ENVELOPE_DUPLICATE, v), changes=plan.changes)
            if earlier is not None:
                raise _ConcurrentDuplicate(earlier)
        except _ConcurrentDuplicate as dup:
            discard_blobs(ctx.blobs, writers, placed)
            return Accepted(codec.decode_receipt(dup.receipt), duplicate=True)
        except BaseException:
            discard_blobs(ctx.blobs, writers, placed)
            raise
        log.info("envelope.received", envelope_id=str(eid), sender=h.sender,
                 message_type=h.message_type, attachments=len(atts))
        return Accepted(receipt, duplicate=False)

    async def _receive_attachments(self, v: VerifiedEnvelope, chunks: AsyncIterator[WireChunk],
                                   writers: list[BlobSink]) -> None:
        keys = {k.index: k.key for k in v.body.attachment_keys}
        for entry in v.header.attachments:
            opener = StreamOpener(keys[entry.index], envelope_id=v.envelope_id.raw,
                                  index=entry.index, size=entry.size,
                                  chunk_size=entry.chunk_size)
            writer = self.ctx.blobs.new_writer()
            writers.append(writer)
            digest = hashlib.sha256()
            with Spool() as spool:
                for _ in range(chunk_count(entry.size, entry.chunk_size)):
                    try:
                        index, counter, ciphertext = await anext(chunks)
                    except StopAsyncIteration:
                        raise StreamError("attachment stream truncated",
                                          code="STREAM_TRUNCATED") from None
                    if index != entry.index:
                        raise StreamError("chunk of another attachment", code="CHUNK_SEQ")
                    await spool.submit(_absorb, opener, digest, writer, counter, ciphertext)
                await spool.submit(_finish, opener, writer)
                await spool.drain()
            if digest.digest() != entry.sha256:
                raise StreamError("attachment does not match its signed digest",
                                  code="ATTACHMENT_DIGEST")
        async for _extra in chunks:
            raise StreamError("data after the last attachment", code="TRAILING_DATA")

    def _event(self, event_type: EventType, v: VerifiedEnvelope, reason: str = "") -> AuditEvent:
        h = v.header
        return AuditEvent(event_type, actor=self.ctx.actor, envelope_id=h.envelope_id,
                          peer=h.sender, message_type=h.message_type, template_id=h.template_id,
                          template_version=h.template_version, header_sha256=v.header_sha256,
                          body_sha256=h.body_sha256, reason=reason,
                          attachment_sha256=tuple(a.sha256 for a in h.attachments))

    async def _reject(self, error: RogatoryError, envelope: SealedEnvelope,
                      verified: VerifiedEnvelope | None, header_sha: bytes,
                      peer_identity: str) -> None:
        if verified is not None:
            event = self._event(EventType.ENVELOPE_REJECTED, verified, reason=error.code)
            if isinstance(error, PolicyRefused):
                event = dataclasses.replace(event, **audited(error.decision))
        else:
            # Unauthenticated: record only what we can vouch for (hash, transport identity).
            event = AuditEvent(EventType.ENVELOPE_REJECTED, actor=self.ctx.actor,
                               peer=peer_identity, header_sha256=header_sha, reason=error.code)
        await self.ctx.store.audit(event)
        log.warning("envelope.rejected", reason=error.code, peer=peer_identity,
                    header_sha256=header_sha.hex(), peer_fault=isinstance(error, PeerError))
