"""A node's signed statement about its audit log (a "signed tree head")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TreeHead:
    node_id: str
    tree_size: int
    root_hash: bytes
    time_ms: int
    key_id: str


@dataclass(frozen=True)
class SignedTreeHead:
    """Exact bytes as signed; `head` is the parsed view of `tree_head`."""

    tree_head: bytes
    signature: bytes
    head: TreeHead
