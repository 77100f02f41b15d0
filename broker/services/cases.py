"""The request lifecycle wired into the node: which request a message opens or moves.

Every message of the exchange either opens a request (its envelope id names the request
on both sides, which is how the two sides correlate) or moves one: it must then answer a
message of a request known here, with the same peer, and the step must be legal on this
side (``broker.lifecycle.apply``). The services ask this module to *plan* the steps
before anything is stored and commit the plan in the same transaction as the message,
its receipt or its outbox entry: a refused step stores nothing. Deadline clocks start
and stop with the steps; ``scan_deadlines`` raises ``deadline.approaching|passed``
(audited) and lets a preservation expire.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broker.audit import AuditEvent, EventType
from broker.bundle import CaseInfo, RequestInfo
from broker.config import LifecyclePolicy
from broker.errors import ConfigError, NotFound, StateError, TemplateError
from broker.lifecycle import (
    Approval,
    Calendar,
    DayCount,
    DeadlineClock,
    DeadlineEvent,
    Direction,
    Event,
    IllegalTransition,
    IsoDuration,
    Kind,
    Side,
    State,
    Transition,
    apply,
    event_for_message,
    initial_state,
    kind_for_message_type,
    opens_request,
    rules,
    started_by,
    stopped_by,
    target_of,
)
from broker.model import MessageId, VerifiedEnvelope
from broker.model.cases import (
    CaseRecord,
    DeadlineRecord,
    LifecycleChange,
    RequestRecord,
    StepRecord,
)
from broker.model.stored import StoredAttachment
from broker.services.context import NodeContext, log
from broker.services.export import ExportSummary, export_case
from broker.templating import Template
from broker.templating.model import Deadline

UNKNOWN_REQUEST = "UNKNOWN_REQUEST"
APPROVAL_REQUIRED = "APPROVAL_REQUIRED"
MAX_REFERENCE = 200
_RECEIPT_CLOCKS = frozenset({"receipt", "request_receipt"})
_OPEN = ("running", "approaching")


class UnknownRequest(StateError):
    """A message that answers no request known here (or one held with another peer)."""

    code = UNKNOWN_REQUEST


@dataclass(frozen=True)
class Placement:
    """Where an outgoing request belongs: an existing case, or a new one with this
    node's own reference; and the requests it follows up (a preservation before an MLA
    request), which travel sealed in the body."""

    case_id: str = ""
    case_reference: str = ""
    follows: tuple[MessageId, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The steps a message takes, to commit with it."""

    changes: tuple[LifecycleChange, ...] = ()
    related: tuple[MessageId, ...] = ()     # requests named in the body
    case_reference: str = ""                # this node's reference, sent in the body

    def with_header(self, request_id: MessageId, header_sha256: bytes) -> Plan:
        """The plan once the opening message's header exists: records name its digest."""
        def fix(c: LifecycleChange) -> LifecycleChange:
            if c.request.request_id != request_id:
                return c
            return dataclasses.replace(
                c, request=dataclasses.replace(c.request, header_sha256=header_sha256),
                events=tuple(dataclasses.replace(e, header_sha256=header_sha256)
                             for e in c.events))
        return dataclasses.replace(self, changes=tuple(fix(c) for c in self.changes))


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def dt_to_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class Cases:
    """Plans and records lifecycle steps for one node."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        policy = ctx.lifecycle
        try:
            self.tz = ZoneInfo(policy.timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ConfigError(f"unknown time zone {policy.timezone!r}") from e
        try:
            self.calendar = Calendar(frozenset(date.fromisoformat(d) for d in policy.holidays),
                                     tuple(policy.weekend))
            self.count = DayCount(policy.day_count)
        except ValueError as e:
            raise ConfigError(f"lifecycle calendar: {e}") from e
        self.threshold = policy.approaching
        self.agency_deadlines = _agency_deadlines(policy)
        self.policy = policy

    @classmethod
    def of(cls, ctx: NodeContext) -> Cases:
        """The node's planner, built once per lifecycle policy and kept on the context:
        building one parses the policy (time zone, calendar, agency deadlines)."""
        cases = ctx.cases
        if cases is None or cases.policy is not ctx.lifecycle:
            cases = ctx.cases = cls(ctx)
        return cases

    # -- planning outgoing messages -------------------------------------------------------

    async def plan_outgoing(self, *, eid: MessageId, to: str, message_type: str,
                            template: Template, payload: Mapping[str, Any],
                            in_reply_to: MessageId | None, placement: Placement, at_ms: int,
                            actor: str, approval: Approval | None = None,
                            draft: RequestRecord | None = None) -> Plan:
        """The steps sending this message takes, or raise before anything is stored.

        A request of a four-eyes kind (MLA, production) is sent only from an approved
        draft (``draft`` with ``approval``); other requests open here directly.
        """
        if opens_request(message_type, payload):
            if in_reply_to is not None:
                raise IllegalTransition(
                    f"a {message_type} opens a request of its own; it answers no message",
                    state="", event="send", side=Side.REQUESTING, kind="")
            return await self._open_outgoing(eid=eid, to=to, message_type=message_type,
                                             template=template, payload=payload,
                                             placement=placement, at_ms=at_ms, actor=actor,
                                             approval=approval, draft=draft)
        request, deadlines = await self._answered(in_reply_to, peer=to,
                                                  message_type=message_type)
        event = event_for_message(message_type, payload, kind=Kind(request.kind))
        changes = self._move(request, deadlines, event, at_ms=at_ms, actor=actor,
                             envelope_id=eid, direction=Direction.OUTGOING,
                             message_type=message_type)
        return Plan(tuple(changes), case_reference=await self._reference(request.case_id))

    async def _open_outgoing(self, *, eid: MessageId, to: str, message_type: str,
                             template: Template, payload: Mapping[str, Any],
                             placement: Placement, at_ms: int, actor: str,
                             approval: Approval | None,
                             draft: RequestRecord | None) -> Plan:
        kind = kind_for_message_type(message_type)
        if rules(kind).four_eyes and (draft is None or approval is None):
            raise StateError(
                f"a {kind} request needs four-eyes approval: draft it (rogatory draft) and "
                "have a different person with the approver role approve it (rogatory "
                "approve)", code=APPROVAL_REQUIRED)
        follows = [await self.ctx.store.get_request(r) for r in placement.follows]
        for f in follows:
            if f.side != Side.REQUESTING:
                raise IllegalTransition(
                    f"request {f.request_id} was received here: only the requesting side "
                    "follows a request up", state=f.state, event="follow_up", side=f.side,
                    kind=f.kind)
        changes: list[LifecycleChange] = []
        case: CaseRecord | None = None
        if draft is not None:
            request, case_id = draft, draft.case_id
            approve = self._step(request, Event.APPROVE, at_ms=at_ms, actor=actor,
                                 envelope_id=None, approval=approval, deadlines=())
            changes.append(dataclasses.replace(approve[0], drop_draft=True))
            request = approve[0].request
        else:
            case_id, case = await self._case_for(placement, follows, at_ms)
            request = RequestRecord(
                request_id=eid, case_id=case_id, side=Side.REQUESTING, kind=kind,
                state=initial_state(Side.REQUESTING), peer=to, message_type=message_type,
                template_id=template.id, template_version=template.version,
                header_sha256=b"", opened_at_ms=at_ms, updated_at_ms=at_ms)
            changes.append(LifecycleChange(request, expected_state=None, case=case))
        pending = self._pending(eid, template, payload, message_type)
        sent, _ = self._step(request, Event.SEND, at_ms=at_ms, actor=actor, envelope_id=eid,
                             deadlines=pending, direction=Direction.OUTGOING,
                             message_type=message_type)
        changes.append(dataclasses.replace(sent, start=(*pending, *sent.start)))
        for f in follows:  # the follow-up may go to another authority of that State
            changes.extend(await self._follow_up(f, at_ms=at_ms, actor=actor))
        reference = (placement.case_reference if case is not None
                     else await self._reference(case_id))
        return Plan(tuple(changes), related=tuple(placement.follows), case_reference=reference)

    async def _case_for(self, placement: Placement, follows: Sequence[RequestRecord],
                        at_ms: int) -> tuple[str, CaseRecord | None]:
        if placement.case_id:
            await self.ctx.store.get_case(placement.case_id)  # NotFound if unknown
            return placement.case_id, None
        if follows:
            return follows[0].case_id, None
        return self._new_case(placement.case_reference, at_ms)

    def _new_case(self, reference: str, at_ms: int) -> tuple[str, CaseRecord]:
        case_id = "C-" + os.urandom(5).hex()
        sealed = self.ctx.at_rest.seal("case-reference", case_id.encode(), reference.encode())
        return case_id, CaseRecord(case_id, sealed, at_ms)

    async def _reference(self, case_id: str) -> str:
        return self.reference(await self.ctx.store.get_case(case_id))

    def reference(self, case: CaseRecord) -> str:
        """This node's own reference for a case (sealed at rest)."""
        return self.ctx.at_rest.open("case-reference", case.case_id.encode(),
                                     case.reference).decode()

    async def set_reference(self, case_id: str, reference: str, *, actor: str) -> CaseRecord:
        """Give a case this node's own reference (e.g. the executing side's file number
        for a request it received); it travels sealed in the answers it sends."""
        if len(reference) > MAX_REFERENCE or not reference.isprintable():
            raise StateError(f"a case reference is one printable line of at most "
                             f"{MAX_REFERENCE} characters", code="REFERENCE_INVALID")
        sealed = self.ctx.at_rest.seal("case-reference", case_id.encode(), reference.encode())
        await self.ctx.store.set_case_reference(case_id, sealed, AuditEvent(
            EventType.CASE_REFERENCE_SET, actor=actor, case_id=case_id))
        return await self.ctx.store.get_case(case_id)

    def peer_reference(self, r: RequestRecord) -> str:
        """The other side's case reference for a request, as its messages gave it."""
        if not r.peer_reference:
            return ""
        return self.ctx.at_rest.open("peer-reference", r.request_id.raw,
                                     r.peer_reference).decode()

    async def _follow_up(self, request: RequestRecord, *, at_ms: int,
                         actor: str) -> list[LifecycleChange]:
        """A local follow-up step (Budapest: the MLA request after a preservation), when
        the preservation's state allows it; otherwise the link by case is all."""
        kind, state = Kind(request.kind), State(request.state)
        if target_of(state, Event.FOLLOW_UP, side=Side(request.side), kind=kind) is None:
            return []
        change, t = self._step(request, Event.FOLLOW_UP, at_ms=at_ms, actor=actor,
                               envelope_id=None,
                               deadlines=await self.ctx.store.deadlines(request.request_id))
        return [change] if t.direction is Direction.LOCAL else []

    # -- planning incoming messages -------------------------------------------------------

    async def plan_incoming(self, v: VerifiedEnvelope, template: Template,
                            payload: Mapping[str, Any], at_ms: int) -> Plan:
        """The steps receiving this message takes, or raise (the delivery is refused)."""
        h = v.header
        actor = self.ctx.actor
        peer_reference = self.ctx.at_rest.seal("peer-reference", h.envelope_id.raw,
                                               v.body.case_reference.encode())
        if opens_request(h.message_type, payload):
            if h.in_reply_to is not None:
                raise IllegalTransition(
                    f"a {h.message_type} opens a request of its own; it answers no message",
                    state="", event="receipt", side=Side.EXECUTING, kind="")
            kind = kind_for_message_type(h.message_type)
            follows = []
            for rid in v.body.related_requests:
                try:
                    r = await self.ctx.store.get_request(rid)
                except NotFound:
                    continue  # handled by another authority of the requesting State
                if r.side == Side.EXECUTING and r.peer == h.sender:
                    follows.append(r)
            case: CaseRecord | None = None
            if follows:
                case_id = follows[0].case_id
            else:
                case_id, case = self._new_case("", at_ms)
            request = RequestRecord(
                request_id=h.envelope_id, case_id=case_id, side=Side.EXECUTING, kind=kind,
                state=initial_state(Side.EXECUTING), peer=h.sender,
                message_type=h.message_type, template_id=template.id,
                template_version=template.version, header_sha256=v.header_sha256,
                opened_at_ms=at_ms, updated_at_ms=at_ms, peer_reference=peer_reference)
            pending = self._pending(h.envelope_id, template, payload, h.message_type)
            received, _ = self._step(request, Event.RECEIPT, at_ms=at_ms, actor=actor,
                                     envelope_id=h.envelope_id, deadlines=pending)
            changes = [LifecycleChange(request, expected_state=None, case=case),
                       dataclasses.replace(received, start=(*pending, *received.start))]
            for f in follows:
                changes.extend(await self._follow_up(f, at_ms=at_ms, actor=actor))
            return Plan(tuple(changes))
        request, deadlines = await self._answered(h.in_reply_to, peer=h.sender,
                                                  message_type=h.message_type)
        event = event_for_message(h.message_type, payload, kind=Kind(request.kind))
        changes = self._move(request, deadlines, event, at_ms=at_ms, actor=actor,
                             envelope_id=h.envelope_id, direction=Direction.INCOMING,
                             message_type=h.message_type)
        if v.body.case_reference:
            last = changes[-1]
            changes[-1] = dataclasses.replace(last, request=dataclasses.replace(
                last.request, peer_reference=self.ctx.at_rest.seal(
                    "peer-reference", request.request_id.raw, v.body.case_reference.encode())))
        return Plan(tuple(changes))

    async def plan_receipt(self, envelope_id: MessageId, received_at_ms: int) -> Plan:
        """The requesting side's ``receipt`` step when the request it sent as message
        ``envelope_id`` is delivered (skipped if an answer already proved delivery)."""
        found = await self.ctx.store.request_with_deadlines(envelope_id)
        if found is None:
            return Plan()
        request, deadlines = found
        if request.request_id != envelope_id or request.state != State.SENT:
            return Plan()
        change, _ = self._step(request, Event.RECEIPT, at_ms=received_at_ms,
                               actor=self.ctx.actor, envelope_id=None, deadlines=deadlines)
        return Plan((dataclasses.replace(change, optional=True),))

    async def _answered(self, in_reply_to: MessageId | None, *, peer: str,
                        message_type: str) -> tuple[RequestRecord, list[DeadlineRecord]]:
        """The request a message answers, with its deadlines (one read)."""
        if in_reply_to is None:
            raise UnknownRequest(f"a {message_type} must answer a message of a request "
                                 "(in_reply_to)")
        found = await self.ctx.store.request_with_deadlines(in_reply_to)
        if found is None or found[0].peer != peer:
            # The same answer whether unknown or held with another peer: no oracle.
            raise UnknownRequest(f"in_reply_to names no request exchanged with {peer}")
        return found

    def _move(self, request: RequestRecord, deadlines: list[DeadlineRecord], event: Event, *,
              at_ms: int, actor: str, envelope_id: MessageId, direction: Direction,
              message_type: str) -> list[LifecycleChange]:
        changes: list[LifecycleChange] = []
        if request.side == Side.REQUESTING and request.state == State.SENT:
            # An answer proves delivery, even if our receipt is still on its way back.
            change, _ = self._step(request, Event.RECEIPT, at_ms=at_ms, actor=actor,
                                   envelope_id=None, deadlines=deadlines)
            changes.append(change)
            request = change.request
            deadlines = _merge(deadlines, change.start)
        change, _ = self._step(request, event, at_ms=at_ms, actor=actor,
                               envelope_id=envelope_id, deadlines=deadlines,
                               direction=direction, message_type=message_type)
        changes.append(change)
        return changes

    # -- one step -------------------------------------------------------------------------

    def _step(self, request: RequestRecord, event: Event, *, at_ms: int, actor: str,
              envelope_id: MessageId | None, deadlines: Iterable[DeadlineRecord],
              approval: Approval | None = None, direction: Direction | None = None,
              message_type: str | None = None) -> tuple[LifecycleChange, Transition]:
        side, kind = Side(request.side), Kind(request.kind)
        t = apply(State(request.state), event, side=side, kind=kind, at=ms_to_dt(at_ms),
                  approval=approval)
        if direction is not None and (t.direction is not direction
                                      or t.message_type != message_type):
            expected = t.message_type or "no message"
            raise IllegalTransition(
                f"illegal transition: the {side} side of a {kind} request does not "
                f"{'send' if direction is Direction.OUTGOING else 'receive'} a "
                f"{message_type} for {event} (that step travels as {expected}, "
                f"{t.direction})", state=request.state, event=event, side=side, kind=kind)
        deadlines = tuple(deadlines)
        start, stop = self._clocks(t, deadlines, at_ms)
        updated = dataclasses.replace(
            request, state=t.target, updated_at_ms=at_ms,
            drafter=approval.drafter if approval else request.drafter,
            approver=approval.approver if approval else request.approver)
        events = tuple(self._event(EventType(name), updated, actor=actor, reason=str(event))
                       for name in t.audit_events)
        step = StepRecord(request.request_id, at_ms, str(event), str(t.source), str(t.target),
                          actor, envelope_id)
        return LifecycleChange(updated, expected_state=request.state, steps=(step,),
                               link=envelope_id, start=start, stop=stop,
                               stop_all=t.ends_all, events=events), t

    def _event(self, event_type: EventType, r: RequestRecord, *, actor: str,
               reason: str = "") -> AuditEvent:
        return AuditEvent(event_type, actor=actor, envelope_id=r.request_id, peer=r.peer,
                          message_type=r.message_type, template_id=r.template_id,
                          template_version=r.template_version, header_sha256=r.header_sha256,
                          case_id=r.case_id, reason=reason)

    # -- deadlines ------------------------------------------------------------------------

    def _pending(self, request_id: MessageId, template: Template,
                 payload: Mapping[str, Any], message_type: str) -> tuple[DeadlineRecord, ...]:
        """The deadlines this request may start: its template's (for this payload) and
        the agency's own, none running yet."""
        found = [*((d, "") for d in template.deadlines_for(payload)),
                 *((d, met_by) for mt, d, met_by in self.agency_deadlines
                   if mt == message_type)]
        return tuple(DeadlineRecord(
            request_id=request_id, name=d.name, kind=d.kind, basis=d.basis,
            verification=d.verification, started_at_ms=0, due_at_ms=0, approaching_at_ms=0,
            status="pending", value=d.value, starts=d.starts, extends=d.extends,
            met_by=met_by) for d, met_by in found)

    def _clocks(self, t: Transition, rows: tuple[DeadlineRecord, ...],
                at_ms: int) -> tuple[tuple[DeadlineRecord, ...], tuple[str, ...]]:
        """Clocks this step starts (with due times) and the deadlines it meets, by the
        lifecycle's own rules (`started_by`, `stopped_by`) over the request's deadlines."""
        if t.ends_all:
            return (), ()  # the store stops every clock (`stop_all`)
        by_name = {d.name: d for d in rows}
        pending = [d for d in rows if d.status == "pending"]
        names = {d.name for d in started_by(map(_as_deadline, pending), t)}
        if t.event is Event.PRESERVATION_EXTENSION and not any(d.extends for d in rows):
            # Budapest Art. 29: an extension is a fresh request for the period again.
            names |= {d.name for d in rows if d.starts in _RECEIPT_CLOCKS
                      and d.status != "pending"}
        start = []
        for name in sorted(names):
            d = by_name[name]
            base = by_name.get(d.extends) if d.extends else None
            # An extension runs on from the due time of the deadline it extends.
            begin = base.due_at_ms if base is not None and base.due_at_ms else at_ms
            start.append(self._running(d, begin))
        stop = {d.name for d in stopped_by(map(_as_deadline, rows), t)}
        stop |= {d.name for d in rows if str(t.event) in d.met_by.split(",")}
        return tuple(start), tuple(sorted(stop - names))

    def _running(self, d: DeadlineRecord, begin_ms: int) -> DeadlineRecord:
        clock = DeadlineClock.start(_as_deadline(d), ms_to_dt(begin_ms), calendar=self.calendar,
                                    tz=self.tz, count=self.count, threshold=self.threshold)
        return dataclasses.replace(d, started_at_ms=begin_ms,
                                   due_at_ms=dt_to_ms(clock.due_at),
                                   approaching_at_ms=dt_to_ms(clock.approaching_at),
                                   status="running", raised="")

    async def scan_deadlines(self) -> int:
        """Raise the deadline events due now (each once, audited); a preservation whose
        period ran out without extension expires. Returns how many events were raised."""
        ctx = self.ctx
        now_ms = ctx.clock()
        raised = 0
        for d in await ctx.store.deadlines(open_before_ms=now_ms):
            clock = DeadlineClock(_as_deadline(d), ms_to_dt(d.started_at_ms),
                                  ms_to_dt(d.due_at_ms), self.threshold)
            done = frozenset(filter(None, d.raised.split(",")))
            new = clock.events(ms_to_dt(now_ms), done)
            if not new:
                continue
            status = clock.status(ms_to_dt(now_ms))
            request = await ctx.store.get_request(d.request_id)
            events = [dataclasses.replace(
                self._event(EventType(e.value), request, actor=ctx.actor, reason=d.name))
                for e in new]
            changes: list[LifecycleChange] = []
            if DeadlineEvent.PASSED in new and self._expires(request, d):
                change, _ = self._step(request, Event.EXPIRE, at_ms=now_ms, actor=ctx.actor,
                                       envelope_id=None, deadlines=())
                changes.append(change)
            updated = dataclasses.replace(
                d, status=str(status), raised=",".join(sorted(done | {e.value for e in new})))
            await ctx.store.update_deadline(updated, changes, *events)
            raised += len(new)
            log.info("deadline.raised", request_id=str(d.request_id), deadline=d.name,
                     events=[e.value for e in new])
        return raised

    @staticmethod
    def _expires(request: RequestRecord, d: DeadlineRecord) -> bool:
        """A preservation whose (extended) period ran out, while data are kept."""
        kind = Kind(request.kind)
        return (rules(kind).preservation and d.kind != "minimum"
                and target_of(State(request.state), Event.EXPIRE, side=Side(request.side),
                              kind=kind) is not None)

    # -- local steps ----------------------------------------------------------------------

    @staticmethod
    def event(name: str) -> Event:
        """The lifecycle event named ``name`` (e.g. ``begin_execution``)."""
        try:
            return Event(name)
        except ValueError as e:
            raise StateError(f"unknown lifecycle event {name!r}",
                             code="EVENT_UNKNOWN") from e

    async def record(self, request_id: MessageId, event: Event, *, actor: str) -> RequestRecord:
        """A step recorded locally (begin execution, lift, close, expire)."""
        request = await self.ctx.store.get_request(request_id)
        change, t = self._step(request, event, at_ms=self.ctx.clock(), actor=actor,
                               envelope_id=None,
                               deadlines=await self.ctx.store.deadlines(request_id))
        if t.target is State.WITHDRAWN and State(request.state) in (State.DRAFT,
                                                                    State.APPROVED):
            change = dataclasses.replace(change, drop_draft=True)  # never sent: kept no more
        if t.direction is not Direction.LOCAL:
            raise IllegalTransition(
                f"illegal transition: {event} travels as a {t.message_type} message: send "
                "it in reply to the request", state=request.state, event=event,
                side=request.side, kind=request.kind)
        orphans = []
        if change.drop_draft:  # the sealed attachments of a draft withdrawn unsent
            orphans = await self.ctx.store.draft_attachments(request_id)
        await self.ctx.store.apply_changes([change])
        for a in orphans:
            self.ctx.blobs.remove(a.path)
        return change.request

    async def draft(self, *, eid: MessageId, to: str, message_type: str, template: Template,
                    placement: Placement, sealed_draft: bytes, drafter: str,
                    actor: str, attachments: tuple[StoredAttachment, ...] = ()) -> RequestRecord:
        """Keep a request of a four-eyes kind as a draft until an approver approves it."""
        kind = kind_for_message_type(message_type)
        now = self.ctx.clock()
        follows = [await self.ctx.store.get_request(r) for r in placement.follows]
        case_id, case = await self._case_for(placement, follows, now)
        request = RequestRecord(
            request_id=eid, case_id=case_id, side=Side.REQUESTING, kind=kind,
            state=State.DRAFT, peer=to, message_type=message_type, template_id=template.id,
            template_version=template.version, header_sha256=b"", opened_at_ms=now,
            updated_at_ms=now, drafter=drafter)
        step = StepRecord(eid, now, "draft", "", str(State.DRAFT), actor)
        await self.ctx.store.apply_changes([LifecycleChange(
            request, expected_state=None, steps=(step,), case=case, draft=sealed_draft,
            draft_attachments=attachments,
            events=(self._event(EventType.REQUEST_DRAFTED, request, actor=actor),))])
        return request


