"""A decoded audit record (the verifier and reports read these; the log keeps bytes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class AuditRecord:
    node_id: str
    sequence: int
    time_ms: int
    actor: str
    event_type: str
    envelope_id: bytes
    peer: str
    message_type: str
    template_id: str
    template_version: str
    header_sha256: bytes
    body_sha256: bytes
    reason: str
    policy_decision_ids: tuple[str, ...]
    citations: tuple[str, ...]
    prev_hash: bytes
    attachment_sha256: tuple[bytes, ...]
    case_id: str
    checkpoint: bytes          # SignedTreeHead bytes on "audit.checkpoint" records
    justification: str
    recipients: tuple[str, ...]
    peer_tree_head: bytes
    policy_set_hash: bytes


class AuditEssentials(NamedTuple):
    """The fields the verifier needs, read in one cheap pass (millions of records)."""

    node_id: str
    sequence: int
    prev_hash: bytes
    event_type: str
    envelope_id: bytes
    peer: str
    header_sha256: bytes
    checkpoint: bytes
    peer_tree_head: bytes
