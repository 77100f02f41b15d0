"""RFC 6962/9162 Merkle trees: the published CT vectors, then mutations of every proof.

Vectors: the Certificate Transparency reference leaves and roots, as published in
transparency-dev/merkle `testonly` (also in certificate-transparency-go), used as data.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.transparency import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    hash_children,
    hash_leaf,
    inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

pytestmark = pytest.mark.unit

H = bytes.fromhex
LEAVES = [H(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [H(x) for x in [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]]
INCLUSION = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
CONSISTENCY = {
    (2, 8): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}
LEAF_HASHES = [hash_leaf(x) for x in LEAVES]


def test_published_roots_for_every_size() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    for n in range(len(LEAVES) + 1):
        assert root_from_leaf_hashes(LEAF_HASHES[:n]) == ROOTS[n]
    assert hash_children(LEAF_HASHES[0], LEAF_HASHES[1]) == ROOTS[2]


def test_compact_range_matches_the_recursive_root() -> None:
    cr = CompactRange()
    assert cr.root() == ROOTS[0]
    for n, leaf in enumerate(LEAF_HASHES, 1):
        cr.append(leaf)
        assert (cr.size, cr.root()) == (n, ROOTS[n])


@pytest.mark.parametrize(("index", "size"), list(INCLUSION))
def test_published_inclusion_proofs(index: int, size: int) -> None:
    proof = [H(x) for x in INCLUSION[(index, size)]]
    assert inclusion_proof(LEAF_HASHES[:size], index) == proof
    verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new"), list(CONSISTENCY))
def test_published_consistency_proofs(old: int, new: int) -> None:
    proof = [H(x) for x in CONSISTENCY[(old, new)]]
    assert consistency_proof(LEAF_HASHES[:new], old) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def _leaves(n: int) -> list[bytes]:
    return [hash_leaf(i.to_bytes(4, "big")) for i in range(n)]


def test_every_inclusion_proof_verifies_and_every_mutation_fails() -> None:
    """Like transparency-dev/merkle's verifier tests: index +-1, other leaf, truncated,
    extended or bit-flipped paths are all rejected. (The tree size itself is bound by the
    signed tree head, not by the path: a path can fit several sizes.)"""
    for n in range(1, 34):
        leaves = _leaves(n)
        root = root_from_leaf_hashes(leaves)
        for i in range(n):
            proof = inclusion_proof(leaves, i)
            verify_inclusion(leaves[i], i, n, proof, root)
            bad = []
            if i + 1 < n:
                bad.append((leaves[i], i + 1, n, proof))
            if i > 0:
                bad.append((leaves[i], i - 1, n, proof))
            bad.append((hash_leaf(b"other"), i, n, proof))
            if proof:
                bad.append((leaves[i], i, n, proof[:-1]))
                flipped = bytearray(proof[0])
                flipped[0] ^= 1
                bad.append((leaves[i], i, n, [bytes(flipped), *proof[1:]]))
            bad.append((leaves[i], i, n, [*proof, EMPTY_ROOT]))
            for args in bad:
                with pytest.raises(ProofError):
                    verify_inclusion(*args, root)


def test_every_consistency_proof_verifies_and_mutations_fail() -> None:
    for n in range(1, 34):
        leaves = _leaves(n)
        new_root = root_from_leaf_hashes(leaves)
        for m in range(1, n + 1):
            old_root = root_from_leaf_hashes(leaves[:m])
            proof = consistency_proof(leaves, m)
            verify_consistency(m, n, old_root, new_root, proof)
            with pytest.raises(ProofError):
                verify_consistency(m, n, hash_leaf(b"forged"), new_root, proof)
            with pytest.raises(ProofError):
                verify_consistency(m, n, old_root, hash_leaf(b"forged"), proof)
            if proof:
                with pytest.raises(ProofError):
                    verify_consistency(m, n, old_root, new_root, proof[:-1])
                with pytest.raises(ProofError):
                    verify_consistency(m, n, old_root, new_root, [*proof, EMPTY_ROOT])
    with pytest.raises(ProofError):
        verify_consistency(5, 4, ROOTS[5], ROOTS[4], [])


@given(st.lists(st.binary(max_size=16), min_size=1, max_size=60), st.data())
def test_proofs_for_random_trees(entries: list[bytes], data: st.DataObject) -> None:
    leaves = [hash_leaf(e) for e in entries]
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(1, n))
    root = root_from_leaf_hashes(leaves)
    verify_inclusion(leaves[i], i, n, inclusion_proof(leaves, i), root)
    verify_consistency(m, n, root_from_leaf_hashes(leaves[:m]), root,
                       consistency_proof(leaves, m))
