"""The node store on SQLite in WAL mode, with synchronous=FULL.

One connection, used from one dedicated thread, so the event loop never blocks on a
commit. Every state change commits together with its audit record (the journal is a
hash chain in the same database), and an outgoing message commits together with its
outbox entry (transactional outbox). Incoming messages are keyed by envelope id, so a
re-delivery cannot create a second entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from broker.audit import AuditEvent
from broker.audit.journal import Journal
from broker.envelope import Signer
from broker.errors import NotFound, ReplayDetected, StateError
from broker.model import MessageId
from broker.model.cases import (
    CaseRecord,
    DeadlineRecord,
    LifecycleChange,
    RequestRecord,
    StepRecord,
)
from broker.model.stored import DueOutbox, OutboxItem, StoredAttachment, StoredMessage

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
  envelope_id BLOB NOT NULL,
  peer TEXT NOT NULL,
  message_type TEXT NOT NULL,
  template_id TEXT NOT NULL,
  template_version TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  header BLOB NOT NULL,
  signature BLOB NOT NULL,
  header_sha256 BLOB NOT NULL,
  payload BLOB NOT NULL,
  status TEXT NOT NULL,
  stored_at_ms INTEGER NOT NULL,
  legal_basis TEXT NOT NULL DEFAULT '',
  obligations TEXT NOT NULL DEFAULT '[]',
  body BLOB NOT NULL DEFAULT x'',
  PRIMARY KEY (direction, envelope_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attachments (
  direction TEXT NOT NULL,
  envelope_id BLOB NOT NULL,
  idx INTEGER NOT NULL,
  size INTEGER NOT NULL,
  sha256 BLOB NOT NULL,
  chunk_size INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  filename BLOB NOT NULL,
  wrapped_key BLOB NOT NULL,
  path TEXT NOT NULL,
  PRIMARY KEY (direction, envelope_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  envelope_id BLOB PRIMARY KEY,
  recipient TEXT NOT NULL,
  envelope BLOB NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'refused', 'expired')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  request_id BLOB NOT NULL DEFAULT x'',   -- messages of one request go out in order
  seq INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS outbox_request ON outbox (request_id, seq);
CREATE TABLE IF NOT EXISTS cases (
  case_id TEXT PRIMARY KEY,
  reference BLOB NOT NULL,               -- sealed at rest
  opened_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
  request_id BLOB PRIMARY KEY,
  case_id TEXT NOT NULL REFERENCES cases (case_id),
  side TEXT NOT NULL CHECK (side IN ('requesting', 'executing')),
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  peer TEXT NOT NULL,
  message_type TEXT NOT NULL,
  template_id TEXT NOT NULL,
  template_version TEXT NOT NULL,
  header_sha256 BLOB NOT NULL,
  opened_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  peer_reference BLOB NOT NULL,          -- sealed at rest
  drafter TEXT NOT NULL,
  approver TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_case ON requests (case_id);
CREATE TABLE IF NOT EXISTS request_messages (
  envelope_id BLOB PRIMARY KEY,
  request_id BLOB NOT NULL REFERENCES requests (request_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS request_steps (
  request_id BLOB NOT NULL REFERENCES requests (request_id),
  seq INTEGER NOT NULL,
  at_ms INTEGER NOT NULL,
  event TEXT NOT NULL,
  source TEXT NOT NULL,
  target TEXT NOT NULL,
  actor TEXT NOT NULL,
  envelope_id BLOB,
  PRIMARY KEY (request_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deadlines (
  request_id BLOB NOT NULL REFERENCES requests (request_id),
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  basis TEXT NOT NULL,
  verification TEXT NOT NULL,
  value TEXT NOT NULL,
  starts TEXT NOT NULL,
  extends TEXT NOT NULL,
  met_by TEXT NOT NULL,
  started_at_ms INTEGER NOT NULL,
  due_at_ms INTEGER NOT NULL,
  approaching_at_ms INTEGER NOT NULL,
  status TEXT NOT NULL,
  raised TEXT NOT NULL,
  PRIMARY KEY (request_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deadlines_open ON deadlines (status, approaching_at_ms);
CREATE TABLE IF NOT EXISTS drafts (
  request_id BLOB PRIMARY KEY REFERENCES requests (request_id),
  draft BLOB NOT NULL                    -- sealed at rest: what the drafter prepared
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
  direction TEXT NOT NULL,
  envelope_id BLOB NOT NULL,
  receipt BLOB NOT NULL,
  status TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL,
  PRIMARY KEY (direction, envelope_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  record BLOB NOT NULL,
  record_hash BLOB NOT NULL,
  leaf_hash BLOB NOT NULL
);
"""


class _Call:
    """One queued call; `barrier` calls run only after the open batch committed."""

    __slots__ = ("args", "barrier", "error", "fn", "future", "loop", "result")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
                 fn: Callable[..., Any], args: tuple[Any, ...], barrier: bool) -> None:
        self.loop, self.future, self.fn, self.args = loop, future, fn, args
        self.barrier = barrier
        self.result: Any = None
        self.error: BaseException | None = None


