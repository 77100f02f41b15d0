"""The request lifecycle as a pure state machine, for each side and kind of request.

The requesting side drafts, approves and sends a request; the executing side receives
it, acknowledges, executes, asks for more information, refuses... Each side keeps its
own copy of the state and moves it with the same events, whichever side caused them:
a message it sends (outgoing), a message it receives (incoming), or a local record
(approve, receipt, begin_execution, expire, lift, close). Time is a parameter: nothing
here reads a clock, and :func:`apply` returns what a step implies (messages, clocks to
start or stop, audit events) for the services to carry out.

Tables (``state --event--> state``) are in ``docs/lifecycle.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import MappingProxyType

from broker.lifecycle.approval import Approval, Person, check_approval
from broker.lifecycle.errors import IllegalTransition
from broker.lifecycle.kinds import Kind, rules
from broker.lifecycle.model import Direction, Event, Side, State

S, E = State, Event

TERMINAL: frozenset[State] = frozenset(
    {S.EXECUTED, S.PARTIALLY_EXECUTED, S.REFUSED, S.WITHDRAWN, S.EXPIRED, S.LIFTED,
     S.FOLLOWED_UP}
)
"""States that accept nothing but ``close``."""

_SIDE_STATES: Mapping[Side, frozenset[State]] = MappingProxyType({
    Side.REQUESTING: frozenset(State) - {S.NEW, S.IN_EXECUTION},
    Side.EXECUTING: frozenset(State) - {S.DRAFT, S.APPROVED, S.SENT},
})
_SIDE_EVENTS: Mapping[Side, frozenset[Event]] = MappingProxyType({
    Side.REQUESTING: frozenset(Event) - {E.BEGIN_EXECUTION},
    Side.EXECUTING: frozenset(Event) - {E.APPROVE, E.SEND},
})

# Who causes each event that travels in a message; the others are local records.
_SENT_BY: Mapping[Event, Side] = MappingProxyType({
    **dict.fromkeys(
        (E.SEND, E.ADDITIONAL_INFORMATION, E.WITHDRAWAL, E.PARTIAL_WITHDRAWAL,
         E.PRESERVATION_EXTENSION, E.FOLLOW_UP),
        Side.REQUESTING),
    **dict.fromkeys(
        (E.ACKNOWLEDGEMENT, E.ADDITIONAL_INFORMATION_REQUEST, E.EXECUTION_RESPONSE,
         E.PARTIAL_EXECUTION_RESPONSE, E.REFUSAL, E.PARTIAL_REFUSAL, E.POSTPONEMENT,
         E.PRESERVATION_CONFIRMATION),
        Side.EXECUTING),
})
# The exchange's message type for each such event (a kind may override it).
_MESSAGE: Mapping[Event, str] = MappingProxyType({
    E.ACKNOWLEDGEMENT: "acknowledgement",
    E.ADDITIONAL_INFORMATION_REQUEST: "additional_information_request",
    E.ADDITIONAL_INFORMATION: "additional_information",
    E.EXECUTION_RESPONSE: "execution_response",
    E.PARTIAL_EXECUTION_RESPONSE: "execution_response",
    E.REFUSAL: "refusal",
    E.PARTIAL_REFUSAL: "refusal",
    E.POSTPONEMENT: "refusal",
    E.WITHDRAWAL: "withdrawal",
    E.PARTIAL_WITHDRAWAL: "withdrawal",
    E.PRESERVATION_CONFIRMATION: "execution_response",
    E.PRESERVATION_EXTENSION: "preservation_extension",
    E.FOLLOW_UP: "follow_up",
})


_Row = tuple[Iterable[State], Event, State | None]


def _table(*groups: _Row) -> dict[tuple[State, Event], State]:
    """Rows ``(sources, event, target)``; a target of None keeps the source state."""
    return {(s, e): t or s for sources, e, t in groups for s in sources}


_ANSWERABLE = (S.DELIVERED, S.ACKNOWLEDGED, S.ADDITIONAL_INFORMATION_SUPPLIED)
_IN_EXCHANGE = (S.SENT, *_ANSWERABLE, S.ADDITIONAL_INFORMATION_REQUESTED)
_COMMON = _table(
    ((S.DRAFT,), E.APPROVE, S.APPROVED),
    ((S.DRAFT, S.APPROVED), E.SEND, S.SENT),
    ((S.DRAFT, S.APPROVED), E.WITHDRAWAL, S.WITHDRAWN),
    ((S.NEW, S.SENT), E.RECEIPT, S.DELIVERED),
    ((S.DELIVERED,), E.ACKNOWLEDGEMENT, S.ACKNOWLEDGED),
    (_ANSWERABLE, E.ADDITIONAL_INFORMATION_REQUEST, S.ADDITIONAL_INFORMATION_REQUESTED),
    ((S.ADDITIONAL_INFORMATION_REQUESTED,), E.ADDITIONAL_INFORMATION,
     S.ADDITIONAL_INFORMATION_SUPPLIED),
    ((*_ANSWERABLE, S.ADDITIONAL_INFORMATION_REQUESTED), E.REFUSAL, S.REFUSED),
    (_IN_EXCHANGE, E.WITHDRAWAL, S.WITHDRAWN),
    (_IN_EXCHANGE, E.PARTIAL_WITHDRAWAL, None),
    ((S.REFUSED, S.WITHDRAWN), E.CLOSE, S.CLOSED),
)
_DECIDING = (*_ANSWERABLE, S.IN_EXECUTION)
_REQUEST_FLOW = {
    **_COMMON,
    **_table(
        (_ANSWERABLE, E.BEGIN_EXECUTION, S.IN_EXECUTION),
        ((S.IN_EXECUTION,), E.ADDITIONAL_INFORMATION_REQUEST,
         S.ADDITIONAL_INFORMATION_REQUESTED),
        (_DECIDING, E.EXECUTION_RESPONSE, S.EXECUTED),
        (_DECIDING, E.PARTIAL_EXECUTION_RESPONSE, S.PARTIALLY_EXECUTED),
        ((S.IN_EXECUTION,), E.REFUSAL, S.REFUSED),
        (_DECIDING, E.PARTIAL_REFUSAL, None),
        (_DECIDING, E.POSTPONEMENT, None),
        ((S.IN_EXECUTION,), E.WITHDRAWAL, S.WITHDRAWN),
        ((S.IN_EXECUTION,), E.PARTIAL_WITHDRAWAL, None),
        ((S.EXECUTED, S.PARTIALLY_EXECUTED), E.CLOSE, S.CLOSED),
    ),
}
_KEPT = (S.PRESERVED, S.EXTENDED)
_PRESERVATION_FLOW = {
    **_COMMON,
    **_table(
        (_ANSWERABLE, E.PRESERVATION_CONFIRMATION, S.PRESERVED),
        (_KEPT, E.PRESERVATION_EXTENSION, S.EXTENDED),
        (_KEPT, E.EXPIRE, S.EXPIRED),
        (_KEPT, E.LIFT, S.LIFTED),
        (_KEPT, E.FOLLOW_UP, S.FOLLOWED_UP),
        (_KEPT, E.WITHDRAWAL, S.WITHDRAWN),
        (_KEPT, E.PARTIAL_WITHDRAWAL, None),
        ((S.EXPIRED, S.LIFTED, S.FOLLOWED_UP), E.CLOSE, S.CLOSED),
    ),
}
TRANSITIONS: Mapping[bool, Mapping[tuple[State, Event], State]] = MappingProxyType({
    False: MappingProxyType(_REQUEST_FLOW),
    True: MappingProxyType(_PRESERVATION_FLOW),
})
"""``(state, event) -> state`` for requests (False) and preservation requests (True),
before the side and kind rules of :func:`target_of`."""

EXTENSION_CLOCK = "extension"
"""Clock token that starts the template deadlines with ``extends`` (e.g. EPOC-PR +30 days)."""

_STARTS: Mapping[Event, frozenset[str]] = MappingProxyType({
    E.SEND: frozenset({"sending"}),
    E.RECEIPT: frozenset({"receipt", "request_receipt"}),
    E.PRESERVATION_EXTENSION: frozenset({EXTENSION_CLOCK}),
})
_ENDS: Mapping[Event, frozenset[str]] = MappingProxyType({
    E.ACKNOWLEDGEMENT: frozenset({"acknowledge_receipt", "send_within"}),
})
_AUDIT: Mapping[Event, str] = MappingProxyType({
    E.APPROVE: "request.approved",
    E.SEND: "request.sent",
    E.ACKNOWLEDGEMENT: "request.acknowledged",
    E.BEGIN_EXECUTION: "request.execution_started",
    E.ADDITIONAL_INFORMATION_REQUEST: "request.additional_information_requested",
    E.ADDITIONAL_INFORMATION: "request.additional_information_supplied",
    E.EXECUTION_RESPONSE: "request.executed",
    E.PARTIAL_EXECUTION_RESPONSE: "request.partially_executed",
    E.REFUSAL: "request.refused",
    E.PARTIAL_REFUSAL: "request.partially_refused",
    E.POSTPONEMENT: "request.postponed",
    E.WITHDRAWAL: "request.withdrawn",
    E.PARTIAL_WITHDRAWAL: "request.partially_withdrawn",
    E.PRESERVATION_CONFIRMATION: "preservation.confirmed",
    E.PRESERVATION_EXTENSION: "preservation.extended",
    E.FOLLOW_UP: "preservation.followed_up",
    E.EXPIRE: "preservation.expired",
    E.LIFT: "preservation.lifted",
    E.CLOSE: "request.closed",
})


@dataclass(frozen=True)
class Transition:
    """One legal step and what it implies.

    Attributes:
        source: the state before.
        target: the state after (equal to ``source`` for partial notices).
        event: what happened.
        side: whose state this is.
        kind: the kind of request.
        at: when it happened (timezone-aware; the caller's clock).
        direction: ``outgoing`` (send ``message_type``), ``incoming`` (received it) or
            ``local`` (a record only; ``message_type`` is None).
        message_type: the exchange message that carries the event, if any.
        audit_events: audit event types to record (``request.acknowledged``...).
        starts: clock tokens: start each template deadline whose ``starts`` is one of
            them (``extension`` starts the deadlines that have ``extends``).
        ends: names of template deadlines this step meets (stop their clocks).
        ends_all: the request left the open states: stop every clock.
        approval: both identities, on ``approve`` only.
    """

    source: State
    target: State
    event: Event
    side: Side
    kind: Kind
    at: datetime
    direction: Direction
    message_type: str | None
    audit_events: tuple[str, ...]
    starts: frozenset[str] = frozenset()
    ends: frozenset[str] = frozenset()
    ends_all: bool = False
    approval: Approval | None = None


@dataclass(frozen=True)
class Draft:
    """A request awaiting approval: what :func:`approve` needs to know of it."""

    kind: Kind
    state: State = State.DRAFT


def initial_state(side: Side) -> State:
    """Where a request starts: ``draft`` (requesting side) or ``new`` (executing side)."""
    return State.DRAFT if side is Side.REQUESTING else State.NEW


def is_terminal(state: State) -> bool:
    """Whether ``state`` accepts nothing but ``close`` (or, for ``closed``, nothing)."""
    return state in TERMINAL or state is State.CLOSED


def target_of(state: State, event: Event, *, side: Side, kind: Kind) -> State | None:
    """The state ``event`` leads to, or None if it is illegal there."""
    if state not in _SIDE_STATES[side] or event not in _SIDE_EVENTS[side]:
        return None
    kind_rules = rules(kind)
    if event is E.SEND and state is S.DRAFT and kind_rules.four_eyes:
        return None  # approval first
    once = not kind_rules.repeat_extensions  # e.g. EPOC-PR: one extension of 30 days
    if event is E.PRESERVATION_EXTENSION and state is S.EXTENDED and once:
        return None
    return TRANSITIONS[kind_rules.preservation].get((state, event))


@cache  # a function of the fixed tables above; asked for every request shown to operators
def allowed_events(state: State, *, side: Side, kind: Kind) -> frozenset[Event]:
    """The events ``state`` accepts on ``side`` for ``kind`` (what the inbox may offer)."""
    return frozenset(e for e in Event if target_of(state, e, side=side, kind=kind) is not None)


def apply(
    state: State,
    event: Event,
    *,
    side: Side,
    kind: Kind,
    at: datetime,
    approval: Approval | None = None,
) -> Transition:
    """Apply ``event`` to a request in ``state`` and say what it implies.

    Args:
        state: the current state on ``side``.
        event: what happened (see :func:`broker.lifecycle.messages.event_for_message`
            for received messages).
        side: whose state it is.
        kind: the kind of request.
        at: when (timezone-aware).
        approval: for ``approve`` only: both identities (see :func:`approve`).

    Raises:
        IllegalTransition: ``state`` does not accept ``event`` on ``side``.
        ApprovalRefused: an ``approve`` breaking the four-eyes rule.
        ValueError: ``at`` is naive, or an approval given with another event.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("transition time must be timezone-aware")
    target = target_of(state, event, side=side, kind=kind)
    if target is None:
        raise _illegal(state, event, side, kind)
    if event is E.APPROVE:
        approval = check_approval(kind, approval)
    elif approval is not None:
        raise ValueError(f"an approval is given with {event!s}, not with approve")
    message_type = _message_type(state, event, kind)
    kind_rules = rules(kind)
    starts, ends = _STARTS.get(event, frozenset()), _ENDS.get(event, frozenset())
    if event is E.BEGIN_EXECUTION:
        starts, ends = kind_rules.execution_clocks, kind_rules.decision_deadlines
    return Transition(
        source=state,
        target=target,
        event=event,
        side=side,
        kind=kind,
        at=at,
        direction=_direction(event, side, message_type),
        message_type=message_type,
        audit_events=(_audit(event, side),),
        starts=starts,
        ends=ends,
        ends_all=is_terminal(target),
        approval=approval,
    )


def approve(draft: Draft, approver: Person, drafter: Person | str, *, at: datetime) -> Transition:
    """Four-eyes approval of a draft; the transition records both identities.

    Raises:
        IllegalTransition: the request is not a draft.
        ApprovalRefused: the approver lacks the ``approver`` role, or drafted the
            request themself (MLA and production requests).
    """
    return apply(
        draft.state,
        E.APPROVE,
        side=Side.REQUESTING,
        kind=draft.kind,
        at=at,
        approval=Approval.of(approver, drafter),
    )


def _message_type(state: State, event: Event, kind: Kind) -> str | None:
    if event is E.SEND:
        return rules(kind).request_message_type
    if event not in _MESSAGE or state in (S.DRAFT, S.APPROVED):
        return None  # local, or a withdrawal of a request never sent
    default = _MESSAGE[event]
    return rules(kind).messages.get(default, default) or None


def _direction(event: Event, side: Side, message_type: str | None) -> Direction:
    if message_type is None:
        return Direction.LOCAL
    return Direction.OUTGOING if _SENT_BY[event] is side else Direction.INCOMING


def _audit(event: Event, side: Side) -> str:
    if event is E.RECEIPT:
        return "request.delivered" if side is Side.REQUESTING else "request.received"
    return _AUDIT[event]


def _illegal(state: State, event: Event, side: Side, kind: Kind) -> IllegalTransition:
    where = f"on the {side} side of a {kind} request"
    if state not in _SIDE_STATES[side]:
        why = f"state {state!s} does not exist {where}"
    elif event not in _SIDE_EVENTS[side]:
        why = f"event {event!s} never happens {where}"
    else:
        accepted = sorted(allowed_events(state, side=side, kind=kind))
        hint = f"accepted: {', '.join(accepted)}" if accepted else "it accepts nothing"
        why = f"state {state!s} does not accept event {event!s} {where} ({hint})"
        if event is E.SEND and state is S.DRAFT and rules(kind).four_eyes:
            why += "; a different person with the approver role must approve it first"
    return IllegalTransition(
        f"illegal transition: {why}", state=state, event=event, side=side, kind=kind
    )
