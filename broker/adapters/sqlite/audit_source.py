"""The auditor's reader for the embedded backend: a node store's journal, read-only."""

from __future__ import annotations

import contextlib
import heapq
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


def read_stores(paths: Sequence[Path]) -> Iterator[tuple[str, bytes, str | None]]:
    """Several node stores interleaved in proportion to their lengths, so that each
    node's records are read at the same pace through time, as Kafka would deliver them:
    the auditor's cross-node reconciliation then only holds exchanges in flight, not a
    whole node's history.

    The k-th record of store i comes at k / (records in store i), ties to the lower i.
    One generator reads every store's cursor (a generator per store would cost a
    resume per record)."""
    totals = []
    for path in paths:
        with contextlib.closing(_open(path)) as db:
            totals.append(int(db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]) or 1)
    with contextlib.ExitStack() as stack:
        cursors = [stack.enter_context(contextlib.closing(_open(p))).execute(_RECORDS)
                   for p in paths]
        prefixes = [f"store:{p}#" for p in paths]
        heap = [(0.0, i) for i in range(len(paths))]
        heapq.heapify(heap)
        done = [0] * len(paths)
        while heap:
            i = heap[0][1]
            row = next(cursors[i], None)
            if row is None:
                heapq.heappop(heap)
                continue
            yield f"{prefixes[i]}{row[0]}", row[1], None
            done[i] += 1
            heapq.heapreplace(heap, (done[i] / totals[i], i))  # one sift, not pop and push
