"""Transparency-log primitives (RFC 9162 vocabulary): Merkle hashing, proofs, checkpoints."""

from broker.transparency.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from broker.transparency.merkle import (
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

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "CompactRange",
    "ProofError",
    "consistency_proof",
    "hash_children",
    "hash_leaf",
    "inclusion_proof",
    "root_from_leaf_hashes",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
