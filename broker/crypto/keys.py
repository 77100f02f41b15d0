"""Key material: generation, (de)serialization and key ids.

A key id is the hex of the first 16 bytes of SHA-256 over the raw public key, prefixed
by the algorithm, e.g. `ed25519:3f1c...`. It names a key in the trust list.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)

from broker.crypto._primitives import sha256
from broker.errors import ConfigError

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw


def _key_id(alg: str, raw_public: bytes) -> str:
    return f"{alg}:{sha256(raw_public)[:16].hex()}"


@dataclass(frozen=True)
class VerifyKey:
    """An Ed25519 public key with its key id."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ConfigError("an Ed25519 public key has 32 bytes")

    @property
    def key_id(self) -> str:
        return _key_id("ed25519", self.raw)

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def b64(self) -> str:
        return base64.b64encode(self.raw).decode()


@dataclass(frozen=True)
class KemPublicKey:
    """An X25519 public key (HPKE recipient key) with its key id."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ConfigError("an X25519 public key has 32 bytes")

    @property
    def key_id(self) -> str:
        return _key_id("x25519", self.raw)

    def public_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)

    def b64(self) -> str:
        return base64.b64encode(self.raw).decode()


class SigningKey:
    """An Ed25519 private key. Lives behind the `Signer` port in services."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.verify_key = VerifyKey(key.public_key().public_bytes(_RAW, _RAW_PUB))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = _load_private(pem)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("expected an Ed25519 private key")
        return cls(key)

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def to_pem(self) -> bytes:
        return _private_pem(self._key)

    def private_key(self) -> Ed25519PrivateKey:
        return self._key


class KemPrivateKey:
    """An X25519 private key: opens envelopes sealed to this node."""

    __slots__ = ("_key", "public")

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key
        self.public = KemPublicKey(key.public_key().public_bytes(_RAW, _RAW_PUB))

    @classmethod
    def generate(cls) -> KemPrivateKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> KemPrivateKey:
        key = _load_private(pem)
        if not isinstance(key, X25519PrivateKey):
            raise ConfigError("expected an X25519 private key")
        return cls(key)

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def private_key(self) -> X25519PrivateKey:
        return self._key

    def to_pem(self) -> bytes:
        return _private_pem(self._key)


def _load_private(pem: bytes) -> object:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError("unreadable private key file") from e


def _private_pem(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
