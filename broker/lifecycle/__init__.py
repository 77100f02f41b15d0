"""The request lifecycle: state machines and legal deadlines (pure, time as a parameter).

Example::

    kind = kind_for_template(template)                      # Kind.EPOC
    step = approve(Draft(kind), approver, drafter, at=now)  # four-eyes
    step = apply(step.target, Event.SEND, side=Side.REQUESTING, kind=kind, at=now)
    for d in started_by(template.deadlines_for(payload), step):
        clock = DeadlineClock.start(d, now, calendar=Calendar(), tz=ZoneInfo("Europe/Berlin"))
        clock.events(later, raised=frozenset())             # (DeadlineEvent.APPROACHING,)

See ``docs/lifecycle.md`` for the state and event tables.
"""

from broker.lifecycle.approval import APPROVER_ROLE, Approval, Person, check_approval
from broker.lifecycle.deadlines import (
    APPROACHING_THRESHOLD,
    Calendar,
    DayCount,
    DeadlineClock,
    DeadlineEvent,
    DeadlineStatus,
    due,
    started_by,
    stopped_by,
)
from broker.lifecycle.durations import IsoDuration
from broker.lifecycle.errors import ApprovalRefused, IllegalTransition, UnknownMessageType
from broker.lifecycle.kinds import (
    REQUEST_KINDS,
    Kind,
    KindRules,
    kind_for_message_type,
    kind_for_template,
    rules,
)
from broker.lifecycle.messages import MESSAGE_TYPES, event_for_message, opens_request
from broker.lifecycle.model import Direction, Event, Side, State
from broker.lifecycle.states import (
    EXTENSION_CLOCK,
    TERMINAL,
    Draft,
    Transition,
    allowed_events,
    apply,
    approve,
    initial_state,
    is_terminal,
    target_of,
)

__all__ = [
    "APPROACHING_THRESHOLD",
    "APPROVER_ROLE",
    "EXTENSION_CLOCK",
    "MESSAGE_TYPES",
    "REQUEST_KINDS",
    "TERMINAL",
    "Approval",
    "ApprovalRefused",
    "Calendar",
    "DayCount",
    "DeadlineClock",
    "DeadlineEvent",
    "DeadlineStatus",
    "Direction",
    "Draft",
    "Event",
    "IllegalTransition",
    "IsoDuration",
    "Kind",
    "KindRules",
    "Person",
    "Side",
    "State",
    "Transition",
    "UnknownMessageType",
    "allowed_events",
    "apply",
    "approve",
    "check_approval",
    "due",
    "event_for_message",
    "initial_state",
    "is_terminal",
    "kind_for_message_type",
    "kind_for_template",
    "opens_request",
    "rules",
    "started_by",
    "stopped_by",
    "target_of",
]
