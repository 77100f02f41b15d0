"""Export a case as a court-ready bundle (format: `broker.bundle.layout`).

Each message's export is a local access: a policy decision taken with the operator's
justification and audited (`message.exported`) before any content is read; one refusal
stops the export before anything is written. Evidence is decrypted chunk by chunk
straight into the zip (STREAM, SHA-256 re-checked at the end), so memory stays bounded
whatever its size. case.json is then bound to the bundle by a `case.exported` record
naming its SHA-256, the node signs a tree head over its log, and the bundle carries every
record about these messages (and that one) with its inclusion proof.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from broker.audit import AuditEvent, EventType
from broker.bundle import (
    BundleWriter,
    CaseInfo,
    ExportedMessage,
    RequestInfo,
    inclusion_proofs,
    layout,
)
from broker.errors import NotFound, PolicyDenied, StateError
from broker.model import Body, MessageId
from broker.model.stored import StoredMessage
from broker.services.context import NodeContext, log
from broker.services.mailbox import Mailbox
from broker.services.policy_gate import Decided, audited
from broker.transparency import hash_leaf, verify_inclusion
from broker.wire import codec

AUDIT_PAGE = 65536    # records per store call: other transactions interleave with a scan


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    case_id: str
    messages: int
    evidence_files: int
    evidence_bytes: int
    audit_records: int
    tree_size: int
    case_sha256: str          # named by the signed case.exported audit record
    manifest_sha256: str


async def export_case(ctx: NodeContext, case: CaseInfo, messages: Sequence[StoredMessage],
                      out: Path, *, actor: str, justification: str,
                      trust_list: bytes | None = None) -> ExportSummary:
    """Write the bundle of `case` with `messages` (stored messages of this node) to `out`.

    `trust_list` is the signed trust-list file (default: the bytes this node loaded).
    Raises PolicyDenied without a justification or when policy refuses access to one of
    the messages, StateError when a message cannot be exported verifiably.
    """
    if not justification.strip():
        raise PolicyDenied("exporting a case needs a justification (LED Art. 25)",
                           code="JUSTIFICATION_REQUIRED")
    msgs = await _complete(ctx, messages)
    exported_at = ctx.clock()
    case_bytes = layout.case_json(
        case, [ExportedMessage(m.envelope_id.raw.hex(), m.direction, m.header_sha256.hex())
               for m in msgs],
        node_id=ctx.node_id, exported_at_ms=exported_at, actor=actor,
        justification=justification)
    case_sha = hashlib.sha256(case_bytes).digest()
    mailbox = Mailbox(ctx)
    decisions = [await mailbox.access(m, ctx.at_rest.open("payload", m.envelope_id.raw,
                                                          m.payload),
                                      actor=actor, justification=justification)
                 for m in msgs]
    await ctx.store.audit(*(_exported(m, d, case, actor, justification)
                            for m, d in zip(msgs, decisions, strict=True)))
    tmp = out.with_name(out.name + ".part")
    try:
        with BundleWriter(tmp) as writer:
            files, size = 0, 0
            for m in msgs:
                n, b = await _write_message(ctx, writer, mailbox, m)
                files, size = files + n, size + b
            writer.add(layout.CASE, layout.ROLE_CASE, case_bytes)
            writer.add(layout.TRUST_LIST, layout.ROLE_TRUST_LIST, trust_list or ctx.trust.raw)
            await ctx.store.audit(AuditEvent(
                EventType.CASE_EXPORTED, actor=actor, case_id=case.case_id,
                body_sha256=case_sha, justification=justification))
            records, tree_size = await _write_audit(ctx, writer, msgs, case.case_id, case_sha)
            manifest_sha = await asyncio.to_thread(
                writer.finish, node_id=ctx.node_id, case_id=case.case_id,
                exported_at_ms=exported_at)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("case.exported", case_id=case.case_id, messages=len(msgs), evidence_files=files)
    return ExportSummary(out, case.case_id, len(msgs), files, size, records, tree_size,
                         case_sha.hex(), manifest_sha.hex())


def _exported(m: StoredMessage, decision: Decided, case: CaseInfo, actor: str,
              justification: str) -> AuditEvent:
    return AuditEvent(
        EventType.MESSAGE_EXPORTED, actor=actor, envelope_id=m.envelope_id, peer=m.peer,
        message_type=m.message_type, template_id=m.template_id,
        template_version=m.template_version, header_sha256=m.header_sha256,
        attachment_sha256=tuple(a.sha256 for a in m.attachments), case_id=case.case_id,
        justification=justification, **audited(decision.decision))


async def _complete(ctx: NodeContext, messages: Sequence[StoredMessage]
                    ) -> list[StoredMessage]:
    """Each message once, with its attachments and its stored Body bytes."""
    out: dict[MessageId, StoredMessage] = {}
    for m in messages:
        if m.envelope_id in out:
            raise StateError(f"message {m.envelope_id} is listed twice", code="EXPORT_DUPLICATE")
        full = m
        declared = len(codec.decode_header(m.header).attachments)
        if len(m.attachments) != declared:
            full = await ctx.store.get_message(m.envelope_id)   # listings omit attachments
            if full.direction != m.direction or len(full.attachments) != declared:
                raise StateError(f"message {m.envelope_id} lacks stored attachments",
                                 code="EXPORT_INCOMPLETE")
        if not full.body:
            raise StateError(f"message {m.envelope_id} was stored without its Body bytes and "
                             "cannot be exported verifiably", code="EXPORT_INCOMPLETE")
        out[m.envelope_id] = full
    return sorted(out.values(), key=lambda m: (m.created_at_ms, m.envelope_id.raw))


async def _write_message(ctx: NodeContext, w: BundleWriter, mailbox: Mailbox,
                         m: StoredMessage) -> tuple[int, int]:
    """A message's files; returns (evidence files, evidence bytes)."""
    eid = m.envelope_id.raw.hex()
    body_bytes = ctx.at_rest.open("body", m.envelope_id.raw, m.body)
    header, body = codec.decode_header(m.header), codec.decode_body(body_bytes)
    receipt = await _receipt(ctx, m)
    for name, data in (("header.bin", m.header), ("header.sig", m.signature),
                       ("body.bin", body_bytes), ("payload.json", body.payload),
                       ("custody.json", layout.custody_json(body)),
                       ("message.json", layout.message_json(
                           header, m.header_sha256, body, node_id=ctx.node_id,
                           has_receipt=receipt is not None)),
                       ("receipt.bin", receipt)):
        if data is not None:
            w.add(layout.message_file(eid, name), layout.MESSAGE_FILES[name], data)
    return await _write_evidence(w, mailbox, m, body), sum(a.size for a in m.attachments)


