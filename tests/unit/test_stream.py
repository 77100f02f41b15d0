"""STREAM online AEAD for attachments, and encryption at rest.

The attacks below act on the ciphertext chunks of one attachment as they cross the
network (or sit in storage). The signed manifest fixes each attachment's size; the
chunk size is configuration. Chunk i is sealed under nonce 0^7 || uint32_be(i) ||
last_flag with associated data naming the envelope id, the attachment index and size.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto import _primitives
from broker.crypto.atrest import AtRestCipher
from broker.crypto.stream import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    TAG_SIZE,
    StreamOpener,
    StreamSealer,
    chunk_count,
    new_stream_key,
    stream_aad,
)
from broker.errors import ConfigError, StateError, StreamError

pytestmark = pytest.mark.unit

CHUNK = 64
ENVELOPE_ID = bytes.fromhex("0192f0a35b7c7e3a9d41c2e85f6b0a11")
OTHER_ENVELOPE_ID = bytes.fromhex("0192f0a35b7c7e3a9d41c2e85f6b0a12")
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK]


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def seal_stream(
    data: bytes,
    *,
    key: bytes = KEY,
    envelope_id: bytes = ENVELOPE_ID,
    index: int = 0,
    size: int | None = None,
    chunk_size: int = CHUNK,
) -> list[bytes]:
    size = len(data) if size is None else size
    sealer = StreamSealer(
        key, envelope_id=envelope_id, index=index, size=size, chunk_size=chunk_size
    )
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    return [sealer.seal(piece) for piece in pieces]


def opener(
    size: int,
    *,
    key: bytes = KEY,
    envelope_id: bytes = ENVELOPE_ID,
    index: int = 0,
    chunk_size: int = CHUNK,
) -> StreamOpener:
    return StreamOpener(key, envelope_id=envelope_id, index=index, size=size, chunk_size=chunk_size)


def open_stream(sealed: list[bytes], size: int, **kwargs: object) -> bytes:
    receiver = opener(size, **kwargs)  # type: ignore[arg-type]
    plaintext = b"".join(receiver.open(i, chunk) for i, chunk in enumerate(sealed))
    receiver.finish()
    return plaintext


def raw_chunk(counter: int, *, last: bool, plaintext: bytes, size: int) -> bytes:
    """A chunk sealed by hand under the right key, nonce layout and associated data.

    Stands for a sender that holds the key but frames the stream differently from the
    manifest (a buggy or malicious peer): such chunks authenticate, so only the
    opener's framing checks can refuse them.
    """
    nonce = bytes(7) + counter.to_bytes(4, "big") + bytes([1 if last else 0])
    return AESGCM(KEY).encrypt(nonce, plaintext, stream_aad(ENVELOPE_ID, 0, size))


@contextmanager
def stream_error(code: str) -> Iterator[None]:
    with pytest.raises(StreamError) as info:
        yield
    assert info.value.code == code, info.value.message


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(size: int) -> None:
    data = _data(size)
    sealed = seal_stream(data)

    assert len(sealed) == chunk_count(size, CHUNK)
    receiver = opener(size)
    for i, chunk in enumerate(sealed):
        assert len(chunk) == receiver.expected_ciphertext_size(i)
    assert open_stream(sealed, size) == data


def test_round_trip_default_chunk_size() -> None:
    data = _data(DEFAULT_CHUNK_SIZE + 1)
    sealed = seal_stream(data, chunk_size=DEFAULT_CHUNK_SIZE)

    assert [len(c) for c in sealed] == [DEFAULT_CHUNK_SIZE + TAG_SIZE, 1 + TAG_SIZE]
    assert open_stream(sealed, len(data), chunk_size=DEFAULT_CHUNK_SIZE) == data


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=600), chunk_size=st.integers(min_value=1, max_value=130))
def test_round_trip_any_size_and_chunk_size(data: bytes, chunk_size: int) -> None:
    sealed = seal_stream(data, chunk_size=chunk_size)
    assert open_stream(sealed, len(data), chunk_size=chunk_size) == data


def test_chunk_count() -> None:
    assert [chunk_count(size, CHUNK) for size in SIZES] == [1, 1, 1, 1, 2, 3]


@pytest.mark.parametrize("chunk_size", [0, -1, MAX_CHUNK_SIZE + 1])
def test_chunk_size_out_of_range_refused(chunk_size: int) -> None:
    with stream_error("STREAM_PARAMS"):
        chunk_count(10, chunk_size)


@pytest.mark.parametrize("key_size", [0, 16, 24, 31, 33])
def test_opener_refuses_wrong_key_size(key_size: int) -> None:
    with stream_error("STREAM_PARAMS"):
        opener(10, key=bytes(key_size))


# -- truncation -----------------------------------------------------------------------


def test_truncated_stream_rejected() -> None:
    """The attacker drops the tail of an attachment.

    1. The sender streams 150 bytes as chunks of 64, 64 and 22.
    2. The attacker delivers the first two chunks, then closes the stream.
    3. Both open (online decryption), but no chunk sealed as last arrived: finish()
       reports truncation, so the attachment is never accepted.
    """
    sealed = seal_stream(_data(150))
    receiver = opener(150)
    receiver.open(0, sealed[0])
    receiver.open(1, sealed[1])

    with stream_error("STREAM_TRUNCATED"):
        receiver.finish()


def test_stream_truncated_at_chunk_boundary_rejected() -> None:
    """Truncation exactly at a chunk boundary, where every chunk delivered is whole.

    1. The sender streams 3 * 64 bytes: three full chunks, the third sealed as last.
    2. The attacker delivers chunks 0 and 1 intact and ends the stream there.
    3. Nothing is malformed, but chunk 1 was sealed as not-last: finish() raises.
    """
    sealed = seal_stream(_data(3 * CHUNK))
    receiver = opener(3 * CHUNK)
    for i in range(2):
        receiver.open(i, sealed[i])

    assert not receiver.done
    with stream_error("STREAM_TRUNCATED"):
        receiver.finish()


def test_empty_stream_truncated_rejected() -> None:
    """Even an empty attachment has one (empty, final) chunk; zero chunks is truncation."""
    with stream_error("STREAM_TRUNCATED"):
        opener(0).finish()


def test_non_final_chunk_presented_as_final_rejected() -> None:
    """The last flag, alone: a chunk sealed as not-last cannot end a stream.

    1. A sender frames 128 bytes as chunk 0 and chunk 1, both sealed with last = 0
       (the prefix of a longer stream), under the manifest's own associated data.
    2. The attacker delivers them as the whole 128-byte attachment.
    3. The opener expects chunk 1 to carry last = 1: the tag fails.
    """
    receiver = opener(2 * CHUNK)
    receiver.open(0, raw_chunk(0, last=False, plaintext=_data(CHUNK), size=2 * CHUNK))

    with stream_error("CHUNK_AUTH"):
        receiver.open(1, raw_chunk(1, last=False, plaintext=_data(CHUNK), size=2 * CHUNK))


def test_truncated_stream_relabelled_with_smaller_size_rejected() -> None:
    """Truncation plus a lie about the size: the size is bound into every chunk.

    1. The sender streams 3 * 64 bytes.
    2. The attacker drops chunk 2 and gets the receiver to expect 2 * 64 bytes.
    3. Every chunk's associated data names the real size: chunk 0 already fails.
    """
    sealed = seal_stream(_data(3 * CHUNK))

    with stream_error("CHUNK_AUTH"):
        open_stream(sealed[:2], 2 * CHUNK)


# -- reordering and duplication -------------------------------------------------------


def test_reordered_chunks_rejected() -> None:
    """Chunks delivered out of order (chunk 1 first) are refused before decryption."""
    sealed = seal_stream(_data(3 * CHUNK))
    receiver = opener(3 * CHUNK)

    with stream_error("CHUNK_SEQ"):
        receiver.open(1, sealed[1])


def test_swapped_chunks_relabelled_rejected() -> None:
    """The attacker swaps chunks 0 and 1 and relabels their counters to match.

    1. The sender streams three full chunks.
    2. The attacker delivers chunk 1's ciphertext as counter 0.
    3. The nonce carries the counter: the tag fails.
    """
    sealed = seal_stream(_data(3 * CHUNK))
    receiver = opener(3 * CHUNK)

    with stream_error("CHUNK_AUTH"):
        receiver.open(0, sealed[1])


def test_replayed_chunk_rejected() -> None:
    """A chunk delivered twice under its own counter is refused the second time."""
    sealed = seal_stream(_data(3 * CHUNK))
    receiver = opener(3 * CHUNK)
    receiver.open(0, sealed[0])

    with stream_error("CHUNK_SEQ"):
        receiver.open(0, sealed[0])


def test_duplicate_chunk_relabelled_as_next_rejected() -> None:
    """Chunk 0 delivered again as chunk 1 (counter relabelled): the tag fails."""
    sealed = seal_stream(_data(3 * CHUNK))
    receiver = opener(3 * CHUNK)
    receiver.open(0, sealed[0])

    with stream_error("CHUNK_AUTH"):
        receiver.open(1, sealed[0])


# -- splicing -------------------------------------------------------------------------

SPLICE_SOURCES = {
    "another attachment index": {"index": 1},
    "another envelope id": {"envelope_id": OTHER_ENVELOPE_ID},
    "another key": {"key": OTHER_KEY},
}


@pytest.mark.parametrize("source", SPLICE_SOURCES.values(), ids=SPLICE_SOURCES.keys())
@pytest.mark.parametrize("position", [0, 1, 2])
def test_chunk_spliced_from_another_stream_rejected(
    source: dict[str, object], position: int
) -> None:
    """A chunk cut from another stream and spliced in at the same counter.

    1. Two streams of the same size and chunking exist: the victim and a source that
       differs in one binding (attachment index, envelope id, or content key; the index
       and envelope cases even assume the worst, a reused content key).
    2. The attacker replaces the victim's chunk at `position` with the source's chunk
       at the same counter: same length, same nonce position, valid under its own
       associated data or key.
    3. The receiver's associated data (or key) differs: the tag fails.
    """
    size = 3 * CHUNK
    victim = seal_stream(_data(size, seed=1))
    spliced = seal_stream(_data(size, seed=2), **source)  # type: ignore[arg-type]
    receiver = opener(size)
    for i in range(position):
        receiver.open(i, victim[i])

    with stream_error("CHUNK_AUTH"):
        receiver.open(position, spliced[position])


# -- trailing data and framing --------------------------------------------------------


def test_chunk_after_final_rejected() -> None:
    """Extra data appended after the final chunk (a replayed last chunk, or garbage)."""
    sealed = seal_stream(_data(CHUNK + 1))
    receiver = opener(CHUNK + 1)
    for i, chunk in enumerate(sealed):
        receiver.open(i, chunk)
    assert receiver.done

    with stream_error("TRAILING_DATA"):
        receiver.open(len(sealed), sealed[-1])
    receiver.finish()


def test_sealer_refuses_more_chunks_than_the_manifest() -> None:
    sealer = StreamSealer(KEY, envelope_id=ENVELOPE_ID, index=0, size=CHUNK, chunk_size=CHUNK)
    sealer.seal(_data(CHUNK))

    with stream_error("TRAILING_DATA"):
        sealer.seal(b"more")


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_bit_flipped_chunk_rejected(data: st.DataObject) -> None:
    sealed = seal_stream(_data(2 * CHUNK + 10))
    position = data.draw(st.integers(min_value=0, max_value=len(sealed) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=len(sealed[position]) * 8 - 1))
    forged = bytearray(sealed[position])
    forged[bit // 8] ^= 1 << (bit % 8)
    receiver = opener(2 * CHUNK + 10)
    for i in range(position):
        receiver.open(i, sealed[i])

    with stream_error("CHUNK_AUTH"):
        receiver.open(position, bytes(forged))


def _resized(chunk: bytes) -> dict[str, bytes]:
    return {
        "one byte appended": chunk + b"\x00",
        "one byte dropped": chunk[:-1],
        "tag only": chunk[-TAG_SIZE:],
        "empty": b"",
        "two chunks joined": chunk + chunk,
    }


@pytest.mark.parametrize("variant", _resized(b"\x00" * (CHUNK + TAG_SIZE)).keys())
@pytest.mark.parametrize("position", [0, 1])
def test_chunk_of_wrong_size_rejected(variant: str, position: int) -> None:
    """A chunk whose length disagrees with the chunk size and manifest is refused unread."""
    size = CHUNK + 5
    sealed = seal_stream(_data(size))
    receiver = opener(size)
    for i in range(position):
        receiver.open(i, sealed[i])

    with stream_error("CHUNK_SIZE"):
        receiver.open(position, _resized(sealed[position])[variant])


def test_empty_final_chunk_where_manifest_declares_data_rejected() -> None:
    """An authentic but empty final chunk, where the manifest says the tail has data.

    1. The manifest declares 65 bytes: chunk 0 carries 64, final chunk 1 carries 1.
    2. A peer holding the content key ends the stream with an empty chunk sealed as
       last under the right nonce and associated data (so the tag verifies).
    3. The final chunk's length must match the declared size: it is refused.
    """
    size = CHUNK + 1
    sealed = seal_stream(_data(size))
    receiver = opener(size)
    receiver.open(0, sealed[0])

    with stream_error("CHUNK_SIZE"):
        receiver.open(1, raw_chunk(1, last=True, plaintext=b"", size=size))


def test_empty_final_chunk_after_full_chunks_rejected() -> None:
    """Framing "full chunks, then an empty last chunk" for an exact multiple of the size.

    1. The manifest declares 2 * 64 bytes: two chunks, the second one final.
    2. A sender frames it as 64, 64 (both not-last), then an empty chunk sealed as last.
    3. Chunk 1 must be the final one: its tag fails (last flag), and the empty third
       chunk could only ever be trailing data.
    """
    size = 2 * CHUNK
    receiver = opener(size)
    receiver.open(0, raw_chunk(0, last=False, plaintext=_data(CHUNK), size=size))

    with stream_error("CHUNK_AUTH"):
        receiver.open(1, raw_chunk(1, last=False, plaintext=_data(CHUNK), size=size))


def test_data_where_manifest_declares_empty_attachment_rejected() -> None:
    with stream_error("CHUNK_SIZE"):
        opener(0).open(0, raw_chunk(0, last=True, plaintext=b"x", size=0))


# -- nonce uniqueness -----------------------------------------------------------------


def test_no_key_nonce_pair_repeats_across_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every AES-GCM call made while sealing many attachments uses a fresh (key, nonce).

    `Aead.encrypt` is instrumented to record the key and nonce of each call; within a
    stream the nonces must be exactly counter 0..n-1 with the last flag on the final one.
    """
    keys: dict[int, bytes] = {}
    alive: list[_primitives.Aead] = []
    calls: list[tuple[bytes, bytes]] = []
    real_init, real_encrypt = _primitives.Aead.__init__, _primitives.Aead.encrypt

    def recording_init(self: _primitives.Aead, key: bytes) -> None:
        real_init(self, key)
        keys[id(self)] = key
        alive.append(self)  # keeps ids unique for the whole test

    def recording_encrypt(
        self: _primitives.Aead, nonce: bytes, plaintext: bytes, aad: bytes
    ) -> bytes:
        calls.append((keys[id(self)], nonce))
        return real_encrypt(self, nonce, plaintext, aad)

    monkeypatch.setattr(_primitives.Aead, "__init__", recording_init)
    monkeypatch.setattr(_primitives.Aead, "encrypt", recording_encrypt)

    rng = random.Random(7)
    expected_calls = 0
    for envelope in range(40):
        envelope_id = envelope.to_bytes(16, "big")
        for index in range(5):
            size = rng.randrange(0, 6 * CHUNK)
            first = len(calls)
            seal_stream(_data(size), key=new_stream_key(), envelope_id=envelope_id, index=index)
            n = chunk_count(size, CHUNK)
            expected_calls += n
            assert [nonce for _, nonce in calls[first:]] == [
                bytes(7) + i.to_bytes(4, "big") + bytes([i == n - 1]) for i in range(n)
            ]

    assert len(calls) == expected_calls
    assert len(set(calls)) == len(calls)


