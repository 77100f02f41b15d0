"""The request lifecycle state machine: legal paths, illegal steps, four-eyes."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import PolicyDenied, StateError
from broker.lifecycle import (
    REQUEST_KINDS,
    TERMINAL,
    Approval,
    ApprovalRefused,
    Direction,
    Draft,
    Event,
    IllegalTransition,
    Kind,
    Side,
    State,
    Transition,
    UnknownMessageType,
    allowed_events,
    apply,
    approve,
    event_for_message,
    initial_state,
    is_terminal,
    kind_for_message_type,
    kind_for_template,
    opens_request,
    rules,
    target_of,
)
from broker.lifecycle.messages import MESSAGE_TYPES
from broker.templating import TemplateRegistry, load_registry

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REQ, EXE = Side.REQUESTING, Side.EXECUTING
FOUR_EYES_KINDS = [k for k in Kind if rules(k).four_eyes]


@dataclass(frozen=True)
class Officer:
    subject: str
    roles: frozenset[str]


ALICE = Officer("alice", frozenset({"drafter"}))
BOB = Officer("bob", frozenset({"approver"}))
CAROL = Officer("carol", frozenset({"drafter", "approver"}))


@functools.cache
def registry() -> TemplateRegistry:
    return load_registry(Path(__file__).resolve().parents[2] / "templates")


def run(kind: Kind, side: Side, events: Sequence[Event], state: State | None = None
        ) -> list[Transition]:
    """Apply ``events`` in order, an hour apart; approvals by Bob of Alice's draft."""
    state = state or initial_state(side)
    steps = []
    for i, event in enumerate(events):
        at = T0 + timedelta(hours=i)
        if event is Event.APPROVE:
            step = approve(Draft(kind, state), BOB, ALICE, at=at)
        else:
            step = apply(state, event, side=side, kind=kind, at=at)
        steps.append(step)
        state = step.target
    return steps


def targets(steps: Sequence[Transition]) -> list[State]:
    return [s.target for s in steps]


# ---------------------------------------------------------------- legal paths


def test_mla_with_additional_information_loop_requesting_side() -> None:
    events = [Event.APPROVE, Event.SEND, Event.RECEIPT, Event.ACKNOWLEDGEMENT,
              Event.ADDITIONAL_INFORMATION_REQUEST, Event.ADDITIONAL_INFORMATION,
              Event.ADDITIONAL_INFORMATION_REQUEST, Event.ADDITIONAL_INFORMATION,
              Event.EXECUTION_RESPONSE, Event.CLOSE]
    steps = run(Kind.MLA, REQ, events)
    assert targets(steps) == [
        State.APPROVED, State.SENT, State.DELIVERED, State.ACKNOWLEDGED,
        State.ADDITIONAL_INFORMATION_REQUESTED, State.ADDITIONAL_INFORMATION_SUPPLIED,
        State.ADDITIONAL_INFORMATION_REQUESTED, State.ADDITIONAL_INFORMATION_SUPPLIED,
        State.EXECUTED, State.CLOSED]
    assert [(s.direction, s.message_type) for s in steps] == [
        (Direction.LOCAL, None),
        (Direction.OUTGOING, "mla_request"),
        (Direction.LOCAL, None),
        (Direction.INCOMING, "acknowledgement"),
        (Direction.INCOMING, "additional_information_request"),
        (Direction.OUTGOING, "additional_information"),
        (Direction.INCOMING, "additional_information_request"),
        (Direction.OUTGOING, "additional_information"),
        (Direction.INCOMING, "execution_response"),
        (Direction.LOCAL, None)]
    assert [s.audit_events for s in steps][:4] == [
        ("request.approved",), ("request.sent",), ("request.delivered",),
        ("request.acknowledged",)]
    send, receipt = steps[1], steps[2]
    assert send.starts == {"sending"}
    assert receipt.starts == {"receipt", "request_receipt"}
    assert [s.ends_all for s in steps] == [False] * 8 + [True, True]
    assert [s.at for s in steps] == [T0 + timedelta(hours=i) for i in range(10)]


