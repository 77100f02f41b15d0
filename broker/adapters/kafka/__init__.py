"""Apache Kafka adapters (aiokafka): the audit publisher's sink and the auditor's reader."""

from broker.adapters.kafka.sink import KafkaAuditSink, check_topic, ensure_topic
from broker.adapters.kafka.source import read_topic

__all__ = ["KafkaAuditSink", "check_topic", "ensure_topic", "read_topic"]
