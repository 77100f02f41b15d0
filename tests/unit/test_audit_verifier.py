"""The auditor's verifier in isolation: a clean two-node log verifies, the duplicate window
keeps its bounds across pruning, receipts' tree heads are verified per exact bytes, and
the pieces it is built on (strict essentials, compact range, store interleaving) hold.

Logs are written by the real journal with signed checkpoints; the trust list is built
and signed here. Nothing touches the network or the clock.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import transparency
from broker.adapters.sqlite.audit_source import read_store, read_stores
from broker.audit import AuditEvent, EventType
from broker.audit import verifier as verifier_module
from broker.audit.journal import Journal
from broker.audit.verifier import DUPLICATE_WINDOW, AuditVerifier, Finding
from broker.crypto import KemPrivateKey, SigningKey
from broker.errors import ConfigError, MalformedMessage
from broker.model import MessageId
from broker.transparency import CompactRange, hash_leaf, root_from_leaf_hashes
from broker.trust import AdminSet, TrustList, load_trust_list, now_iso, sign_trust_list
from broker.wire import codec
from broker.wire.gen.rogatory.v1 import audit_pb2

pytestmark = pytest.mark.unit

T0 = 1_750_000_000_000
DAY = 24 * 3_600_000
ADMIN = SigningKey.generate()
SIGNERS = {"DE-BFJ": SigningKey.generate(), "NL-24X7": SigningKey.generate()}


def _trust() -> TrustList:
    nodes = [{"node_id": n, "jurisdiction": n[:2], "roles": ["central_authority"],
              "endpoint": "127.0.0.1:7001",
              "signing_keys": [{"public": k.verify_key.b64()}],
              "kem_keys": [{"public": KemPrivateKey.generate().public.b64()}]}
             for n, k in SIGNERS.items()]
    doc = {"federation": "test", "version": 1, "issued_at": now_iso(T0),
           "expires_at": now_iso(T0 + 90 * DAY),
           "admins": {"threshold": 1, "keys": [ADMIN.verify_key.b64()]},
           "revoked_cert_serials": [], "nodes": nodes}
    return load_trust_list(sign_trust_list(doc, [ADMIN]),
                           trusted_admins=AdminSet(1, {ADMIN.key_id: ADMIN.verify_key}),
                           now_ms=T0)


TRUST = _trust()


def _exchange_log(exchanges: int, *, every: int = 8) -> tuple[list[tuple[str, bytes]],
                                                              dict[str, Journal]]:
    """DE-BFJ sends to NL-24X7; each delivery carries NL-24X7's latest checkpoint."""
    journals = {n: Journal(n, k, checkpoint_every=every) for n, k in SIGNERS.items()}
    out: list[tuple[str, bytes]] = []

    def put(node: str, event: AuditEvent, t: int) -> None:
        j = journals[node]
        out.append((node, j.append(event, t).record))
        if j.due():
            out.append((node, j.checkpoint(t).record))

    for i in range(exchanges):
        h = hashlib.sha256(i.to_bytes(4, "big")).digest()
        common: dict[str, Any] = {"envelope_id": MessageId.new(), "header_sha256": h}
        t = T0 + 10 * i
        put("DE-BFJ", AuditEvent(EventType.ENVELOPE_SENT, actor="person:a", peer="NL-24X7",
                                 **common), t)
        put("NL-24X7", AuditEvent(EventType.ENVELOPE_RECEIVED, actor="node:NL-24X7",
                                  peer="DE-BFJ", **common), t + 1)
        put("DE-BFJ", AuditEvent(EventType.ENVELOPE_DELIVERED, actor="node:DE-BFJ",
                                 peer="NL-24X7", peer_tree_head=journals["NL-24X7"]
                                 .last_checkpoint, **common), t + 2)
    return out, journals


def _verify(records: list[tuple[str, bytes]], verifier: AuditVerifier | None = None
            ) -> tuple[list[Finding], AuditVerifier]:
    v = verifier or AuditVerifier(TRUST)
    for i, (node, data) in enumerate(records):
        v.feed(f"test#{i}", data, key=node)
    return v.finish(), v


def _chain(n: int, node: str = "DE-BFJ") -> list[bytes]:
    """n records of one node, no checkpoints."""
    j = Journal(node, None)
    return [j.append(AuditEvent(EventType.MESSAGE_CONSULTED, actor="person:a"), T0 + i).record
            for i in range(n)]


# -- a clean log -----------------------------------------------------------------------

