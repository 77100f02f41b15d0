"""The real Kafka broker of scripts/kafka, driven with aiokafka the way the audit log will be.

One broker: topic ``rogatory.audit.v1`` with ``cleanup.policy=delete``, an idempotent
``acks=all`` producer keyed by node id, and per-node order on the way back. Three brokers
(RF 3, ``min.insync.replicas=2``): ``kill -9`` of the partition leader while producing, and
every acknowledged record is readable, once and in order, after the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from tests.kafka_fixture import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.timeout(120)]

TOPIC = "rogatory.audit.v1"
NODES = ("DE-BFJ", "NL-24X7", "US-OIA")
UNKNOWN_TOPIC_OR_PARTITION = 3


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def audit_topic(
    bootstrap: str, *, partitions: int, replication: int
) -> AsyncIterator[AIOKafkaAdminClient]:
    """Create the audit topic, and delete it afterwards (the broker is shared by the session)."""
    async with admin_client(bootstrap) as admin:
        created = await admin.create_topics([
            NewTopic(TOPIC, num_partitions=partitions, replication_factor=replication,
                     topic_configs={"cleanup.policy": "delete"})
        ])
        assert [(t, e) for t, e, *_ in created.topic_errors] == [(TOPIC, 0)], created
        await wait_until_served(admin, TOPIC, partitions, replication)
        try:
            yield admin
        finally:
            await _delete_topic(bootstrap)


async def _fresh_state(bootstrap: str) -> Any:
    """The topic's partition state through a new admin client (the old one may still be
    bound to the killed broker), retried while the cluster settles."""
    for attempt in range(10):
        try:
            async with admin_client(bootstrap) as admin:
                return await partition_state(admin, TOPIC)
        except (KafkaError, TimeoutError):
            if attempt == 9:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def _delete_topic(bootstrap: str) -> None:
    """Delete with a fresh admin client: the test's own client may still point at a broker
    it killed. Retried (bounded) while the cluster settles; deletion is asynchronous."""
    for attempt in range(5):
        try:
            async with admin_client(bootstrap) as admin:
                await admin.delete_topics([TOPIC])
                for _ in range(100):
                    if TOPIC not in await admin.list_topics():
                        return
                    await asyncio.sleep(0.2)
        except (KafkaError, TimeoutError):
            if attempt == 4:
                raise
            await asyncio.sleep(2)


async def wait_until_served(
    admin: AIOKafkaAdminClient, topic: str, partitions: int, replication: int
) -> None:
    """CreateTopics returns once the controller committed the topic; each broker learns of it
    from the metadata log a moment later. Wait (bounded) until the topic is served in full."""
    for _ in range(100):
        state = await partition_state(admin, topic)
        if (len(state) == partitions
                and all(p["leader"] >= 0 and len(p["isr"]) == replication
                        for p in state.values())
                and (await describe_topic_config(admin, topic))["error_code"] == 0):
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"topic {topic} was created but is not served after 20 s: {state}")


async def describe_topic_config(admin: AIOKafkaAdminClient, topic: str) -> dict[str, Any]:
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [resource] = response.to_object()["resources"]
    return resource


async def topic_config(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    for _ in range(50):  # a broker that has not applied the topic yet answers error 3
        resource = await describe_topic_config(admin, topic)
        if resource["error_code"] != UNKNOWN_TOPIC_OR_PARTITION:
            break
        await asyncio.sleep(0.2)
    assert resource["error_code"] == 0, resource
    return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}


async def partition_state(admin: AIOKafkaAdminClient, topic: str) -> dict[int, dict[str, Any]]:
    for _ in range(50):  # a broker that has not applied the topic yet answers error 3
        [described] = await admin.describe_topics([topic])
        if described["error_code"] != UNKNOWN_TOPIC_OR_PARTITION:
            break
        await asyncio.sleep(0.2)
    assert described["error_code"] == 0, described
    return {p["partition"]: p for p in described["partitions"]}


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
        request_timeout_ms=30_000, retry_backoff_ms=200,
    )


async def consume_all(bootstrap: str, topic: str, expected: int, within_s: float = 30) -> list:
    """Every record of topic from the beginning, until `expected` arrived (bounded)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_committed",
    )
    await consumer.start()
    records: list = []
    try:
        deadline = time.monotonic() + within_s
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp in sorted(batch, key=lambda tp: tp.partition):
                records.extend(batch[tp])
        # Nothing beyond what was acknowledged: one more short poll must bring nothing.
        extra = await consumer.getmany(timeout_ms=300)
        records.extend(r for rs in extra.values() for r in rs)
    finally:
        await consumer.stop()
    return records