def test_mla_executing_side_partial_execution() -> None:
    events = [Event.RECEIPT, Event.ACKNOWLEDGEMENT, Event.BEGIN_EXECUTION,
              Event.ADDITIONAL_INFORMATION_REQUEST, Event.ADDITIONAL_INFORMATION,
              Event.BEGIN_EXECUTION, Event.PARTIAL_EXECUTION_RESPONSE, Event.CLOSE]
    steps = run(Kind.MLA, EXE, events)
    assert steps[0].source is State.NEW
    assert targets(steps) == [
        State.DELIVERED, State.ACKNOWLEDGED, State.IN_EXECUTION,
        State.ADDITIONAL_INFORMATION_REQUESTED, State.ADDITIONAL_INFORMATION_SUPPLIED,
        State.IN_EXECUTION, State.PARTIALLY_EXECUTED, State.CLOSED]
    assert [s.direction for s in steps] == [
        Direction.LOCAL, Direction.OUTGOING, Direction.LOCAL, Direction.OUTGOING,
        Direction.INCOMING, Direction.LOCAL, Direction.OUTGOING, Direction.LOCAL]
    assert steps[0].audit_events == ("request.received",)
    assert steps[6].audit_events == ("request.partially_executed",)
    assert steps[6].message_type == "execution_response"


def test_partial_execution_from_received_payload() -> None:
    payload = {"execution_status": "partially_executed", "not_executed_part": "..."}
    event = event_for_message("execution_response", payload, kind=Kind.MLA)
    assert event is Event.PARTIAL_EXECUTION_RESPONSE
    steps = run(Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT,
                                Event.ACKNOWLEDGEMENT, event])
    assert steps[-1].target is State.PARTIALLY_EXECUTED
    assert steps[-1].ends_all


def test_request_refused_with_grounds() -> None:
    """Refusal (Annex III style): grounds travel in the payload; the request is refused,
    every clock stops, and nothing but close follows."""
    payload = {"decision": "refused", "grounds": ["dual_criminality_not_met"],
               "legal_provisions": "Art. 2", "grounds_explanation": "..."}
    event = event_for_message("refusal", payload, kind=Kind.MLA)
    assert event is Event.REFUSAL
    steps = run(Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT,
                                Event.ACKNOWLEDGEMENT, event])
    refusal = steps[-1]
    assert (refusal.target, refusal.direction, refusal.message_type) == (
        State.REFUSED, Direction.INCOMING, "refusal")
    assert refusal.audit_events == ("request.refused",)
    assert refusal.ends_all
    assert allowed_events(State.REFUSED, side=REQ, kind=Kind.MLA) == {Event.CLOSE}


def test_partial_refusal_and_postponement_keep_the_request_open() -> None:
    for decision, expected in [("partially_refused", Event.PARTIAL_REFUSAL),
                               ("postponed", Event.POSTPONEMENT)]:
        event = event_for_message("refusal", {"decision": decision}, kind=Kind.EIO)
        assert event is expected
        step = apply(State.ACKNOWLEDGED, event, side=REQ, kind=Kind.EIO, at=T0)
        assert step.target is State.ACKNOWLEDGED and not step.ends_all


def test_preservation_extended_before_expiry_then_followed_by_mla() -> None:
    """Budapest Art. 29: sent by a 24/7 contact point without four-eyes, preserved,
    extended, then followed up by an MLA request, which opens its own lifecycle."""
    events = [Event.SEND, Event.RECEIPT, Event.PRESERVATION_CONFIRMATION,
              Event.PRESERVATION_EXTENSION, Event.PRESERVATION_EXTENSION,
              Event.FOLLOW_UP, Event.CLOSE]
    steps = run(Kind.PRESERVATION, REQ, events)
    assert targets(steps) == [State.SENT, State.DELIVERED, State.PRESERVED, State.EXTENDED,
                              State.EXTENDED, State.FOLLOWED_UP, State.CLOSED]
    assert steps[0].message_type == "preservation"
    assert steps[2].audit_events == ("preservation.confirmed",)
    assert steps[3].starts == {"extension"}
    # Budapest: the extension is a new `preservation` message naming the previous one.
    assert (steps[3].direction, steps[3].message_type) == (Direction.OUTGOING, "preservation")
    extension = {"request_status": "extension_of_previous_preservation",
                 "previous_request_reference": "DE-2026-1"}
    assert event_for_message("preservation", extension, kind=Kind.PRESERVATION) \
        is Event.PRESERVATION_EXTENSION
    assert not opens_request("preservation", extension)
    assert opens_request("preservation", {"request_status": "new_request"})
    follow_up = steps[5]
    assert (follow_up.direction, follow_up.message_type) == (Direction.LOCAL, None)
    assert follow_up.ends_all
    mla = kind_for_message_type("mla_request")
    assert run(mla, REQ, [Event.APPROVE, Event.SEND])[-1].target is State.SENT


