"""Group commit on the real SQLite store: transactions that queue up while the store
thread is busy share one COMMIT, yet each one still succeeds or fails on its own, and
nobody hears of success before the COMMIT that made it durable returned."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.adapters.sqlite import NodeStore
from broker.audit import AuditEvent, EventType
from broker.crypto import SigningKey
from broker.model import MessageId

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
NOW = 1_800_000_000_000


def _open(path: Path) -> NodeStore:
    return NodeStore(path, node_id="DE-BFJ", clock=lambda: NOW)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[NodeStore]:
    s = _open(tmp_path / "node.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def _event() -> AuditEvent:
    return AuditEvent(EventType.ENVELOPE_SENT, actor="node:DE-BFJ",
                      envelope_id=MessageId.new(), peer="US-OIA")


async def _busy(store: NodeStore, seconds: float) -> asyncio.Future[None]:
    """Occupy the store thread so that the next calls queue up behind it."""
    busy = store._worker.submit(time.sleep, seconds)
    await asyncio.sleep(0.02)
    return busy


class _Commits:
    def __init__(self, store: NodeStore) -> None:
        self.count = 0
        store.db.set_trace_callback(self._seen)

    def _seen(self, statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            self.count += 1


async def _sequences(store: NodeStore) -> list[int]:
    return [seq for seq, _ in await store.audit_entries(0, 1000)]


async def test_queued_transactions_share_one_commit(store: NodeStore) -> None:
    commits = _Commits(store)
    busy = await _busy(store, 0.2)
    await asyncio.gather(busy, *(store.audit(_event()) for _ in range(20)))
    assert await _sequences(store) == list(range(1, 21))
    assert 1 <= commits.count < 20


async def test_a_lone_transaction_commits_at_once(store: NodeStore) -> None:
    commits = _Commits(store)
    await store.audit(_event())
    assert commits.count == 1
    assert await _sequences(store) == [1]


async def test_a_failing_call_rolls_back_alone(store: NodeStore, tmp_path: Path) -> None:
    def fails(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO meta (key, value) VALUES ('half-done', 'x')")
        raise ValueError("refused half-way")

    busy = await _busy(store, 0.2)
    outcome = await asyncio.gather(
        busy, store.audit(_event()), store._run(store._tx, fails, [_event()]),
        store.audit(_event()), return_exceptions=True)
    assert outcome[1] is None and outcome[3] is None
    assert isinstance(outcome[2], ValueError)
    assert await store.get_meta("half-done") is None
    assert await _sequences(store) == [1, 2]
    assert store.audit_sequence == 2
    await store.close()
    again = _open(tmp_path / "node.db")
    await again.open()
    try:
        assert again.audit_sequence == 2
        await again.audit(_event())
        assert await _sequences(again) == [1, 2, 3]
    finally:
        await again.close()


async def test_a_failing_first_call_leaves_the_rest_of_the_batch(store: NodeStore) -> None:
    def fails(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO meta (key, value) VALUES ('half-done', 'x')")
        raise ValueError("refused half-way")

    busy = await _busy(store, 0.2)
    outcome = await asyncio.gather(
        busy, store._run(store._tx, fails, [_event()]), store.audit(_event()),
        store.audit(_event()), return_exceptions=True)
    assert isinstance(outcome[1], ValueError)
    assert outcome[2] is None and outcome[3] is None
    assert await store.get_meta("half-done") is None
    assert await _sequences(store) == [1, 2]


async def test_a_failed_commit_fails_every_call_of_the_batch(store: NodeStore) -> None:
    def tables(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) "
                   "DEFERRABLE INITIALLY DEFERRED)")

    def orphan(db: sqlite3.Connection) -> None:
        # A deferred foreign key: accepted now, refused by the COMMIT.
        db.execute("INSERT INTO child (parent_id) VALUES (42)")

    await store._run(lambda: tables(store.db))
    await store.audit(_event())
    busy = await _busy(store, 0.2)
    outcome = await asyncio.gather(
        busy, store.audit(_event()), store._run(store._tx, orphan, [_event()]),
        store.audit(_event()), return_exceptions=True)
    assert outcome[0] is None
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcome[1:])
    assert await _sequences(store) == [1]
    assert store.audit_sequence == 1
    await store.audit(_event())
    assert await _sequences(store) == [1, 2]


async def test_reads_queued_behind_a_batch_see_it_committed(store: NodeStore,
                                                            tmp_path: Path) -> None:
    busy = await _busy(store, 0.2)
    write = asyncio.create_task(store.set_meta("k", "v", _event()))
    read = asyncio.create_task(store.get_meta("k"))
    await asyncio.gather(busy, write)
    assert await read == "v"
    other = sqlite3.connect(tmp_path / "node.db")
    try:
        assert other.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v",)
    finally:
        other.close()


async def test_other_threads_see_only_committed_journal_state(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "signed.db", node_id="DE-BFJ", clock=lambda: NOW,
                      signer=SigningKey.generate())
    await store.open()
    try:
        await _committed_state_only(store)
    finally:
        await store.close()


async def _committed_state_only(store: NodeStore) -> None:
    await store.audit(_event())
    await store.checkpoint()
    committed = (store.audit_sequence, store.latest_checkpoint())
    busy = await _busy(store, 0.1)
    write = asyncio.create_task(store._run(functools.partial(
        store._tx, lambda db: None, [_event()], checkpoint=True)))
    held = asyncio.create_task(store._run(time.sleep, 0.4))  # keeps the batch open
    await busy
    await asyncio.sleep(0.15)
    assert not write.done()
    assert store.journal.sequence > committed[0]          # the batch has appended ...
    assert (store.audit_sequence, store.latest_checkpoint()) == committed  # ... unseen
    await asyncio.gather(write, held)
    assert store.audit_sequence == store.journal.sequence > committed[0]
    assert store.latest_checkpoint() != committed[1]
