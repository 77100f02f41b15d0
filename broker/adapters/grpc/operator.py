"""The local operator API: send, list, show, receipt, attachments, status."""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc

from broker.adapters.grpc.auth import Operator, current_operator
from broker.adapters.grpc.status import REASON_KEY, status_for
from broker.errors import MalformedMessage, RogatoryError, Unauthenticated
from broker.lifecycle import Event, Kind, Side, State, allowed_events
from broker.model import EvidenceCustody, MessageId
from broker.model.cases import CaseRecord, DeadlineRecord, RequestRecord
from broker.model.stored import StoredMessage
from broker.services.cases import Cases, Placement
from broker.services.cases import export as export_case
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


_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[Any]])


def _unary(handler: _Handler) -> _Handler:
    """A unary handler whose refusals (RogatoryError) become the call's status, with the
    reason code in the trailing metadata; anything else is an internal error."""
    @functools.wraps(handler)
    async def call(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await handler(self, request, context)
        except RogatoryError as e:
            await _fail(context, e)
            raise AssertionError("unreachable") from e
    return cast(_Handler, call)


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


def _custody(a: op.AttachmentMeta) -> EvidenceCustody | None:
    if not (a.acquired_by or a.acquired_at_ms or a.method or a.source or a.request_reference):
        return None
    return EvidenceCustody(index=0, acquired_by=a.acquired_by, acquired_at_ms=a.acquired_at_ms,
                           method=a.method, source=a.source,
                           request_reference=a.request_reference)


def _deadline_info(d: DeadlineRecord, case_id: str, peer: str, side: str) -> op.DeadlineInfo:
    return op.DeadlineInfo(request_id=str(d.request_id), case_id=case_id, name=d.name,
                           kind=d.kind, basis=d.basis, verification=d.verification,
                           started_at_ms=d.started_at_ms, due_at_ms=d.due_at_ms,
                           status=d.status, peer=peer, side=side)


class OperatorServicer(operator_pb2_grpc.OperatorServicer):
    def __init__(self, ctx: NodeContext, *, on_sent: Callable[[], None]) -> None:
        self.ctx = ctx
        self.outgoing = Outgoing(ctx)
        self.mailbox = Mailbox(ctx)
        self.cases = Cases.of(ctx)
        self.on_sent = on_sent

    @_unary
    async def Send(self, request_iterator: AsyncIterator[op.SendFrame],
                   context: grpc.aio.ServicerContext[Any, Any]) -> op.SendResult:
        operator = _operator(SENDERS)
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("frame") != "header":
            raise MalformedMessage("a send starts with its header")
        h = first.header
        to = h.to
        if not to and h.in_reply_to:  # an answer goes to the request's peer
            request = await self.ctx.store.request_of_message(MessageId(h.in_reply_to))
            to = request.peer if request is not None else ""
        req = SendRequest(
            to=to, message_type=h.message_type, payload=h.payload,
            template_id=h.template_id, template_version=h.template_version,
            attachments=[AttachmentSpec(a.filename, a.media_type, a.size, _custody(a))
                         for a in h.attachments],
            ttl_ms=h.ttl_seconds * 1000,
            in_reply_to=MessageId(h.in_reply_to) if h.in_reply_to else None,
            legal_basis=h.legal_basis, declared=_declarations(h.declarations),
            placement=Placement(case_id=h.case_id, case_reference=h.case_reference,
                                follows=tuple(MessageId(f) for f in h.follows)))

        async def pieces() -> AsyncIterator[tuple[int, bytes]]:
            async for frame in request_iterator:
                if frame.WhichOneof("frame") != "chunk":
                    raise MalformedMessage("a second header in one send")
                yield frame.chunk.attachment_index, frame.chunk.data

        if h.draft:
            request = await self.outgoing.draft(req, pieces(), drafter=operator)
            return op.SendResult(request=await self._request_summary(request))
        sent = await self.outgoing.send(req, pieces(), actor=operator.actor)
        result = await self._sent_with_request(sent)
        self.on_sent()
        return result

    async def _sent_with_request(self, sent: SentMessage) -> op.SendResult:
        result = _sent_result(sent)
        if sent.request is not None:
            result.request.CopyFrom(await self._request_summary(sent.request))
        return result

    async def _request_summary(self, r: RequestRecord) -> op.RequestSummary:
        return op.RequestSummary(
            request_id=str(r.request_id), case_id=r.case_id, side=r.side, kind=r.kind,
            state=r.state, peer=r.peer, message_type=r.message_type,
            template_id=r.template_id, opened_at_ms=r.opened_at_ms,
            updated_at_ms=r.updated_at_ms, drafter=r.drafter, approver=r.approver,
            peer_reference=self.cases.peer_reference(r),
            allowed_events=sorted(allowed_events(State(r.state), side=Side(r.side),
                                                 kind=Kind(r.kind))))

    async def _case_summary(self, case: CaseRecord) -> op.CaseSummary:
        requests = await self.ctx.store.list_requests(case.case_id)
        return op.CaseSummary(case_id=case.case_id, reference=self.cases.reference(case),
                              opened_at_ms=case.opened_at_ms,
                              requests=[await self._request_summary(r) for r in requests])

    @_unary
    async def Approve(self, request: op.RequestRef,
                      context: grpc.aio.ServicerContext[Any, Any]) -> op.SendResult:
        operator = _operator(SENDERS)
        sent = await self.outgoing.approve(MessageId.parse(request.request_id),
                                           approver=operator)
        result = await self._sent_with_request(sent)
        self.on_sent()
        return result

    @_unary
    async def RecordStep(self, request: op.StepRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> op.RequestSummary:
        operator = _operator(SENDERS)
        try:
            event = Event(request.event)
        except ValueError as e:
            raise MalformedMessage(f"unknown lifecycle event {request.event!r}") from e
        record = await self.cases.record(MessageId.parse(request.request_id), event,
                                         actor=operator.actor)
        return await self._request_summary(record)

    @_unary
    async def ListCases(self, request: op.CaseQuery,
                        context: grpc.aio.ServicerContext[Any, Any]) -> op.CaseList:
        _operator(READERS)
        cases = await self.ctx.store.list_cases(request.limit or 100)
        return op.CaseList(cases=[await self._case_summary(c) for c in cases])

    @_unary
    async def GetCase(self, request: op.CaseRef,
                      context: grpc.aio.ServicerContext[Any, Any]) -> op.CaseDetail:
        _operator(READERS)
        case = await self.ctx.store.get_case(request.case_id)
        summary_ = await self._case_summary(case)
        details = []
        for r in summary_.requests:
            rid = MessageId.parse(r.request_id)
            steps = await self.ctx.store.request_steps(rid)
            deadlines = await self.ctx.store.deadlines(rid)
            messages = await self.ctx.store.request_messages(rid)
            details.append(op.RequestDetail(
                request=r,
                steps=[op.StepInfo(at_ms=st.at_ms, event=st.event, source=st.source,
                                   target=st.target, actor=st.actor,
                                   message_id=str(st.envelope_id or ""))
                       for st in steps],
                deadlines=[_deadline_info(d, r.case_id, r.peer, r.side) for d in deadlines],
                message_ids=[str(m) for m in messages]))
        return op.CaseDetail(case=summary_, requests=details)

    async def ExportCase(self, request: op.CaseRef,
                         context: grpc.aio.ServicerContext[Any, Any]
                         ) -> AsyncIterator[op.AttachmentData]:
        try:
            operator = _operator(READERS)
            folder = self.ctx.blobs.root.parent / "exports"
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                out = Path(tmp) / "bundle.zip"
                await export_case(self.ctx, request.case_id, out, actor=operator.actor,
                                  justification=_justification(context))
                with open(out, "rb") as fh:  # noqa: ASYNC230 - reads go to a thread
                    while piece := await asyncio.to_thread(fh.read, STREAM_PIECE):
                        yield op.AttachmentData(data=piece)
        except RogatoryError as e:
            await _fail(context, e)

    @_unary
    async def UpdateCase(self, request: op.CaseUpdate,
                         context: grpc.aio.ServicerContext[Any, Any]) -> op.CaseSummary:
        operator = _operator(SENDERS)
        case = await self.cases.set_reference(request.case_id, request.reference,
                                              actor=operator.actor)
        return await self._case_summary(case)

    @_unary
    async def ListDeadlines(self, request: op.DeadlineQuery,
                            context: grpc.aio.ServicerContext[Any, Any]) -> op.DeadlineList:
        _operator(READERS)
        horizon = self.ctx.clock() + max(request.within_ms, 0)
        out = []
        for d in await self.ctx.store.deadlines(due_before_ms=horizon):
            r = await self.ctx.store.get_request(d.request_id)
            out.append(_deadline_info(d, r.case_id, r.peer, r.side))
        return op.DeadlineList(deadlines=out)

    @_unary
    async def ListMessages(self, request: op.ListRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> op.MessageList:
        _operator(READERS)
        direction = {"incoming": "in", "outgoing": "out", "": None}.get(request.direction)
        if direction is None and request.direction:
            raise MalformedMessage("direction is incoming or outgoing")
        rows = await self.mailbox.list(direction, request.limit or 100)
        return op.MessageList(messages=[summary(m, n) for m, n in rows])

    @_unary
    async def GetMessage(self, request: op.MessageRef,
                         context: grpc.aio.ServicerContext[Any, Any]) -> op.MessageDetail:
        operator = _operator(READERS)
        view = await self.mailbox.show(MessageId.parse(request.message_id),
                                       actor=operator.actor,
                                       justification=_justification(context))
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

    @_unary
    async def GetReceipt(self, request: op.MessageRef,
                         context: grpc.aio.ServicerContext[Any, Any]) -> op.ReceiptDetail:
        _operator(READERS)
        mid = MessageId.parse(request.message_id)
        view = await self.mailbox.receipt(mid)
        b = view.body
        return op.ReceiptDetail(
            message_id=str(mid), receiver=b.receiver if b else "",
            receiver_key_id=b.receiver_key_id if b else "",
            status=(b.status.name.lower() if b else view.error),
            received_at_ms=b.received_at_ms if b else 0,
            header_sha256=b.header_sha256.hex() if b else "", verified=view.verified,
            receipt=view.raw, key_status=view.key_status)

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

    @_unary
    async def Forward(self, request: op.ForwardRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> op.SendResult:
        operator = _operator(SENDERS)
        sent = await Forwarding(self.ctx).forward(
            MessageId.parse(request.message_id), to=request.to,
            declared=_declarations(request.declarations), actor=operator.actor,
            ttl_ms=request.ttl_seconds * 1000)
        self.on_sent()
        return _sent_result(sent)

    @_unary
    async def GetStatus(self, request: op.StatusRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> op.NodeStatus:
        _operator(READERS)
        counts = await self.ctx.store.counts()
        return op.NodeStatus(node_id=self.ctx.node_id, trust_list_version=self.ctx.trust.version,
                             outbox_pending=counts["outbox_pending"],
                             inbox_count=counts["inbox"], audit_records=counts["audit"])
