"""The auditor's reader for the embedded backend: a node store's journal, read-only."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from broker.errors import ConfigError


def read_store(path: Path) -> Iterator[tuple[str, bytes, str | None]]:
    """Yield (position, record bytes, key) in sequence order, without writing anything."""
    if not path.exists():
        raise ConfigError(f"no node store at {path}")
    uri = f"file:{path.resolve()}?mode=ro"
    prefix = f"store:{path}#"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        cursor = db.execute("SELECT seq, record FROM audit ORDER BY seq")
        for seq, record in cursor:
            yield prefix + str(seq), record, None
