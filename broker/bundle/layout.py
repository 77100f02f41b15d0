"""The court-ready case bundle, format version 1: every file, its path and its role.

A bundle is one zip file (entries stored, not compressed) that a court or a defence
expert verifies offline with ``rogatory verify-bundle``::

    manifest.json                          every other file: path, role, size, SHA-256
    case.json                              the case as the exporting node holds it, and
                                           the list of exported messages
    trust-list.json                        the federation's signed trust list, verbatim
    messages/<envelope id>/header.bin      exact signed EnvelopeHeader bytes
    messages/<envelope id>/header.sig      the sender's Ed25519 signature of header.bin
    messages/<envelope id>/body.bin        exact plaintext Body bytes (digest in header)
    messages/<envelope id>/payload.json    the Body's payload, verbatim
    messages/<envelope id>/custody.json    the Body's chain-of-custody records
    messages/<envelope id>/message.json    a readable summary of header and Body
    messages/<envelope id>/receipt.bin     the receiver's signed receipt, if any
    messages/<envelope id>/evidence/<NNN>-<name>   attachment NNN's plaintext
    audit/tree-head.bin                    the exporting node's signed tree head
    audit/<sequence>.record                an audit record about these messages
    audit/<sequence>.proof.json            its inclusion proof in tree-head.bin

What vouches for each file: header.bin by the sender's signature (key in the trust list,
valid at the message's creation); body.bin by the digest in the header; payload.json,
custody.json and message.json by being exactly what body.bin and header.bin say; each
evidence file by the size and SHA-256 in the signed header; receipt.bin by the
receiver's signature; each audit record by its inclusion proof in the node-signed tree
head; case.json by the node's signed ``case.exported`` audit record naming its SHA-256;
the trust list by a threshold of its own root keys, whose fingerprints the court
compares out of band. manifest.json is an index (not signed): it names the file when
bytes change, and nothing outside the format may appear in a bundle.

Pure: values in, bytes and paths out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.model import Body, EnvelopeHeader

FORMAT = "rogatory.case-bundle"
VERSION = 1

MANIFEST = "manifest.json"
CASE = "case.json"
TRUST_LIST = "trust-list.json"
TREE_HEAD = "audit/tree-head.bin"

# Roles, as the manifest names them.
ROLE_CASE = "case"
ROLE_TRUST_LIST = "trust-list"
ROLE_HEADER = "envelope-header"
ROLE_SIGNATURE = "header-signature"
ROLE_BODY = "envelope-body"
ROLE_PAYLOAD = "payload"
ROLE_CUSTODY = "chain-of-custody"
ROLE_SUMMARY = "message-summary"
ROLE_RECEIPT = "receipt"
ROLE_EVIDENCE = "evidence"
ROLE_TREE_HEAD = "tree-head"
ROLE_AUDIT_RECORD = "audit-record"
ROLE_AUDIT_PROOF = "audit-proof"

MESSAGE_FILES = {
    "header.bin": ROLE_HEADER,
    "header.sig": ROLE_SIGNATURE,
    "body.bin": ROLE_BODY,
    "payload.json": ROLE_PAYLOAD,
    "custody.json": ROLE_CUSTODY,
    "message.json": ROLE_SUMMARY,
    "receipt.bin": ROLE_RECEIPT,
}

_HEX32 = "[0-9a-f]{32}"
_MESSAGE_FILE = re.compile(rf"^messages/({_HEX32})/([a-z.]+)$")
_EVIDENCE = re.compile(rf"^messages/({_HEX32})/evidence/(\d{{3,}})-[A-Za-z0-9._-]+$")
_AUDIT = re.compile(r"^audit/(\d{8,})\.(record|proof\.json)$")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 96


# -- the case, as the lifecycle tables describe it ---------------------------------------

@dataclass(frozen=True)
class RequestInfo:
    """One request of the case on the exporting side, with its step history."""

    request_id: str                 # 32 hex digits
    kind: str
    side: str                       # requesting | executing
    state: str
    peer: str
    steps: tuple[Mapping[str, Any], ...] = ()   # plain JSON-ready dicts, in order

    def as_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "kind": self.kind, "side": self.side,
                "state": self.state, "peer": self.peer, "steps": [dict(s) for s in self.steps]}


@dataclass(frozen=True)
class CaseInfo:
    """What the exporting node knows of the case (its own id and reference)."""

    case_id: str
    reference: str = ""
    requests: tuple[RequestInfo, ...] = field(default=())


@dataclass(frozen=True)
class ExportedMessage:
    """One message of the bundle as case.json lists it."""

    envelope_id: str                # 32 hex digits
    direction: str                  # in | out, seen from the exporting node
    header_sha256: str              # hex


# -- paths and roles --------------------------------------------------------------------

def message_dir(envelope_id: str) -> str:
    return f"messages/{envelope_id}"


def message_file(envelope_id: str, name: str) -> str:
    if name not in MESSAGE_FILES:
        raise ValueError(f"not a message file: {name}")
    return f"{message_dir(envelope_id)}/{name}"


def safe_name(filename: str) -> str:
    """A portable file name derived from an attachment's own name."""
    name = _UNSAFE_NAME_CHARS.sub("_", filename).strip("._-")[:MAX_NAME].strip("._-")
    return name or "attachment"


def evidence_path(envelope_id: str, index: int, filename: str) -> str:
    return f"{message_dir(envelope_id)}/evidence/{index:03d}-{safe_name(filename)}"


