"""The small interfaces services depend on. Adapters implement them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from broker.model import Receipt, SealedEnvelope

# Clock: services take `now_ms` from one of these; only the edge reads the real clock.
Clock = Callable[[], int]


class OutgoingChunk(Protocol):
    attachment_index: int
    sequence: int
    ciphertext: bytes


class Transport(Protocol):
    """Delivers one envelope and its sealed chunks to a peer node; returns its receipt."""

    async def deliver(
        self,
        recipient: str,
        envelope: SealedEnvelope,
        chunks: Callable[[], AsyncIterator[tuple[int, int, bytes]]],
        *,
        timeout_s: float,
    ) -> Receipt: ...
