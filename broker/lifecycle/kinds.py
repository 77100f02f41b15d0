"""Kinds of request, and what each kind's lifecycle needs to know about it.

A kind is named by the message type of the request that opens it: the template
``mla-request`` serves ``mla_request``, which opens an :attr:`Kind.MLA` lifecycle. The
table below is the only place where the lifecycle knows instruments; everything about
time limits stays in the templates (``deadlines``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from broker.lifecycle.errors import UnknownMessageType


class Kind(StrEnum):
    """The kinds of request whose lifecycle the broker tracks."""

    MLA = "mla"
    EMERGENCY_MLA = "emergency_mla"
    PRESERVATION = "preservation"
    DISCLOSURE = "disclosure"
    EMERGENCY_DISCLOSURE = "emergency_disclosure"
    EIO = "eio"
    EPOC = "epoc"
    EPOC_PR = "epoc_pr"
    PRODUCTION_ORDER = "production_order"
    SUBSCRIBER_ORDER = "subscriber_order"
    DOMAIN_REGISTRATION = "domain_registration"


@dataclass(frozen=True)
class KindRules:
    """What the state machine needs to know about one kind of request.

    Attributes:
        kind: the kind.
        request_message_type: the message type of the request itself.
        four_eyes: a drafter prepares and a different approver approves before sending
            (MLA and production requests).
        preservation: the request asks to preserve data; it ends preserved, extended,
            expired, lifted or followed up instead of executed.
        repeat_extensions: a preservation may be extended again once extended.
        messages: message types that differ from the exchange's own for an event
            (e.g. ``acknowledgement`` is ``eio_acknowledgement`` for an EIO); an empty
            string means the event travels in no message (a local record).
        execution_clocks: clock tokens started when the executing side begins execution
            (the ``starts`` of template deadlines, e.g. ``recognition_decision``).
        decision_deadlines: names of template deadlines that beginning execution meets.
    """

    kind: Kind
    request_message_type: str
    four_eyes: bool = False
    preservation: bool = False
    repeat_extensions: bool = False
    messages: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    execution_clocks: frozenset[str] = frozenset()
    decision_deadlines: frozenset[str] = frozenset()


_EPOC_MESSAGES = {"refusal": "epoc_impossibility"}

_RULES: tuple[KindRules, ...] = (
    KindRules(Kind.MLA, "mla_request", four_eyes=True),
    KindRules(Kind.EMERGENCY_MLA, "emergency_mla_request", four_eyes=True),
    KindRules(
        Kind.PRESERVATION,
        "preservation",
        preservation=True,
        repeat_extensions=True,
        # Budapest: an extension is a new `preservation` message with request_status
        # extension_of_previous_preservation; the follow-up is the MLA request itself,
        # linked locally (no message of its own).
        messages=MappingProxyType({"preservation_extension": "preservation", "follow_up": ""}),
    ),
    KindRules(Kind.DISCLOSURE, "traffic_disclosure"),
    KindRules(Kind.EMERGENCY_DISCLOSURE, "emergency_disclosure"),
    KindRules(
        Kind.EIO,
        "eio",
        four_eyes=True,
        messages=MappingProxyType({"acknowledgement": "eio_acknowledgement"}),
        execution_clocks=frozenset({"recognition_decision"}),
        decision_deadlines=frozenset(
            {"recognition_decision", "recognition_extension", "provisional_measure_decision"}
        ),
    ),
    KindRules(Kind.EPOC, "epoc", four_eyes=True, messages=MappingProxyType(_EPOC_MESSAGES)),
    KindRules(
        Kind.EPOC_PR,
        "epoc_pr",
        preservation=True,
        messages=MappingProxyType(
            {
                **_EPOC_MESSAGES,
                "preservation_extension": "epoc_pr_extension",  # Annex VI
                "follow_up": "epoc_pr_confirmation",  # Annex V
            }
        ),
    ),
    KindRules(
        Kind.PRODUCTION_ORDER,
        "production_order_request",
        four_eyes=True,
        execution_clocks=frozenset({"provider_service"}),
        decision_deadlines=frozenset({"serve_provider"}),
    ),
    KindRules(Kind.SUBSCRIBER_ORDER, "subscriber_information_order", four_eyes=True),
    KindRules(Kind.DOMAIN_REGISTRATION, "domain_registration_request"),
)

RULES: Mapping[Kind, KindRules] = MappingProxyType({r.kind: r for r in _RULES})
"""The rules of each kind."""

REQUEST_KINDS: Mapping[str, Kind] = MappingProxyType(
    {r.request_message_type: r.kind for r in _RULES}
)
"""Request message type (as in a template's ``message_types``) -> kind."""


class ServesMessageTypes(Protocol):
    """Anything that names the message types it serves (a template or its definition)."""

    @property
    def message_types(self) -> tuple[str, ...]: ...


def rules(kind: Kind) -> KindRules:
    """The rules of ``kind``."""
    return RULES[kind]


def kind_for_message_type(message_type: str) -> Kind:
    """The kind of request that a request message of ``message_type`` opens.

    Raises:
        UnknownMessageType: ``message_type`` opens no request (it may be a response,
            see :func:`broker.lifecycle.messages.event_for_message`).
    """
    kind = REQUEST_KINDS.get(message_type)
    if kind is None:
        raise UnknownMessageType(
            f"message type {message_type!r} opens no kind of request "
            f"(known: {', '.join(sorted(REQUEST_KINDS))})"
        )
    return kind


def kind_for_template(template: ServesMessageTypes) -> Kind:
    """The kind of request a template builds, read from its ``message_types``.

    Raises:
        UnknownMessageType: the template serves no request message type, or request
            message types of different kinds.
    """
    kinds = {REQUEST_KINDS[m] for m in template.message_types if m in REQUEST_KINDS}
    if len(kinds) != 1:
        what = "no" if not kinds else "several"
        raise UnknownMessageType(
            f"a template serving {list(template.message_types)} builds {what} kind of "
            "request"
        )
    return kinds.pop()
