"""Test harness: a real federation in a temporary folder, real nodes, an evil peer.

Nodes run in-process on the test's event loop (real gRPC with mutual TLS, real SQLite);
the e2e tier runs them as separate processes through the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from broker.adapters.grpc.client import CHANNEL_OPTIONS
from broker.adapters.grpc.identity import node_dns_name
from broker.crypto import SigningKey, StreamSealer, new_stream_key, sha256
from broker.envelope import OutgoingAttachment, build_envelope
from broker.lifecycle import REQUEST_KINDS, rules
from broker.model import AttachmentEntry, MessageId, SealedEnvelope
from broker.services.cases import Placement
from broker.services.outgoing import AttachmentSpec, Outgoing, SendRequest
from broker.templating import load_registry
from broker.trust import TrustList
from broker.wire import codec
from broker.wire.gen.rogatory.v1 import exchange_pb2, exchange_pb2_grpc
from nodes.config import NodeConfig, load_config
from nodes.federation import AgencySpec, init_federation, issue_node_cert
from nodes.node import TEMPLATES_DIR, AgencyNode, load_trust

AGENCIES = ("DE-BFJ:central_authority", "US-OIA:central_authority", "NL-24X7:contact_point")
REGISTRY = load_registry(TEMPLATES_DIR)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def skeleton(message_type: str) -> bytes:
    import json
    return json.dumps(REGISTRY.default_for_message_type(message_type).skeleton()).encode()


@dataclass
class Federation:
    root: Path
    configs: dict[str, NodeConfig]

    def trust(self) -> TrustList:
        return load_trust(self.configs["DE-BFJ"], now_ms(), 0)

    def signer(self, node_id: str) -> SigningKey:
        return SigningKey.from_pem(self.configs[node_id].signing_key.read_bytes())

    def tls(self, node_id: str) -> tuple[bytes, bytes]:
        cfg = self.configs[node_id]
        return cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes()

    def ca(self) -> bytes:
        return (self.root / "ca" / "ca.pem").read_bytes()

    def issue_cert(self, node_id: str) -> tuple[bytes, bytes]:
        """A CA-issued certificate for any node id (e.g. one not in the trust list)."""
        ca_key = serialization.load_pem_private_key((self.root / "ca" / "ca.key").read_bytes(),
                                                    password=None)
        ca_cert = x509.load_pem_x509_certificate(self.ca())
        key, cert = issue_node_cert(ca_key, ca_cert, node_id,  # type: ignore[arg-type]
                                    dt.datetime.now(dt.UTC))
        return (key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
                cert.public_bytes(serialization.Encoding.PEM))


def make_federation(root: Path, agencies: Iterable[str] = AGENCIES) -> Federation:
    paths = init_federation(root, [AgencySpec.parse(a) for a in agencies])
    return Federation(root, {k: load_config(v) for k, v in paths.items()})


@contextlib.asynccontextmanager
async def nodes(fed: Federation, *ids: str) -> AsyncIterator[dict[str, AgencyNode]]:
    started: dict[str, AgencyNode] = {}
    try:
        for node_id in ids:
            node = AgencyNode(fed.configs[node_id])
            await node.start()
            started[node_id] = node
        yield started
    finally:
        for node in started.values():
            await node.stop(grace=0.5)


# What an operator declares for a transfer to a third country (LED Art. 35-37).
DECLARED = {"justification": "criminal investigation BfJ-RHS-2026-0412",
            "agreement_ref": "EU-US Umbrella Agreement; DE-US MLA Treaty"}


async def send(node: AgencyNode, to: str, message_type: str = "preservation",
               payload: bytes | None = None, attachments: Sequence[bytes] = (),
               ttl_ms: int = 0, declared: dict[str, object] | None = None,
               in_reply_to: MessageId | None = None,
               placement: Placement | None = None) -> MessageId:
    """Send through the node's own service (as the operator API does) and wake delivery."""
    assert node.ctx is not None

    async def pieces() -> AsyncIterator[tuple[int, bytes]]:
        for i, data in enumerate(attachments):
            for off in range(0, len(data), 1 << 20):
                yield i, data[off:off + (1 << 20)]

    req = SendRequest(
        to=to, message_type=message_type, payload=payload or skeleton(message_type),
        attachments=[AttachmentSpec(f"file-{i}.bin", "application/octet-stream", len(d))
                     for i, d in enumerate(attachments)], ttl_ms=ttl_ms,
        declared=DECLARED if declared is None else declared, in_reply_to=in_reply_to,
        placement=placement or Placement())
    out = Outgoing(node.ctx)
    if message_type in REQUEST_KINDS and rules(REQUEST_KINDS[message_type]).four_eyes:
        # Four-eyes: one person drafts, another approves (and the approval sends it).
        draft = await out.draft(req, pieces(), drafter=DRAFTER)
        sent = await out.approve(draft.request_id, approver=APPROVER)
    else:
        sent = await out.send(req, pieces(), actor="person:test")
    assert node._delivery is not None
    node._delivery.wake()
    return sent.message.envelope_id


@dataclass(frozen=True)
class Person:
    subject: str
    roles: frozenset[str]


DRAFTER = Person("dora.drafter", frozenset({"drafter"}))
APPROVER = Person("albert.approver", frozenset({"approver"}))


