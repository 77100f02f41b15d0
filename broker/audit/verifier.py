"""The auditor's verifier: replays every node's audit records in one pass, in constant
memory per node, and reports each finding with the node, sequence and log position.

Checks, per node: sequence continuity (gaps, reordering, insertion), the hash chain,
harmless duplicates vs. a *different* record under a seen sequence, each checkpoint's
signature (by the node's key as listed in the trust list) and root (recomputed from the
records), consistency with the tree heads verified in earlier runs (rollback, truncation,
split view) and with the tree heads the node handed out in receipts. Across nodes: every
delivered envelope has a matching receive, and every receive a matching send.
Pure: records and the trust list in, findings out.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from broker.errors import RogatoryError
from broker.model.audit_record import AuditEssentials
from broker.model.checkpoint import TreeHead
from broker.transparency import CompactRange, hash_leaf, verify_checkpoint
from broker.trust import TrustList
from broker.wire import codec

_SHA256 = hashlib.sha256()   # copied per record: cheaper than a new hash object
_decode = codec.decode_audit_essentials
DUPLICATE_WINDOW = 4096
_PRUNE_AT = 2 * DUPLICATE_WINDOW
VERIFIED_CACHE = 1024   # signed tree heads whose signature already verified, by exact bytes
_EXCHANGE_EVENTS = frozenset({"envelope.sent", "envelope.delivered", "envelope.received",
                              "delivery.refused", "delivery.expired"})


@dataclass(frozen=True)
class Finding:
    code: str
    node_id: str
    sequence: int
    position: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "node_id": self.node_id, "sequence": self.sequence,
                "position": self.position, "detail": self.detail}


@dataclass(frozen=True)
class VerifiedHead:
    """A tree head the auditor has verified; remembered between runs."""

    tree_size: int
    root_hash: bytes


@dataclass(slots=True)
class _NodeState:
    next_seq: int = 1
    last_hash: bytes = b""
    last_position: str = ""
    tree: CompactRange = field(default_factory=CompactRange)
    tree_intact: bool = True
    # the window of record hashes, by ascending sequence (only in-order records enter)
    recent_seqs: list[int] = field(default_factory=list)
    recent_hashes: list[bytes] = field(default_factory=list)
    latest_head: VerifiedHead | None = None
    heads: dict[int, bytes] = field(default_factory=dict)   # verified checkpoints only

    @property
    def records(self) -> int:
        """Records taken into the chain (each one is a leaf of the tree)."""
        return self.tree.size


@dataclass(slots=True)
class _Exchange:
    sender: str = ""
    recipient: str = ""
    header_sha256: bytes = b""
    sent: str = ""          # position of envelope.sent
    delivered: str = ""     # position of envelope.delivered
    received: str = ""      # position of envelope.received
    ended: bool = False     # refused or expired: no receive expected


class AuditVerifier:
    def __init__(self, trust: TrustList, *, known_heads: Mapping[str, VerifiedHead] = {}
                 ) -> None:
        self.trust = trust
        self.known_heads = dict(known_heads)
        self.nodes: dict[str, _NodeState] = {}
        self.findings: list[Finding] = []
        self._exchanges: dict[bytes, _Exchange] = {}
        self._claims: dict[tuple[str, int], tuple[bytes, str, int, str]] = {}
        self._verified: dict[bytes, TreeHead] = {}
        self.records = 0
        self.duplicates = 0

    # -- per record ---------------------------------------------------------------------

    def feed(self, position: str, data: bytes, *, key: str | None = None) -> None:
        """Verify one record's exact bytes, read at `position` (keyed by `key` if known)."""
        self.records += 1
        try:
            rec = _decode(data)
        except RogatoryError:
            self._find("MALFORMED_RECORD", key or "?", 0, position,
                       "record does not parse as an audit record")
            return
        node_id, sequence, prev_hash, event_type, _, _, _, checkpoint, _ = rec
        if key is not None and key != node_id:
            self._find("WRONG_KEY", node_id, sequence, position,
                       f"record of {node_id} published under key {key}")
        node = self.nodes.get(node_id)
        if node is None:
            node = self.nodes[node_id] = _NodeState()
        h = _SHA256.copy()
        h.update(data)
        record_hash = h.digest()
        if sequence != node.next_seq or prev_hash != node.last_hash:
            if sequence < node.next_seq:
                self._earlier(node, rec, record_hash, position)
                return
            self._unlinked(node, rec, position)
        if checkpoint:
            self._checkpoint(node, rec, position)
        node.next_seq = sequence + 1
        node.last_hash = record_hash
        node.last_position = position
        node.tree.append(hash_leaf(data))
        seqs = node.recent_seqs
        seqs.append(sequence)
        node.recent_hashes.append(record_hash)
        if len(seqs) >= _PRUNE_AT:  # prune in bulk: cheaper than per record
            gone = bisect.bisect_right(seqs, sequence - DUPLICATE_WINDOW)
            del seqs[:gone], node.recent_hashes[:gone]
        if node_id in self.known_heads:
            self._check_known_head(node, rec, position)
        if event_type in _EXCHANGE_EVENTS:
            self._reconcile(rec, position)

    def _unlinked(self, node: _NodeState, rec: AuditEssentials, position: str) -> None:
        """A record after a gap, or one whose link is not the previous record's hash."""
        if rec.sequence > node.next_seq:
            self._find("MISSING_RECORDS", rec.node_id, node.next_seq, position,
                       f"records {node.next_seq}..{rec.sequence - 1} are missing before "
                       f"sequence {rec.sequence}")
        else:
            self._find("CHAIN_BROKEN", rec.node_id, rec.sequence - 1, node.last_position,
                       f"record {rec.sequence - 1} is not the record that record "
                       f"{rec.sequence} ({position}) chains to: one of them was altered")
        node.tree_intact = False

    def _earlier(self, node: _NodeState, rec: AuditEssentials, record_hash: bytes,
                 position: str) -> None:
        seqs = node.recent_seqs
        i = bisect.bisect_left(seqs, rec.sequence)
        seen = node.recent_hashes[i] if i < len(seqs) and seqs[i] == rec.sequence else None
        if seen == record_hash:
            self.duplicates += 1
            return
        if seen is None:
            self._find("OUT_OF_ORDER", rec.node_id, rec.sequence, position,
                       f"sequence {rec.sequence} arrives after {node.next_seq - 1}")
        else:
            self._find("CONFLICTING_RECORD", rec.node_id, rec.sequence, position,
                       "a different record with an already seen sequence number")

    def _checkpoint(self, node: _NodeState, rec: AuditEssentials, position: str) -> None:
        try:
            head = self._verified_head(rec.checkpoint)
        except RogatoryError as e:
            self._find("CHECKPOINT_SIGNATURE", rec.node_id, rec.sequence, position,
                       f"checkpoint does not verify: {e.code}")
            return
        if head.node_id != rec.node_id or head.tree_size != rec.sequence - 1:
            self._find("CHECKPOINT_MISPLACED", rec.node_id, rec.sequence, position,
                       f"checkpoint of {head.node_id} at size {head.tree_size}")
            return
        if not node.tree_intact:
            self._find("CHECKPOINT_UNVERIFIABLE", rec.node_id, rec.sequence, position,
                       "earlier records are missing or broken: root cannot be recomputed")
            return
        if node.tree.root() != head.root_hash:
            self._find("CHECKPOINT_ROOT_MISMATCH", rec.node_id, rec.sequence, position,
                       f"signed root at size {head.tree_size} differs from the records")
            return
        node.latest_head = VerifiedHead(head.tree_size, head.root_hash)
        node.heads[head.tree_size] = head.root_hash
        claim = self._claims.pop((rec.node_id, head.tree_size), None)
        if claim is not None:
            self._compare_claim(rec.node_id, head.tree_size, head.root_hash, claim)

    def _verified_head(self, signed: bytes) -> TreeHead:
        """Parse and verify a signed tree head; the same exact bytes (a checkpoint that
        receipts repeat) are verified once. Failures are not remembered."""
        head = self._verified.get(signed)
        if head is None:
            sth = codec.decode_signed_tree_head(signed)
            head = verify_checkpoint(sth, trust=self.trust, at_ms=sth.head.time_ms)
            if len(self._verified) >= VERIFIED_CACHE:
                del self._verified[next(iter(self._verified))]
            self._verified[signed] = head
        return head

    def _check_known_head(self, node: _NodeState, rec: AuditEssentials, position: str) -> None:
        known = self.known_heads.get(rec.node_id)
        if known is not None and node.tree.size == known.tree_size and (
                not node.tree_intact or node.tree.root() != known.root_hash):
            self._find("INCONSISTENT_WITH_VERIFIED_HEAD", rec.node_id, rec.sequence, position,
                       f"the log at size {known.tree_size} differs from the tree head "
                       "verified earlier")

    # -- cross-node reconciliation ----------------------------------------------------

    def _reconcile(self, rec: AuditEssentials, position: str) -> None:
        node_id, _, _, et, envelope_id, peer, header_sha256, _, peer_tree_head = rec
        if peer_tree_head and et == "envelope.delivered":
            self._claim(rec, position)
        if not envelope_id:
            return
        sender, recipient = (peer, node_id) if et == "envelope.received" else (node_id, peer)
        x = self._exchanges.get(envelope_id)
        if x is None:   # the exchange's first record: nothing to compare with yet
            x = self._exchanges[envelope_id] = _Exchange(sender, recipient, header_sha256)
        else:
            x.sender, x.recipient = x.sender or sender, x.recipient or recipient
            if not x.header_sha256:
                x.header_sha256 = header_sha256
            elif header_sha256 and x.header_sha256 != header_sha256:
                self._find("EXCHANGE_MISMATCH", node_id, rec.sequence, position,
                           f"envelope {envelope_id.hex()} has another header digest here")
        if et == "envelope.received":
            x.received = x.received or position
        elif et == "envelope.sent":
            x.sent = x.sent or position
        elif et == "envelope.delivered":
            x.delivered = x.delivered or position
        else:
            x.ended = True
        if x.sent and x.delivered and x.received:
            del self._exchanges[envelope_id]

    def _claim(self, rec: AuditEssentials, position: str) -> None:
        try:
            head = self._verified_head(rec.peer_tree_head)
        except RogatoryError as e:
            self._find("RECEIPT_TREE_HEAD_INVALID", rec.node_id, rec.sequence, position,
                       f"tree head in the receipt from {rec.peer} does not verify: {e.code}")
            return
        claim = (head.root_hash, position, rec.sequence, rec.node_id)
        peer = self.nodes.get(head.node_id)
        if peer is not None and head.tree_size in peer.heads:
            self._compare_claim(head.node_id, head.tree_size, peer.heads[head.tree_size], claim)
        elif peer is not None and peer.tree.size > head.tree_size:
            self._find("SPLIT_VIEW", head.node_id, head.tree_size + 1, position,
                       f"tree head of size {head.tree_size} given to {rec.node_id} in a "
                       "receipt is not among the checkpoints in the log")
        else:
            self._claims[(head.node_id, head.tree_size)] = claim

    def _compare_claim(self, node_id: str, size: int, logged_root: bytes,
                       claim: tuple[bytes, str, int, str]) -> None:
        root, where, _, claimant = claim
        if root != logged_root:
            self._find("SPLIT_VIEW", node_id, size + 1, where,
                       f"tree head of size {size} given to {claimant} in a receipt differs "
                       "from the checkpoint in the log")

    # -- end of the log -----------------------------------------------------------------

    def finish(self) -> list[Finding]:
        """Findings that only the end of the log reveals; returns every finding."""
        audited = set(self.nodes)
        for node_id, known in self.known_heads.items():
            state = self.nodes.get(node_id)
            size = state.tree.size if state else 0
            if size < known.tree_size:
                self._find("TRUNCATED_BELOW_VERIFIED_HEAD", node_id, size, "end",
                           f"the log has {size} records; {known.tree_size} were verified "
                           "earlier")
        for eid, x in self._exchanges.items():
            both = x.sender in audited and x.recipient in audited
            if x.received and not x.sent and x.sender in audited:
                self._find("RECEIVE_WITHOUT_SEND", x.recipient, 0, x.received,
                           f"envelope {eid.hex()} received from {x.sender}, never sent")
            elif x.delivered and not x.received and both:
                self._find("SEND_WITHOUT_RECEIVE", x.sender, 0, x.delivered,
                           f"envelope {eid.hex()} receipted by {x.recipient} but its "
                           "receive is not in its log")
        for (node_id, size), (_, where, seq, claimant) in self._claims.items():
            if node_id in audited:
                self._find("RECEIPT_TREE_HEAD_BEYOND_LOG", claimant, seq, where,
                           f"{node_id} signed a tree head of size {size} but its log is "
                           "shorter")
        return self.findings

    def verified_heads(self) -> dict[str, VerifiedHead]:
        """The newest verified tree head per node, to remember for the next run."""
        out = dict(self.known_heads)
        for node_id, state in self.nodes.items():
            if state.latest_head is not None:
                out[node_id] = state.latest_head
        return out

    def pending(self) -> Iterator[tuple[bytes, str, str]]:
        for eid, x in self._exchanges.items():
            if x.sent and not x.delivered and not x.ended:
                yield eid, x.sender, x.recipient

    def _find(self, code: str, node_id: str, sequence: int, position: str,
              detail: str) -> None:
        self.findings.append(Finding(code, node_id, sequence, position, detail))
