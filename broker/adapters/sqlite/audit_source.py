"""The auditor's reader for the embedded backend: a node store's journal, read-only."""

from __future__ import annotations

import contextlib
import heapq
import sqlite3
from collections.abc import Iterator, Sequence
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
            yield f"{prefix}{seq}", record, None


def read_stores(paths: Sequence[Path]) -> Iterator[tuple[str, bytes, str | None]]:
    """Several node stores interleaved in proportion to their lengths, so that each
    node's records are read at the same pace through time, as Kafka would deliver them:
    the auditor's cross-node reconciliation then only holds exchanges in flight, not a
    whole node's history."""
    totals = []
    for path in paths:
        if not path.exists():
            raise ConfigError(f"no node store at {path}")
        uri = f"file:{path.resolve()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            totals.append(int(db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]) or 1)
    streams = [read_store(p) for p in paths]
    heap = [(0.0, i) for i in range(len(streams))]
    heapq.heapify(heap)
    done = [0] * len(streams)
    while heap:
        i = heap[0][1]
        item = next(streams[i], None)
        if item is None:
            heapq.heappop(heap)
            continue
        yield item
        done[i] += 1
        heapq.heapreplace(heap, (done[i] / totals[i], i))  # one sift, not a pop and a push
