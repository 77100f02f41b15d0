"""Tampering with a node's audit journal (the embedded backend): the auditor names the
exact record. Each test edits the SQLite journal directly, as an insider with file access
would, then replays it with the verifier."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.adapters.sqlite.audit_source import read_store
from broker.audit.verifier import AuditVerifier, Finding, VerifiedHead
from broker.config import AuditPolicy
from broker.crypto import SigningKey
from broker.transparency import sign_checkpoint
from broker.wire import codec
from broker.wire.gen.rogatory.v1 import audit_pb2
from tests.harness import Federation, make_federation, nodes, send, wait_delivered

pytestmark = [pytest.mark.adversarial, pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    """Two nodes exchange five requests; checkpoints every 4 records."""
    import asyncio
    fed = make_federation(tmp_path_factory.mktemp("audit") / "fed")
    for node_id, cfg in fed.configs.items():
        fed.configs[node_id] = dataclasses.replace(
            cfg, audit=AuditPolicy(checkpoint_every=4, checkpoint_interval_s=3600))

    async def exchange() -> None:
        async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
            for _ in range(5):
                mid = await send(n["DE-BFJ"], "NL-24X7")
                await wait_delivered(n["DE-BFJ"], mid)

    asyncio.run(exchange())
    return fed


def _copy(fed: Federation, tmp: Path) -> dict[str, Path]:
    out = {}
    for node_id in ("DE-BFJ", "NL-24X7"):
        dst = tmp / f"{node_id}.db"
        shutil.copy(fed.configs[node_id].data_dir / "node.db", dst)
        out[node_id] = dst
    return out


def _verify(fed: Federation, stores: dict[str, Path],
            known: dict[str, VerifiedHead] | None = None) -> tuple[list[Finding], AuditVerifier]:
    verifier = AuditVerifier(fed.trust(), known_heads=known or {})
    for path in stores.values():
        for position, data, key in read_store(path):
            verifier.feed(position, data, key=key)
    return verifier.finish(), verifier


@contextlib.contextmanager
def _db(path: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        yield db
        db.commit()


def _record(path: Path, seq: int) -> bytes:
    with _db(path) as db:
        return bytes(db.execute("SELECT record FROM audit WHERE seq = ?", (seq,)).fetchone()[0])


def _put(path: Path, seq: int, record: bytes) -> None:
    with _db(path) as db:
        db.execute("UPDATE audit SET record = ? WHERE seq = ?", (record, seq))


def _codes(findings: list[Finding], node: str) -> set[tuple[str, int]]:
    return {(f.code, f.sequence) for f in findings if f.node_id == node}


def test_untampered_log_verifies_with_checkpoints_and_reconciliation(
        logged: Federation, tmp_path: Path) -> None:
    findings, v = _verify(logged, _copy(logged, tmp_path))
    assert findings == []
    assert v.nodes["DE-BFJ"].latest_head is not None
    assert v.nodes["NL-24X7"].latest_head is not None
    assert list(v.pending()) == []


def test_modified_field_is_named(logged: Federation, tmp_path: Path) -> None:
    """Timeline: record 5 of NL-24X7 has its envelope id rewritten in place."""
    stores = _copy(logged, tmp_path)
    rec = audit_pb2.AuditRecord.FromString(_record(stores["NL-24X7"], 5))
    rec.reason = "edited"
    _put(stores["NL-24X7"], 5, rec.SerializeToString(deterministic=True))
    findings, _ = _verify(logged, stores)
    assert ("CHAIN_BROKEN", 5) in _codes(findings, "NL-24X7")


def test_deleted_record_is_named(logged: Federation, tmp_path: Path) -> None:
    stores = _copy(logged, tmp_path)
    with _db(stores["DE-BFJ"]) as db:
        db.execute("DELETE FROM audit WHERE seq = 6")
    findings, _ = _verify(logged, stores)
    assert ("MISSING_RECORDS", 6) in _codes(findings, "DE-BFJ")


def test_inserted_forged_record_is_named(logged: Federation, tmp_path: Path) -> None:
    """A forged record claims sequence 3 a second time, chained like the original."""
    stores = _copy(logged, tmp_path)
    original = audit_pb2.AuditRecord.FromString(_record(stores["DE-BFJ"], 3))
    original.event_type = "envelope.received"
    with _db(stores["DE-BFJ"]) as db:
        last = db.execute("SELECT MAX(seq) FROM audit").fetchone()[0]
        db.execute("INSERT INTO audit (seq, record, record_hash, leaf_hash) VALUES (?, ?, ?, ?)",
                   (last + 1, original.SerializeToString(deterministic=True), b"", b""))
    findings, _ = _verify(logged, stores)
    assert ("CONFLICTING_RECORD", 3) in _codes(findings, "DE-BFJ")


def test_reordered_pair_is_named(logged: Federation, tmp_path: Path) -> None:
    stores = _copy(logged, tmp_path)
    a, b = _record(stores["NL-24X7"], 7), _record(stores["NL-24X7"], 8)
    _put(stores["NL-24X7"], 7, b)
    _put(stores["NL-24X7"], 8, a)
    findings, _ = _verify(logged, stores)
    codes = _codes(findings, "NL-24X7")
    assert ("MISSING_RECORDS", 7) in codes and ("OUT_OF_ORDER", 7) in codes


def test_checkpoint_signed_by_another_nodes_key_is_named(logged: Federation,
                                                         tmp_path: Path) -> None:
    """NL-24X7's checkpoint is replaced by one over the same root signed with DE-BFJ's key."""
    stores = _copy(logged, tmp_path)
    with _db(stores["NL-24X7"]) as db:
        rows = [(s, bytes(r)) for s, r in db.execute("SELECT seq, record FROM audit")]
    seq, raw = next((s, r) for s, r in rows if codec.decode_audit(r).checkpoint)
    rec = audit_pb2.AuditRecord.FromString(raw)
    head = codec.decode_signed_tree_head(codec.decode_audit(raw).checkpoint).head
    forged = sign_checkpoint(logged.signer("DE-BFJ"), node_id="NL-24X7",
                             tree_size=head.tree_size, root_hash=head.root_hash,
                             time_ms=head.time_ms)
    rec.checkpoint.CopyFrom(audit_pb2.SignedTreeHead.FromString(
        codec.encode_signed_tree_head(forged)))
    _put(stores["NL-24X7"], seq, rec.SerializeToString(deterministic=True))
    findings, _ = _verify(logged, stores)
    assert ("CHECKPOINT_SIGNATURE", seq) in _codes(findings, "NL-24X7")
    # and an outsider's key, not in the trust list at all
    outsider = sign_checkpoint(SigningKey.generate(), node_id="NL-24X7",
                               tree_size=head.tree_size, root_hash=head.root_hash,
                               time_ms=head.time_ms)
    rec.checkpoint.CopyFrom(audit_pb2.SignedTreeHead.FromString(
        codec.encode_signed_tree_head(outsider)))
    _put(stores["NL-24X7"], seq, rec.SerializeToString(deterministic=True))
    findings, _ = _verify(logged, stores)
    assert ("CHECKPOINT_SIGNATURE", seq) in _codes(findings, "NL-24X7")


def test_truncated_tail_below_a_verified_tree_head_is_named(logged: Federation,
                                                            tmp_path: Path) -> None:
    """Timeline: the auditor verifies the log; later the tail is cut below that tree head."""
    stores = _copy(logged, tmp_path)
    _, first = _verify(logged, stores)
    known = first.verified_heads()
    size = known["DE-BFJ"].tree_size
    with _db(stores["DE-BFJ"]) as db:
        db.execute("DELETE FROM audit WHERE seq > ?", (size - 3,))
    findings, _ = _verify(logged, stores, known)
    assert ("TRUNCATED_BELOW_VERIFIED_HEAD", size - 3) in _codes(findings, "DE-BFJ")


def test_diverging_history_is_named(logged: Federation, tmp_path: Path) -> None:
    """Timeline: the auditor verifies NL-24X7's log; NL-24X7 later presents a history that
    differs inside the verified part (record 2 rewritten and the chain re-linked)."""
    stores = _copy(logged, tmp_path)
    _, first = _verify(logged, stores)
    known = first.verified_heads()
    rec = audit_pb2.AuditRecord.FromString(_record(stores["NL-24X7"], 2))
    rec.actor = "node:rewritten"
    _put(stores["NL-24X7"], 2, rec.SerializeToString(deterministic=True))
    findings, _ = _verify(logged, stores, known)
    codes = {c for c, _ in _codes(findings, "NL-24X7")}
    assert "INCONSISTENT_WITH_VERIFIED_HEAD" in codes


def test_suppressed_receive_is_reported(logged: Federation, tmp_path: Path) -> None:
    """NL-24X7's log is cut before its receives: DE-BFJ's receipted sends have no receive."""
    stores = _copy(logged, tmp_path)
    with _db(stores["NL-24X7"]) as db:
        first_receive = min(s for s, r in db.execute("SELECT seq, record FROM audit")
                            if codec.decode_audit(bytes(r)).event_type == "envelope.received")
        db.execute("DELETE FROM audit WHERE seq >= ?", (first_receive,))
    findings, _ = _verify(logged, stores)
    assert sum(f.code == "SEND_WITHOUT_RECEIVE" for f in findings) == 5
    assert any(f.code == "RECEIPT_TREE_HEAD_BEYOND_LOG" or f.code == "SPLIT_VIEW"
               for f in findings)
