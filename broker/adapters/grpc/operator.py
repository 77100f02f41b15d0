"""The local operator API: send, list, show, receipt, attachments, status."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from broker.adapters.grpc.auth import Operator, current_operator
from broker.adapters.grpc.status import REASON_KEY, status_for
from broker.errors import MalformedMessage, RogatoryError, Unauthenticated
from broker.model import MessageId
from broker.model.stored import StoredMessage
from broker.services.context import NodeContext
from broker.services.forwarding import Forwarding
from broker.services.mailbox import Mailbox
from broker.services.outgoing import AttachmentSpec, Outgoing, SendRequest, SentMessage
from broker.wire.gen.rogatory.v1 import operator_pb2 as op
from broker.wire.gen.rogatory.v1 import operator_pb2_grpc

SENDERS = frozenset({"drafter", "approver", "contact_point_officer", "admin"})
READERS = SENDERS | {"auditor"}
STREAM_PIECE = 1 << 20


JUSTIFICATION_KEY = "rogatory-justification"
MAX_JUSTIFICATION = 200


def _justification(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """LED Art. 25: the reason for a consultation, as a reference (e.g. a case number)."""
    for key, value in context.invocation_metadata() or ():
        if key == JUSTIFICATION_KEY:
            text = str(value)
            if len(text) > MAX_JUSTIFICATION or not text.isprintable():
                raise MalformedMessage("a justification is one printable line of at most "
                                       f"{MAX_JUSTIFICATION} characters")
            return text
    return ""


def _declarations(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedMessage("declarations are not a JSON object") from e
    if not isinstance(value, dict):
        raise MalformedMessage("declarations are not a JSON object")
    return value


def _operator(allowed: frozenset[str]) -> Operator:
    operator = current_operator.get(None)
    if operator is None or not operator.roles & allowed:
        raise Unauthenticated("this call needs one of the roles " + ", ".join(sorted(allowed)),
                              code="FORBIDDEN")
    return operator


async def _fail(context: grpc.aio.ServicerContext[Any, Any], e: RogatoryError) -> None:
    code, message, reason = status_for(e, opaque=False)
    if e.code == "FORBIDDEN":
        code = grpc.StatusCode.PERMISSION_DENIED
    context.set_trailing_metadata(((REASON_KEY, reason),))
    await context.abort(code, message)


def _sent_result(sent: SentMessage) -> op.SendResult:
    return op.SendResult(
        message=summary(sent.message, len(sent.attachments)),
        attachments=[op.AttachmentInfo(index=a.index, filename=name, media_type=a.media_type,
                                       size=a.size, sha256=a.sha256.hex())
                     for a, name in zip(sent.attachments, sent.filenames, strict=True)])


def summary(m: StoredMessage, attachment_count: int) -> op.MessageSummary:
    return op.MessageSummary(
        message_id=str(m.envelope_id), direction="outgoing" if m.direction == "out" else
        "incoming", peer=m.peer, message_type=m.message_type, template_id=m.template_id,
        template_version=m.template_version, status=m.status, created_at_ms=m.created_at_ms,
        expires_at_ms=m.expires_at_ms, attachment_count=attachment_count)


class OperatorServicer(operator_pb2_grpc.OperatorServicer):
    def __init__(self, ctx: NodeContext, *, on_sent: Callable[[], None]) -> None:
        self.ctx = ctx
        self.outgoing = Outgoing(ctx)
        self.mailbox = Mailbox(ctx)
        self.on_sent = on_sent

    async def Send(self, request_iterator: AsyncIterator[op.SendFrame],
                   context: grpc.aio.ServicerContext[Any, Any]) -> op.SendResult:
        try:
            operator = _operator(SENDERS)
            first = await anext(request_iterator, None)
            if first is None or first.WhichOneof("frame") != "header":
                raise MalformedMessage("a send starts with its header")
            h = first.header
            req = SendRequest(
                to=h.to, message_type=h.message_type, payload=h.payload,
                template_id=h.template_id, template_version=h.template_version,
                attachments=[AttachmentSpec(a.filename, a.media_type, a.size)
                             for a in h.attachments],
                ttl_ms=h.ttl_seconds * 1000,
                in_reply_to=MessageId(h.in_reply_to) if h.in_reply_to else None,
                legal_basis=h.legal_basis, declared=_declarations(h.declarations))

            async def pieces() -> AsyncIterator[tuple[int, bytes]]:
                async for frame in request_iterator:
                    if frame.WhichOneof("frame") != "chunk":
                        raise MalformedMessage("a second header in one send")
                    yield frame.chunk.attachment_index, frame.chunk.data

            sent = await self.outgoing.send(req, pieces(), actor=operator.actor)
        except RogatoryError as e:
            await _fail(context, e)
            raise AssertionError("unreachable") from e
        self.on_sent()
        return _sent_result(sent)

    async def ListMessages(self, request: op.ListRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> op.MessageList:
        try:
            _operator(READERS)
            direction = {"incoming": "in", "outgoing": "out", "": None}.get(request.direction)
            if direction is None and request.direction:
                raise MalformedMessage("direction is incoming or outgoing")
            rows = await self.mailbox.list(direction, request.limit or 100)
        except RogatoryError as e:
            await _fail(context, e)
            raise AssertionError("unreachable") from e
        return op.MessageList(messages=[summary(m, n) for m, n in rows])

    async def GetMessage(self, request: op.MessageRef,
                         context: grpc.aio.ServicerContext[Any, Any]) -> op.MessageDetail:
        try:
            operator = _operator(READERS)
            view = await self.mailbox.show(MessageId.parse(request.message_id),
                                           actor=operator.actor,
                                           justification=_justification(context))
        except RogatoryError as e:
            await _fail(context, e)
            raise AssertionError("unreachable") from e
        m = view.message
        _state, attempts, error = view.delivery or ("", 0, "")
        return op.MessageDetail(
            message=summary(m, len(view.attachments)), payload=view.payload,
            attachments=[op.AttachmentInfo(index=a.index, filename=a.filename,
                                           media_type=a.media_type, size=a.size,
                                           sha256=a.sha256) for a in view.attachments],
            header_sha256=m.header_sha256.hex(), body_sha256=view.body_sha256,
            signer_key_id=view.signer_key_id, signature_fingerprint=view.signature_fingerprint,
            delivery_attempts=attempts, last_error=error, legal_basis=m.legal_basis,
            obligations=m.obligations)

    async def GetReceipt(self, request: op.MessageRef,
                         context: grpc.aio.ServicerContext[Any, Any]) -> op.ReceiptDetail:
        try:
            _operator(READERS)
            mid = MessageId.parse(request.message_id)
            view = await self.mailbox.receipt(mid)
        except RogatoryError as e:
            await _fail(context, e)
            raise AssertionError("unreachable") from e
        b = view.body
        return op.ReceiptDetail(
            message_id=str(mid), receiver=b.receiver if b else "",
            receiver_key_id=b.receiver_key_id if b else "",
            status=(b.status.name.lower() if b else view.error),
            received_at_ms=b.received_at_ms if b else 0,
            header_sha256=b.header_sha256.hex() if b else "", verified=view.verified,
            receipt=view.raw)

    async def ReadAttachment(self, request: op.AttachmentRef,
                             context: grpc.aio.ServicerContext[Any, Any]
                             ) -> AsyncIterator[op.AttachmentData]:
        try:
            operator = _operator(READERS)
            stream = await self.mailbox.read_attachment(
                MessageId.parse(request.message_id), request.index, actor=operator.actor,
                justification=_justification(context))
            async for piece in stream:
                yield op.AttachmentData(data=piece)
        except RogatoryError as e:
            await _fail(context, e)

    async def Forward(self, request: op.ForwardRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> op.SendResult:
        try:
            operator = _operator(SENDERS)
            sent = await Forwarding(self.ctx).forward(
                MessageId.parse(request.message_id), to=request.to,
                declared=_declarations(request.declarations), actor=operator.actor,
                ttl_ms=request.ttl_seconds * 1000)
        except RogatoryError as e:
            await _fail(context, e)
            raise AssertionError("unreachable") from e
        self.on_sent()
        return _sent_result(sent)

    async def GetStatus(self, request: op.StatusRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> op.NodeStatus:
        try:
            _operator(READERS)
            counts = await self.ctx.store.counts()
        except RogatoryError as e:
            await _fail(context, e)
            raise AssertionError("unreachable") from e
        return op.NodeStatus(node_id=self.ctx.node_id, trust_list_version=self.ctx.trust.version,
                             outbox_pending=counts["outbox_pending"],
                             inbox_count=counts["inbox"], audit_records=counts["audit"])
