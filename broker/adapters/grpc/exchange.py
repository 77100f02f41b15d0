"""The Exchange service: receives delivery streams from peer nodes over mutual TLS."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import grpc

from broker.adapters.grpc.identity import identity_from_pem
from broker.adapters.grpc.status import REASON_KEY, status_for
from broker.errors import (
    KeyRevoked,
    MalformedMessage,
    PeerError,
    RogatoryError,
    TransportError,
)
from broker.model import SealedEnvelope
from broker.ports import WireChunk
from broker.services.incoming import Incoming
from broker.wire import codec
from broker.wire.gen.rogatory.v1 import envelope_pb2, exchange_pb2, exchange_pb2_grpc


class ExchangeServicer(exchange_pb2_grpc.ExchangeServicer):
    """Thin: identity from the certificate, frames to domain objects, errors to status."""

    def __init__(self, incoming: Incoming, *, per_peer_streams: int = 16) -> None:
        self.incoming = incoming
        self._per_peer = per_peer_streams
        self._slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self._per_peer))

    async def Deliver(
        self,
        request_iterator: AsyncIterator[exchange_pb2.DeliverFrame],
        context: grpc.aio.ServicerContext[exchange_pb2.DeliverFrame, envelope_pb2.Receipt],
    ) -> envelope_pb2.Receipt:
        peer = ""
        try:
            try:
                peer = self._peer(context)
                slot = self._slots[peer]
                if slot.locked():
                    raise TransportError("too many concurrent deliveries", code="QUOTA")
                envelope = await _first_envelope(request_iterator)
            except RogatoryError as e:
                await self.incoming.reject_before_envelope(e, peer_identity=peer)
                raise
            async with slot:
                result = await self.incoming.accept(envelope, _chunks(request_iterator),
                                                    peer_identity=peer)
            return codec.to_receipt_pb(result.receipt)
        except RogatoryError as e:
            code, message, reason = status_for(e)
            if isinstance(e, TransportError) and e.code == "QUOTA":
                code = grpc.StatusCode.RESOURCE_EXHAUSTED
            context.set_trailing_metadata(((REASON_KEY, reason),))
            await context.abort(code, message)
            raise AssertionError("unreachable") from e

    def _peer(self, context: grpc.aio.ServicerContext[object, object]) -> str:
        auth = context.auth_context()
        pems = auth.get("x509_pem_cert") or []
        if len(pems) != 1:
            raise PeerError("no client certificate", code="NO_CLIENT_CERT")
        node_id, serial = identity_from_pem(pems[0])
        if serial in self.incoming.ctx.trust.revoked_cert_serials:
            raise KeyRevoked("client certificate is revoked", code="CERT_REVOKED")
        return node_id


async def _first_envelope(frames: AsyncIterator[exchange_pb2.DeliverFrame]) -> SealedEnvelope:
    try:
        first = await anext(frames)
    except StopAsyncIteration:
        raise MalformedMessage("empty delivery stream") from None
    if first.WhichOneof("frame") != "envelope":
        raise MalformedMessage("a delivery stream starts with its envelope")
    return codec.from_envelope_pb(first.envelope)


async def _chunks(frames: AsyncIterator[exchange_pb2.DeliverFrame]) -> AsyncIterator[WireChunk]:
    async for frame in frames:
        if frame.WhichOneof("frame") != "chunk":
            raise MalformedMessage("a second envelope in one delivery stream")
        c = frame.chunk
        yield c.attachment_index, c.sequence, c.ciphertext

