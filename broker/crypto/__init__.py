"""Crypto recipes with no algorithm arguments; raw primitives stay in `_primitives`."""

from broker.crypto._primitives import SUITE_V1, sha256
from broker.crypto.atrest import AtRestCipher
from broker.crypto.keys import KemPrivateKey, KemPublicKey, SigningKey, VerifyKey
from broker.crypto.sealing import open_sealed, seal_for
from broker.crypto.signing import fingerprint, to_be_signed, verify
from broker.crypto.stream import (
    DEFAULT_CHUNK_SIZE,
    TAG_SIZE,
    StreamOpener,
    StreamSealer,
    chunk_count,
    new_stream_key,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SUITE_V1",
    "TAG_SIZE",
    "AtRestCipher",
    "KemPrivateKey",
    "KemPublicKey",
    "SigningKey",
    "StreamOpener",
    "StreamSealer",
    "VerifyKey",
    "chunk_count",
    "fingerprint",
    "new_stream_key",
    "open_sealed",
    "seal_for",
    "sha256",
    "to_be_signed",
    "verify",
]
