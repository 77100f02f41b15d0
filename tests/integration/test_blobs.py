"""Blob files: written back to disk in the background while they grow, durable and
intact when `close()` returns, gone after `discard()`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from broker.adapters.sqlite import blobs
from broker.adapters.sqlite.blobs import BlobStore, BlobWriter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _fill(writer: BlobWriter, pieces: int, size: int) -> str:
    digest = hashlib.sha256()
    for _ in range(pieces):
        piece = os.urandom(size)
        digest.update(piece)
        writer.write(piece)
    return digest.hexdigest()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    monkeypatch.setattr(blobs, "WRITEBACK_EVERY", 1 << 20)
    return BlobStore(tmp_path)


def _writer(store: BlobStore) -> BlobWriter:
    writer = store.new_writer()
    assert isinstance(writer, BlobWriter)
    return writer


def test_a_large_blob_is_written_back_while_it_grows(store: BlobStore, tmp_path: Path) -> None:
    writer = _writer(store)
    expected = _fill(writer, 40, 256 << 10)
    assert writer._sync is not None  # a background fdatasync was started
    writer.close()
    path = store.place(writer, "out", b"\x01" * 16, 0)
    data = (tmp_path / path).read_bytes()
    assert len(data) == writer.size == 40 * (256 << 10)
    assert hashlib.sha256(data).hexdigest() == expected


def test_discard_during_writeback_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    writer = _writer(store)
    _fill(writer, 12, 256 << 10)
    writer.discard()
    assert not writer.tmp_path.exists()
    assert list((tmp_path / "tmp").iterdir()) == []
