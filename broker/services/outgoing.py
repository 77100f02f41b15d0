"""Compose and commit an outgoing message: template -> envelope -> outbox, atomically.

Attachments arrive as plaintext streams from the operator and are sealed chunk by chunk
(STREAM) straight into a temporary blob while their SHA-256 is computed, so memory stays
bounded and no plaintext reaches disk. The blob is the exact wire ciphertext: delivery,
and every retry, streams these bytes unchanged (no re-encryption, no nonce reuse).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.audit import AuditEvent, EventType
from broker.crypto import StreamSealer, new_stream_key
from broker.envelope import OutgoingAttachment, compose_envelope
from broker.errors import (
    MessageTooLarge,
    RogatoryError,
    StateError,
    StreamError,
    TemplateError,
)
from broker.lifecycle import Approval, Person, kind_for_message_type, rules
from broker.model import AttachmentEntry, EvidenceCustody, MessageId
from broker.model.cases import RequestRecord
from broker.model.ids import is_node_id
from broker.model.stored import StoredAttachment, StoredMessage
from broker.ports import BlobSink, discard_blobs
from broker.services.cases import Cases, Placement
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


@dataclass(frozen=True)
class AttachmentSpec:
    filename: str
    media_type: str
    size: int
    custody: EvidenceCustody | None = None   # chain of custody (index filled in on send)


@dataclass(frozen=True)
class SendRequest:
    to: str
    message_type: str
    payload: bytes
    template_id: str = ""
    template_version: str = ""
    attachments: Sequence[AttachmentSpec] = ()
    ttl_ms: int = 0
    in_reply_to: MessageId | None = None
    legal_basis: str = ""
    declared: Mapping[str, Any] = field(default_factory=dict)
    action: str = "send"                       # or "onward_transfer" of received data
    carried_obligations: Sequence[str] = ()    # obligations the data arrived with
    placement: Placement = field(default_factory=Placement)  # the case of a new request
    draft: RequestRecord | None = None         # an approved draft being sent...
    approval: Approval | None = None           # ...with both identities (four-eyes)


@dataclass(frozen=True)
class SentMessage:
    message: StoredMessage
    attachments: tuple[AttachmentEntry, ...]
    filenames: tuple[str, ...]
    request: RequestRecord | None = None   # the request it belongs to, as committed with it


def parse_payload(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise TemplateError("payload is not valid UTF-8 JSON", code="PAYLOAD_NOT_JSON") from e
    if not isinstance(value, dict):
        raise TemplateError("payload must be a JSON object", code="PAYLOAD_NOT_JSON")
    return value


class Outgoing:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    async def send(self, req: SendRequest, chunks: AsyncIterator[tuple[int, bytes]],
                   *, actor: str) -> SentMessage:
        """Validate, seal, and commit to the outbox. Raises before storing anything; every
        refusal is audited with its code (policy refusals with their decision)."""
        try:
            return await self._send(req, chunks, actor=actor)
        except PolicyRefused:
            raise  # audited with the decision where it was taken
        except RogatoryError as e:
            await self._refused(req, e, actor)
            raise

    async def _refused(self, req: SendRequest, e: RogatoryError, actor: str) -> None:
        # Only values the node recognises reach the record: operator input may be
        # anything (free text is never logged or audited).
        templates = self.ctx.templates.templates()
        types = {mt for t in templates for mt in t.message_types}
        await self.ctx.store.audit(AuditEvent(
            EventType.SEND_REFUSED, actor=actor, peer=req.to if is_node_id(req.to) else "",
            envelope_id=req.draft.request_id if req.draft is not None else None,
            message_type=req.message_type if req.message_type in types else "",
            template_id=req.template_id if req.template_id in {t.id for t in templates}
            else "", reason=e.code))

    async def _send(self, req: SendRequest, chunks: AsyncIterator[tuple[int, bytes]],
                    *, actor: str) -> SentMessage:
        ctx = self.ctx
        ctx.gate()
        now = ctx.clock()
        recipient = ctx.trust.node(req.to)
        if len(req.payload) > ctx.limits.max_payload_bytes:
            raise MessageTooLarge("payload exceeds the limit")
        if len(req.attachments) > ctx.limits.max_attachments:
            raise MessageTooLarge("too many attachments")
        template = self._template(req)
        payload = parse_payload(req.payload)
        template.validate(payload)
        decision = await self._decide(req, recipient.node_id, template, payload, actor)
        obligations = obligation_refs(decision.decision)
        ttl = req.ttl_ms or ctx.limits.default_ttl_ms
        ttl = min(ttl, ctx.limits.max_ttl_ms)
        eid = req.draft.request_id if req.draft is not None else MessageId.new()
        plan = await Cases.of(ctx).plan_outgoing(
            eid=eid, to=recipient.node_id, message_type=req.message_type, template=template,
            payload=payload, in_reply_to=req.in_reply_to, placement=req.placement,
            at_ms=now, actor=actor, approval=req.approval, draft=req.draft)
        request_id = next((c.request.request_id for c in plan.changes if c.link == eid), eid)
        writers: list[BlobSink] = []
        placed: list[str] = []
        try:
            if req.draft is not None:  # sealed when drafted, kept with the draft
                prepared = await self._drafted_attachments(req.draft.request_id)
            else:
                prepared = await self._seal_attachments(eid, req.attachments, chunks, writers)
            async for _extra in chunks:
                raise StreamError("data beyond the declared attachments",
                                  code="ATTACHMENT_EXTRA")
            custody = [dataclasses.replace(spec.custody, index=i, request_id=(
                spec.custody.request_id or request_id)) for i, spec in enumerate(req.attachments)
                if spec.custody is not None]
            sealed, header, body = compose_envelope(
                signer=ctx.signer, trust=ctx.trust, sender=ctx.node_id, recipient=recipient.node_id,
                message_type=req.message_type, template_id=template.id,
                template_version=template.version, payload=req.payload, attachments=prepared,
                now_ms=now, ttl_ms=ttl, envelope_id=eid, in_reply_to=req.in_reply_to,
                legal_basis=decision.legal_basis, obligations=obligations,
                policy_set_hash=bytes.fromhex(decision.decision.policy_set_hash),
                case_reference=plan.case_reference, related_requests=plan.related,
                custody=custody)
            header_sha256 = hashlib.sha256(sealed.header).digest()
            plan = plan.with_header(eid, header_sha256)
            stored_atts = []
            for a, w in zip(prepared if writers else (), writers, strict=True):
                path = ctx.blobs.place(w, "out", eid.raw, a.entry.index)
                placed.append(path)
                stored_atts.append(self._stored_attachment(eid, a, path))
            msg = StoredMessage(
                direction="out", envelope_id=eid, peer=recipient.node_id,
                message_type=req.message_type, template_id=template.id,
                template_version=template.version, created_at_ms=header.created_at_ms,
                expires_at_ms=header.expires_at_ms, header=sealed.header,
                signature=sealed.signature, header_sha256=header_sha256,
                payload=ctx.at_rest.seal("payload", eid.raw, req.payload), status="pending",
                stored_at_ms=now, attachments=tuple(stored_atts),
                legal_basis=decision.legal_basis, obligations=obligations_json(obligations),
                body=ctx.at_rest.seal("body", eid.raw, body))
            await ctx.store.record_outgoing(msg, codec.encode_envelope(sealed), AuditEvent(
                EventType.ENVELOPE_SENT, actor=actor, envelope_id=eid, peer=recipient.node_id,
                message_type=req.message_type, template_id=template.id,
                template_version=template.version, header_sha256=msg.header_sha256,
                body_sha256=header.body_sha256, recipients=(recipient.node_id,),
                attachment_sha256=tuple(a.entry.sha256 for a in prepared),
                case_id=plan.changes[-1].request.case_id if plan.changes else "",
                **audited(decision.decision)), changes=plan.changes)
        except BaseException:
            discard_blobs(ctx.blobs, writers, placed)
            raise
        log.info("envelope.sent", envelope_id=str(eid), to=recipient.node_id,
                 message_type=req.message_type, attachments=len(prepared))
        # The last step linked to this message leaves its request as the store now holds
        # it (the commit refuses a request that moved meanwhile): no read back needed.
        request = next((c.request for c in reversed(plan.changes) if c.link == eid), None)
        return SentMessage(msg, header.attachments, tuple(a.filename for a in prepared),
                           request)

    async def draft(self, req: SendRequest, chunks: AsyncIterator[tuple[int, bytes]], *,
                    drafter: Person) -> RequestRecord:
        """Keep a request of a four-eyes kind (MLA, production) as a draft: validated
        and decided by policy now, sent only when a different approver approves it.
        Its attachments (e.g. a court order) are sealed now and kept, encrypted, with it."""
        ctx = self.ctx
        actor = f"person:{drafter.subject}"
        try:
            if len(req.attachments) > ctx.limits.max_attachments:
                raise MessageTooLarge("too many attachments")
            recipient = ctx.trust.node(req.to)
            template = self._template(req)
            payload = parse_payload(req.payload)
            template.validate(payload)
            kind = kind_for_message_type(req.message_type)
            if not rules(kind).four_eyes:
                raise StateError(f"a {kind} request is sent directly; it needs no approval",
                                 code="NO_APPROVAL_NEEDED")
            await self._decide(req, recipient.node_id, template, payload, actor)
        except PolicyRefused:
            raise
        except RogatoryError as e:
            await self._refused(req, e, actor)
            raise
        eid = MessageId.new()
        sealed = ctx.at_rest.seal("draft", eid.raw, _draft_bytes(req, template))
        writers: list[BlobSink] = []
        placed: list[str] = []
        try:
            prepared = await self._seal_attachments(eid, req.attachments, chunks, writers)
            async for _extra in chunks:
                raise StreamError("data beyond the declared attachments",
                                  code="ATTACHMENT_EXTRA")
            stored = []
            for a, w in zip(prepared, writers, strict=True):
                placed.append(ctx.blobs.place(w, "out", eid.raw, a.entry.index))
                stored.append(self._stored_attachment(eid, a, placed[-1]))
            request = await Cases.of(ctx).draft(
                eid=eid, to=recipient.node_id, message_type=req.message_type,
                template=template, placement=req.placement, sealed_draft=sealed,
                drafter=drafter.subject, actor=actor, attachments=tuple(stored))
        except BaseException:
            discard_blobs(ctx.blobs, writers, placed)
            raise
        log.info("request.drafted", request_id=str(eid), to=recipient.node_id,
                 message_type=req.message_type)
        return request

    async def approve(self, request_id: MessageId, *, approver: Person) -> SentMessage:
        """Four-eyes: a different person with the approver role approves a draft, which
        is sent at once; the request records both identities (refusals are audited)."""
        ctx = self.ctx
        request = await ctx.store.get_request(request_id)
        draft = json.loads(ctx.at_rest.open("draft", request_id.raw,
                                            await ctx.store.get_draft(request_id)))
        req = SendRequest(
            to=request.peer, message_type=request.message_type,
            payload=draft["payload"].encode(), template_id=request.template_id,
            template_version=request.template_version, ttl_ms=int(draft["ttl_ms"]),
            legal_basis=draft["legal_basis"], declared=draft["declared"],
            placement=Placement(case_id=request.case_id,
                                follows=tuple(MessageId.parse(f) for f in draft["follows"])),
            draft=request, approval=Approval.of(approver, request.drafter))
        sent = await self.send(req, _no_chunks(), actor=f"person:{approver.subject}")
        log.info("request.approved", request_id=str(request_id))
        return sent

    async def _decide(self, req: SendRequest, recipient: str, template: Template,
                      payload: dict[str, Any], actor: str) -> Decided:
        """The policy decision for this transfer; a refusal is audited with it."""
        try:
            return decide(self.ctx, action=req.action, sender=self.ctx.node_id,
                          recipient=recipient, template=template,
                          message_type=req.message_type, payload=payload,
                          legal_basis=req.legal_basis, declared=req.declared,
                          obligations=req.carried_obligations)
        except PolicyRefused as refused:
            await self.ctx.store.audit(AuditEvent(
                EventType.POLICY_DENIED, actor=actor, peer=recipient,
                message_type=req.message_type, template_id=template.id,
                template_version=template.version, reason=refused.code,
                **audited(refused.decision)))
            raise

    async def _drafted_attachments(self, request_id: MessageId) -> list[OutgoingAttachment]:
        out = []
        for a in await self.ctx.store.draft_attachments(request_id):
            rid = request_id.raw + a.index.to_bytes(4, "big")
            out.append(OutgoingAttachment(
                entry=AttachmentEntry(index=a.index, size=a.size, sha256=a.sha256,
                                      chunk_size=a.chunk_size, media_type=a.media_type),
                key=self.ctx.at_rest.open("attachment-key", rid, a.wrapped_key),
                filename=self.ctx.at_rest.open("filename", rid, a.filename).decode()))
        return out

    def _template(self, req: SendRequest) -> Template:
        ctx = self.ctx
        template = (ctx.templates.get(req.template_id, req.template_version)
                    if req.template_id and req.template_version
                    else ctx.templates.latest(req.template_id) if req.template_id
                    else ctx.templates.default_for_message_type(req.message_type))
        if req.message_type not in template.message_types:
            raise TemplateError(f"template {template.id} does not serve message type "
                                f"{req.message_type}", code="TEMPLATE_MISMATCH")
        return template

    def _stored_attachment(self, eid: MessageId, a: OutgoingAttachment,
                           path: str) -> StoredAttachment:
        rid = eid.raw + a.entry.index.to_bytes(4, "big")
        return StoredAttachment(
            index=a.entry.index, size=a.entry.size, sha256=a.entry.sha256,
            chunk_size=a.entry.chunk_size, media_type=a.entry.media_type,
            filename=self.ctx.at_rest.seal("filename", rid, a.filename.encode()),
            wrapped_key=self.ctx.at_rest.seal("attachment-key", rid, a.key), path=path)

    async def _seal_attachments(self, eid: MessageId, specs: Sequence[AttachmentSpec],
                                chunks: AsyncIterator[tuple[int, bytes]],
                                writers: list[BlobSink]) -> list[OutgoingAttachment]:
        chunk_size = self.ctx.delivery.chunk_size
        out: list[OutgoingAttachment] = []
        for index, spec in enumerate(specs):
            if spec.size > self.ctx.limits.max_attachment_bytes:
                raise MessageTooLarge("attachment exceeds the limit")
            key = new_stream_key()
            sealer = StreamSealer(key, envelope_id=eid.raw, index=index, size=spec.size,
                                  chunk_size=chunk_size)
            writer = self.ctx.blobs.new_writer()
            writers.append(writer)
            digest = hashlib.sha256()
            with Spool() as spool:
                await _spool_plaintext(spool, _take(chunks, index, spec.size), spec.size,
                                       chunk_size, functools.partial(_absorb, sealer, digest,
                                                                     writer))
                await spool.submit(writer.close)
                await spool.drain()
            out.append(OutgoingAttachment(
                entry=AttachmentEntry(index=index, size=spec.size, sha256=digest.digest(),
                                      chunk_size=chunk_size,
                                      media_type=spec.media_type or "application/octet-stream"),
                key=key, filename=spec.filename))
        return out


def _draft_bytes(req: SendRequest, template: Template) -> bytes:
    """What a draft keeps until approval (sealed at rest: it holds the payload)."""
    return json.dumps({
        "payload": req.payload.decode(), "ttl_ms": req.ttl_ms, "legal_basis": req.legal_basis,
        "declared": dict(req.declared), "template": [template.id, template.version],
        "follows": [str(f) for f in req.placement.follows],
    }, sort_keys=True).encode()


async def _no_chunks() -> AsyncIterator[tuple[int, bytes]]:
    return
    yield


def _absorb(sealer: StreamSealer, digest: Any, writer: BlobSink, plaintext: bytes) -> None:
    """Hash, seal and spool one chunk (runs in a worker thread: off the event loop)."""
    digest.update(plaintext)
    writer.write(sealer.seal(plaintext))


async def _spool_plaintext(spool: Spool, pieces: AsyncIterator[tuple[int, bytes]], size: int,
                           chunk_size: int, absorb: Callable[[bytes], None]) -> None:
    """Re-cut the operator's pieces into STREAM chunks, handed to `absorb` (hash, seal,
    write) on the spool's thread while the next pieces arrive."""
    buf = bytearray()
    remaining = size
    async for _index, data in pieces:
        remaining -= len(data)
        if not buf and len(data) == chunk_size and remaining > 0:
            await spool.submit(absorb, data)
            continue
        buf += data
        while len(buf) >= chunk_size and (remaining > 0 or len(buf) > chunk_size):
            piece = bytes(buf[:chunk_size])
            del buf[:chunk_size]
            await spool.submit(absorb, piece)
    await spool.submit(absorb, bytes(buf))


async def _take(chunks: AsyncIterator[tuple[int, bytes]], index: int,
                size: int) -> AsyncIterator[tuple[int, bytes]]:
    """Yield the pieces of attachment `index` until exactly `size` bytes have come."""
    got = 0
    while got < size:
        try:
            att_index, data = await anext(chunks)
        except StopAsyncIteration:
            raise StreamError("attachment ended before its declared size",
                              code="ATTACHMENT_SHORT") from None
        if att_index != index:
            raise StreamError("attachment data out of order", code="ATTACHMENT_ORDER")
        got += len(data)
        if got > size:
            raise StreamError("attachment longer than its declared size",
                              code="ATTACHMENT_LONG")
        yield att_index, data
