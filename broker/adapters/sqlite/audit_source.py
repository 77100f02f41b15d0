"""The auditor's reader for the embedded backend: a node store's journal, read-only."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from broker.errors import ConfigError

_RECORDS = "SELECT seq, record FROM audit ORDER BY seq"


def _open(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise ConfigError(f"no node store at {path}")
    return sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)


def read_store(path: Path) -> Iterator[tuple[str, bytes, str | None]]:
    """Yield (position, record bytes, key) in sequence order, without writing anything."""
    prefix = f"store:{path}#"
    with contextlib.closing(_open(path)) as db:
        for seq, record in db.execute(_RECORDS):
            yield f"{prefix}{seq}", record, None


def read_stores(paths: Sequence[Path], *, block: int = 256
                ) -> Iterator[tuple[str, bytes, str | None]]:
    """Several node stores interleaved in proportion to their lengths, so that each
    node's records are read at the same pace through time, as Kafka would deliver them:
    the auditor's cross-node reconciliation then only holds exchanges in flight, not a
    whole node's history.

    In rounds: each round takes from every store a block in proportion to its length
    (`block` records from the longest, at least one from each), so every store ends in
    about the same round. Blocks, not single records: a per-record schedule cost half
    as much again as reading the rows."""
    totals = []
    for path in paths:
        with contextlib.closing(_open(path)) as db:
            totals.append(int(db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]))
    longest = max(totals, default=0) or 1
    with contextlib.ExitStack() as stack:
        cursors = [stack.enter_context(contextlib.closing(_open(p))).execute(_RECORDS)
                   for p in paths]
        prefixes = [f"store:{p}#" for p in paths]
        sizes = [max(1, block * t // longest) for t in totals]
        live = list(range(len(paths)))
        while live:
            for i in tuple(live):
                rows = cursors[i].fetchmany(sizes[i])
                if not rows:
                    live.remove(i)
                    continue
                prefix = prefixes[i]
                for seq, record in rows:
                    yield f"{prefix}{seq}", record, None
