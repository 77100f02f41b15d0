"""One exception tree, split by who is at fault.

- `PeerError`: a peer node sent something we refuse (forged, malformed, replayed...).
- `TransportError`: the network or the peer's availability failed; usually retriable.
- `PolicyDenied`: the rules refuse the exchange (template or data-protection policy).
- `ConfigError`: the operator's configuration or key material is wrong.
- `StateError`: a request conflicts with what is stored (unknown id, illegal step).

Each error carries a stable machine-readable `code` (used in audit records and in the
gRPC `ErrorInfo.reason`) and a class attribute `retriable`.
"""

from __future__ import annotations


class RogatoryError(Exception):
    """Base of every error raised by the broker."""

    code: str = "ERROR"
    retriable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable diagnosis (no personal data, no content)."""
        return str(self.args[0]) if self.args else self.code


class PeerError(RogatoryError):
    """The peer sent data we refuse. Never retriable: resending the same bytes fails again."""

    code = "PEER_ERROR"


class MalformedMessage(PeerError):
    code = "MALFORMED"


class UnsupportedVersion(PeerError):
    code = "VERSION_UNSUPPORTED"


class SignatureInvalid(PeerError):
    code = "SIGNATURE_INVALID"


class UnknownSender(PeerError):
    code = "UNKNOWN_SENDER"


class UnknownKey(PeerError):
    code = "UNKNOWN_KEY"


class KeyRevoked(PeerError):
    code = "KEY_REVOKED"


class SenderMismatch(PeerError):
    """The authenticated transport identity differs from the envelope's sender."""

    code = "SENDER_MISMATCH"


class NotForThisRecipient(PeerError):
    code = "NOT_FOR_THIS_RECIPIENT"


class DecryptionFailed(PeerError):
    code = "DECRYPTION_FAILED"


class EnvelopeExpired(PeerError):
    code = "EXPIRED"


class EnvelopeNotYetValid(PeerError):
    code = "NOT_YET_VALID"


class ReplayDetected(PeerError):
    """An envelope id seen before with different bytes, or one older than the replay window."""

    code = "REPLAY"


class MessageTooLarge(PeerError):
    code = "TOO_LARGE"


class StreamError(PeerError):
    """An attachment stream was truncated, reordered, spliced, or carried extra data."""

    code = "STREAM_INVALID"


class ReceiptInvalid(PeerError):
    code = "RECEIPT_INVALID"


class TransportError(RogatoryError):
    """The peer could not be reached or the call failed in transit."""

    code = "TRANSPORT"
    retriable = True


class PolicyDenied(RogatoryError):
    """The exchange is refused by a rule (a template or a data-protection policy)."""

    code = "POLICY_DENIED"


class TemplateError(PolicyDenied):
    """A payload fails its template, or names a template that does not exist."""

    code = "TEMPLATE_INVALID"


class ConfigError(RogatoryError):
    """The operator's configuration, key material or trust list is wrong."""

    code = "CONFIG"


class TrustListError(ConfigError):
    code = "TRUST_LIST_INVALID"


class TrustListRollback(TrustListError):
    code = "TRUST_LIST_ROLLBACK"


class TrustListExpired(TrustListError):
    code = "TRUST_LIST_EXPIRED"


class StateError(RogatoryError):
    """A request conflicts with the stored state (unknown id, duplicate, illegal step)."""

    code = "STATE"


class NotFound(StateError):
    code = "NOT_FOUND"


class Unauthenticated(RogatoryError):
    """An operator call without a valid token."""

    code = "UNAUTHENTICATED"
