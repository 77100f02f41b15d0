"""Errors of the request lifecycle, placed in the broker's one exception tree."""

from __future__ import annotations

from broker.errors import PolicyDenied, StateError, TemplateError

ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
APPROVAL_MISSING = "APPROVAL_MISSING"
NOT_APPROVER = "NOT_APPROVER"
FOUR_EYES = "FOUR_EYES"
MESSAGE_TYPE_UNKNOWN = "MESSAGE_TYPE_UNKNOWN"


class IllegalTransition(StateError):
    """An event that the request's state does not accept on this side.

    The message names the state, the event, the side and the kind of request, and
    lists the events the state does accept; the attributes carry the same as values.
    """

    code = ILLEGAL_TRANSITION

    def __init__(
        self, message: str, *, state: str, event: str, side: str, kind: str
    ) -> None:
        super().__init__(message, code=ILLEGAL_TRANSITION)
        self.state = state
        self.event = event
        self.side = side
        self.kind = kind


class ApprovalRefused(PolicyDenied):
    """An approval that breaks the four-eyes rule.

    Codes: ``APPROVAL_MISSING`` (no identities given), ``NOT_APPROVER`` (the approver
    lacks the ``approver`` role), ``FOUR_EYES`` (the drafter approving their own draft).
    """

    code = FOUR_EYES


class UnknownMessageType(TemplateError):
    """A message type that names neither a kind of request nor a lifecycle event."""

    code = MESSAGE_TYPE_UNKNOWN
