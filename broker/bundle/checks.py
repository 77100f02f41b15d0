"""The bundle's content checks, over bytes already read from the zip. Pure.

Every signed artefact is checked on its exact bytes: the trust list against its own root
keys, each header against its sender's key as listed (valid at the message's creation),
each Body against the header's digest, each receipt against the receiver's key, each
audit record against the node-signed tree head through its inclusion proof, and case.json
against the node's signed `case.exported` record. Derived files (payload, custody,
summary) must be exactly what the signed bytes say.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.audit.events import EventType
from broker.bundle import layout
from broker.bundle.report import Finding, RootKey
from broker.crypto import VerifyKey
from broker.crypto import signing as sig
from broker.errors import RogatoryError
from broker.model import Body, EnvelopeHeader
from broker.model.audit_record import AuditRecord
from broker.model.checkpoint import TreeHead
from broker.receipts import verify_receipt
from broker.transparency import verify_checkpoint
from broker.transparency.merkle import ProofError, hash_leaf, verify_inclusion
from broker.trust import PAYLOAD_TYPE, TrustList, admin_set_of, load_trust_list, pae
from broker.wire import codec

CASE_EXPORTED = str(EventType.CASE_EXPORTED)
MESSAGE_EXPORTED = str(EventType.MESSAGE_EXPORTED)
_ARRIVAL = {"out": str(EventType.ENVELOPE_SENT), "in": str(EventType.ENVELOPE_RECEIVED)}


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass
class Checks:
    """Run the content checks over `files` (small files, in full) and `digests` (size and
    SHA-256 of every file read, evidence included); findings accumulate."""

    files: Mapping[str, bytes]
    digests: Mapping[str, tuple[int, bytes]]
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trust: TrustList | None = None
    roots: tuple[RootKey, ...] = ()
    head: TreeHead | None = None
    records: dict[str, AuditRecord] = field(default_factory=dict)   # by path
    evidence_files: int = 0
    evidence_bytes: int = 0

    def find(self, path: str, check: str, detail: str) -> None:
        self.findings.append(Finding(path, check, detail))

    def file(self, path: str, *, required: bool = True) -> bytes | None:
        data = self.files.get(path)
        if data is None and required and path not in self.digests:
            self.find(path, "FILE_MISSING", "the bundle format requires this file")
        return data

    # -- the trust list ---------------------------------------------------------------

    def trust_list(self, expect_root: str | None) -> None:
        data = self.file(layout.TRUST_LIST)
        if data is None:
            return
        try:
            wrapper = json.loads(data)
            payload = base64.b64decode(wrapper["payload"], validate=True)
            admins = admin_set_of(json.loads(payload))
            signatures = [(str(s["keyid"]), base64.b64decode(s["sig"], validate=True))
                          for s in wrapper["signatures"]]
        except (ValueError, KeyError, TypeError, binascii.Error, RogatoryError) as e:
            self.find(layout.TRUST_LIST, "TRUST_LIST_INVALID", f"does not parse ({e})")
            return
        message = pae(PAYLOAD_TYPE, payload)
        signed = {kid for kid, s in signatures
                  if kid in admins.keys and sig.verify(admins.keys[kid], sig.TRUST_LIST,
                                                       message, s)}
        self.roots = tuple(RootKey(kid, hashlib.sha256(k.raw).hexdigest(), kid in signed)
                           for kid, k in sorted(admins.keys.items()))
        try:
            self.trust = load_trust_list(data, trusted_admins=admins, now_ms=0)
        except RogatoryError as e:
            self.find(layout.TRUST_LIST, "TRUST_LIST_INVALID", f"{e.message} [{e.code}]")
            return
        if expect_root is not None and not any(
                _matches(expect_root, kid, admins.keys[kid]) for kid in signed):
            self.find(layout.TRUST_LIST, "ROOT_NOT_PINNED",
                      f"no valid signature by the expected root key {expect_root}")

    # -- the audit log ----------------------------------------------------------------

    def tree_head(self, node_id: str) -> None:
        data = self.file(layout.TREE_HEAD)
        if data is None or self.trust is None:
            return
        try:
            sth = codec.decode_signed_tree_head(data)
            self.head = verify_checkpoint(sth, trust=self.trust, at_ms=sth.head.time_ms)
        except RogatoryError as e:
            self.find(layout.TREE_HEAD, "TREE_HEAD_INVALID", f"{e.message} [{e.code}]")
            return
        if self.head.node_id != node_id:
            self.find(layout.TREE_HEAD, "TREE_HEAD_INVALID",
                      f"signed by {self.head.node_id}, not the exporting node {node_id}")

    def audit_records(self) -> None:
        for path in sorted(self.digests):
            seq = layout.audit_sequence_of(path)
            if seq is None:
                continue
            if path.endswith(".record"):
                self._audit_record(path, seq)
            elif layout.audit_record_path(seq) not in self.digests:
                self.find(path, "UNEXPECTED_FILE", "a proof without its audit record")

    def _audit_record(self, path: str, seq: int) -> None:
        data = self.file(path)
        proof_path = layout.audit_proof_path(seq)
        proof_data = self.file(proof_path)
        if data is None or self.head is None:
            return
        try:
            record = codec.decode_audit(data)
        except RogatoryError as e:
            self.find(path, "AUDIT_RECORD_INVALID", f"{e.message} [{e.code}]")
            return
        if record.sequence != seq or record.node_id != self.head.node_id:
            self.find(path, "AUDIT_RECORD_INVALID",
                      f"is record {record.sequence} of {record.node_id}, not {seq} of "
                      f"{self.head.node_id}")
            return
        if proof_data is None:
            return
        try:
            proof = _proof(proof_data, seq, self.head.tree_size)
            verify_inclusion(hash_leaf(data), seq - 1, self.head.tree_size, proof,
                             self.head.root_hash)
        except (ProofError, ValueError, KeyError, TypeError) as e:
            self.find(path, "AUDIT_PROOF_INVALID", f"not proven in {layout.TREE_HEAD} by "
                      f"{proof_path} ({e}): the record or its proof was altered")
            return
        self.records[path] = record

    # -- case.json --------------------------------------------------------------------

    def case_bound(self, case_id: str) -> None:
        """case.json is what the node's signed `case.exported` record names."""
        data = self.files.get(layout.CASE)
        if data is None:
            return
        digest = _sha256(data)
        if not any(r.event_type == CASE_EXPORTED and r.case_id == case_id
                   and r.body_sha256 == digest for r in self.records.values()):
            self.find(layout.CASE, "CASE_NOT_SIGNED", "no proven case.exported audit record "
                      "of the exporting node names this case.json")

    # -- messages ---------------------------------------------------------------------

    def message(self, m: layout.ExportedMessage, *, node_id: str, case_id: str) -> None:
        eid = m.envelope_id
        path = layout.message_file(eid, "header.bin")
        header_bytes = self.file(path)
        signature = self.file(layout.message_file(eid, "header.sig"))
        if header_bytes is None or signature is None or self.trust is None:
            return
        header = self._header(m, header_bytes, signature, node_id)
        if header is None:
            return
        header_sha256 = _sha256(header_bytes)
        body = self._body(eid, header)
        expected = {layout.message_file(eid, n) for n in layout.MESSAGE_FILES}
        if body is not None:
            self._derived(eid, header, header_sha256, body, node_id)
            expected |= self._evidence(eid, header, body)
        else:   # the evidence cannot be located without the Body: its finding says why
            expected |= {p for p in self.digests if layout.message_of(p) == eid}
        self._receipt(eid, header, header_sha256)
        self._audit_about(eid, m.direction, header_sha256, case_id)
        for p in sorted(p for p in self.digests if layout.message_of(p) == eid):
            if p not in expected:
                self.find(p, "UNEXPECTED_FILE", "not a file of this message")

    def _header(self, m: layout.ExportedMessage, data: bytes, signature: bytes,
                node_id: str) -> EnvelopeHeader | None:
        assert self.trust is not None
        path = layout.message_file(m.envelope_id, "header.bin")
        try:
            header = codec.decode_header(data)
            key = self.trust.node(header.sender).verify_key(header.sender_key_id,
                                                            header.created_at_ms)
        except RogatoryError as e:
            self.find(path, "HEADER_INVALID", f"{e.message} [{e.code}]")
            return None
        if not sig.verify(key, sig.ENVELOPE_HEADER, data, signature):
            self.find(path, "SIGNATURE_INVALID", f"the signature in "
                      f"{layout.message_file(m.envelope_id, 'header.sig')} by {header.sender} "
                      f"({header.sender_key_id}) does not verify")
            return None
        if header.envelope_id.raw.hex() != m.envelope_id:
            self.find(path, "HEADER_INVALID", "names another envelope id than its folder")
            return None
        if _sha256(data).hex() != m.header_sha256:
            self.find(path, "HEADER_INVALID", "its SHA-256 is not the one case.json lists")
        direction = ("out" if header.sender == node_id else
                     "in" if header.recipient == node_id else "")
        if direction != m.direction:
            self.find(path, "HEADER_INVALID",
                      f"case.json says direction {m.direction!r}, the header {direction!r}")
        return header

    def _body(self, eid: str, header: EnvelopeHeader) -> Body | None:
        path = layout.message_file(eid, "body.bin")
        data = self.file(path)
        if data is None:
            return None
        if len(data) != header.body_size or _sha256(data) != header.body_sha256:
            self.find(path, "BODY_DIGEST", "size or SHA-256 differs from the signed header")
            return None
        try:
            body = codec.decode_body(data)
        except RogatoryError as e:
            self.find(path, "BODY_INVALID", f"{e.message} [{e.code}]")
            return None
        if (body.sender, body.recipient, body.envelope_id) != (
                header.sender, header.recipient, header.envelope_id):
            self.find(path, "BODY_BINDING", "names another sender, recipient or envelope")
        if sorted(k.index for k in body.attachment_keys) != [a.index for a in
                                                             header.attachments]:
            self.find(path, "BODY_BINDING", "attachments differ from the signed manifest")
            return None
        return body

    def _derived(self, eid: str, header: EnvelopeHeader, header_sha256: bytes, body: Body,
                 node_id: str) -> None:
        receipt = layout.message_file(eid, "receipt.bin")
        has_receipt = receipt in self.digests
        for name, want in (
                ("payload.json", body.payload),
                ("custody.json", layout.custody_json(body)),
                ("message.json", layout.message_json(header, header_sha256, body,
                                                     node_id=node_id,
                                                     has_receipt=has_receipt))):
            path = layout.message_file(eid, name)
            data = self.file(path)
            if data is not None and data != want:
                self.find(path, "CONTENT_MISMATCH", "differs from what the signed Body and "
                          "header say")

    def _evidence(self, eid: str, header: EnvelopeHeader, body: Body) -> set[str]:
        names = {k.index: k.filename for k in body.attachment_keys}
        paths = set()
        for a in header.attachments:
            path = layout.evidence_path(eid, a.index, names[a.index])
            paths.add(path)
            got = self.digests.get(path)
            if got is None:
                self.find(path, "FILE_MISSING", f"attachment {a.index} of the signed header")
            elif got != (a.size, a.sha256):
                self.find(path, "EVIDENCE_DIGEST", f"size or SHA-256 differs from the signed "
                          f"manifest entry (expected {a.size} bytes, sha256 {a.sha256.hex()})")
            else:
                self.evidence_files += 1
                self.evidence_bytes += a.size
        return paths

    def _receipt(self, eid: str, header: EnvelopeHeader, header_sha256: bytes) -> None:
        path = layout.message_file(eid, "receipt.bin")
        data = self.file(path, required=False)
        if data is None or self.trust is None:
            return
        try:
            receipt = codec.decode_receipt(data)
            at = codec.decode_receipt_body(receipt.body).received_at_ms
            body = verify_receipt(receipt, trust=self.trust, receiver=header.recipient,
                                  sender=header.sender, envelope_id=header.envelope_id,
                                  header_sha256=header_sha256, now_ms=at)
        except RogatoryError as e:
            self.find(path, "RECEIPT_INVALID", f"{e.message} [{e.code}]")
            return
        if body.body_sha256 != header.body_sha256 or body.attachment_sha256 != tuple(
                a.sha256 for a in header.attachments):
            self.find(path, "RECEIPT_INVALID", "names other body or attachment digests")
        if body.receiver_tree_head:
            try:
                sth = codec.decode_signed_tree_head(body.receiver_tree_head)
                verify_checkpoint(sth, trust=self.trust, at_ms=sth.head.time_ms)
            except RogatoryError as e:
                self.find(path, "RECEIPT_INVALID",
                          f"the receiver's tree head does not verify [{e.code}]")

    def _audit_about(self, eid: str, direction: str, header_sha256: bytes,
                     case_id: str) -> None:
        about = {p: r for p, r in self.records.items() if r.envelope_id.hex() == eid}
        for path, r in about.items():
            if r.header_sha256 and r.header_sha256 != header_sha256:
                self.find(path, "AUDIT_MISMATCH",
                          f"names another header SHA-256 for envelope {eid}")
        kinds = {r.event_type for r in about.values()}
        where = layout.message_dir(eid) + "/"
        if self.head is None:
            return
        if _ARRIVAL.get(direction) not in kinds:
            self.find(where, "AUDIT_RECORD_MISSING", f"no proven {_ARRIVAL.get(direction)} "
                      "record of this message")
        if not any(r.event_type == MESSAGE_EXPORTED and r.case_id == case_id
                   for r in about.values()):
            self.find(where, "AUDIT_RECORD_MISSING", "no proven message.exported record "
                      "for this case")
        receipted = "envelope.received" if direction == "in" else "envelope.delivered"
        receipt = layout.message_file(eid, "receipt.bin")
        if receipted in kinds and receipt not in self.digests:
            self.find(receipt, "FILE_MISSING", f"the audit log records {receipted}")
        elif receipt not in self.digests:
            self.notes.append(f"{eid}: no receipt (not delivered when exported)")


def _matches(expected: str, key_id: str, key: VerifyKey) -> bool:
    e = expected.strip().lower().removeprefix("sha256:")
    raw_b64 = base64.b64encode(key.raw).decode()
    return e in (key_id.lower(), hashlib.sha256(key.raw).hexdigest()) or \
        expected.strip() == raw_b64


def _proof(data: bytes, seq: int, tree_size: int) -> list[bytes]:
    doc: Any = json.loads(data)
    if doc["sequence"] != seq or doc["leaf_index"] != seq - 1 or doc["tree_size"] != tree_size:
        raise ValueError("proof is for another leaf or tree size")
    return [bytes.fromhex(h) for h in doc["hashes"]]
