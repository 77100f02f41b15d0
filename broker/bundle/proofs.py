"""Inclusion proofs for several leaves of one tree at once (RFC 9162 Sec. 2.1.3.1).

`broker.transparency.inclusion_proof` recomputes every sibling subtree per proof, O(n)
each. A bundle proves a handful of records of a log that may hold millions: here the
sibling roots are shared between proofs, so K proofs cost O(n log n) hashing at worst
(far less when the records are close together, as a case's records are) and memory
stays at the leaf hashes plus K log n subtree roots. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from broker.transparency.merkle import ProofError, root_from_leaf_hashes


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class _Siblings:
    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self.roots: dict[tuple[int, int], bytes] = {}

    def root(self, lo: int, hi: int) -> bytes:
        key = (lo, hi)
        found = self.roots.get(key)
        if found is None:
            found = self.roots[key] = root_from_leaf_hashes(self.leaves[lo:hi])
        return found

    def path(self, index: int) -> list[bytes]:
        """PATH(index, D[0:n]), computed top-down and returned leaf-first."""
        lo, hi, out = 0, len(self.leaves), []
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                out.append(self.root(lo + k, hi))
                hi = lo + k
            else:
                out.append(self.root(lo, lo + k))
                lo = lo + k
        out.reverse()
        return out


def inclusion_proofs(leaves: Sequence[bytes], indices: Iterable[int]) -> dict[int, list[bytes]]:
    """The inclusion proof of each leaf index in the tree over `leaves` (leaf hashes)."""
    siblings = _Siblings(leaves)
    out: dict[int, list[bytes]] = {}
    for index in indices:
        if not 0 <= index < len(leaves):
            raise ProofError("leaf index out of range")
        out[index] = siblings.path(index)
    return out
