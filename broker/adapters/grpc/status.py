"""Mapping between our errors and gRPC status codes, in both directions.

Tell a peer less than your logs: failures of authentication or decryption go back as one
opaque reason; the exact code is in our audit log. Other refusals carry their code in
the `rogatory-reason` trailing metadata so the sender's operator can act on them.
"""

from __future__ import annotations

import grpc

from broker.errors import (
    MessageTooLarge,
    PeerError,
    PolicyDenied,
    RogatoryError,
    SenderMismatch,
    StateError,
    TransportError,
    Unauthenticated,
)

REASON_KEY = "rogatory-reason"
_OPAQUE = frozenset({"SIGNATURE_INVALID", "DECRYPTION_FAILED", "UNKNOWN_KEY", "CHUNK_AUTH",
                     "KEY_REVOKED", "UNKNOWN_SENDER", "NOT_FOR_THIS_RECIPIENT"})
_RETRIABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
                        grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                        grpc.StatusCode.CANCELLED})


def status_for(error: RogatoryError, *,  # noqa: PLR0911 - a table
               opaque: bool = True) -> tuple[grpc.StatusCode, str, str]:
    """(status, message, reason) for an error; `opaque` hides crypto failures from peers."""
    if isinstance(error, SenderMismatch):
        return grpc.StatusCode.PERMISSION_DENIED, "sender mismatch", error.code
    if isinstance(error, PeerError):
        if opaque and error.code in _OPAQUE:
            return grpc.StatusCode.INVALID_ARGUMENT, "envelope rejected", "REJECTED"
        if isinstance(error, MessageTooLarge):
            return grpc.StatusCode.INVALID_ARGUMENT, "too large", error.code
        return grpc.StatusCode.INVALID_ARGUMENT, error.message, error.code
    if isinstance(error, PolicyDenied):
        return grpc.StatusCode.FAILED_PRECONDITION, error.message, error.code
    if isinstance(error, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, error.message, error.code
    if isinstance(error, StateError) and error.retriable:
        # e.g. a lifecycle step that raced another on the same request: try again.
        return grpc.StatusCode.ABORTED, error.message, error.code
    if isinstance(error, StateError):
        code = (grpc.StatusCode.NOT_FOUND if error.code == "NOT_FOUND"
                else grpc.StatusCode.FAILED_PRECONDITION)
        return code, error.message, error.code
    if error.retriable:
        return grpc.StatusCode.UNAVAILABLE, "try again later", error.code
    return grpc.StatusCode.INTERNAL, "internal error", "INTERNAL"


class DeliveryRefused(RogatoryError):
    """The peer refused the envelope for good (not retriable)."""

    code = "REFUSED"


class OperatorCallFailed(RogatoryError):
    """An operator API call failed; carries the node's reason code."""


def error_from_rpc(e: grpc.RpcError) -> RogatoryError:
    """Turn a failed call into our error: retriable unless the peer refused for good."""
    code = e.code() if isinstance(e, grpc.aio.AioRpcError | grpc.Call) else None
    reason = ""
    trailing = e.trailing_metadata() if isinstance(e, grpc.aio.AioRpcError | grpc.Call) else None
    for key, value in trailing or ():
        if key == REASON_KEY:
            reason = value if isinstance(value, str) else value.decode()
    details = (e.details() if isinstance(e, grpc.aio.AioRpcError | grpc.Call) else "") or ""
    if code is None or code in _RETRIABLE:
        name = code.name if code is not None else "UNKNOWN"
        return TransportError(f"call failed: {name}", code=f"TRANSPORT_{name}")
    return DeliveryRefused(f"{code.name}: {details}", code=reason or code.name)