async def export(ctx: NodeContext, case_id: str, out: Path, *, actor: str,
                 justification: str) -> ExportSummary:
    """Write the court-ready bundle of one case: its requests with their history, every
    message of them with receipts, evidence and audit inclusion proofs."""
    store = ctx.store
    cases = Cases.of(ctx)
    case = await store.get_case(case_id)
    infos, messages, seen = [], [], set()
    for r in await store.list_requests(case_id):
        steps = await store.request_steps(r.request_id)
        infos.append(RequestInfo(str(r.request_id), r.kind, r.side, r.state, r.peer, tuple(
            {"at_ms": st.at_ms, "event": st.event, "source": st.source, "target": st.target,
             "actor": st.actor, "message_id": str(st.envelope_id or "")} for st in steps)))
        for mid in (r.request_id, *await store.request_messages(r.request_id)):
            if mid in seen:
                continue
            seen.add(mid)
            try:
                messages.append(await store.get_message(mid))
            except NotFound:
                continue  # a draft never sent
    messages.sort(key=lambda m: (m.created_at_ms, m.envelope_id.raw))
    info = CaseInfo(case_id, cases.reference(case), tuple(infos))
    return await export_case(ctx, info, messages, out, actor=actor,
                             justification=justification)


def _merge(rows: Sequence[DeadlineRecord],
           started: Sequence[DeadlineRecord]) -> list[DeadlineRecord]:
    names = {d.name for d in started}
    return [*(d for d in rows if d.name not in names), *started]


