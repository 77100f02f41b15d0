"""Raw primitives. Private: only the recipes in this package call them.

Every algorithm choice of the protocol lives here, so a suite change is one file.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SUITE_V1 = "ed25519+hpke-x25519-sha256-aes256gcm+stream-aes256gcm"
_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

AEAD_KEY_SIZE = 32
AEAD_NONCE_SIZE = 12
AEAD_TAG_SIZE = 16
# pyca's AEAD refuses a single call over 2**31 - 1 bytes; chunks stay far below it.
AEAD_MAX_CALL = 2**31 - 1


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def ed25519_sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    return key.sign(message)


def ed25519_verify(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def hpke_seal(recipient: X25519PublicKey, plaintext: bytes, info: bytes) -> bytes:
    return _HPKE.encrypt(plaintext, recipient, info=info)


def hpke_open(recipient: X25519PrivateKey, ciphertext: bytes, info: bytes) -> bytes | None:
    """Return the plaintext, or None when the ciphertext does not open with this key."""
    try:
        return _HPKE.decrypt(ciphertext, recipient, info=info)
    except (InvalidTag, ValueError):
        return None


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes | None:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None


class Aead:
    """An AES-256-GCM key object, kept for the many calls of one stream."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes | None:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None