async def wait_delivered(node: AgencyNode, message_id: MessageId, timeout_s: float = 30) -> str:
    assert node.ctx is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = await node.ctx.store.outbox_state(message_id)
        if state and state[0] != "pending":
            return state[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} not delivered in {timeout_s}s")


# -- store inspection ----------------------------------------------------------------------

def db_path(cfg: NodeConfig) -> Path:
    return cfg.data_dir / "node.db"


def state_digest(cfg: NodeConfig) -> str:
    """A digest of everything stored except the audit journal (and the blob files)."""
    h = hashlib.sha256()
    with contextlib.closing(sqlite3.connect(db_path(cfg))) as db:
        for table in ("messages", "attachments", "outbox", "receipts", "cases", "requests",
                      "request_messages", "request_steps", "deadlines", "drafts"):
            for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
                h.update(repr(row).encode())
    blobs = cfg.data_dir / "blobs"
    for p in sorted(blobs.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(blobs)).encode())
    return h.hexdigest()


def audit_events(cfg: NodeConfig) -> list[dict[str, object]]:
    with contextlib.closing(sqlite3.connect(db_path(cfg))) as db:
        return [codec.decode_audit_record(bytes(r[0]))
                for r in db.execute("SELECT record FROM audit ORDER BY seq")]


# -- the evil peer ---------------------------------------------------------------------------

@dataclass
class Crafted:
    envelope: SealedEnvelope
    chunks: list[tuple[int, int, bytes]]


def craft(fed: Federation, *, sender: str, recipient: str, message_type: str = "preservation",
          payload: bytes | None = None, attachments: Sequence[bytes] = (),
          signer: SigningKey | None = None, created_ms: int | None = None,
          ttl_ms: int = 3_600_000, envelope_id: MessageId | None = None,
          chunk_size: int = 1 << 16, template: tuple[str, str] | None = None,
          in_reply_to: MessageId | None = None) -> Crafted:
    """A well-formed envelope (and sealed chunks) that an attacker may then mutate."""
    trust = fed.trust()
    tmpl = REGISTRY.default_for_message_type(message_type)
    tid, tver = template or (tmpl.id, tmpl.version)
    eid = envelope_id or MessageId.new()
    prepared, chunks = [], []
    for index, data in enumerate(attachments):
        key = new_stream_key()
        sealer = StreamSealer(key, envelope_id=eid.raw, index=index, size=len(data),
                              chunk_size=chunk_size)
        pieces = [data[o:o + chunk_size] for o in range(0, len(data), chunk_size)] or [b""]
        chunks += [(index, i, sealer.seal(p)) for i, p in enumerate(pieces)]
        prepared.append(OutgoingAttachment(AttachmentEntry(index, len(data), sha256(data),
                                                           chunk_size, "application/pdf"),
                                           key, f"exhibit-{index}.pdf"))
    env, _ = build_envelope(
        signer=signer or fed.signer(sender), trust=trust, sender=sender, recipient=recipient,
        message_type=message_type, template_id=tid, template_version=tver,
        payload=payload or skeleton(message_type), attachments=prepared,
        now_ms=created_ms if created_ms is not None else now_ms(), ttl_ms=ttl_ms,
        envelope_id=eid, in_reply_to=in_reply_to)
    return Crafted(env, chunks)


async def evil_deliver(fed: Federation, target: AgencyNode, envelope: SealedEnvelope | bytes,
                       chunks: Sequence[tuple[int, int, bytes]] = (), *,
                       as_node: str | None = None,
                       tls: tuple[bytes, bytes] | None = None,
                       ca: bytes | None = None) -> tuple[grpc.StatusCode, str, bytes]:
    """Deliver raw frames over mTLS with some node's certificate; (status, reason, reply)."""
    key, cert = tls or fed.tls(as_node or "DE-BFJ")
    creds = grpc.ssl_channel_credentials(root_certificates=ca or fed.ca(), private_key=key,
                                         certificate_chain=cert)
    endpoint = f"127.0.0.1:{target.exchange_port}"
    options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override",
                                  node_dns_name(target.config.node_id))]
    async with grpc.aio.secure_channel(endpoint, creds, options=options) as channel:
        stub = exchange_pb2_grpc.ExchangeStub(channel)

        async def frames() -> AsyncIterator[exchange_pb2.DeliverFrame]:
            if isinstance(envelope, bytes):
                yield exchange_pb2.DeliverFrame.FromString(envelope)
            else:
                yield exchange_pb2.DeliverFrame(envelope=codec.to_envelope_pb(envelope))
            for index, counter, data in chunks:
                yield exchange_pb2.DeliverFrame(chunk=exchange_pb2.Chunk(
                    attachment_index=index, sequence=counter, ciphertext=data))

        try:
            reply = await stub.Deliver(frames(), timeout=20)
        except grpc.aio.AioRpcError as e:
            reason = dict(e.trailing_metadata() or ()).get("rogatory-reason", "")
            return e.code(), str(reason), b""
        return grpc.StatusCode.OK, "", reply.SerializeToString()


def with_audit(fed: Federation, **settings: object) -> Federation:
    """Give every node of `fed` these audit settings (e.g. a Kafka bootstrap and topic)."""
    import dataclasses

    from broker.config import AuditPolicy
    for node_id, cfg in fed.configs.items():
        fed.configs[node_id] = dataclasses.replace(
            cfg, audit=dataclasses.replace(AuditPolicy(), **settings))  # type: ignore[arg-type]
    return fed
