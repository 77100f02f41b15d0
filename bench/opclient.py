"""An asyncio client of a node's operator API (grpc.aio + the generated stubs).

`nodes/operator_client.py` is synchronous and mints (and signs) a fresh JWT for every
call; for load we want many calls in flight on one event loop, and the token minting
must not be what we measure on the client side. So one token is minted as the
OperatorClient does (same issuer key, claims and roles) and reused until it is two
minutes old (the node accepts tokens that live at most 15 minutes).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization

from broker.adapters.grpc.auth import mint_token
from broker.wire.gen.rogatory.v1 import operator_pb2 as op
from broker.wire.gen.rogatory.v1 import operator_pb2_grpc
from nodes.config import NodeConfig

PIECE = 1 << 20
ROLES = ["drafter", "approver", "contact_point_officer"]
TOKEN_LIFETIME_S = 600
TOKEN_REFRESH_S = 120


class AsyncOperatorClient:
    def __init__(self, config: NodeConfig, *, subject: str = "bench") -> None:
        self.config = config
        self.subject = subject
        self._key = serialization.load_pem_private_key(
            config.operator_issuer_key.read_bytes(), password=None)
        self._channel = grpc.aio.insecure_channel(config.operator_listen, options=[
            ("grpc.max_receive_message_length", 8 << 20),
            ("grpc.max_send_message_length", 8 << 20)])
        self._stub = operator_pb2_grpc.OperatorStub(self._channel)
        self._token = ""
        self._minted = 0.0

    async def close(self) -> None:
        await self._channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        now = time.time()
        if not self._token or now - self._minted > TOKEN_REFRESH_S:
            self._token = mint_token(self._key, issuer=self.config.operator_issuer,
                                     audience=self.config.operator_audience,
                                     subject=self.subject, roles=ROLES, now_s=int(now),
                                     lifetime_s=TOKEN_LIFETIME_S, token_id=uuid.uuid4().hex)
            self._minted = now
        return (("authorization", f"Bearer {self._token}"),)

    async def send(self, *, to: str, message_type: str, payload: bytes,
                   attachment: Path | None = None, timeout_s: float = 120.0) -> op.SendResult:
        metas = []
        if attachment is not None:
            size = attachment.stat().st_size  # noqa: ASYNC240 - one stat per send
            metas.append(op.AttachmentMeta(filename=attachment.name, size=size,
                                           media_type="application/octet-stream"))
        header = op.SendHeader(to=to, message_type=message_type, payload=payload,
                               attachments=metas)

        async def frames() -> AsyncIterator[op.SendFrame]:
            yield op.SendFrame(header=header)
            if attachment is not None:
                # 1 MiB page-cache reads on the loop, as nodes/operator_client.py does
                # on its thread; the bench measures the node, not this read.
                with open(attachment, "rb") as fh:  # noqa: ASYNC230
                    while piece := fh.read(PIECE):
                        yield op.SendFrame(chunk=op.SendChunk(attachment_index=0, data=piece))

        result: op.SendResult = await self._stub.Send(frames(), metadata=self._metadata(),
                                                      timeout=timeout_s)
        return result

    async def receipt(self, message_id: str) -> op.ReceiptDetail:
        result: op.ReceiptDetail = await self._stub.GetReceipt(
            op.MessageRef(message_id=message_id), metadata=self._metadata(), timeout=30)
        return result

    async def list(self, direction: str = "", limit: int = 100) -> op.MessageList:
        result: op.MessageList = await self._stub.ListMessages(
            op.ListRequest(direction=direction, limit=limit), metadata=self._metadata(),
            timeout=30)
        return result

    async def status(self) -> op.NodeStatus:
        result: op.NodeStatus = await self._stub.GetStatus(
            op.StatusRequest(), metadata=self._metadata(), timeout=30)
        return result
