"""The auditor's reader: every record of the audit topic from the beginning to the end
offsets seen at start, partition by partition in order, with its exact position."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from broker.errors import TransportError


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for t in described if t["topic"] == topic and not t["error_code"]
                  for p in t["partitions"])


async def read_topic(bootstrap: str, topic: str, *, fetch_max_bytes: int = 8 << 20
                     ) -> AsyncIterator[tuple[str, bytes, str]]:
    """Yield (position, record bytes, key) for every record now in the topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_uncommitted",
        fetch_max_bytes=fetch_max_bytes)
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in await _partitions(bootstrap, topic)]
        if not tps:
            raise TransportError(f"topic {topic} not found", code="KAFKA_NO_TOPIC")
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=2000)
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset >= ends[tp]:
                        remaining.discard(tp)
                        break
                    yield (f"kafka:{topic}/{tp.partition}@{m.offset}", m.value or b"",
                           (m.key or b"").decode(errors="replace"))
                    if m.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    except KafkaError as e:
        raise TransportError(f"Kafka read failed: {type(e).__name__}",
                             code="KAFKA_UNAVAILABLE") from e
    finally:
        await consumer.stop()