def test_epoc_pr_extension_and_confirmation_use_their_annexes() -> None:
    steps = run(Kind.EPOC_PR, REQ, [Event.SEND, Event.RECEIPT,
                                    Event.PRESERVATION_CONFIRMATION,
                                    Event.PRESERVATION_EXTENSION, Event.FOLLOW_UP])
    assert [(s.direction, s.message_type) for s in steps[2:]] == [
        (Direction.INCOMING, "execution_response"),
        (Direction.OUTGOING, "epoc_pr_extension"),
        (Direction.OUTGOING, "epoc_pr_confirmation")]
    assert event_for_message("epoc_pr_extension", {}, kind=Kind.EPOC_PR) \
        is Event.PRESERVATION_EXTENSION
    assert event_for_message("epoc_pr_confirmation", {}, kind=Kind.EPOC_PR) is Event.FOLLOW_UP
    assert event_for_message("execution_response", {"execution_status": "executed"},
                             kind=Kind.EPOC_PR) is Event.PRESERVATION_CONFIRMATION


@pytest.mark.parametrize("end", [Event.EXPIRE, Event.LIFT])
def test_preservation_expires_or_is_lifted(end: Event) -> None:
    steps = run(Kind.PRESERVATION, EXE, [Event.RECEIPT, Event.PRESERVATION_CONFIRMATION, end])
    assert steps[1].direction is Direction.OUTGOING
    assert steps[-1].target is {Event.EXPIRE: State.EXPIRED, Event.LIFT: State.LIFTED}[end]
    assert steps[-1].ends_all and steps[-1].direction is Direction.LOCAL


WITHDRAWAL_POINTS: list[tuple[Kind, Side, list[Event]]] = [
    (Kind.MLA, REQ, []),
    (Kind.MLA, REQ, [Event.APPROVE]),
    (Kind.MLA, REQ, [Event.APPROVE, Event.SEND]),
    (Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT]),
    (Kind.EIO, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT, Event.ACKNOWLEDGEMENT]),
    (Kind.EPOC, EXE, [Event.RECEIPT, Event.BEGIN_EXECUTION]),
    (Kind.MLA, EXE, [Event.RECEIPT, Event.ADDITIONAL_INFORMATION_REQUEST]),
    (Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT,
                     Event.ADDITIONAL_INFORMATION_REQUEST, Event.ADDITIONAL_INFORMATION]),
    (Kind.PRESERVATION, REQ, [Event.SEND, Event.RECEIPT, Event.PRESERVATION_CONFIRMATION]),
    (Kind.EPOC_PR, EXE, [Event.RECEIPT, Event.PRESERVATION_CONFIRMATION,
                         Event.PRESERVATION_EXTENSION]),
]


@pytest.mark.parametrize(("kind", "side", "before"), WITHDRAWAL_POINTS)
def test_withdrawal_at_any_open_point(kind: Kind, side: Side, before: list[Event]) -> None:
    state = run(kind, side, before)[-1].target if before else initial_state(side)
    step = apply(state, Event.WITHDRAWAL, side=side, kind=kind, at=T0)
    assert step.target is State.WITHDRAWN and step.ends_all
    assert step.audit_events == ("request.withdrawn",)
    if state in (State.DRAFT, State.APPROVED):
        assert (step.direction, step.message_type) == (Direction.LOCAL, None)  # never sent
    else:
        assert step.message_type == "withdrawal"
        assert step.direction is (Direction.OUTGOING if side is REQ else Direction.INCOMING)
    partial = event_for_message("withdrawal", {"withdrawal_scope": "part_of_request"},
                                kind=kind)
    if state not in (State.DRAFT, State.APPROVED):
        assert apply(state, partial, side=side, kind=kind, at=T0).target is state


