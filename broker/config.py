"""Frozen configuration with explicit limits. Environment variables are read in `nodes/` only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from broker.crypto import DEFAULT_CHUNK_SIZE

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class EnvelopeLimits:
    """What a node accepts in one envelope.

    An envelope is refused once expired and its lifetime is at most `max_ttl_ms`, so any
    acceptable envelope is younger than `max_ttl_ms + clock_skew_ms`; the inbox keeps
    every envelope id far longer than that, so no replay can outlive its dedup entry.
    """

    max_envelope_bytes: int = 1 << 20          # header + signature + sealed body
    max_payload_bytes: int = 512 << 10
    max_attachments: int = 64
    max_attachment_bytes: int = 64 << 30
    max_chunk_size: int = 4 << 20
    clock_skew_ms: int = 5 * MINUTE_MS
    max_ttl_ms: int = 7 * DAY_MS
    default_ttl_ms: int = 2 * DAY_MS



@dataclass(frozen=True)
class AuditPolicy:
    """Signed tree heads every `checkpoint_every` records or `checkpoint_interval_s`."""

    checkpoint_every: int = 256
    checkpoint_interval_s: float = 30.0
    kafka_bootstrap: str = ""            # empty: the embedded (SQLite) backend only
    kafka_topic: str = "rogatory.audit.v1"
    kafka_min_retention_ms: int = 10 * 365 * DAY_MS
    publish_batch: int = 500
    backlog_limit: int = 100_000         # unpublished records before exchanges are refused


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retries with exponential backoff and full jitter until a receipt or expiry."""

    initial_backoff_ms: int = 500
    max_backoff_ms: int = 5 * MINUTE_MS
    multiplier: float = 2.0
    call_timeout_s: float = 60.0
    stream_timeout_s_per_mib: float = 2.0
    max_in_flight: int = 32
    max_in_flight_per_peer: int = 8      # at most the peer's per-sender stream limit
    chunk_size: int = DEFAULT_CHUNK_SIZE


@dataclass(frozen=True)
class LifecyclePolicy:
    """How this agency counts legal deadlines, and the time limits it adds of its own.

    Attributes:
        timezone: IANA zone of the agency (days are counted on its local calendar).
        day_count: ``calendar`` or ``business`` days.
        holidays: public holidays (ISO dates) skipped when counting business days.
        weekend: weekday numbers (Monday 0) that are not business days.
        approaching: share of a period after which a deadline is approaching.
        scan_interval_s: how often running deadlines are checked.
        deadlines: the agency's own time limits, as template deadlines plus the request
            message type they apply to: ``{message_type, name, value, basis, kind,
            starts, verification}`` (e.g. acknowledge an MLA request within ``P5D``).
    """

    timezone: str = "UTC"
    day_count: str = "calendar"
    holidays: tuple[str, ...] = ()
    weekend: tuple[int, ...] = (5, 6)
    approaching: float = 0.8
    scan_interval_s: float = 30.0
    deadlines: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # TOML gives lists; keep the value hashable and immutable.
        object.__setattr__(self, "holidays", tuple(self.holidays))
        object.__setattr__(self, "weekend", tuple(self.weekend))
        object.__setattr__(self, "deadlines", tuple(MappingProxyType(dict(d))
                                                    for d in self.deadlines))
