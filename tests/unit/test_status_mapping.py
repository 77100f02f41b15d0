"""Which refusals a sender retries: the mapping of our errors to gRPC status codes."""

from __future__ import annotations

import grpc
import pytest

from broker.adapters.grpc.status import status_for
from broker.adapters.sqlite.store import RequestConflict
from broker.errors import NotFound, ReplayDetected, StateError, TemplateError
from broker.lifecycle import IllegalTransition


@pytest.mark.parametrize(("error", "status", "reason"), [
    # A step that raced another on the same request: the sender tries again.
    (RequestConflict("moved on"), grpc.StatusCode.ABORTED, "REQUEST_CONFLICT"),
    # An illegal step or an unknown request is refused for good.
    (IllegalTransition("no", state="refused", event="execution_response",
                       side="requesting", kind="mla"),
     grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION"),
    (StateError("unknown", code="UNKNOWN_REQUEST"), grpc.StatusCode.FAILED_PRECONDITION,
     "UNKNOWN_REQUEST"),
    (NotFound("gone"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    (TemplateError("bad", code="TEMPLATE_INVALID"), grpc.StatusCode.FAILED_PRECONDITION,
     "TEMPLATE_INVALID"),
    (ReplayDetected("again"), grpc.StatusCode.INVALID_ARGUMENT, "REPLAY"),
])
def test_status_for(error: Exception, status: grpc.StatusCode, reason: str) -> None:
    code, _message, got = status_for(error)  # type: ignore[arg-type]
    assert (code, got) == (status, reason)
