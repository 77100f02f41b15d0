"""Attachment files beside the database: written to a temporary name, renamed on commit.

A blob holds an attachment's STREAM ciphertext exactly as sealed (it is encrypted at
rest; its key is stored wrapped under the node's storage key). Nothing under `tmp/`
is ever visible as stored data; orphans are removed at start.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import secrets
from collections.abc import Generator, Iterator
from pathlib import Path

from broker.ports import BlobSink

# Start writing a blob back to disk every so many bytes, so the fsync at close waits
# for the last stretch only, not the whole file (the kernel's own writeback starts at
# a share of RAM, gigabytes on a large machine).
WRITEBACK_EVERY = 32 << 20
_WRITEBACK = concurrent.futures.ThreadPoolExecutor(max_workers=2,
                                                   thread_name_prefix="blob-writeback")


class BlobWriter:
    """An open temporary blob. `discard()` on any failure; the store renames on commit.

    Writes return at page-cache speed; every `WRITEBACK_EVERY` bytes an `fdatasync` runs
    on a background thread (one at a time per blob) while the writer goes on.
    `close()` waits for it and fsyncs the rest: the blob is durable when it returns.
    """

    def __init__(self, path: Path) -> None:
        self.tmp_path = path
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()/discard()
        self.size = 0
        self._unsynced = 0
        self._sync: concurrent.futures.Future[None] | None = None

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self.size += len(data)
        self._unsynced += len(data)
        if self._unsynced >= WRITEBACK_EVERY and (self._sync is None or self._sync.done()):
            self._settle_sync()
            self._fh.flush()
            self._unsynced = 0
            self._sync = _WRITEBACK.submit(os.fdatasync, self._fh.fileno())

    def _settle_sync(self) -> None:
        """Wait for a running background sync; raises its error (e.g. EIO, ENOSPC)."""
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.result()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._settle_sync()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def discard(self) -> None:
        if not self._fh.closed:
            with contextlib.suppress(OSError):
                self._settle_sync()  # never close the descriptor under a running sync
            self._fh.close()
        self.tmp_path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def new_writer(self) -> BlobSink:
        return BlobWriter(self.tmp / f"{secrets.token_hex(12)}.part")

    def final_path(self, direction: str, envelope_id: bytes, index: int) -> Path:
        """A fresh name per placement: a losing concurrent duplicate never touches the
        winner's file when it cleans up."""
        return (self.root / direction / envelope_id.hex()
                / f"{index}-{secrets.token_hex(6)}.bin")

    def place(self, writer: BlobSink, direction: str, envelope_id: bytes, index: int) -> str:
        """Move a closed temporary blob to its final name; returns the relative path."""
        if not isinstance(writer, BlobWriter):
            raise TypeError("not a blob of this store")
        final = self.final_path(direction, envelope_id, index)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(writer.tmp_path, final)
        return str(final.relative_to(self.root))

    def remove(self, relative: str) -> None:
        (self.root / relative).unlink(missing_ok=True)

    def read_chunks(self, relative: str, sizes: Iterator[int]) -> Generator[bytes]:
        """Yield consecutive pieces of the given sizes from a stored blob."""
        with open(self.root / relative, "rb") as fh:
            for n in sizes:
                piece = fh.read(n)
                if len(piece) != n:
                    return
                yield piece

    def clean_tmp(self) -> int:
        count = 0
        for p in self.tmp.glob("*.part"):
            p.unlink(missing_ok=True)
            count += 1
        return count

    def all_relative(self) -> Iterator[str]:
        for direction in ("in", "out"):
            base = self.root / direction
            if base.exists():
                for p in base.rglob("*.bin"):
                    yield str(p.relative_to(self.root))
