"""HPKE seal/open of envelope bodies (RFC 9180 base mode, X25519/HKDF-SHA256/AES-256-GCM).

The single-shot API has no separate associated data, so the header is bound through
HPKE's `info` (RFC 9180 Sec. 8.1): info = label || 0x00 || SHA-256(header bytes).
A body cannot be moved under another header, and a body sealed to another node
does not open here.
"""

from __future__ import annotations

from broker.crypto import _primitives as p
from broker.crypto.keys import KemPrivateKey, KemPublicKey
from broker.errors import DecryptionFailed

BODY_INFO = b"rogatory/v1/body"


def body_info(header: bytes) -> bytes:
    return BODY_INFO + b"\x00" + p.sha256(header)


def seal_for(recipient: KemPublicKey, body: bytes, header: bytes) -> bytes:
    """Seal `body` to `recipient`, bound to the exact `header` bytes."""
    return p.hpke_seal(recipient.public_key(), body, body_info(header))


def open_sealed(key: KemPrivateKey, sealed: bytes, header: bytes) -> bytes:
    """Open a body sealed to `key` under `header`; DecryptionFailed otherwise."""
    plaintext = p.hpke_open(key.private_key(), sealed, body_info(header))
    if plaintext is None:
        raise DecryptionFailed("the sealed body does not open for this node and header")
    return plaintext
