"""Which lifecycle event a message of the exchange carries.

A response's message type and a few fields of its (validated) payload decide the
event: an ``execution_response`` whose ``execution_status`` is ``partially_executed``
is a partial execution; a ``refusal`` whose ``decision`` is ``postponed`` is a
postponement; for a preservation request, an ``execution_response`` confirms that the
data are preserved, and a Budapest ``preservation`` whose ``request_status`` is
``extension_of_previous_preservation`` extends the previous one. Other request messages
open a lifecycle instead (:func:`opens_request`,
:func:`broker.lifecycle.kinds.kind_for_message_type`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from broker.lifecycle.errors import UnknownMessageType
from broker.lifecycle.kinds import REQUEST_KINDS, Kind, rules
from broker.lifecycle.model import Event

_PLAIN: Mapping[str, Event] = MappingProxyType({
    "acknowledgement": Event.ACKNOWLEDGEMENT,
    "eio_acknowledgement": Event.ACKNOWLEDGEMENT,  # EIO Annex B
    "additional_information_request": Event.ADDITIONAL_INFORMATION_REQUEST,
    "additional_information": Event.ADDITIONAL_INFORMATION,
    "epoc_impossibility": Event.REFUSAL,  # e-Evidence Annex III
    "epoc_pr_extension": Event.PRESERVATION_EXTENSION,  # e-Evidence Annex VI
    "epoc_pr_confirmation": Event.FOLLOW_UP,  # e-Evidence Annex V
})
# (message type, payload field) -> field value -> event; an absent value takes "".
_BY_FIELD: Mapping[tuple[str, str], Mapping[str, Event]] = MappingProxyType({
    ("execution_response", "execution_status"): MappingProxyType({
        "executed": Event.EXECUTION_RESPONSE,
        "partially_executed": Event.PARTIAL_EXECUTION_RESPONSE,
    }),
    ("refusal", "decision"): MappingProxyType({
        "refused": Event.REFUSAL,
        "partially_refused": Event.PARTIAL_REFUSAL,
        "postponed": Event.POSTPONEMENT,
    }),
    ("withdrawal", "withdrawal_scope"): MappingProxyType({
        "whole_request": Event.WITHDRAWAL,
        "part_of_request": Event.PARTIAL_WITHDRAWAL,
    }),
    # Budapest Art. 29: a preservation request may extend a previous one; any other
    # request_status opens a request of its own.
    ("preservation", "request_status"): MappingProxyType({
        "extension_of_previous_preservation": Event.PRESERVATION_EXTENSION,
    }),
})
MESSAGE_TYPES: frozenset[str] = frozenset(_PLAIN) | {m for m, _ in _BY_FIELD}
"""Every message type that carries a lifecycle event."""


def event_for_message(message_type: str, payload: Mapping[str, Any], *, kind: Kind) -> Event:
    """The event that a response of ``message_type`` with ``payload`` carries.

    Args:
        message_type: the envelope's message type.
        payload: the message's payload, validated against its template.
        kind: the kind of the request it answers.

    Raises:
        UnknownMessageType: the message type carries no lifecycle event (e.g. it is a
            request), or a field that decides the event has a value the table lacks.
    """
    if message_type == "execution_response" and rules(kind).preservation:
        return Event.PRESERVATION_CONFIRMATION
    plain = _PLAIN.get(message_type)
    if plain is not None:
        return plain
    for (mtype, name), events in _BY_FIELD.items():
        if mtype == message_type:
            value = payload.get(name, "")
            event = events.get(value) if isinstance(value, str) else None
            if event is not None:
                return event
            if message_type in REQUEST_KINDS:
                break
            raise UnknownMessageType(
                f"a {message_type} whose {name} is not one of {sorted(events)} "
                "carries no lifecycle event"
            )
    what = "opens a request" if message_type in REQUEST_KINDS else "is unknown"
    raise UnknownMessageType(f"message type {message_type!r} {what}: it carries no event")


def opens_request(message_type: str, payload: Mapping[str, Any]) -> bool:
    """Whether a message opens a lifecycle of its own (a new request) rather than moving
    an existing one (e.g. a Budapest preservation that extends a previous one)."""
    if message_type not in REQUEST_KINDS:
        return False
    for (mtype, name), events in _BY_FIELD.items():
        value = payload.get(name)
        if mtype == message_type and isinstance(value, str) and value in events:
            return False
    return True