def test_clean_two_node_log_verifies() -> None:
    records, journals = _exchange_log(60)
    findings, v = _verify(records)
    assert findings == []
    assert v.records == len(records)
    assert v.duplicates == 0
    for node, j in journals.items():
        assert v.nodes[node].records == j.sequence
        assert v.nodes[node].tree.root() == j.tree.root()
        head = v.verified_heads()[node]
        assert head.tree_size == j.checkpointed_size
    assert list(v.pending()) == []


def test_receipt_tree_head_is_verified_once_per_exact_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Receipts repeat the peer's checkpoint: the same bytes are verified once, and a
    forged copy is still refused every time it appears."""
    calls: list[int] = []
    real = transparency.verify_checkpoint

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(verifier_module, "verify_checkpoint", counting)
    records, journals = _exchange_log(40)
    findings, _ = _verify(records)
    assert findings == []
    distinct = {codec.decode_audit_essentials(d).checkpoint for _, d in records} - {b""}
    receipts = {codec.decode_audit_essentials(d).peer_tree_head for _, d in records} - {b""}
    assert len(receipts) > 2 and receipts <= distinct
    assert len(calls) == len(distinct)

    forged = bytearray(journals["NL-24X7"].last_checkpoint)
    forged[-1] ^= 1
    j = journals["DE-BFJ"]
    extra = [("DE-BFJ", j.append(AuditEvent(
        EventType.ENVELOPE_DELIVERED, actor="node:DE-BFJ", peer="NL-24X7",
        envelope_id=MessageId.new(), peer_tree_head=bytes(forged)), T0 + 10**6).record)
        for _ in range(3)]
    findings, _ = _verify(records + extra)
    codes = [f.code for f in findings]
    assert codes.count("RECEIPT_TREE_HEAD_INVALID") == 3


# -- the duplicate window ----------------------------------------------------------------

def _fed_past_a_prune() -> tuple[list[bytes], AuditVerifier]:
    chain = _chain(2 * DUPLICATE_WINDOW + 5)
    findings, v = _verify([("DE-BFJ", d) for d in chain])
    assert findings == []
    return chain, v


def test_replayed_record_inside_the_window_is_a_harmless_duplicate() -> None:
    chain, v = _fed_past_a_prune()
    for seq in (2 * DUPLICATE_WINDOW + 5, 2 * DUPLICATE_WINDOW, DUPLICATE_WINDOW + 1):
        v.feed("replay", chain[seq - 1], key="DE-BFJ")
    assert v.finish() == []
    assert v.duplicates == 3


def test_other_record_under_a_seen_sequence_inside_the_window_conflicts() -> None:
    chain, v = _fed_past_a_prune()
    other = _with(chain[DUPLICATE_WINDOW], time_ms=1).SerializeToString(deterministic=True)
    v.feed("forged", other, key="DE-BFJ")   # sequence DUPLICATE_WINDOW + 1, other bytes
    assert [f.code for f in v.finish()] == ["CONFLICTING_RECORD"]


def test_replay_from_before_the_pruned_window_is_out_of_order() -> None:
    """The window was pruned at 2 * DUPLICATE_WINDOW records down to the last
    DUPLICATE_WINDOW sequences: older ones can no longer be told apart."""
    chain, v = _fed_past_a_prune()
    v.feed("old", chain[DUPLICATE_WINDOW - 1], key="DE-BFJ")
    v.feed("older", chain[0], key="DE-BFJ")
    findings = v.finish()
    assert [(f.code, f.sequence) for f in findings] == [
        ("OUT_OF_ORDER", DUPLICATE_WINDOW), ("OUT_OF_ORDER", 1)]
    assert v.duplicates == 0


def test_gap_then_replay_across_the_gap() -> None:
    chain = _chain(40)
    findings, v = _verify([("DE-BFJ", d) for d in chain[:10] + chain[20:]])
    assert [f.code for f in findings] == ["MISSING_RECORDS"]
    v.feed("late", chain[14], key="DE-BFJ")     # inside the gap: never seen
    v.feed("again", chain[25], key="DE-BFJ")    # seen after the gap
    assert [f.code for f in v.finish()][1:] == ["OUT_OF_ORDER"]
    assert v.duplicates == 1


# -- the strict essentials parse ------------------------------------------------------------

def _with(data: bytes, **changes: Any) -> audit_pb2.AuditRecord:
    m = audit_pb2.AuditRecord.FromString(data)
    for name, value in changes.items():
        setattr(m, name, value)
    return m


def test_essentials_match_the_full_decode() -> None:
    records, _ = _exchange_log(20)
    for _, data in records:
        e, r = codec.decode_audit_essentials(data), codec.decode_audit(data)
        assert e == (r.node_id, r.sequence, r.prev_hash, r.event_type, r.envelope_id, r.peer,
                     r.header_sha256, r.checkpoint, r.peer_tree_head)
    assert any(codec.decode_audit_essentials(d).checkpoint for _, d in records)


@pytest.mark.parametrize("forge", [
    pytest.param(lambda d: d + bytes([0xA0, 0x06, 0x01]), id="unknown-field-appended"),
    pytest.param(lambda d: d + bytes([0x10, 0x07]), id="sequence-repeated"),
    pytest.param(lambda d: bytes([0x10, 0x07]) + d.replace(bytes([0x10, 0x07]), b"", 1),
                 id="sequence-moved-first"),
    pytest.param(lambda d: d + bytes([0x18, 0x00]), id="default-time-encoded"),
    pytest.param(lambda d: d[:-1], id="truncated"),
])
def test_essentials_refuse_what_the_full_decode_refuses(forge: Any) -> None:
    data = _chain(7)[-1]
    assert bytes([0x10, 0x07]) in data
    forged = forge(data)
    with pytest.raises(MalformedMessage):
        codec.decode_audit(forged)
    with pytest.raises(MalformedMessage):
        codec.decode_audit_essentials(forged)


def test_essentials_refuse_a_record_with_unknown_field_in_front() -> None:
    with pytest.raises(MalformedMessage):
        codec.decode_audit_essentials(bytes([0xA0, 0x06, 0x01]) + _chain(1)[0])


# -- the compact range ---------------------------------------------------------------------

def test_compact_range_matches_the_recursive_root_for_every_size() -> None:
    leaves = [hash_leaf(os.urandom(8)) for _ in range(300)]
    cr = CompactRange()
    assert cr.root() == root_from_leaf_hashes([])
    for n, leaf in enumerate(leaves, 1):
        cr.append(leaf)
        assert (cr.size, cr.root()) == (n, root_from_leaf_hashes(leaves[:n]))


def test_compact_range_copy_is_independent() -> None:
    cr = CompactRange()
    for i in range(5):
        cr.append(hash_leaf(bytes([i])))
    snapshot, root = cr.copy(), cr.root()
    cr.append(hash_leaf(b"more"))
    assert (snapshot.size, snapshot.root()) == (5, root)
    assert cr.root() != root


# -- reading node stores -------------------------------------------------------------------

def _store(path: Path, n: int) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY, record BLOB NOT NULL, "
                   "record_hash BLOB NOT NULL, leaf_hash BLOB NOT NULL)")
        db.executemany("INSERT INTO audit VALUES (?, ?, x'', x'')",
                       [(s, f"{path.stem}-{s}".encode()) for s in range(1, n + 1)])
    db.close()
    return path


def _records(items: Iterator[tuple[str, bytes, str | None]]) -> list[str]:
    return [data.decode() for _, data, _ in items]


def test_stores_are_interleaved_in_proportion_to_their_lengths(tmp_path: Path) -> None:
    a, b = _store(tmp_path / "a.db", 2), _store(tmp_path / "b.db", 4)
    # blocks of up to 2 from the longest store, in proportion from the others
    assert _records(read_stores([a, b], block=2)) == ["a-1", "b-1", "b-2", "a-2", "b-3", "b-4"]
    assert _records(read_stores([b, a], block=2)) == ["b-1", "b-2", "a-1", "b-3", "b-4", "a-2"]
    assert _records(read_stores([a, b])) == ["a-1", "a-2", "b-1", "b-2", "b-3", "b-4"]
    positions = [p for p, _, key in read_stores([a]) if key is None]
    assert positions == [f"store:{a}#1", f"store:{a}#2"]
    assert list(read_stores([a])) == list(read_store(a))


def test_interleaving_keeps_each_stores_order_with_gaps(tmp_path: Path) -> None:
    a = _store(tmp_path / "a.db", 5)
    with sqlite3.connect(a) as db:
        db.execute("DELETE FROM audit WHERE seq = 3")
    db.close()
    b = _store(tmp_path / "b.db", 3)
    items = list(read_stores([a, b], block=1))
    assert [p.rsplit("#", 1)[1] for p, _, _ in items if p.startswith(f"store:{a}")] == [
        "1", "2", "4", "5"]
    assert _records(iter(items)) == ["a-1", "b-1", "a-2", "b-2", "a-4", "b-3", "a-5"]


def test_missing_store_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        list(read_stores([tmp_path / "none.db"]))
