"""STREAM online AEAD for attachments (Hoang, Reyhanitabar, Rogaway, Vizar 2015).

Each attachment has a fresh random 256-bit key that travels inside the sealed body.
Chunk i is sealed with AES-256-GCM under nonce = 0^7 || uint32_be(i) || last_flag and
associated data binding the envelope id, attachment index and declared size. So:
- reordering or duplicating chunks changes the counter -> the tag fails;
- truncating the stream, even exactly at a chunk boundary, leaves no chunk sealed as
  last -> detected at the end;
- a chunk spliced from another attachment or envelope fails its tag (other key/AAD).
A (key, nonce) pair is never reused: the key is fresh per attachment and the counter
is strictly increasing. The plaintext chunk count is fixed by the signed manifest.
"""

from __future__ import annotations

import struct

from broker.crypto import _primitives as p
from broker.errors import StreamError

KEY_SIZE = p.AEAD_KEY_SIZE
TAG_SIZE = p.AEAD_TAG_SIZE
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 16 << 20
_AAD_LABEL = b"rogatory/v1/attachment\x00"
_MAX_CHUNKS = 2**32 - 1


def new_stream_key() -> bytes:
    return p.random_bytes(KEY_SIZE)


def chunk_count(size: int, chunk_size: int) -> int:
    """Number of chunks for `size` plaintext bytes; an empty attachment has one empty chunk."""
    if chunk_size <= 0 or chunk_size > MAX_CHUNK_SIZE:
        raise StreamError("chunk size out of range", code="STREAM_PARAMS")
    count = max(1, -(-size // chunk_size))
    if count > _MAX_CHUNKS:
        raise StreamError("attachment too large for one stream", code="STREAM_PARAMS")
    return count


def _nonce(counter: int, last: bool) -> bytes:
    return b"\x00" * 7 + struct.pack(">IB", counter, 1 if last else 0)


def stream_aad(envelope_id: bytes, index: int, size: int) -> bytes:
    return _AAD_LABEL + envelope_id + struct.pack(">IQ", index, size)


class StreamSealer:
    """Seals the chunks of one attachment, strictly in order."""

    __slots__ = ("_aad", "_aead", "_count", "_next")

    def __init__(self, key: bytes, *, envelope_id: bytes, index: int, size: int,
                 chunk_size: int) -> None:
        if len(key) != KEY_SIZE:
            raise StreamError("attachment key has the wrong size", code="STREAM_PARAMS")
        self._aead = p.Aead(key)
        self._aad = stream_aad(envelope_id, index, size)
        self._count = chunk_count(size, chunk_size)
        self._next = 0

    def seal(self, plaintext: bytes) -> bytes:
        if self._next >= self._count:
            raise StreamError("more chunks than the manifest declares", code="TRAILING_DATA")
        last = self._next == self._count - 1
        sealed = self._aead.encrypt(_nonce(self._next, last), plaintext, self._aad)
        self._next += 1
        return sealed


class StreamOpener:
    """Opens the chunks of one attachment, checking order, sizes and the final chunk."""

    __slots__ = ("_aad", "_aead", "_chunk_size", "_count", "_next", "_received", "_size")

    def __init__(self, key: bytes, *, envelope_id: bytes, index: int, size: int,
                 chunk_size: int) -> None:
        if len(key) != KEY_SIZE:
            raise StreamError("attachment key has the wrong size", code="STREAM_PARAMS")
        self._aead = p.Aead(key)
        self._aad = stream_aad(envelope_id, index, size)
        self._size = size
        self._chunk_size = chunk_size
        self._count = chunk_count(size, chunk_size)
        self._next = 0
        self._received = 0

    @property
    def done(self) -> bool:
        return self._next == self._count

    def expected_ciphertext_size(self, counter: int) -> int:
        if counter < self._count - 1:
            return self._chunk_size + TAG_SIZE
        return self._size - self._chunk_size * (self._count - 1) + TAG_SIZE

    def open(self, counter: int, ciphertext: bytes) -> bytes:
        """Open chunk `counter`; raises StreamError on any order, size or tag failure."""
        if self.done:
            raise StreamError("chunk after the final chunk", code="TRAILING_DATA")
        if counter != self._next:
            raise StreamError("chunk out of sequence", code="CHUNK_SEQ")
        if len(ciphertext) != self.expected_ciphertext_size(counter):
            raise StreamError("chunk has the wrong size", code="CHUNK_SIZE")
        last = counter == self._count - 1
        plaintext = self._aead.decrypt(_nonce(counter, last), ciphertext, self._aad)
        if plaintext is None:
            raise StreamError("chunk failed authentication", code="CHUNK_AUTH")
        self._next += 1
        self._received += len(plaintext)
        return plaintext

    def finish(self) -> None:
        """Call at end of stream: a missing final chunk is truncation."""
        if not self.done:
            raise StreamError("attachment stream truncated", code="STREAM_TRUNCATED")