# -- encryption at rest ---------------------------------------------------------------

STORE = AtRestCipher(AtRestCipher.generate_key())
RECORD_ID = b"env-0192f0a35b7c"
PURPOSE = "attachment-key"


@pytest.mark.parametrize("plaintext", [b"", b"k", _data(1000)])
def test_at_rest_round_trip(plaintext: bytes) -> None:
    blob = STORE.seal(PURPOSE, RECORD_ID, plaintext)

    assert len(blob) == 12 + len(plaintext) + TAG_SIZE
    assert STORE.open(PURPOSE, RECORD_ID, blob) == plaintext


def test_at_rest_blob_does_not_contain_the_plaintext() -> None:
    plaintext = _data(1000)
    assert plaintext[:32] not in STORE.seal(PURPOSE, RECORD_ID, plaintext)


def test_at_rest_nonce_is_fresh_per_seal() -> None:
    assert STORE.seal(PURPOSE, RECORD_ID, b"same") != STORE.seal(PURPOSE, RECORD_ID, b"same")


def test_storage_key_of_wrong_size_refused() -> None:
    with pytest.raises(ConfigError):
        AtRestCipher(bytes(16))


@contextmanager
def store_corrupt() -> Iterator[None]:
    with pytest.raises(StateError) as info:
        yield
    assert info.value.code == "STORE_CORRUPT"


