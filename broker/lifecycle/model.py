"""The lifecycle's vocabulary: sides, directions, states and events."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Which end of the exchange keeps the state."""

    REQUESTING = "requesting"
    EXECUTING = "executing"


class Direction(StrEnum):
    """Whether a step sends a message, receives one, or is recorded locally."""

    LOCAL = "local"
    OUTGOING = "outgoing"
    INCOMING = "incoming"


class State(StrEnum):
    """States of a request (``new`` is the executing side's, before receipt)."""

    NEW = "new"
    DRAFT = "draft"
    APPROVED = "approved"
    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    IN_EXECUTION = "in_execution"
    ADDITIONAL_INFORMATION_REQUESTED = "additional_information_requested"
    ADDITIONAL_INFORMATION_SUPPLIED = "additional_information_supplied"
    EXECUTED = "executed"
    PARTIALLY_EXECUTED = "partially_executed"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    PRESERVED = "preserved"
    EXTENDED = "extended"
    EXPIRED = "expired"
    LIFTED = "lifted"
    FOLLOWED_UP = "followed_up"
    CLOSED = "closed"


class Event(StrEnum):
    """What moves a request: exchange messages and local records."""

    APPROVE = "approve"
    SEND = "send"
    RECEIPT = "receipt"
    ACKNOWLEDGEMENT = "acknowledgement"
    BEGIN_EXECUTION = "begin_execution"
    ADDITIONAL_INFORMATION_REQUEST = "additional_information_request"
    ADDITIONAL_INFORMATION = "additional_information"
    EXECUTION_RESPONSE = "execution_response"
    PARTIAL_EXECUTION_RESPONSE = "partial_execution_response"
    REFUSAL = "refusal"
    PARTIAL_REFUSAL = "partial_refusal"
    POSTPONEMENT = "postponement"
    WITHDRAWAL = "withdrawal"
    PARTIAL_WITHDRAWAL = "partial_withdrawal"
    PRESERVATION_CONFIRMATION = "preservation_confirmation"
    PRESERVATION_EXTENSION = "preservation_extension"
    FOLLOW_UP = "follow_up"
    EXPIRE = "expire"
    LIFT = "lift"
    CLOSE = "close"
