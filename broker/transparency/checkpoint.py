"""Sign and verify tree heads (checkpoints) over a node's audit log. Pure."""

from __future__ import annotations

from broker.crypto import signing as sig
from broker.envelope import Signer
from broker.errors import SignatureInvalid
from broker.model.checkpoint import SignedTreeHead, TreeHead
from broker.trust import TrustList
from broker.wire import codec

Checkpoint = SignedTreeHead


def sign_checkpoint(signer: Signer, *, node_id: str, tree_size: int, root_hash: bytes,
                    time_ms: int) -> SignedTreeHead:
    head = TreeHead(node_id=node_id, tree_size=tree_size, root_hash=root_hash,
                    time_ms=time_ms, key_id=signer.key_id)
    data = codec.encode_tree_head(head)
    return SignedTreeHead(tree_head=data, signature=signer.sign(sig.to_be_signed(
        sig.TREE_HEAD, data)), head=head)


def verify_checkpoint(sth: SignedTreeHead, *, trust: TrustList, at_ms: int) -> TreeHead:
    """Check the node's signature with its key as listed (and not revoked at `at_ms`)."""
    head = sth.head
    key = trust.node(head.node_id).verify_key(head.key_id, at_ms)
    if not sig.verify(key, sig.TREE_HEAD, sth.tree_head, sth.signature):
        raise SignatureInvalid(f"tree head of {head.node_id} at size {head.tree_size} "
                               "does not verify")
    return head