# ---------------------------------------------------------------- illegal steps


@pytest.mark.parametrize(
    ("kind", "side", "before", "event"),
    [
        pytest.param(Kind.MLA, REQ, [Event.APPROVE, Event.SEND], Event.ACKNOWLEDGEMENT,
                     id="acknowledge-before-delivery"),
        pytest.param(Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT, Event.REFUSAL],
                     Event.EXECUTION_RESPONSE, id="execute-after-refusal"),
        pytest.param(Kind.EPOC_PR, REQ, [Event.SEND, Event.RECEIPT,
                                         Event.PRESERVATION_CONFIRMATION, Event.EXPIRE],
                     Event.PRESERVATION_EXTENSION, id="extend-expired-preservation"),
        pytest.param(Kind.EPOC_PR, EXE, [Event.RECEIPT, Event.PRESERVATION_CONFIRMATION,
                                         Event.PRESERVATION_EXTENSION],
                     Event.PRESERVATION_EXTENSION, id="epoc-pr-extended-twice"),
        pytest.param(Kind.PRESERVATION, REQ, [Event.SEND, Event.RECEIPT],
                     Event.PRESERVATION_EXTENSION, id="extend-before-preserved"),
        pytest.param(Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT],
                     Event.ADDITIONAL_INFORMATION, id="information-nobody-asked-for"),
        pytest.param(Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT],
                     Event.PRESERVATION_CONFIRMATION, id="preserve-an-mla-request"),
        pytest.param(Kind.EPOC, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT],
                     Event.EXPIRE, id="expire-a-production-order"),
        pytest.param(Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT,
                                     Event.EXECUTION_RESPONSE, Event.CLOSE],
                     Event.WITHDRAWAL, id="withdraw-after-close"),
        pytest.param(Kind.MLA, REQ, [Event.APPROVE, Event.SEND, Event.RECEIPT,
                                     Event.EXECUTION_RESPONSE],
                     Event.REFUSAL, id="refuse-after-execution"),
    ],
)
def test_illegal_transition_refused(kind: Kind, side: Side, before: list[Event],
                                    event: Event) -> None:
    state = run(kind, side, before)[-1].target
    with pytest.raises(IllegalTransition) as caught:
        apply(state, event, side=side, kind=kind, at=T0)
    error = caught.value
    assert isinstance(error, StateError) and error.code == "ILLEGAL_TRANSITION"
    assert (error.state, error.event, error.side, error.kind) == (state, event, side, kind)
    for name in (f"state {state}", f"event {event}", f"{side} side", f"{kind} request"):
        assert name in error.message


def test_four_eyes_draft_cannot_be_sent_unapproved() -> None:
    with pytest.raises(IllegalTransition, match="approver role must approve it first"):
        apply(State.DRAFT, Event.SEND, side=REQ, kind=Kind.EPOC, at=T0)


@pytest.mark.parametrize(("side", "state", "event", "why"), [
    (EXE, State.NEW, Event.APPROVE, "never happens on the executing side"),
    (EXE, State.DELIVERED, Event.SEND, "never happens on the executing side"),
    (REQ, State.ACKNOWLEDGED, Event.BEGIN_EXECUTION, "never happens on the requesting side"),
    (EXE, State.DRAFT, Event.WITHDRAWAL, "does not exist on the executing side"),
    (REQ, State.NEW, Event.RECEIPT, "does not exist on the requesting side"),
])
def test_side_rules(side: Side, state: State, event: Event, why: str) -> None:
    with pytest.raises(IllegalTransition, match=why):
        apply(state, event, side=side, kind=Kind.MLA, at=T0)


