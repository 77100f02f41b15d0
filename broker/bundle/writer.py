"""Write a bundle: files in any order (large ones streamed), the manifest last.

Entries are stored uncompressed (evidence is usually compressed already, and a stored
entry cannot be a decompression bomb) with ZIP64 where needed; the writer computes each
file's size and SHA-256 as the bytes go through, so memory stays bounded whatever the
evidence size. The caller writes to a temporary path and renames once `finish()` ran.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from types import TracebackType

from broker.bundle import layout

_DATE = (1980, 1, 1, 0, 0, 0)    # fixed: the time of export is in case.json, signed


class FileSink:
    """One file being streamed into the bundle."""

    def __init__(self, writer: BundleWriter, path: str, role: str, size: int) -> None:
        self._writer, self.path, self.role = writer, path, role
        self._hash = hashlib.sha256()
        self.size = 0
        info = writer.entry_info(path)
        self._fh = writer.zip.open(info, "w", force_zip64=size >= zipfile.ZIP64_LIMIT)

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self.size += len(data)

    def close(self) -> bytes:
        """Finish the entry; returns its SHA-256."""
        self._fh.close()
        digest = self._hash.digest()
        self._writer.entries.append((self.path, self.role, self.size, digest))
        return digest


class BundleWriter:
    """`with BundleWriter(path) as w: w.add(...); w.stream(...); w.finish(...)`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.entries: list[tuple[str, str, int, bytes]] = []
        self._names: set[str] = set()

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.zip.close()

    def entry_info(self, path: str) -> zipfile.ZipInfo:
        problem = layout.unsafe_name(path)
        if problem or path in self._names:
            raise ValueError(f"bundle path {path!r} refused: {problem or 'duplicate'}")
        self._names.add(path)
        info = zipfile.ZipInfo(path, date_time=_DATE)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return info

    def add(self, path: str, role: str, data: bytes) -> bytes:
        """Add a small file from memory; returns its SHA-256."""
        sink = self.stream(path, role, len(data))
        sink.write(data)
        return sink.close()

    def stream(self, path: str, role: str, size: int) -> FileSink:
        """Open a file to stream `size` bytes into (`write()` then `close()`)."""
        if path == layout.MANIFEST:
            raise ValueError("the manifest is written by finish()")
        return FileSink(self, path, role, size)

    def finish(self, *, node_id: str, case_id: str, exported_at_ms: int) -> bytes:
        """Write manifest.json over every file added, close and fsync; returns the
        manifest's SHA-256."""
        manifest = layout.manifest_json(self.entries, node_id=node_id, case_id=case_id,
                                        exported_at_ms=exported_at_ms)
        self.zip.writestr(self.entry_info(layout.MANIFEST), manifest)
        self.zip.close()
        with open(self.path, "rb") as fh:
            os.fsync(fh.fileno())
        return hashlib.sha256(manifest).digest()
