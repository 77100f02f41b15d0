"""When is a message done? Tail the sender's audit journal, read-only.

The sender commits `envelope.delivered` in the same SQLite transaction that marks the
outbox entry delivered, and only after `verify_receipt` accepted the receiver's signed
receipt (broker/services/delivery.py). Seeing that record is therefore exactly "signed
receipt verified at the sender", observed without asking the node to do any work:

- polling GetReceipt per message costs the node one JWT check, two SQLite queries and a
  signature verification per poll, times the messages in flight;
- polling ListMessages costs one JWT check and 1 + `limit` SQLite queries per poll
  (attachment counts are fetched one message at a time) on the node's single store
  thread, which is on the critical path of every send and delivery;
- reading the journal from this process is one indexed range query (`seq > last`) on a
  WAL database, which never blocks the node's writer, every `poll_s` (1 ms): detection
  adds 0.5 ms on average, at most `poll_s` plus the query time.

The node's own record times (ms) are also kept, for a per-phase latency breakdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError

from broker.wire.gen.rogatory.v1 import audit_pb2

DELIVERED = "envelope.delivered"
FAILED = frozenset({"delivery.refused", "delivery.expired"})
RETRY = "delivery.retry"


class DeliveryFailed(Exception):
    pass


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)


def _record(blob: bytes) -> audit_pb2.AuditRecord | None:
    """An audit record, or None for an entry of another shape (the journal is not ours)."""
    try:
        return audit_pb2.AuditRecord.FromString(bytes(blob))
    except DecodeError:
        return None


def event_times(db: Path, event_type: str) -> dict[str, int]:
    """envelope id (hex) -> record time (ms) of every `event_type` record in a journal."""
    out: dict[str, int] = {}
    with contextlib.closing(_connect(db)) as conn:
        for (blob,) in conn.execute("SELECT record FROM audit ORDER BY seq"):
            rec = _record(blob)
            if rec is not None and rec.event_type == event_type:
                out[rec.envelope_id.hex()] = rec.time_ms
    return out


@dataclass
class DeliveryWatch:
    """Resolves `await wait(message_id)` with the perf_counter time delivery was seen."""

    db: Path
    poll_s: float = 0.001
    retries: Counter[str] = field(default_factory=Counter)
    polls: int = 0
    _seen: dict[str, float | BaseException] = field(default_factory=dict)
    _waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    _conn: sqlite3.Connection | None = None
    _task: asyncio.Task[None] | None = None
    _last: int = 0

    async def __aenter__(self) -> DeliveryWatch:
        self._conn = _connect(self.db)
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()
        self._last = int(row[0])
        self._task = asyncio.create_task(self._run(), name="delivery-watch")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            self._conn.close()

    async def wait(self, message_id: str) -> float:
        found = self._seen.pop(message_id, None)
        if found is None:
            fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._waiters[message_id] = fut
            return await fut
        if isinstance(found, BaseException):
            raise found
        return found

    def forget(self, message_id: str) -> None:
        self._waiters.pop(message_id, None)

    async def _run(self) -> None:
        assert self._conn is not None
        while True:
            rows = self._conn.execute("SELECT seq, record FROM audit WHERE seq > ? ORDER BY seq",
                                      (self._last,)).fetchall()
            self.polls += 1
            now = time.perf_counter()
            for seq, blob in rows:
                self._last = int(seq)
                rec = _record(blob)
                if rec is None:
                    continue
                kind = rec.event_type
                if kind == DELIVERED:
                    self._resolve(rec.envelope_id.hex(), now)
                elif kind in FAILED:
                    self._resolve(rec.envelope_id.hex(),
                                  DeliveryFailed(f"{kind}: {rec.reason}"))
                elif kind == RETRY:
                    self.retries[rec.reason] += 1
            await asyncio.sleep(self.poll_s)

    def _resolve(self, message_id: str, outcome: float | BaseException) -> None:
        fut = self._waiters.pop(message_id, None)
        if fut is None:
            self._seen[message_id] = outcome
        elif not fut.done():
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
