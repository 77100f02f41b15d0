"""RFC 9162 (RFC 6962) Merkle tree hashing, proofs and their verification. Pure.

MTH({}) = SHA-256(); MTH({d}) = SHA-256(0x00 || d); MTH(D[n]) = SHA-256(0x01 ||
MTH(D[0:k]) || MTH(D[k:n])) with k the largest power of two smaller than n.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = hashlib.sha256(b"\x00")    # copied per hash: cheaper than concatenating
_NODE_PREFIX = hashlib.sha256(b"\x01")


class ProofError(ValueError):
    """A proof is malformed or does not verify."""


def hash_leaf(data: bytes) -> bytes:
    h = _LEAF_PREFIX.copy()
    h.update(data)
    return h.digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    h = _NODE_PREFIX.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (recursive definition; O(n) time)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return hash_children(root_from_leaf_hashes(leaves[:k]), root_from_leaf_hashes(leaves[k:]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 Sec. 2.1.3.1, over leaf hashes."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ProofError("leaf index out of range")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(leaves[:k], index), root_from_leaf_hashes(leaves[k:])]
    return [*inclusion_proof(leaves[k:], index - k), root_from_leaf_hashes(leaves[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 Sec. 2.1.4.1, over leaf hashes."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ProofError("old size out of range")
    return _subproof(leaves, old_size, complete=True)


def _subproof(leaves: Sequence[bytes], m: int, *, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_from_leaf_hashes(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves[:k], m, complete=complete), root_from_leaf_hashes(leaves[k:])]
    return [*_subproof(leaves[k:], m - k, complete=False), root_from_leaf_hashes(leaves[:k])]


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> None:
    """RFC 9162 Sec. 2.1.3.2. Raises ProofError unless the proof verifies."""
    if not 0 <= index < size:
        raise ProofError("leaf index out of range")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise ProofError("inclusion proof does not verify")


def verify_consistency(  # noqa: PLR0912 - RFC 9162 Sec. 2.1.4.2, step by step
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 Sec. 2.1.4.2. Raises ProofError unless the proof verifies."""
    if old_size > new_size:
        raise ProofError("a tree cannot shrink")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofError("equal sizes need an empty proof and equal roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("consistency with the empty tree needs an empty proof")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ProofError("consistency proof does not verify")


class CompactRange:
    """The right edge of a growing tree: O(log n) hashes, for appending and roots in
    constant memory (an auditor replays millions of records through one of these).

    The edge holds one perfect subtree per set bit of `size`, largest first, so an
    append merges as many subtrees as `size` has trailing one bits."""

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []   # subtree roots, heights decreasing
        self.size = 0

    def append(self, leaf_hash: bytes) -> None:
        nodes, n, h = self._nodes, self.size, leaf_hash
        while n & 1:
            h = hash_children(nodes.pop(), h)
            n >>= 1
        nodes.append(h)
        self.size += 1

    def copy(self) -> CompactRange:
        other = CompactRange()
        other._nodes = list(self._nodes)
        other.size = self.size
        return other

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        h = self._nodes[-1]
        for left in reversed(self._nodes[:-1]):
            h = hash_children(left, h)
        return h
