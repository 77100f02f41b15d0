"""The audit log on a real Kafka broker: nodes publish their journals (idempotent
producer, acks=all, keyed by node id), the auditor replays the topic and names every
tampering by node, sequence and Kafka offset; an outage loses nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaProducer

from broker.adapters.kafka import ensure_topic, read_topic
from broker.audit.verifier import AuditVerifier, Finding, VerifiedHead
from broker.crypto import SigningKey
from broker.transparency import sign_checkpoint
from broker.wire import codec
from broker.wire.gen.rogatory.v1 import audit_pb2
from tests.harness import Federation, make_federation, nodes, send, wait_delivered, with_audit
from tests.kafka_fixture import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.timeout(240)]

Record = tuple[str, bytes, str]  # (position, value, key)


async def _topic(bootstrap: str) -> str:
    name = f"rogatory.audit.test.{uuid.uuid4().hex[:10]}"
    await ensure_topic(bootstrap, name)
    return name


async def _read(bootstrap: str, topic: str) -> list[Record]:
    return [r async for r in read_topic(bootstrap, topic)]


async def _produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes, str]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                acks="all")
    await producer.start()
    try:
        for value, key in records:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def _verify(fed: Federation, records: Sequence[Record],
            known: dict[str, VerifiedHead] | None = None
            ) -> tuple[list[Finding], AuditVerifier]:
    v = AuditVerifier(fed.trust(), known_heads=known or {})
    for position, value, key in records:
        v.feed(position, value, key=key)
    return v.finish(), v


@pytest.fixture(scope="module")
def published(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Federation, str, list[Record]]:
    """DE-BFJ and NL-24X7 exchange six requests, publishing to a fresh topic."""

    async def run() -> tuple[Federation, str, list[Record]]:
        topic = await _topic(kafka_bootstrap)
        fed = with_audit(make_federation(tmp_path_factory.mktemp("kafka") / "fed"),
                         kafka_bootstrap=kafka_bootstrap, kafka_topic=topic,
                         checkpoint_every=5, checkpoint_interval_s=3600)
        async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
            for _ in range(6):
                mid = await send(n["DE-BFJ"], "NL-24X7")
                await wait_delivered(n["DE-BFJ"], mid)
        return fed, topic, await _read(kafka_bootstrap, topic)

    return asyncio.run(run())


async def _until(condition, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def _node_records(records: Sequence[Record], node: str) -> list[Record]:
    return [r for r in records if r[2] == node]


def _replace(records: Sequence[Record], node: str, seq: int, value: bytes) -> list[Record]:
    return [(position, value if key == node and codec.decode_audit(data).sequence == seq
             else data, key) for position, data, key in records]


async def _tampered(bootstrap: str, records: Sequence[Record]) -> list[Record]:
    """Write a tampered history into a fresh topic, as an attacker with Kafka access."""
    topic = await _topic(bootstrap)
    await _produce(bootstrap, topic, [(v, k) for _, v, k in records])
    return await _read(bootstrap, topic)


def _named(findings: Sequence[Finding], code: str, node: str, seq: int) -> Finding:
    for f in findings:
        if (f.code, f.node_id, f.sequence) == (code, node, seq):
            assert f.position.startswith("kafka:")
            return f
    raise AssertionError(f"no {code} for {node} #{seq} in {findings}")


def test_journals_are_published_in_order_and_verify(published: tuple[Federation, str,
                                                                     list[Record]]) -> None:
    fed, _, records = published
    findings, v = _verify(fed, records)
    assert findings == []
    for node in ("DE-BFJ", "NL-24X7"):
        seqs = [codec.decode_audit(r[1]).sequence for r in _node_records(records, node)]
        assert seqs == list(range(1, len(seqs) + 1))
        assert v.nodes[node].latest_head is not None
    assert {r[0].rsplit("@", 1)[0] for r in records} == {f"kafka:{published[1]}/0"}


async def test_modified_field_in_kafka_is_named(published, kafka_bootstrap: str) -> None:  # type: ignore[no-untyped-def]
    fed, _, records = published
    rec = audit_pb2.AuditRecord.FromString(_node_records(records, "NL-24X7")[3][1])
    rec.peer = "US-OIA"
    forged = _replace(records, "NL-24X7", rec.sequence, rec.SerializeToString(deterministic=True))
    findings, _ = _verify(fed, await _tampered(kafka_bootstrap, forged))
    _named(findings, "CHAIN_BROKEN", "NL-24X7", rec.sequence)


async def test_deleted_record_in_kafka_is_named(published, kafka_bootstrap: str) -> None:  # type: ignore[no-untyped-def]
    fed, _, records = published
    victim = _node_records(records, "DE-BFJ")[4]
    forged = [r for r in records if r is not victim]
    findings, _ = _verify(fed, await _tampered(kafka_bootstrap, forged))
    _named(findings, "MISSING_RECORDS", "DE-BFJ", codec.decode_audit(victim[1]).sequence)


async def test_inserted_forged_record_in_kafka_is_named(published, kafka_bootstrap: str) -> None:  # type: ignore[no-untyped-def]
    fed, _, records = published
    original = _node_records(records, "DE-BFJ")[2]
    rec = audit_pb2.AuditRecord.FromString(original[1])
    rec.event_type = "envelope.refused"
    forged = list(records)
    forged.insert(records.index(original) + 1,
                  ("", rec.SerializeToString(deterministic=True), "DE-BFJ"))
    findings, _ = _verify(fed, await _tampered(kafka_bootstrap, forged))
    _named(findings, "CONFLICTING_RECORD", "DE-BFJ", rec.sequence)


async def test_reordered_pair_in_kafka_is_named(published, kafka_bootstrap: str) -> None:  # type: ignore[no-untyped-def]
    fed, _, records = published
    mine = _node_records(records, "NL-24X7")
    i, j = records.index(mine[5]), records.index(mine[6])
    forged = list(records)
    forged[i], forged[j] = forged[j], forged[i]
    findings, _ = _verify(fed, await _tampered(kafka_bootstrap, forged))
    seq = codec.decode_audit(mine[5][1]).sequence
    _named(findings, "MISSING_RECORDS", "NL-24X7", seq)
    _named(findings, "OUT_OF_ORDER", "NL-24X7", seq)


async def test_record_signed_by_another_nodes_key_is_named(published,  # type: ignore[no-untyped-def]
                                                           kafka_bootstrap: str) -> None:
    fed, _, records = published
    cp = next(r for r in _node_records(records, "NL-24X7") if codec.decode_audit(r[1]).checkpoint)
    rec = audit_pb2.AuditRecord.FromString(cp[1])
    head = codec.decode_signed_tree_head(codec.decode_audit(cp[1]).checkpoint).head
    for key in (fed.signer("DE-BFJ"), SigningKey.generate()):
        sth = sign_checkpoint(key, node_id="NL-24X7", tree_size=head.tree_size,
                              root_hash=head.root_hash, time_ms=head.time_ms)
        rec.checkpoint.CopyFrom(audit_pb2.SignedTreeHead.FromString(
            codec.encode_signed_tree_head(sth)))
        forged = _replace(records, "NL-24X7", rec.sequence,
                          rec.SerializeToString(deterministic=True))
        findings, _ = _verify(fed, await _tampered(kafka_bootstrap, forged))
        _named(findings, "CHECKPOINT_SIGNATURE", "NL-24X7", rec.sequence)


async def test_truncated_tail_below_verified_head_is_named(published,  # type: ignore[no-untyped-def]
                                                           kafka_bootstrap: str) -> None:
    fed, _, records = published
    _, first = _verify(fed, records)
    known = first.verified_heads()
    size = known["DE-BFJ"].tree_size
    forged = [r for r in records
              if r[2] != "DE-BFJ" or codec.decode_audit(r[1]).sequence <= size - 2]
    findings, _ = _verify(fed, await _tampered(kafka_bootstrap, forged), known)
    assert any(f.code == "TRUNCATED_BELOW_VERIFIED_HEAD" and f.node_id == "DE-BFJ"
               for f in findings)


async def test_two_diverging_histories_for_one_node_are_named(published,  # type: ignore[no-untyped-def]
                                                              kafka_bootstrap: str) -> None:
    """The topic holds two versions of NL-24X7's record 3 (a split history)."""
    fed, _, records = published
    rec = audit_pb2.AuditRecord.FromString(_node_records(records, "NL-24X7")[2][1])
    rec.reason = "other-history"
    forged = [*records, ("", rec.SerializeToString(deterministic=True), "NL-24X7")]
    findings, _ = _verify(fed, await _tampered(kafka_bootstrap, forged))
    _named(findings, "CONFLICTING_RECORD", "NL-24X7", rec.sequence)


