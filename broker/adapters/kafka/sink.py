"""Publishes audit records to Kafka: idempotent producer, acks=all, keyed by node id.

aiokafka's defaults are unsafe for an audit log (no idempotence, acks=1), so every
setting is explicit. A failed or timed-out produce is ambiguous (the record may have been
written): the batch is retried as a whole and duplicates are harmless, because auditors
dedupe by (node, sequence). After an indefinite error the producer is re-created, since an
idempotent producer can wedge on OutOfOrderSequenceNumber (aiokafka #1017).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from broker.errors import ConfigError, TransportError

REQUIRED = {"cleanup.policy": "delete"}


class KafkaAuditSink:
    def __init__(self, bootstrap: str, topic: str, *, min_retention_ms: int,
                 request_timeout_ms: int = 15_000) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.min_retention_ms = min_retention_ms
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._topic_checked = False

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all",
                linger_ms=5, request_timeout_ms=self.request_timeout_ms,
                max_batch_size=1 << 20, retry_backoff_ms=200)
            try:
                await producer.start()
            except KafkaError as e:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise TransportError(f"Kafka unreachable: {type(e).__name__}",
                                     code="KAFKA_UNAVAILABLE") from e
            self._producer = producer
        return self._producer

    async def publish(self, node_id: str, records: Sequence[tuple[int, bytes]]) -> None:
        """Write the records in order; returns only when every one is acknowledged.

        The topic's configuration is checked on first contact: ConfigError if unsafe."""
        if not self._topic_checked:
            await check_topic(self.bootstrap, self.topic, min_retention_ms=self.min_retention_ms)
            self._topic_checked = True
        producer = await self._ensure_producer()
        key = node_id.encode()
        try:
            async with asyncio.timeout(self.request_timeout_ms / 1000 * 2):
                futures = [await producer.send(self.topic, value=data, key=key,
                                               headers=[("seq", str(seq).encode())])
                           for seq, data in records]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as e:
            # Ambiguous: some records may be written. Start over with a fresh producer
            # (an idempotent producer can wedge after a leader change) and resend.
            await self.reset()
            raise TransportError(f"Kafka produce failed: {type(e).__name__}",
                                 code="KAFKA_PRODUCE") from e

    async def reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def close(self) -> None:
        """Flush and stop (the last step of a node's shutdown)."""
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.flush()
        await self.reset()


async def ensure_topic(bootstrap: str, topic: str, *, partitions: int = 1,
                       replication: int = 1, retention_ms: int = -1) -> None:
    """Create the audit topic with a safe configuration if it does not exist (dev, tests)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(
                topic, num_partitions=partitions, replication_factor=replication,
                topic_configs={"cleanup.policy": "delete", "retention.ms": str(retention_ms),
                               "min.insync.replicas": str(min(2, replication))})])
    finally:
        await admin.close()


async def check_topic(bootstrap: str, topic: str, *, min_retention_ms: int) -> dict[str, str]:
    """Refuse a topic that could silently drop evidence (compaction, short retention)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        result = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)])
    except KafkaError as e:
        raise TransportError(f"Kafka unreachable: {type(e).__name__}",
                             code="KAFKA_UNAVAILABLE") from e
    finally:
        await admin.close()
    configs: dict[str, str] = {}
    for response in result:
        for resource in response.resources:
            error_code = resource[0]
            if error_code:
                raise ConfigError(f"audit topic {topic} is not readable (error {error_code})")
            configs.update({entry[0]: entry[1] for entry in resource[4]})
    if configs.get("cleanup.policy") != "delete":
        raise ConfigError(f"audit topic {topic} must have cleanup.policy=delete, found "
                          f"{configs.get('cleanup.policy')}")
    retention = int(configs.get("retention.ms", "-1"))
    if retention != -1 and retention < min_retention_ms:
        raise ConfigError(f"audit topic {topic} keeps records for {retention} ms, less than "
                          f"the required {min_retention_ms} ms")
    return configs