async def _write_evidence(w: BundleWriter, mailbox: Mailbox, m: StoredMessage,
                          body: Body) -> int:
    names = {k.index: k.filename for k in body.attachment_keys}
    for a in m.attachments:
        sink = w.stream(layout.evidence_path(m.envelope_id.raw.hex(), a.index, names[a.index]),
                        layout.ROLE_EVIDENCE, a.size)
        async for chunk in mailbox.stored_plaintext(m, a):
            await asyncio.to_thread(sink.write, chunk)
        if sink.close() != a.sha256:
            raise StateError("stored attachment does not match its digest", code="STORE_CORRUPT")
    return len(m.attachments)


async def _receipt(ctx: NodeContext, m: StoredMessage) -> bytes | None:
    try:
        direction, raw, _status, _at = await ctx.store.get_receipt(m.envelope_id)
    except NotFound:
        return None
    return raw if direction == m.direction else None


async def _write_audit(ctx: NodeContext, w: BundleWriter, msgs: Sequence[StoredMessage],
                       case_id: str, case_sha: bytes) -> tuple[int, int]:
    """Sign a tree head now, then add the records about `msgs` (and the case.exported
    record naming `case_sha`) with their inclusion proofs; (records, tree size)."""
    signed = await ctx.store.checkpoint()
    if not signed:
        raise StateError("this node's audit journal signs no tree heads", code="NO_CHECKPOINT")
    head = codec.decode_signed_tree_head(signed).head
    ids = {m.envelope_id.raw for m in msgs}
    leaves: list[bytes] = []
    records: list[tuple[int, bytes]] = []
    for first in range(1, head.tree_size + 1, AUDIT_PAGE):
        last = min(head.tree_size, first + AUDIT_PAGE - 1)
        leaves += await ctx.store.audit_leaf_hashes(first, last)
        for seq, data in await ctx.store.audit_records_containing([*ids, case_sha], first,
                                                                  last):
            r = codec.decode_audit(data)
            if r.envelope_id in ids or (r.event_type == EventType.CASE_EXPORTED
                                        and r.case_id == case_id and r.body_sha256 == case_sha):
                records.append((seq, data))
    if len(leaves) != head.tree_size:
        raise StateError("the audit journal is shorter than its tree head", code="STORE_CORRUPT")
    proofs = await asyncio.to_thread(inclusion_proofs, leaves, [s - 1 for s, _ in records])
    w.add(layout.TREE_HEAD, layout.ROLE_TREE_HEAD, signed)
    for seq, data in records:
        proof = proofs[seq - 1]
        verify_inclusion(hash_leaf(data), seq - 1, head.tree_size, proof, head.root_hash)
        w.add(layout.audit_record_path(seq), layout.ROLE_AUDIT_RECORD, data)
        w.add(layout.audit_proof_path(seq), layout.ROLE_AUDIT_PROOF,
              layout.proof_json(seq, head.tree_size, proof))
    return len(records), head.tree_size


__all__ = ["CaseInfo", "ExportSummary", "RequestInfo", "export_case"]