_IDLE = object()


class _StoreThread:
    """The one thread that owns the SQLite connection, with group commit.

    Calls are queued (a plain queue and `call_soon_threadsafe`, rather than an
    executor: one hand-off each way). Write transactions that find others already
    waiting share one COMMIT (one fsync): the store keeps the transaction open while
    the queue is not empty (at most `max_batch` calls), each call after the first in
    its own savepoint, and no caller learns its result before that COMMIT returned. A
    failed call rolls back its own changes only; a failed COMMIT fails every call of
    the batch. A call whose awaiting task was cancelled still runs to its end; its
    result is dropped.
    """

    def __init__(self, *, open_batch: Callable[[], bool], commit: Callable[[], None],
                 max_batch: int = 64) -> None:
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._open_batch = open_batch
        self._commit = commit
        self._max_batch = max_batch
        self._thread = threading.Thread(target=self._serve, name="store", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any, barrier: bool = False
               ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Call(loop, future, fn, args, barrier))
        return future

    def shutdown(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _serve(self) -> None:
        held: list[_Call] = []
        while True:
            item: _Call | object | None
            if held:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = _IDLE
            else:
                item = self._queue.get()
            if held and (not isinstance(item, _Call) or item.barrier
                         or len(held) >= self._max_batch):
                _settle(self._finish(held))
                held = []
            if item is None:
                return
            if not isinstance(item, _Call):
                continue
            try:
                item.result = item.fn(*item.args)
            except BaseException as e:
                item.error = e
            held.append(item)
            if not self._open_batch():
                _settle(held)
                held = []

    def _finish(self, held: list[_Call]) -> list[_Call]:
        try:
            self._commit()
        except BaseException as e:
            for call in held:
                call.result, call.error = None, e
        return held


def _settle(calls: list[_Call]) -> None:
    """Hand results back: one wake-up per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Call]] = {}
    for call in calls:
        by_loop.setdefault(call.loop, []).append(call)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits it any more
            loop.call_soon_threadsafe(_settle_on_loop, group)


def _settle_on_loop(calls: list[_Call]) -> None:
    for call in calls:
        if call.future.cancelled():
            continue
        if call.error is not None:
            call.future.set_exception(call.error)
        else:
            call.future.set_result(call.result)


class NodeStore:
    """The node's durable state. Public methods are async and run on the store thread."""

    def __init__(self, path: Path, *, node_id: str, clock: Callable[[], int],
                 signer: Signer | None = None, checkpoint_every: int = 256) -> None:
        self._path = path
        self._node_id = node_id
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._batch_mark: Any = None
        # The journal's position as of the last COMMIT, for readers on other threads: the
        # journal itself runs ahead inside an open batch, which may still roll back.
        self._durable_sequence = 0
        self._durable_checkpoint = b""
        self._worker = _StoreThread(open_batch=self._in_batch, commit=self._commit_batch)
        self.journal = Journal(node_id, signer, checkpoint_every=checkpoint_every)

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        last = db.execute("SELECT value FROM meta WHERE key = 'last_checkpoint'").fetchone()
        self.journal.restore(
            ((int(r[0]), bytes(r[1]), bytes(r[2])) for r in
             db.execute("SELECT seq, record_hash, leaf_hash FROM audit ORDER BY seq")),
            bytes.fromhex(last[0]) if last else b"")
        self._durable_sequence = self.journal.sequence
        self._durable_checkpoint = self.journal.last_checkpoint
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._worker.submit(self._close_db, barrier=True)
        self._worker.shutdown()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._worker.submit(fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _in_batch(self) -> bool:
        return self._db is not None and self._db.in_transaction

    def _commit_batch(self) -> None:
        """COMMIT the open batch (store thread); on failure roll all of it back."""
        db = self._db
        if db is None or not db.in_transaction:
            return
        try:
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self.journal.reset(self._batch_mark)
            raise
        self._durable_sequence = self.journal.sequence
        self._durable_checkpoint = self.journal.last_checkpoint

    def _tx(self, fn: Callable[[sqlite3.Connection], T], events: Sequence[AuditEvent],
            late: Sequence[AuditEvent] = (), *, checkpoint: bool = False) -> T:
        """Run `fn` and append `events` (and a checkpoint when due) atomically.

        `late` is read after `fn` ran: events that `fn` decides on (e.g. optional steps).
        The changes open the store thread's batch, or join the open one in a savepoint of
        their own (see `_StoreThread`): they commit with it, or roll back alone if `fn`
        raises.
        """
        db = self.db
        first = not db.in_transaction
        if first:  # the batch's own transaction is this call's scope: no savepoint
            db.execute("BEGIN IMMEDIATE")
            self._batch_mark = mark = self.journal.mark()
        else:
            mark = self.journal.mark()
            db.execute("SAVEPOINT op")
        try:
            result = fn(db)
            entries = [self.journal.append(event, self._clock())
                       for event in (*events, *late)]
            if self.journal.due() or (checkpoint and self.journal.has_unsigned()):
                entries.append(self.journal.checkpoint(self._clock()))
                db.execute("INSERT INTO meta (key, value) VALUES ('last_checkpoint', ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           (self.journal.last_checkpoint.hex(),))
            db.executemany(
                "INSERT INTO audit (seq, record, record_hash, leaf_hash) VALUES (?, ?, ?, ?)",
                [(e.sequence, e.record, e.record_hash, e.leaf_hash) for e in entries])
            if not first:
                db.execute("RELEASE op")
        except BaseException:
            db.execute("ROLLBACK" if first else "ROLLBACK TO op")
            if not first:
                db.execute("RELEASE op")
            self.journal.reset(mark)
            raise
        return result

    # -- audit --------------------------------------------------------------------------

    async def audit(self, *events: AuditEvent) -> None:
        """Append events with no other state change (e.g. a rejection)."""
        await self._run(self._tx, lambda db: None, events)

    async def checkpoint(self) -> bytes:
        """Sign a tree head now if records were added since the last one; returns the
        latest signed tree head (empty if the journal has no signer)."""
        await self._run(functools.partial(self._tx, lambda db: None, [], checkpoint=True))
        return self._durable_checkpoint

    def latest_checkpoint(self) -> bytes:
        """The newest committed signed tree head (never one of a batch still open)."""
        return self._durable_checkpoint

    @property
    def audit_sequence(self) -> int:
        """The sequence of the last committed audit record."""
        return self._durable_sequence

    async def audit_entries(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """(sequence, record bytes) after `after_seq`, in order."""
        def q() -> list[tuple[int, bytes]]:
            rows = self.db.execute("SELECT seq, record FROM audit WHERE seq > ? ORDER BY seq "
                                   "LIMIT ?", (after_seq, limit)).fetchall()
            return [(int(r[0]), bytes(r[1])) for r in rows]
        return await self._run(q)

    # -- meta ---------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        def q() -> str | None:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])
        return await self._run(q)

    async def set_meta(self, key: str, value: str, *events: AuditEvent) -> None:
        def w(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                       "DO UPDATE SET value = excluded.value", (key, value))
        await self._run(self._tx, w, events)

    # -- messages -----------------------------------------------------------------------

    async def record_outgoing(self, msg: StoredMessage, envelope: bytes, event: AuditEvent, *,
                              changes: Sequence[LifecycleChange] = ()) -> None:
        """Store an outgoing message, its outbox entry and the lifecycle steps it takes,
        in one transaction. Messages of one request leave in the order they were stored."""
        request = next((c.request.request_id.raw for c in changes if c.link == msg.envelope_id),
                       b"")
        applied: list[AuditEvent] = []

        def w(db: sqlite3.Connection) -> None:
            self._insert_message(db, msg)
            seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox WHERE "
                                 "request_id = ?", (request,)).fetchone()[0]) if request else 0
            db.execute(
                "INSERT INTO outbox (envelope_id, recipient, envelope, state, attempts, "
                "next_attempt_ms, expires_at_ms, request_id, seq) "
                "VALUES (?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
                (msg.envelope_id.raw, msg.peer, envelope, msg.stored_at_ms, msg.expires_at_ms,
                 request, seq))
            applied.extend(self._apply(db, changes))
        await self._run(self._tx, w, [event], applied)

    async def record_incoming(self, msg: StoredMessage, receipt: bytes, receipt_status: str,
                              event: AuditEvent, duplicate: AuditEvent, *,
                              changes: Sequence[LifecycleChange] = ()) -> bytes | None:
        applied: list[AuditEvent] = []
        """Store an accepted incoming message with the receipt we issued for it.

        If a concurrent delivery of the same envelope committed first, nothing is stored,
        `duplicate` is audited and that delivery's receipt is returned. The same id with
        other content raises ReplayDetected.
        """
        def existing(db: sqlite3.Connection) -> bytes | None:
            row = db.execute(
                "SELECT m.peer, m.header_sha256, r.receipt FROM messages m JOIN receipts r "
                "ON r.direction = m.direction AND r.envelope_id = m.envelope_id "
                "WHERE m.direction = 'in' AND m.envelope_id = ?",
                (msg.envelope_id.raw,)).fetchone()
            if row is None:
                return None
            if str(row[0]) != msg.peer or bytes(row[1]) != msg.header_sha256:
                raise ReplayDetected("envelope id already stored with other content")
            return bytes(row[2])

        def w(db: sqlite3.Connection) -> None:
            self._insert_message(db, msg)
            db.execute("INSERT INTO receipts (direction, envelope_id, receipt, status, "
                       "received_at_ms) VALUES ('in', ?, ?, ?, ?)",
                       (msg.envelope_id.raw, receipt, receipt_status, msg.stored_at_ms))
            applied.extend(self._apply(db, changes))

        def run() -> bytes | None:
            # The store thread serialises transactions, so check-then-insert is atomic.
            found = existing(self.db)
            if found is not None:
                self._tx(lambda db: None, [duplicate])
                return found
            self._tx(w, [event], applied)
            return None

        return await self._run(run)

    @staticmethod
    def _insert_message(db: sqlite3.Connection, m: StoredMessage) -> None:
        db.execute(
            "INSERT INTO messages (direction, envelope_id, peer, message_type, template_id, "
            "template_version, created_at_ms, expires_at_ms, header, signature, header_sha256, "
            "payload, status, stored_at_ms, legal_basis, obligations, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (m.direction, m.envelope_id.raw, m.peer, m.message_type, m.template_id,
             m.template_version, m.created_at_ms, m.expires_at_ms, m.header, m.signature,
             m.header_sha256, m.payload, m.status, m.stored_at_ms, m.legal_basis,
             m.obligations, m.body))
        NodeStore._insert_attachments(db, m.direction, m.envelope_id, m.attachments)

    @staticmethod
    def _insert_attachments(db: sqlite3.Connection, direction: str, envelope_id: MessageId,
                            attachments: Sequence[StoredAttachment]) -> None:
        for a in attachments:
            db.execute(
                "INSERT INTO attachments (direction, envelope_id, idx, size, sha256, chunk_size,"
                " media_type, filename, wrapped_key, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (direction, envelope_id.raw, a.index, a.size, a.sha256, a.chunk_size,
                 a.media_type, a.filename, a.wrapped_key, a.path))

    async def find_incoming(self, envelope_id: MessageId) -> tuple[str, bytes, bytes] | None:
        """(peer, header_sha256, receipt) of a stored incoming envelope, if any."""
        def q() -> tuple[str, bytes, bytes] | None:
            row = self.db.execute(
                "SELECT m.peer, m.header_sha256, r.receipt FROM messages m JOIN receipts r "
                "ON r.direction = m.direction AND r.envelope_id = m.envelope_id "
                "WHERE m.direction = 'in' AND m.envelope_id = ?", (envelope_id.raw,)).fetchone()
            return None if row is None else (str(row[0]), bytes(row[1]), bytes(row[2]))
        return await self._run(q)

    async def get_message(self, envelope_id: MessageId) -> StoredMessage:
        """The message with this id (incoming first, then outgoing)."""
        def q() -> StoredMessage:
            # `direction IN (...)` lets SQLite search the primary key (direction,
            # envelope_id) twice; on envelope_id alone it scanned the whole table.
            row = self.db.execute(
                "SELECT * FROM messages WHERE direction IN ('in', 'out') AND envelope_id = ? "
                "ORDER BY direction = 'out' LIMIT 1", (envelope_id.raw,)).fetchone()
            if row is None:
                raise NotFound(f"no message {envelope_id}")
            return _message(row, self._attachments(str(row[0]), envelope_id.raw))
        return await self._run(q)

    def _attachments(self, direction: str, envelope_id: bytes) -> tuple[StoredAttachment, ...]:
        return tuple(StoredAttachment(
            int(a[0]), int(a[1]), bytes(a[2]), int(a[3]), str(a[4]), bytes(a[5]),
            bytes(a[6]), str(a[7])) for a in self.db.execute(
                "SELECT idx, size, sha256, chunk_size, media_type, filename, wrapped_key, path "
                "FROM attachments WHERE direction = ? AND envelope_id = ? ORDER BY idx",
                (direction, envelope_id)))

    async def list_messages(self, direction: str | None, limit: int) -> list[StoredMessage]:
        def q() -> list[StoredMessage]:
            sql = "SELECT * FROM messages"
            args: tuple[Any, ...] = ()
            if direction:
                sql += " WHERE direction = ?"
                args = (direction,)
            sql += " ORDER BY stored_at_ms DESC, envelope_id LIMIT ?"
            return [_message(r, ()) for r in self.db.execute(sql, (*args, limit)).fetchall()]
        return await self._run(q)

    async def attachment_counts(self, ids: Sequence[tuple[str, bytes]]) -> dict[bytes, int]:
        def q() -> dict[bytes, int]:
            out: dict[bytes, int] = {}
            for direction, eid in ids:
                row = self.db.execute("SELECT COUNT(*) FROM attachments WHERE direction = ? "
                                      "AND envelope_id = ?", (direction, eid)).fetchone()
                out[eid] = int(row[0])
            return out
        return await self._run(q)

    async def get_receipt(self, envelope_id: MessageId) -> tuple[str, bytes, str, int]:
        """(direction, receipt bytes, status, received_at_ms) for a message."""
        def q() -> tuple[str, bytes, str, int]:
            row = self.db.execute(
                "SELECT direction, receipt, status, received_at_ms FROM receipts WHERE "
                "direction IN ('in', 'out') AND envelope_id = ? "  # primary key, no scan
                "ORDER BY direction = 'out' DESC LIMIT 1",
                (envelope_id.raw,)).fetchone()
            if row is None:
                raise NotFound(f"no receipt for {envelope_id}")
            return str(row[0]), bytes(row[1]), str(row[2]), int(row[3])
        return await self._run(q)

    # -- outbox -------------------------------------------------------------------------

    async def due_outbox(self, now_ms: int, limit: int, exclude: Sequence[bytes] = (), *,
                         per_peer: int | None = None,
                         busy: Mapping[str, int] | None = None) -> DueOutbox:
        """Up to `limit` pending deliveries due at `now_ms`, each with what an attempt
        needs of its message, and the earliest `next_attempt_ms` after `now_ms` of the
        pending ones: one trip to the store thread per delivery round.

        Skips the entries in `exclude` (in flight) and, with `per_peer`, entries beyond
        `per_peer - busy[recipient]` per recipient; only the chosen ones are read in full.
        """
        def q() -> DueOutbox:
            db = self.db
            rows = db.execute(
                "SELECT envelope_id, recipient FROM outbox o "
                "WHERE state = 'pending' AND next_attempt_ms <= ? AND (request_id = x'' OR "
                "NOT EXISTS (SELECT 1 FROM outbox p WHERE p.request_id = o.request_id AND "
                "p.state = 'pending' AND p.seq < o.seq)) ORDER BY next_attempt_ms "
                "LIMIT ?", (now_ms, limit + len(exclude))).fetchall()
            skip = set(exclude)
            room = dict(busy or {})
            chosen: list[bytes] = []
            for eid, recipient in rows:
                if len(chosen) == limit:
                    break
                if bytes(eid) in skip:
                    continue
                if per_peer is not None:
                    if room.get(recipient, 0) >= per_peer:
                        continue
                    room[recipient] = room.get(recipient, 0) + 1
                chosen.append(bytes(eid))
            later = db.execute("SELECT MIN(next_attempt_ms) FROM outbox WHERE state = "
                               "'pending' AND next_attempt_ms > ?", (now_ms,)).fetchone()
            return DueOutbox(tuple(self._outbox_item(eid) for eid in chosen),
                             None if later[0] is None else int(later[0]))
        return await self._run(q)

    def _outbox_item(self, envelope_id: bytes) -> OutboxItem:
        # Both rows commit together (record_outgoing); LEFT JOIN all the same, so that a
        # missing message fails its own attempts (receipt check) instead of this read.
        r = self.db.execute(
            "SELECT o.recipient, o.envelope, o.attempts, o.expires_at_ms, "
            "COALESCE(m.message_type, ''), COALESCE(m.template_id, ''), "
            "COALESCE(m.template_version, ''), COALESCE(m.header_sha256, x'') "
            "FROM outbox o LEFT JOIN messages m "
            "ON m.direction = 'out' AND m.envelope_id = o.envelope_id "
            "WHERE o.envelope_id = ?", (envelope_id,)).fetchone()
        return OutboxItem(MessageId(envelope_id), str(r[0]), bytes(r[1]), int(r[2]), int(r[3]),
                          message_type=str(r[4]), template_id=str(r[5]),
                          template_version=str(r[6]), header_sha256=bytes(r[7]),
                          attachments=self._attachments("out", envelope_id))

    async def mark_delivered(self, envelope_id: MessageId, receipt: bytes, status: str,
                             received_at_ms: int, event: AuditEvent, *,
                             changes: Sequence[LifecycleChange] = ()) -> None:
        applied: list[AuditEvent] = []

        def w(db: sqlite3.Connection) -> None:
            applied.extend(self._apply(db, changes))
            db.execute("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, "
                       "last_error = '' WHERE envelope_id = ?", (envelope_id.raw,))
            db.execute("UPDATE messages SET status = 'delivered' WHERE direction = 'out' AND "
                       "envelope_id = ?", (envelope_id.raw,))
            db.execute("INSERT OR REPLACE INTO receipts (direction, envelope_id, receipt, "
                       "status, received_at_ms) VALUES ('out', ?, ?, ?, ?)",
                       (envelope_id.raw, receipt, status, received_at_ms))
        await self._run(self._tx, w, [event], applied)

    async def mark_retry(self, envelope_id: MessageId, next_attempt_ms: int, error: str,
                         event: AuditEvent) -> None:
        def w(db: sqlite3.Connection) -> None:
            db.execute("UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?, "
                       "last_error = ? WHERE envelope_id = ?",
                       (next_attempt_ms, error, envelope_id.raw))
        await self._run(self._tx, w, [event])

    async def mark_failed(self, envelope_id: MessageId, state: str, error: str,
                          event: AuditEvent) -> None:
        """End delivery for good: 'refused' by the peer or 'expired' (dead letter)."""
        def w(db: sqlite3.Connection) -> None:
            db.execute("UPDATE outbox SET state = ?, attempts = attempts + 1, last_error = ? "
                       "WHERE envelope_id = ?", (state, error, envelope_id.raw))
            db.execute("UPDATE messages SET status = ? WHERE direction = 'out' AND "
                       "envelope_id = ?", (state, envelope_id.raw))
        await self._run(self._tx, w, [event])

    async def outbox_state(self, envelope_id: MessageId) -> tuple[str, int, str] | None:
        def q() -> tuple[str, int, str] | None:
            row = self.db.execute("SELECT state, attempts, last_error FROM outbox WHERE "
                                  "envelope_id = ?", (envelope_id.raw,)).fetchone()
            return None if row is None else (str(row[0]), int(row[1]), str(row[2]))
        return await self._run(q)

    # -- cases and requests -------------------------------------------------------------

    def _apply(self, db: sqlite3.Connection,
               changes: Sequence[LifecycleChange]) -> list[AuditEvent]:
        """Apply lifecycle changes inside the caller's transaction; their audit events."""
        events: list[AuditEvent] = []
        for c in changes:
            r = c.request
            rid = r.request_id.raw
            row = db.execute("SELECT state FROM requests WHERE request_id = ?",
                             (rid,)).fetchone()
            current = None if row is None else str(row[0])
            if current != c.expected_state:
                if c.optional:
                    continue
                raise RequestConflict(
                    f"request {r.request_id} is {current or 'unknown'}, not "
                    f"{c.expected_state or 'new'}: it moved on concurrently")
            if c.case is not None:
                db.execute("INSERT INTO cases (case_id, reference, opened_at_ms) VALUES "
                           "(?, ?, ?)", (c.case.case_id, c.case.reference, c.case.opened_at_ms))
            db.execute(
                "INSERT INTO requests (request_id, case_id, side, kind, state, peer, "
                "message_type, template_id, template_version, header_sha256, opened_at_ms, "
                "updated_at_ms, peer_reference, drafter, approver) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (request_id) DO UPDATE SET state = excluded.state, "
                "header_sha256 = excluded.header_sha256, updated_at_ms = excluded.updated_at_ms,"
                " peer_reference = excluded.peer_reference, drafter = excluded.drafter, "
                "approver = excluded.approver",
                (rid, r.case_id, r.side, r.kind, r.state, r.peer, r.message_type, r.template_id,
                 r.template_version, r.header_sha256, r.opened_at_ms, r.updated_at_ms,
                 r.peer_reference, r.drafter, r.approver))
            if c.link is not None:
                db.execute("INSERT OR IGNORE INTO request_messages (envelope_id, request_id) "
                           "VALUES (?, ?)", (c.link.raw, rid))
            for st in c.steps:
                db.execute(
                    "INSERT INTO request_steps (request_id, seq, at_ms, event, source, target, "
                    "actor, envelope_id) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM "
                    "request_steps WHERE request_id = ?), ?, ?, ?, ?, ?, ?)",
                    (rid, rid, st.at_ms, st.event, st.source, st.target, st.actor,
                     st.envelope_id.raw if st.envelope_id else None))
            if c.stop_all:
                db.execute("UPDATE deadlines SET status = 'stopped' WHERE request_id = ? AND "
                           "status IN ('pending', 'running', 'approaching')", (rid,))
            for name in c.stop:
                db.execute("UPDATE deadlines SET status = CASE status WHEN 'passed' THEN "
                           "'met_late' ELSE 'met' END WHERE request_id = ? AND name = ? AND "
                           "status IN ('running', 'approaching', 'passed')", (rid, name))
            for d in c.start:
                db.execute(
                    "INSERT OR REPLACE INTO deadlines (request_id, name, kind, basis, "
                    "verification, value, starts, extends, met_by, started_at_ms, due_at_ms, "
                    "approaching_at_ms, status, raised) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (rid, d.name, d.kind, d.basis, d.verification, d.value, d.starts,
                     d.extends, d.met_by, d.started_at_ms, d.due_at_ms, d.approaching_at_ms,
                     d.status, d.raised))
            if c.draft is not None:
                db.execute("INSERT INTO drafts (request_id, draft) VALUES (?, ?)",
                           (rid, c.draft))
                self._insert_attachments(db, "out", r.request_id, c.draft_attachments)
            if c.drop_draft:
                db.execute("DELETE FROM drafts WHERE request_id = ?", (rid,))
                # A draft withdrawn unsent: its attachments belong to no message.
                db.execute("DELETE FROM attachments WHERE direction = 'out' AND "
                           "envelope_id = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE "
                           "direction = 'out' AND envelope_id = ?)", (rid, rid))
            events.extend(c.events)
        return events

    async def apply_changes(self, changes: Sequence[LifecycleChange],
                            *events: AuditEvent) -> None:
        """Lifecycle steps that change nothing else (approve, begin execution, expire...)."""
        applied: list[AuditEvent] = []

        def w(db: sqlite3.Connection) -> None:
            applied.extend(self._apply(db, changes))
        await self._run(self._tx, w, events, applied)

    async def get_request(self, request_id: MessageId) -> RequestRecord:
        def q() -> RequestRecord:
            row = self.db.execute(f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE "  # noqa: S608
                                  "request_id = ?", (request_id.raw,)).fetchone()
            if row is None:
                raise NotFound(f"no request {request_id}")
            return _request(row)
        return await self._run(q)

    async def request_of_message(self, envelope_id: MessageId) -> RequestRecord | None:
        """The request a message belongs to (a request is its own first message)."""
        return await self._run(self._request_of_message, envelope_id)

    async def request_with_deadlines(
            self, envelope_id: MessageId) -> tuple[RequestRecord, list[DeadlineRecord]] | None:
        """`request_of_message` and that request's deadlines, read in one trip to the
        store thread (planning a lifecycle step needs both)."""
        def q() -> tuple[RequestRecord, list[DeadlineRecord]] | None:
            request = self._request_of_message(envelope_id)
            if request is None:
                return None
            return request, self._request_deadlines(request.request_id)
        return await self._run(q)

    def _request_of_message(self, envelope_id: MessageId) -> RequestRecord | None:
        row = self.db.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE request_id = (SELECT "  # noqa: S608
            "request_id FROM request_messages WHERE envelope_id = ?) OR request_id = ? "
            "LIMIT 1", (envelope_id.raw, envelope_id.raw)).fetchone()
        return None if row is None else _request(row)

    def _request_deadlines(self, request_id: MessageId) -> list[DeadlineRecord]:
        return [_deadline(r) for r in self.db.execute(
            f"SELECT {_DEADLINE_COLUMNS} FROM deadlines WHERE request_id = ? "  # noqa: S608
            "ORDER BY due_at_ms", (request_id.raw,))]

    async def get_case(self, case_id: str) -> CaseRecord:
        def q() -> CaseRecord:
            row = self.db.execute("SELECT case_id, reference, opened_at_ms FROM cases WHERE "
                                  "case_id = ?", (case_id,)).fetchone()
            if row is None:
                raise NotFound(f"no case {case_id}")
            return CaseRecord(str(row[0]), bytes(row[1]), int(row[2]))
        return await self._run(q)

    async def list_cases(self, limit: int) -> list[CaseRecord]:
        def q() -> list[CaseRecord]:
            return [CaseRecord(str(r[0]), bytes(r[1]), int(r[2])) for r in self.db.execute(
                "SELECT case_id, reference, opened_at_ms FROM cases ORDER BY opened_at_ms "
                "DESC, case_id LIMIT ?", (limit,))]
        return await self._run(q)

    async def list_requests(self, case_id: str | None = None) -> list[RequestRecord]:
        def q() -> list[RequestRecord]:
            sql = f"SELECT {_REQUEST_COLUMNS} FROM requests"  # noqa: S608 - constant columns
            args: tuple[Any, ...] = ()
            if case_id is not None:
                sql += " WHERE case_id = ?"
                args = (case_id,)
            return [_request(r) for r in
                    self.db.execute(sql + " ORDER BY opened_at_ms, request_id", args)]
        return await self._run(q)

    async def request_steps(self, request_id: MessageId) -> list[StepRecord]:
        def q() -> list[StepRecord]:
            return [StepRecord(request_id, int(r[0]), str(r[1]), str(r[2]), str(r[3]),
                               str(r[4]), MessageId(bytes(r[5])) if r[5] else None)
                    for r in self.db.execute(
                        "SELECT at_ms, event, source, target, actor, envelope_id FROM "
                        "request_steps WHERE request_id = ? ORDER BY seq", (request_id.raw,))]
        return await self._run(q)

    async def request_messages(self, request_id: MessageId) -> list[MessageId]:
        def q() -> list[MessageId]:
            return [MessageId(bytes(r[0])) for r in self.db.execute(
                "SELECT envelope_id FROM request_messages WHERE request_id = ?",
                (request_id.raw,))]
        return await self._run(q)

    async def deadlines(self, request_id: MessageId | None = None, *,
                        open_before_ms: int | None = None,
                        due_before_ms: int | None = None) -> list[DeadlineRecord]:
        """A request's deadlines; or the open ones whose next event (approaching or due)
        comes before `open_before_ms`; or those not met yet (running, approaching,
        passed) that fall due before `due_before_ms`."""
        def q() -> list[DeadlineRecord]:
            if request_id is not None:
                return self._request_deadlines(request_id)
            sql = f"SELECT {_DEADLINE_COLUMNS} FROM deadlines"  # noqa: S608 - constant columns
            args: tuple[Any, ...]
            if due_before_ms is not None:
                sql += (" WHERE status IN ('running', 'approaching', 'passed') AND "
                        "due_at_ms <= ? ORDER BY due_at_ms")
                args = (due_before_ms,)
            else:
                sql += (" WHERE status IN ('running', 'approaching') AND "
                        "MIN(approaching_at_ms, due_at_ms) <= ? ORDER BY due_at_ms")
                args = (open_before_ms if open_before_ms is not None else 2**62,)
            return [_deadline(r) for r in self.db.execute(sql, args)]
        return await self._run(q)

    async def update_deadline(self, d: DeadlineRecord, changes: Sequence[LifecycleChange],
                              *events: AuditEvent) -> None:
        """Record a deadline's new status and the events it raised (and any step it causes,
        e.g. a preservation that expires), in one transaction."""
        applied: list[AuditEvent] = []

        def w(db: sqlite3.Connection) -> None:
            db.execute("UPDATE deadlines SET status = ?, raised = ? WHERE request_id = ? AND "
                       "name = ?", (d.status, d.raised, d.request_id.raw, d.name))
            applied.extend(self._apply(db, changes))
        await self._run(self._tx, w, events, applied)

    async def draft_attachments(self, request_id: MessageId) -> list[StoredAttachment]:
        """The attachments sealed with a draft (stored as the outgoing message's)."""
        def q() -> list[StoredAttachment]:
            return [StoredAttachment(int(a[0]), int(a[1]), bytes(a[2]), int(a[3]), str(a[4]),
                                     bytes(a[5]), bytes(a[6]), str(a[7])) for a in self.db.execute(
                "SELECT idx, size, sha256, chunk_size, media_type, filename, wrapped_key, path "
                "FROM attachments WHERE direction = 'out' AND envelope_id = ? ORDER BY idx",
                (request_id.raw,))]
        return await self._run(q)

    async def set_case_reference(self, case_id: str, reference: bytes,
                                 event: AuditEvent) -> None:
        def w(db: sqlite3.Connection) -> None:
            if db.execute("UPDATE cases SET reference = ? WHERE case_id = ?",
                          (reference, case_id)).rowcount != 1:
                raise NotFound(f"no case {case_id}")
        await self._run(self._tx, w, [event])

    async def get_draft(self, request_id: MessageId) -> bytes:
        def q() -> bytes:
            row = self.db.execute("SELECT draft FROM drafts WHERE request_id = ?",
                                  (request_id.raw,)).fetchone()
            if row is None:
                raise NotFound(f"no draft {request_id}")
            return bytes(row[0])
        return await self._run(q)

    # -- status -------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        def q() -> dict[str, int]:
            db = self.db
            return {
                "outbox_pending": int(db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]),
                "inbox": int(db.execute(
                    "SELECT COUNT(*) FROM messages WHERE direction = 'in'").fetchone()[0]),
                "audit": self.journal.sequence,
            }
        return await self._run(q)

    async def blob_paths(self) -> set[str]:
        def q() -> set[str]:
            return {str(r[0]) for r in self.db.execute("SELECT path FROM attachments")}
        return await self._run(q)

    # -- export -------------------------------------------------------------------------

    async def audit_leaf_hashes(self, first_seq: int, last_seq: int) -> list[bytes]:
        """The Merkle leaf hashes of records first_seq..last_seq, in order."""
        def q() -> list[bytes]:
            return [bytes(r[0]) for r in self.db.execute(
                "SELECT leaf_hash FROM audit WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (first_seq, last_seq))]
        return await self._run(q)

    async def audit_records_containing(self, needles: Sequence[bytes], first_seq: int,
                                       last_seq: int) -> list[tuple[int, bytes]]:
        """(sequence, record) of records first_seq..last_seq whose bytes contain one of
        `needles` (envelope ids, digests): a superset the caller narrows by decoding."""
        wanted = [bytes(n) for n in needles if n]

        def q() -> list[tuple[int, bytes]]:
            rows = self.db.execute("SELECT seq, record FROM audit WHERE seq BETWEEN ? AND ? "
                                   "ORDER BY seq", (first_seq, last_seq))
            return [(int(r[0]), bytes(r[1])) for r in rows
                    if any(n in bytes(r[1]) for n in wanted)]
        return await self._run(q)


class RequestConflict(StateError):
    """A lifecycle step raced another on the same request; try again (re-plan)."""

    code = "REQUEST_CONFLICT"
    retriable = True


_REQUEST_COLUMNS = ("request_id, case_id, side, kind, state, peer, message_type, template_id, "
                    "template_version, header_sha256, opened_at_ms, updated_at_ms, "
                    "peer_reference, drafter, approver")
_DEADLINE_COLUMNS = ("request_id, name, kind, basis, verification, started_at_ms, due_at_ms, "
                     "approaching_at_ms, status, raised, value, starts, extends, met_by")


def _request(r: Sequence[Any]) -> RequestRecord:
    return RequestRecord(MessageId(bytes(r[0])), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                         str(r[5]), str(r[6]), str(r[7]), str(r[8]), bytes(r[9]), int(r[10]),
                         int(r[11]), bytes(r[12]), str(r[13]), str(r[14]))


def _deadline(r: Sequence[Any]) -> DeadlineRecord:
    return DeadlineRecord(MessageId(bytes(r[0])), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                          int(r[5]), int(r[6]), int(r[7]), str(r[8]), str(r[9]), str(r[10]),
                          str(r[11]), str(r[12]), str(r[13]))


def _message(row: Sequence[Any], attachments: tuple[StoredAttachment, ...]) -> StoredMessage:
    return StoredMessage(
        direction=str(row[0]), envelope_id=MessageId(bytes(row[1])), peer=str(row[2]),
        message_type=str(row[3]), template_id=str(row[4]), template_version=str(row[5]),
        created_at_ms=int(row[6]), expires_at_ms=int(row[7]), header=bytes(row[8]),
        signature=bytes(row[9]), header_sha256=bytes(row[10]), payload=bytes(row[11]),
        status=str(row[12]), stored_at_ms=int(row[13]), attachments=attachments,
        legal_basis=str(row[14]), obligations=str(row[15]), body=bytes(row[16]))