def test_closed_accepts_nothing() -> None:
    for kind in Kind:
        for side in Side:
            assert allowed_events(State.CLOSED, side=side, kind=kind) == frozenset()
    with pytest.raises(IllegalTransition, match="it accepts nothing"):
        apply(State.CLOSED, Event.CLOSE, side=REQ, kind=Kind.MLA, at=T0)


def test_naive_time_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        apply(State.NEW, Event.RECEIPT, side=EXE, kind=Kind.MLA, at=datetime(2026, 1, 1))


# ---------------------------------------------------------------- four-eyes


@pytest.mark.parametrize("kind", FOUR_EYES_KINDS)
def test_drafter_approving_own_draft_refused(kind: Kind) -> None:
    with pytest.raises(ApprovalRefused) as caught:
        approve(Draft(kind), CAROL, CAROL, at=T0)
    assert caught.value.code == "FOUR_EYES" and isinstance(caught.value, PolicyDenied)
    assert "carol" in caught.value.message
    with pytest.raises(ApprovalRefused, match="drafted this"):
        approve(Draft(kind), CAROL, "CAROL", at=T0)  # subjects compare case-blind


@pytest.mark.parametrize("kind", FOUR_EYES_KINDS)
def test_non_approver_refused(kind: Kind) -> None:
    with pytest.raises(ApprovalRefused) as caught:
        approve(Draft(kind), ALICE, BOB, at=T0)
    assert caught.value.code == "NOT_APPROVER"


def test_four_eyes_kinds_are_mla_and_production_requests() -> None:
    assert set(FOUR_EYES_KINDS) == {Kind.MLA, Kind.EMERGENCY_MLA, Kind.EIO, Kind.EPOC,
                                    Kind.PRODUCTION_ORDER, Kind.SUBSCRIBER_ORDER}


def test_approval_records_both_identities() -> None:
    step = approve(Draft(Kind.EPOC), BOB, ALICE, at=T0)
    assert step.target is State.APPROVED and step.side is REQ
    assert step.approval == Approval(drafter="alice", approver="bob",
                                     approver_roles=frozenset({"approver"}))


def test_approve_needs_identities_and_a_draft() -> None:
    with pytest.raises(ApprovalRefused) as caught:
        apply(State.DRAFT, Event.APPROVE, side=REQ, kind=Kind.MLA, at=T0)
    assert caught.value.code == "APPROVAL_MISSING"
    with pytest.raises(IllegalTransition):
        approve(Draft(Kind.MLA, State.SENT), BOB, ALICE, at=T0)
    with pytest.raises(ValueError, match="approval"):
        apply(State.APPROVED, Event.SEND, side=REQ, kind=Kind.MLA, at=T0,
              approval=Approval.of(BOB, ALICE))


def test_preservation_needs_no_second_person() -> None:
    """A 24/7 contact point sends preservation requests alone; an approval, if any,
    still needs the approver role."""
    assert approve(Draft(Kind.PRESERVATION), CAROL, CAROL, at=T0).target is State.APPROVED
    with pytest.raises(ApprovalRefused):
        approve(Draft(Kind.PRESERVATION), ALICE, BOB, at=T0)


# ---------------------------------------------------------------- kinds and messages


def test_every_template_message_type_is_a_kind_or_an_event() -> None:
    """The tables cover every message type the templates serve."""
    for template in registry().templates():
        for message_type in template.message_types:
            assert message_type in REQUEST_KINDS or message_type in MESSAGE_TYPES, message_type
        if any(m in REQUEST_KINDS for m in template.message_types):
            kind = kind_for_template(template)
            assert rules(kind).request_message_type in template.message_types


def test_kind_lookup_errors() -> None:
    with pytest.raises(UnknownMessageType, match="opens no kind"):
        kind_for_message_type("refusal")
    with pytest.raises(UnknownMessageType, match="builds no kind"):
        kind_for_template(registry().latest("exchange-refusal"))
    with pytest.raises(UnknownMessageType, match="opens a request"):
        event_for_message("mla_request", {}, kind=Kind.MLA)
    with pytest.raises(UnknownMessageType, match="opens a request"):
        event_for_message("preservation", {"request_status": "new_request"},
                          kind=Kind.PRESERVATION)
    assert not opens_request("refusal", {"decision": "refused"})
    with pytest.raises(UnknownMessageType, match="execution_status"):
        event_for_message("execution_response", {}, kind=Kind.MLA)


