"""The audit journal's logic: sequence numbers, the hash chain, the Merkle tree and
signed checkpoints. Pure: the store persists what it returns, in the same transaction
as the state change the events describe.

Record n (sequence n, from 1) carries prev_hash = SHA-256 of record n-1's bytes (empty
for n = 1) and is leaf n-1 of the node's RFC 9162 tree. A checkpoint record at sequence
s carries a signed tree head over the first s-1 records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from broker.audit.events import AuditEvent, EventType
from broker.envelope import Signer
from broker.transparency import CompactRange, hash_leaf, sign_checkpoint
from broker.wire import codec


@dataclass(frozen=True)
class JournalEntry:
    sequence: int
    record: bytes
    record_hash: bytes    # SHA-256(record): the chain
    leaf_hash: bytes      # SHA-256(0x00 || record): the Merkle leaf


class Journal:
    def __init__(self, node_id: str, signer: Signer | None, *, checkpoint_every: int = 256
                 ) -> None:
        self.node_id = node_id
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.sequence = 0
        self.last_hash = b""
        self.tree = CompactRange()
        self.checkpointed_size = 0
        self.last_checkpoint = b""     # SignedTreeHead bytes

    def restore(self, entries: Iterable[tuple[int, bytes, bytes]], last_checkpoint: bytes
                ) -> None:
        """Rebuild from stored (sequence, record_hash, leaf_hash), in order."""
        for sequence, record_hash, leaf_hash in entries:
            if sequence != self.sequence + 1:
                raise ValueError(f"journal has a gap before sequence {sequence}")
            self.sequence, self.last_hash = sequence, record_hash
            self.tree.append(leaf_hash)
        self.last_checkpoint = last_checkpoint
        if last_checkpoint:
            self.checkpointed_size = codec.decode_signed_tree_head(
                last_checkpoint).head.tree_size

    def append(self, event: AuditEvent, time_ms: int) -> JournalEntry:
        record = codec.encode_audit_record(event, node_id=self.node_id,
                                           sequence=self.sequence + 1, time_ms=time_ms,
                                           prev_hash=self.last_hash)
        entry = JournalEntry(self.sequence + 1, record, hashlib.sha256(record).digest(),
                             hash_leaf(record))
        self.sequence, self.last_hash = entry.sequence, entry.record_hash
        self.tree.append(entry.leaf_hash)
        return entry

    def due(self) -> bool:
        return (self.signer is not None
                and self.sequence - self.checkpointed_size >= self.checkpoint_every)

    def has_unsigned(self) -> bool:
        """Records appended since the last checkpoint (other than that checkpoint)."""
        return self.signer is not None and self.sequence > self.checkpointed_size + 1

    def checkpoint(self, time_ms: int) -> JournalEntry:
        """Sign the tree over every record so far and append that as a record."""
        if self.signer is None:
            raise RuntimeError("this journal has no signer")
        sth = sign_checkpoint(self.signer, node_id=self.node_id, tree_size=self.sequence,
                              root_hash=self.tree.root(), time_ms=time_ms)
        signed = codec.encode_signed_tree_head(sth)
        entry = self.append(AuditEvent(EventType.AUDIT_CHECKPOINT,
                                       actor=f"node:{self.node_id}", checkpoint=signed),
                            time_ms)
        self.checkpointed_size = sth.head.tree_size
        self.last_checkpoint = signed
        return entry

    def mark(self) -> tuple[int, bytes, CompactRange, int, bytes]:
        """The state to go back to if the transaction holding new entries rolls back."""
        return (self.sequence, self.last_hash, self.tree.copy(), self.checkpointed_size,
                self.last_checkpoint)

    def reset(self, mark: tuple[int, bytes, CompactRange, int, bytes]) -> None:
        (self.sequence, self.last_hash, self.tree, self.checkpointed_size,
         self.last_checkpoint) = mark