def test_stored_blob_moved_to_another_record_rejected() -> None:
    """Someone with write access to the database swaps two records' blobs.

    1. The node stores record A's attachment key sealed under (purpose, A).
    2. The blob is copied into record B's row.
    3. Opening B uses (purpose, B) as associated data: STORE_CORRUPT.
    """
    blob = STORE.seal(PURPOSE, RECORD_ID, b"content key of record A")

    with store_corrupt():
        STORE.open(PURPOSE, b"env-0192f0a35b7d", blob)


def test_stored_blob_moved_to_another_purpose_rejected() -> None:
    """A blob stored for one purpose is read back as another kind of secret."""
    blob = STORE.seal(PURPOSE, RECORD_ID, b"content key")

    with store_corrupt():
        STORE.open("body", RECORD_ID, blob)


def test_stored_blob_under_another_storage_key_rejected() -> None:
    blob = STORE.seal(PURPOSE, RECORD_ID, b"content key")

    with store_corrupt():
        AtRestCipher(AtRestCipher.generate_key()).open(PURPOSE, RECORD_ID, blob)


def test_bit_flipped_stored_blob_rejected() -> None:
    blob = STORE.seal(PURPOSE, RECORD_ID, b"key")
    for bit in range(len(blob) * 8):
        forged = bytearray(blob)
        forged[bit // 8] ^= 1 << (bit % 8)
        with store_corrupt():
            STORE.open(PURPOSE, RECORD_ID, bytes(forged))


@pytest.mark.parametrize("length", [0, 1, 7, 8, 11, 12, 27])
def test_truncated_stored_blob_rejected(length: int) -> None:
    """A blob cut short on disk fails as STORE_CORRUPT, whatever its remaining length."""
    blob = STORE.seal(PURPOSE, RECORD_ID, b"content key")

    with store_corrupt():
        STORE.open(PURPOSE, RECORD_ID, blob[:length])