def _as_deadline(d: DeadlineRecord) -> Deadline:
    return Deadline(name=d.name, value=d.value, basis=d.basis, verification=d.verification,
                    kind=d.kind, starts=d.starts, extends=d.extends)


def _agency_deadlines(policy: LifecyclePolicy) -> tuple[tuple[str, Deadline, str], ...]:
    """(request message type, deadline, events that meet it) from the agency's config."""
    out = []
    for spec in policy.deadlines:
        try:
            met_by = [str(e) for e in spec.get("met_by", [])]
            unknown = [e for e in met_by if e not in {str(v) for v in Event}]
            if unknown:
                raise ConfigError(f"agency deadline {spec['name']!r}: unknown events "
                                  f"{unknown} in met_by")
            IsoDuration.parse(str(spec["value"]))
            out.append((str(spec["message_type"]), Deadline(
                name=str(spec["name"]), value=str(spec["value"]), basis=str(spec["basis"]),
                verification=str(spec.get("verification", "V")), kind=str(spec.get("kind", "")),
                starts=str(spec.get("starts", "receipt"))), ",".join(met_by)))
        except KeyError as e:
            raise ConfigError(f"an agency deadline misses {e.args[0]!r}") from e
        except TemplateError as e:
            raise ConfigError(f"agency deadline {spec.get('name')!r}: {e}") from e
    return tuple(out)