def test_kind_specific_message_types() -> None:
    ack = apply(State.DELIVERED, Event.ACKNOWLEDGEMENT, side=EXE, kind=Kind.EIO, at=T0)
    assert ack.message_type == "eio_acknowledgement"
    assert ack.ends == {"acknowledge_receipt", "send_within"}
    refusal = apply(State.DELIVERED, Event.REFUSAL, side=EXE, kind=Kind.EPOC, at=T0)
    assert refusal.message_type == "epoc_impossibility"
    assert event_for_message("epoc_impossibility", {}, kind=Kind.EPOC) is Event.REFUSAL
    begin = apply(State.ACKNOWLEDGED, Event.BEGIN_EXECUTION, side=EXE, kind=Kind.EIO, at=T0)
    assert begin.starts == {"recognition_decision"}
    assert "recognition_decision" in begin.ends


# ---------------------------------------------------------------- properties

@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(list(Kind)), side=st.sampled_from(list(Side)), data=st.data())
def test_any_event_sequence_applies_or_is_illegal(kind: Kind, side: Side,
                                                  data: st.DataObject) -> None:
    """A random walk mixing legal and arbitrary events: each event either applies
    (exactly when listed by allowed_events) or raises IllegalTransition; terminal
    states accept nothing but close, and closed accepts nothing."""
    state = initial_state(side)
    for _ in range(data.draw(st.integers(min_value=0, max_value=30), label="length")):
        allowed = allowed_events(state, side=side, kind=kind)
        legal: bool = data.draw(st.booleans(), label="legal") if allowed else False
        pool = sorted(allowed) if legal else list(Event)
        event = data.draw(st.sampled_from(pool), label="event")
        if event not in allowed:
            with pytest.raises(IllegalTransition) as caught:
                step_of(state, event, side, kind)
            assert (caught.value.state, caught.value.event) == (state, event)
            continue
        step = step_of(state, event, side, kind)
        assert step.source is state and step.side is side and step.kind is kind
        assert step.ends_all == is_terminal(step.target)
        assert (step.message_type is None) == (step.direction is Direction.LOCAL)
        state = step.target
        if state in TERMINAL:
            assert allowed_events(state, side=side, kind=kind) == {Event.CLOSE}
        if state is State.CLOSED:
            assert allowed_events(state, side=side, kind=kind) == frozenset()


def step_of(state: State, event: Event, side: Side, kind: Kind) -> Transition:
    if event is Event.APPROVE:
        return approve(Draft(kind, state), BOB, ALICE, at=T0)
    return apply(state, event, side=side, kind=kind, at=T0)


# ---------------------------------------------------------------- docs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"
BEGIN, END = "<!-- transitions:begin (generated) -->", "<!-- transitions:end -->"


def render_transitions() -> str:
    """The transition tables of docs/lifecycle.md, from the code."""
    out = []
    for kind, title in [(Kind.MLA, "Requests (MLA, EIO, EPOC, production orders...)"),
                        (Kind.PRESERVATION, "Preservation requests (Budapest Art. 29, EPOC-PR)")]:
        out += [f"#### {title}", "", "| state | event -> next state |", "|---|---|"]
        for state in State:
            cells = []
            for event in Event:
                sides = [s for s in Side if target_of(state, event, side=s, kind=kind) is not None]
                if sides:
                    target = target_of(state, event, side=sides[0], kind=kind)
                    mark = "" if len(sides) == 2 else f" ({sides[0].value})"
                    cells.append(f"{event} -> {target}{mark}")
            if cells:
                out.append(f"| {state} | {'<br>'.join(cells)} |")
        out.append("")
    return "\n".join(out)


def test_docs_tables_are_current() -> None:
    text = DOCS.read_text(encoding="utf-8")
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert generated == render_transitions().strip(), (
        "docs/lifecycle.md is stale: paste render_transitions() between the markers")
