"""Signature recipes. Every signature is over a domain-separated digest of exact bytes.

To-be-signed = `label || 0x00 || SHA-256(bytes)`: short and fixed-size, so a remote
signer (a separate process or an HSM behind the `Signer` port) only ever sees 32 bytes
of digest and a label, never the content.
"""

from __future__ import annotations

from broker.crypto import _primitives as p
from broker.crypto.keys import VerifyKey

ENVELOPE_HEADER = b"rogatory/v1/envelope-header"
RECEIPT = b"rogatory/v1/receipt"
TRUST_LIST = b"rogatory/v1/trust-list"
TREE_HEAD = b"rogatory/v1/tree-head"

_LABELS = frozenset({ENVELOPE_HEADER, RECEIPT, TRUST_LIST, TREE_HEAD})


def to_be_signed(label: bytes, data: bytes) -> bytes:
    """The exact message given to Ed25519 for `data` under a domain `label`."""
    if label not in _LABELS:
        raise ValueError("unknown signature domain")
    return label + b"\x00" + p.sha256(data)


def verify(key: VerifyKey, label: bytes, data: bytes, signature: bytes) -> bool:
    """True only if `signature` is `key`'s signature of `data` under `label`."""
    if len(signature) != 64:
        return False
    return p.ed25519_verify(key.public_key(), signature, to_be_signed(label, data))


def fingerprint(signature: bytes) -> str:
    """A short printable reference to a signature (not an identifier: never dedupe on it)."""
    return p.sha256(signature).hex()