async def test_duplicates_from_producer_retries_are_harmless(published,  # type: ignore[no-untyped-def]
                                                             kafka_bootstrap: str) -> None:
    fed, _, records = published
    mine = _node_records(records, "DE-BFJ")
    forged = list(records)
    forged.insert(records.index(mine[3]) + 1, mine[3])
    findings, v = _verify(fed, await _tampered(kafka_bootstrap, forged))
    assert findings == [] and v.duplicates == 1


async def test_kafka_outage_loses_nothing_and_keeps_order(kafka_broker: KafkaCluster,
                                                          tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Timeline: two nodes exchange; the broker is killed -9; 100 exchanges go on for
    about 30 s while the nodes keep serving (records wait in their journals); the broker
    comes back; the journals drain; the topic holds every record in order."""
    topic = await _topic(kafka_broker.bootstrap)
    fed = with_audit(make_federation(tmp_path / "fed"), kafka_bootstrap=kafka_broker.bootstrap,
                     kafka_topic=topic, checkpoint_every=50)
    async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
        de = n["DE-BFJ"]
        await wait_delivered(de, await send(de, "NL-24X7"))
        kafka_broker.kill(1)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            for i in range(100):
                mid = await send(de, "NL-24X7")
                await wait_delivered(de, mid)
                await asyncio.sleep(max(0.0, started + 0.3 * (i + 1) - loop.time()))
            assert all(node._publisher is not None and node._publisher.backlog > 0
                       for node in n.values())
        finally:
            await asyncio.to_thread(kafka_broker.start)
        for node in n.values():
            for _ in range(600):
                assert node._publisher is not None
                if node._publisher.backlog == 0:
                    break
                await asyncio.sleep(0.1)
            assert node._publisher.backlog == 0
        sequences = {nid: node._store.journal.sequence for nid, node in n.items()  # type: ignore[union-attr]
                     }
    records = await _read(kafka_broker.bootstrap, topic)
    findings, v = _verify(fed, records)
    assert findings == []
    for nid in ("DE-BFJ", "NL-24X7"):
        assert v.nodes[nid].next_seq - 1 >= sequences[nid]
    # retries after the outage may have written some records twice (harmless: the
    # auditor dedupes by node and sequence); every exchange is there exactly once
    received = {codec.decode_audit(r[1]).envelope_id for r in records
                if codec.decode_audit(r[1]).event_type == "envelope.received"}
    assert len(received) == 101


async def test_broker_killed_in_a_3_broker_cluster_loses_nothing_acknowledged(
        kafka_cluster: KafkaCluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Timeline: nodes publish to an RF=3 topic (min.insync.replicas=2); the partition's
    leader broker is killed -9 mid-run; exchanges go on; every record the publisher
    counted as acknowledged is in the topic afterwards, in order."""
    topic = f"rogatory.audit.rf3.{uuid.uuid4().hex[:8]}"
    await ensure_topic(kafka_cluster.bootstrap, topic, replication=3)
    fed = with_audit(make_federation(tmp_path / "fed"), kafka_bootstrap=kafka_cluster.bootstrap,
                     kafka_topic=topic, checkpoint_every=20)
    killed = 0
    try:
        async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
            de = n["DE-BFJ"]
            publishers = [node._publisher for node in n.values()]
            assert all(p is not None for p in publishers)
            for i in range(40):
                if i == 15:
                    await _until(lambda: all(p.published > 0 for p in publishers))  # type: ignore[union-attr]
                    killed = next(b for b in range(1, 4) if kafka_cluster.pid(b) is not None)
                    kafka_cluster.kill(killed)
                await wait_delivered(de, await send(de, "NL-24X7"))
            await _until(lambda: all(p.backlog == 0 for p in publishers), 90)  # type: ignore[union-attr]
            acknowledged = {nid: node._publisher.published  # type: ignore[union-attr]
                            for nid, node in n.items()}
    finally:
        if killed:
            await asyncio.to_thread(kafka_cluster.start)
    records = await _read(kafka_cluster.bootstrap, topic)
    findings, v = _verify(fed, records)
    assert findings == []
    for nid, published in acknowledged.items():
        assert published > 0
        assert v.nodes[nid].next_seq - 1 >= published


async def test_node_refuses_new_exchanges_when_the_audit_backlog_is_full(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Timeline: the audit log's Kafka is unreachable from the start; the node keeps
    serving while its journal holds the records; past `backlog_limit` unpublished
    records it refuses new exchanges (fail closed) with AUDIT_BACKLOG, stores nothing
    more, and says why. (No broker is needed: the bootstrap address answers nothing.)"""
    import socket

    from broker.errors import TransportError
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    fed = with_audit(make_federation(tmp_path / "fed"), kafka_bootstrap=dead,
                     backlog_limit=12, checkpoint_every=1000)
    async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
        de = n["DE-BFJ"]
        sent, refusal = 0, None
        for _ in range(20):
            try:
                await wait_delivered(de, await send(de, "NL-24X7"))
            except TransportError as e:
                refusal = e
                break
            sent += 1
        assert refusal is not None and refusal.code == "AUDIT_BACKLOG"
        assert de._store is not None
        last = codec.decode_audit((await de._store.audit_entries(
            de._store.audit_sequence - 1, 1))[0][1])
        assert (last.event_type, last.reason) == ("envelope.send_refused", "AUDIT_BACKLOG")
        assert 1 <= sent < 20
        assert de._publisher is not None and de._publisher.backlog > 12
        assert not de._publisher.healthy