def audit_record_path(sequence: int) -> str:
    return f"audit/{sequence:08d}.record"


def audit_proof_path(sequence: int) -> str:
    return f"audit/{sequence:08d}.proof.json"


def role_of(path: str) -> str | None:
    """The role a path has in the format, or None if the format has no such file."""
    fixed = {CASE: ROLE_CASE, TRUST_LIST: ROLE_TRUST_LIST, TREE_HEAD: ROLE_TREE_HEAD}
    if path in fixed:
        return fixed[path]
    m = _MESSAGE_FILE.fullmatch(path)
    if m:
        return MESSAGE_FILES.get(m.group(2))
    if _EVIDENCE.fullmatch(path):
        return ROLE_EVIDENCE
    m = _AUDIT.fullmatch(path)
    if m:
        return ROLE_AUDIT_RECORD if m.group(2) == "record" else ROLE_AUDIT_PROOF
    return None


def message_of(path: str) -> str | None:
    """The envelope id (hex) a message or evidence file belongs to."""
    m = _MESSAGE_FILE.fullmatch(path) or _EVIDENCE.fullmatch(path)
    return m.group(1) if m else None


def audit_sequence_of(path: str) -> int | None:
    m = _AUDIT.fullmatch(path)
    return int(m.group(1)) if m else None


def unsafe_name(name: str) -> str | None:
    """Why a zip entry name is unsafe (zip slip, absolute, odd bytes), or None."""
    if not name or len(name) > 512:
        return "empty or overlong name"
    if "\\" in name or "\x00" in name or any(ord(c) < 0x20 for c in name):
        return "backslash or control character in name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "empty, '.' or '..' path component"
    return None


# -- derived files ----------------------------------------------------------------------

def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def custody_json(body: Body) -> bytes:
    """The Body's chain-of-custody records, as the bundle shows them."""
    names = {k.index: k.filename for k in body.attachment_keys}
    return _json([{
        "index": c.index, "filename": names.get(c.index, ""), "acquired_by": c.acquired_by,
        "acquired_at_ms": c.acquired_at_ms, "acquired_at": utc(c.acquired_at_ms),
        "method": c.method, "source": c.source,
        "request_id": c.request_id.raw.hex() if c.request_id else "",
        "request_reference": c.request_reference,
    } for c in body.custody])


def message_json(header: EnvelopeHeader, header_sha256: bytes, body: Body, *,
                 node_id: str, has_receipt: bool) -> bytes:
    """A readable summary of one message, derived from its signed header and Body."""
    eid = header.envelope_id.raw.hex()
    names = {k.index: k.filename for k in body.attachment_keys}
    return _json({
        "envelope_id": eid,
        "direction": "out" if header.sender == node_id else "in",
        "sender": header.sender, "recipient": header.recipient,
        "sender_key_id": header.sender_key_id,
        "message_type": header.message_type,
        "template": {"id": header.template_id, "version": header.template_version},
        "created_at": utc(header.created_at_ms), "created_at_ms": header.created_at_ms,
        "expires_at": utc(header.expires_at_ms), "expires_at_ms": header.expires_at_ms,
        "legal_basis": header.legal_basis,
        "obligations": [{"id": o.id, "params_json": o.params_json} for o in header.obligations],
        "policy_set_hash": header.policy_set_hash.hex(),
        "trust_list_version": header.trust_list_version,
        "in_reply_to": header.in_reply_to.raw.hex() if header.in_reply_to else "",
        "header_sha256": header_sha256.hex(), "body_sha256": header.body_sha256.hex(),
        "case_reference": body.case_reference,
        "related_requests": [r.raw.hex() for r in body.related_requests],
        "attachments": [{
            "index": a.index, "filename": names.get(a.index, ""), "media_type": a.media_type,
            "size": a.size, "sha256": a.sha256.hex(),
            "path": evidence_path(eid, a.index, names.get(a.index, "")),
        } for a in header.attachments],
        "receipt": message_file(eid, "receipt.bin") if has_receipt else "",
    })


def case_json(case: CaseInfo, messages: Sequence[ExportedMessage], *, node_id: str,
              exported_at_ms: int, actor: str, justification: str) -> bytes:
    """case.json: the case, who exported it and why, and the messages it holds."""
    return _json({
        "format": FORMAT, "version": VERSION,
        "case_id": case.case_id, "reference": case.reference,
        "node_id": node_id, "exported_at_ms": exported_at_ms,
        "exported_at": utc(exported_at_ms), "exported_by": actor,
        "justification": justification,
        "requests": [r.as_dict() for r in case.requests],
        "messages": [{"envelope_id": m.envelope_id, "direction": m.direction,
                      "header_sha256": m.header_sha256} for m in messages],
    })


def proof_json(sequence: int, tree_size: int, hashes: Sequence[bytes]) -> bytes:
    return _json({"sequence": sequence, "leaf_index": sequence - 1, "tree_size": tree_size,
                  "hashes": [h.hex() for h in hashes]})


def manifest_json(entries: Sequence[tuple[str, str, int, bytes]], *, node_id: str,
                  case_id: str, exported_at_ms: int) -> bytes:
    """manifest.json over (path, role, size, sha256) of every other file."""
    return _json({
        "format": FORMAT, "version": VERSION, "node_id": node_id, "case_id": case_id,
        "exported_at_ms": exported_at_ms,
        "files": [{"path": p, "role": r, "size": n, "sha256": d.hex()}
                  for p, r, n, d in sorted(entries)],
    })
