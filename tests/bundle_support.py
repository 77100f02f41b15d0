"""A real exchange exported as case bundles on both sides, for the bundle tests.

DE-BFJ sends US-OIA a preservation request with two evidence files through its own
service, and an envelope carrying a chain of custody (composed as the sender's own code
would, delivered over mTLS); each node then exports its copies of both messages.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.bundle import CaseInfo, RequestInfo
from broker.crypto import StreamSealer, new_stream_key, sha256
from broker.envelope import OutgoingAttachment, compose_envelope
from broker.model import AttachmentEntry, EvidenceCustody, MessageId
from broker.model.stored import StoredMessage
from broker.services.export import ExportSummary, export_case
from nodes.node import AgencyNode
from tests.harness import (
    REGISTRY,
    Federation,
    evil_deliver,
    make_federation,
    nodes,
    now_ms,
    send,
    skeleton,
    wait_delivered,
)

SENDER, RECEIVER = "DE-BFJ", "US-OIA"
JUSTIFICATION = "court order LG Berlin 2026-17"
EVIDENCE = (os.urandom(3 * (1 << 20) + 17), b"small exhibit\n")


@dataclass
class Exported:
    fed: Federation
    bundles: dict[str, Path]            # node id -> bundle
    summaries: dict[str, ExportSummary]
    sent: MessageId                     # through the sender's service, with evidence
    custody: MessageId                  # composed with a chain of custody


def case_info(node_id: str, request: MessageId) -> CaseInfo:
    side = "requesting" if node_id == SENDER else "executing"
    return CaseInfo(
        case_id=f"C-{node_id.lower()}-1", reference=f"{node_id} 4711/26",
        requests=(RequestInfo(request.raw.hex(), "preservation", side, "sent",
                              RECEIVER if node_id == SENDER else SENDER,
                              ({"at_ms": 1, "event": "send", "source": "draft",
                                "target": "sent", "actor": "person:test"},)),))


async def _custody_envelope(fed: Federation, target: AgencyNode) -> MessageId:
    """An envelope with one evidence file and its chain of custody, delivered over mTLS."""
    data, eid, key = b"forensic image bytes " * 5000, MessageId.new(), new_stream_key()
    sealer = StreamSealer(key, envelope_id=eid.raw, index=0, size=len(data),
                          chunk_size=1 << 16)
    pieces = [data[o:o + (1 << 16)] for o in range(0, len(data), 1 << 16)]
    chunks = [(0, i, sealer.seal(p)) for i, p in enumerate(pieces)]
    tmpl = REGISTRY.default_for_message_type("preservation")
    built = compose_envelope(
        signer=fed.signer(SENDER), trust=fed.trust(), sender=SENDER, recipient=RECEIVER,
        message_type="preservation", template_id=tmpl.id, template_version=tmpl.version,
        payload=skeleton("preservation"), now_ms=now_ms(), ttl_ms=3_600_000, envelope_id=eid,
        attachments=[OutgoingAttachment(AttachmentEntry(0, len(data), sha256(data), 1 << 16,
                                                        "application/octet-stream"),
                                        key, "../../image 1.E01")],
        case_reference="BfJ 4711/26", custody=[EvidenceCustody(
            0, acquired_by="LKA Berlin, Dez. 7", acquired_at_ms=1_760_000_000_000,
            method="forensic image", source="seized laptop", request_id=eid,
            request_reference="RHS-2026-0412")])
    status, reason, _ = await evil_deliver(fed, target, built.sealed, chunks, as_node=SENDER)
    assert status.name == "OK", reason
    return eid


async def messages_of(node: AgencyNode) -> list[StoredMessage]:
    assert node.ctx is not None
    listed = await node.ctx.store.list_messages(None, 100)
    return [await node.ctx.store.get_message(m.envelope_id) for m in listed]


async def _exchange_and_export(fed: Federation, out: Path) -> Exported:
    async with nodes(fed, SENDER, RECEIVER) as n:
        sent = await send(n[SENDER], RECEIVER, attachments=EVIDENCE)
        assert await wait_delivered(n[SENDER], sent) == "delivered"
        custody = await _custody_envelope(fed, n[RECEIVER])
        bundles, summaries = {}, {}
        for node_id in (SENDER, RECEIVER):
            node = n[node_id]
            assert node.ctx is not None
            path = out / f"{node_id}.zip"
            summaries[node_id] = await export_case(
                node.ctx, case_info(node_id, sent), await messages_of(node), path,
                actor="person:clerk", justification=JUSTIFICATION)
            bundles[node_id] = path
    return Exported(fed, bundles, summaries, sent, custody)


def exported(root: Path) -> Exported:
    return asyncio.run(_exchange_and_export(make_federation(root / "fed"), root))


# -- rewriting a bundle -------------------------------------------------------------------

Mutation = Callable[[str, bytes], "tuple[str, bytes] | None"]


def rewrite(src: Path, dst: Path, mutate: Mutation, *, extra: dict[str, bytes] | None = None,
            fix_manifest: bool = False) -> Path:
    """Copy a bundle entry by entry through `mutate` (None drops the entry); with
    `fix_manifest` the manifest is recomputed so only the signed checks remain."""
    with zipfile.ZipFile(src) as zin:
        items = [(i.filename, zin.read(i)) for i in zin.infolist()]
    out: list[tuple[str, bytes]] = []
    for name, data in items:
        changed = mutate(name, data)
        if changed is not None:
            out.append(changed)
    out += list((extra or {}).items())
    if fix_manifest:
        manifest = json.loads(dict(out)["manifest.json"])
        roles = {f["path"]: f["role"] for f in manifest["files"]}
        manifest["files"] = [{"path": p, "role": roles.get(p, "evidence"), "size": len(d),
                              "sha256": sha256(d).hex()}
                             for p, d in sorted(out) if p != "manifest.json"]
        out = [(p, json.dumps(manifest).encode() if p == "manifest.json" else d)
               for p, d in out]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zout:
        for name, data in out:
            zout.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    dst.write_bytes(buf.getvalue())
    return dst


def flip(data: bytes, at: int | None = None) -> bytes:
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return z.namelist()