async def test_audit_topic_keyed_by_node_keeps_per_node_order(kafka_bootstrap: str) -> None:
    per_node = 60
    async with audit_topic(kafka_bootstrap, partitions=3, replication=1) as admin:
        config = await topic_config(admin, TOPIC)
        assert config["cleanup.policy"] == "delete"
        assert config["min.insync.replicas"] == "1"

        prod = producer(kafka_bootstrap)
        await prod.start()
        try:
            sends = [
                await prod.send(TOPIC, key=node.encode(), value=f"{node}:{seq}".encode())
                for seq in range(per_node) for node in NODES  # interleaved, as nodes append
            ]
            acked = await asyncio.wait_for(asyncio.gather(*sends), timeout=30)
        finally:
            await prod.stop()
        assert len(acked) == per_node * len(NODES)

        records = await consume_all(kafka_bootstrap, TOPIC, expected=len(acked))
        assert len(records) == per_node * len(NODES)
        by_node: dict[str, list[int]] = {}
        partitions: dict[str, set[int]] = {}
        for r in records:
            node, seq = r.value.decode().split(":")
            assert r.key.decode() == node
            by_node.setdefault(node, []).append(int(seq))
            partitions.setdefault(node, set()).add(r.partition)
        assert by_node == {node: list(range(per_node)) for node in NODES}
        assert all(len(p) == 1 for p in partitions.values()), partitions  # keyed: one partition


@pytest.mark.timeout(300)  # includes starting the three brokers (15-40 s on 2 busy cores)
async def test_acks_all_survives_kill_9_of_the_leader(kafka_cluster: KafkaCluster) -> None:
    bootstrap = kafka_cluster.bootstrap
    before, after = 50, 50
    async with audit_topic(bootstrap, partitions=1, replication=3) as admin:
        config = await topic_config(admin, TOPIC)
        assert (config["cleanup.policy"], config["min.insync.replicas"]) == ("delete", "2")
        state = (await partition_state(admin, TOPIC))[0]
        assert sorted(state["isr"]) == [1, 2, 3]
        leader = state["leader"]

        prod: AIOKafkaProducer | None = producer(bootstrap)
        assert prod is not None
        await prod.start()
        acked: list[bytes] = []
        try:
            for seq in range(before):
                value = f"DE-BFJ:{seq}".encode()
                await asyncio.wait_for(prod.send_and_wait(TOPIC, value, key=b"DE-BFJ"), 30)
                acked.append(value)

            kafka_cluster.kill(leader)  # kill -9 from its pid file

            # The first send waits for the controller to fence the dead broker
            # (broker.session.timeout.ms=6000) and elect a new leader from the ISR.
            # aiokafka can stall on the dead leader (NodeNotReadyError; aiokafka #517,
            # #1133): like the node's audit publisher, re-create the producer and resend.
            started = time.monotonic()
            for seq in range(before, before + after):
                value = f"DE-BFJ:{seq}".encode()
                for attempt in range(8):
                    try:
                        if prod is None:
                            prod = producer(bootstrap)
                            await asyncio.wait_for(prod.start(), 20)
                        await asyncio.wait_for(prod.send_and_wait(TOPIC, value, key=b"DE-BFJ"),
                                               20)
                        break
                    except (KafkaError, TimeoutError):
                        assert attempt < 7, "no acknowledgement after 8 producers"
                        if prod is not None:
                            with contextlib.suppress(Exception):
                                await prod.stop()
                        prod = None
                        await asyncio.sleep(1)
                acked.append(value)
            failover_s = time.monotonic() - started
        finally:
            if prod is not None:
                await prod.stop()
        assert failover_s < 160
        survivors = await _fresh_state(bootstrap)
        assert survivors[0]["leader"] != leader
        assert leader not in survivors[0]["isr"]
        assert len(survivors[0]["isr"]) >= 2  # acks=all was met by min.insync.replicas=2

        kafka_cluster.start()  # starts only the killed node again
        assert kafka_cluster.pid(leader) is not None
        deadline = time.monotonic() + 45
        while sorted((await _fresh_state(bootstrap))[0]["isr"]) != [1, 2, 3]:
            assert time.monotonic() < deadline, "the restarted broker did not rejoin the ISR"
            await asyncio.sleep(0.5)

        records = await consume_all(bootstrap, TOPIC, expected=len(acked))
        # every acknowledged record, in order; a resend after an ambiguous timeout may
        # have written one twice (a consumer dedupes, as the auditor does by sequence)
        assert list(dict.fromkeys(r.value for r in records)) == acked
