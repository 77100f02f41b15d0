"""Encryption at rest: node-local AES-256-GCM under the node's storage key.

Each record is sealed with a random 96-bit nonce and associated data naming its
purpose and record id, so a stored blob cannot be swapped for another. Attachment
streams are not re-encrypted: their STREAM ciphertext is stored as received and only
their content key is wrapped here.
"""

from __future__ import annotations

from broker.crypto import _primitives as p
from broker.errors import ConfigError, StateError

STORAGE_KEY_SIZE = 32


class AtRestCipher:
    __slots__ = ("_aead",)

    def __init__(self, storage_key: bytes) -> None:
        if len(storage_key) != STORAGE_KEY_SIZE:
            raise ConfigError("the storage key must be 32 bytes")
        self._aead = p.Aead(storage_key)

    @staticmethod
    def generate_key() -> bytes:
        return p.random_bytes(STORAGE_KEY_SIZE)

    @staticmethod
    def _aad(purpose: str, record_id: bytes) -> bytes:
        return b"rogatory/v1/at-rest\x00" + purpose.encode() + b"\x00" + record_id

    def seal(self, purpose: str, record_id: bytes, plaintext: bytes) -> bytes:
        nonce = p.random_bytes(p.AEAD_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, self._aad(purpose, record_id))

    def open(self, purpose: str, record_id: bytes, blob: bytes) -> bytes:
        if len(blob) < p.AEAD_NONCE_SIZE + p.AEAD_TAG_SIZE:
            raise StateError("stored record fails authentication", code="STORE_CORRUPT")
        nonce, ct = blob[: p.AEAD_NONCE_SIZE], blob[p.AEAD_NONCE_SIZE :]
        plaintext = self._aead.decrypt(nonce, ct, self._aad(purpose, record_id))
        if plaintext is None:
            raise StateError("stored record fails authentication", code="STORE_CORRUPT")
        return plaintext
