"""A client of one node's local operator API, for the CLI and the demo.

It mints its own short-lived token from the development issuer key that
`federation init` created, so users never handle tokens.
"""

from __future__ import annotations

import getpass
import json
import mimetypes
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import grpc
from cryptography.hazmat.primitives import serialization

from broker.adapters.grpc.auth import mint_token
from broker.adapters.grpc.status import REASON_KEY, OperatorCallFailed
from broker.wire.gen.rogatory.v1 import operator_pb2 as op
from broker.wire.gen.rogatory.v1 import operator_pb2_grpc
from nodes.config import NodeConfig

PIECE = 1 << 20
DEFAULT_ROLES = ["drafter", "approver", "contact_point_officer"]


class OperatorClient:
    def __init__(self, config: NodeConfig, *, subject: str | None = None,
                 roles: list[str] | None = None, timeout_s: float = 600.0,
                 justification: str = "") -> None:
        self.config = config
        self.subject = subject or getpass.getuser()
        self.roles = roles or DEFAULT_ROLES
        self.timeout_s = timeout_s
        self.justification = justification
        self._channel = grpc.insecure_channel(config.operator_listen, options=[
            ("grpc.max_receive_message_length", 8 << 20)])
        self._stub = operator_pb2_grpc.OperatorStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> OperatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _metadata(self) -> list[tuple[str, str]]:
        key = serialization.load_pem_private_key(
            self.config.operator_issuer_key.read_bytes(), password=None)
        token = mint_token(key, issuer=self.config.operator_issuer,
                           audience=self.config.operator_audience, subject=self.subject,
                           roles=self.roles, now_s=int(time.time()), lifetime_s=300,
                           token_id=uuid.uuid4().hex)
        metadata = [("authorization", f"Bearer {token}")]
        if self.justification:
            metadata.append(("rogatory-justification", self.justification))
        return metadata

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata(), timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise _failure(e) from e

    def send(self, *, to: str, message_type: str, payload: bytes, attachments: list[Path],
             template: str = "", ttl_seconds: int = 0, in_reply_to: str = "",
             declarations: dict[str, Any] | None = None, legal_basis: str = "",
             case_id: str = "", case_reference: str = "", follows: Sequence[str] = (),
             draft: bool = False, custody: dict[str, Any] | None = None) -> op.SendResult:
        """Send (or, with `draft`, keep for four-eyes approval) a message; `in_reply_to`
        may name any message of a request (the recipient then defaults to its peer);
        `custody` (acquired_by, acquired_at_ms, method, source, request_reference) is the
        chain of custody of every attachment."""
        template_id, _, version = template.partition("@")
        metas = [op.AttachmentMeta(filename=p.name, size=p.stat().st_size,
                                   media_type=mimetypes.guess_type(p.name)[0]
                                   or "application/octet-stream", **(custody or {}))
                 for p in attachments]
        header = op.SendHeader(to=to, message_type=message_type, template_id=template_id,
                               template_version=version, payload=payload, attachments=metas,
                               ttl_seconds=ttl_seconds,
                               in_reply_to=bytes.fromhex(in_reply_to) if in_reply_to else b"",
                               declarations=json.dumps(declarations or {}).encode(),
                               legal_basis=legal_basis, case_id=case_id,
                               case_reference=case_reference,
                               follows=[bytes.fromhex(f) for f in follows], draft=draft)

        def frames() -> Iterator[op.SendFrame]:
            yield op.SendFrame(header=header)
            for index, path in enumerate(attachments):
                with open(path, "rb") as fh:
                    while piece := fh.read(PIECE):
                        yield op.SendFrame(chunk=op.SendChunk(attachment_index=index,
                                                              data=piece))

        return cast(op.SendResult, self._call(self._stub.Send, frames()))

    def forward(self, message_id: str, *, to: str, declarations: dict[str, Any] | None = None,
                ttl_seconds: int = 0) -> op.SendResult:
        return cast(op.SendResult, self._call(self._stub.Forward, op.ForwardRequest(
            message_id=message_id, to=to, declarations=json.dumps(declarations or {}).encode(),
            ttl_seconds=ttl_seconds)))

    def approve(self, request_id: str) -> op.SendResult:
        return cast(op.SendResult, self._call(self._stub.Approve,
                                              op.RequestRef(request_id=request_id)))

    def record_step(self, request_id: str, event: str) -> op.RequestSummary:
        return cast(op.RequestSummary, self._call(self._stub.RecordStep, op.StepRequest(
            request_id=request_id, event=event)))

    def cases(self, limit: int = 100) -> op.CaseList:
        return cast(op.CaseList, self._call(self._stub.ListCases, op.CaseQuery(limit=limit)))

    def case(self, case_id: str) -> op.CaseDetail:
        return cast(op.CaseDetail, self._call(self._stub.GetCase, op.CaseRef(case_id=case_id)))

    def set_case_reference(self, case_id: str, reference: str) -> op.CaseSummary:
        return cast(op.CaseSummary, self._call(self._stub.UpdateCase, op.CaseUpdate(
            case_id=case_id, reference=reference)))

    def deadlines(self, within_ms: int) -> op.DeadlineList:
        return cast(op.DeadlineList, self._call(self._stub.ListDeadlines,
                                                op.DeadlineQuery(within_ms=within_ms)))

    def export_case(self, case_id: str, out: Path) -> int:
        """Stream the case's bundle into `out` (written whole or not at all)."""
        part = out.with_name(out.name + ".part")
        size = 0
        try:
            with open(part, "wb") as fh:
                for piece in self._stub.ExportCase(op.CaseRef(case_id=case_id),
                                                   metadata=self._metadata(),
                                                   timeout=self.timeout_s):
                    fh.write(piece.data)
                    size += len(piece.data)
            part.replace(out)
        except grpc.RpcError as e:
            part.unlink(missing_ok=True)
            raise _failure(e) from e
        return size

    def list(self, direction: str = "", limit: int = 100) -> op.MessageList:
        return cast(op.MessageList, self._call(self._stub.ListMessages,
                                               op.ListRequest(direction=direction, limit=limit)))

    def show(self, message_id: str) -> op.MessageDetail:
        return cast(op.MessageDetail, self._call(self._stub.GetMessage,
                                                 op.MessageRef(message_id=message_id)))

    def receipt(self, message_id: str) -> op.ReceiptDetail:
        return cast(op.ReceiptDetail, self._call(self._stub.GetReceipt,
                                                 op.MessageRef(message_id=message_id)))

    def status(self) -> op.NodeStatus:
        return cast(op.NodeStatus, self._call(self._stub.GetStatus, op.StatusRequest()))

    def read_attachment(self, message_id: str, index: int) -> Iterator[bytes]:
        try:
            for piece in self._stub.ReadAttachment(
                    op.AttachmentRef(message_id=message_id, index=index),
                    metadata=self._metadata(), timeout=self.timeout_s):
                yield piece.data
        except grpc.RpcError as e:
            raise _failure(e) from e


def _failure(e: grpc.RpcError) -> OperatorCallFailed:
    reason = ""
    if isinstance(e, grpc.Call):
        for key, value in e.trailing_metadata() or ():
            if key == REASON_KEY:
                reason = str(value)
        code = e.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return OperatorCallFailed("the node is not running or not reachable",
                                      code="NODE_UNAVAILABLE")
        return OperatorCallFailed(f"{e.details()}", code=reason or code.name)
    return OperatorCallFailed(str(e), code="OPERATOR_CALL")
