"""Delivery streams a stored blob chunk by chunk, reading one chunk ahead off the event
loop: every chunk in order and nothing else; a stream cut short closes the blob."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker.adapters.sqlite.blobs import BlobStore
from broker.crypto import TAG_SIZE
from broker.model import MessageId
from broker.model.stored import OutboxItem, StoredAttachment
from broker.services.delivery import Delivery

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]
CHUNK = 1024


class _Tracking(BlobStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.closed: list[bool] = []

    def read_chunks(self, relative: str, sizes: Iterator[int]) -> Generator[bytes]:
        inner = super().read_chunks(relative, sizes)
        try:
            yield from inner
        finally:
            inner.close()
            self.closed.append(True)


def _stored(blobs: BlobStore, size: int) -> tuple[OutboxItem, list[bytes]]:
    """A blob shaped like a STREAM ciphertext of `size` plaintext bytes."""
    pieces, left = [], size
    while True:
        n = min(CHUNK, left)
        pieces.append(os.urandom(n + TAG_SIZE))
        left -= n
        if left == 0:
            break
    writer = blobs.new_writer()
    for p in pieces:
        writer.write(p)
    writer.close()
    eid = MessageId.new()
    path = blobs.place(writer, "out", eid.raw, 0)
    att = StoredAttachment(index=0, size=size, sha256=b"\0" * 32, chunk_size=CHUNK,
                           media_type="application/octet-stream", filename=b"",
                           wrapped_key=b"", path=path)
    return OutboxItem(envelope_id=eid, recipient="US-OIA", envelope=b"", attempts=0,
                      expires_at_ms=0, attachments=(att,)), pieces


def _delivery(blobs: BlobStore) -> Delivery:
    ctx: Any = SimpleNamespace(blobs=blobs)
    return Delivery(ctx, transport=None)  # type: ignore[arg-type]


async def test_every_chunk_in_order(tmp_path: Path) -> None:
    blobs = _Tracking(tmp_path)
    item, pieces = _stored(blobs, 5 * CHUNK + 17)
    got = [c async for c in _delivery(blobs)._chunks(item)]
    assert [(i, n) for i, n, _ in got] == [(0, k) for k in range(len(pieces))]
    assert [data for _, _, data in got] == pieces
    assert blobs.closed == [True]


async def test_a_stream_cut_short_closes_the_blob(tmp_path: Path) -> None:
    blobs = _Tracking(tmp_path)
    item, pieces = _stored(blobs, 8 * CHUNK)
    stream = _delivery(blobs)._chunks(item)
    first = await anext(stream)
    assert first == (0, 0, pieces[0])
    await stream.aclose()          # what the gRPC call does when the peer hangs up
    for _ in range(50):
        if blobs.closed:
            break
        await asyncio.sleep(0.01)
    assert blobs.closed == [True]
