"""Verify a bundle offline: the zip's safety, the manifest, then every signed artefact.

No node, no network, no clock: the only inputs are the bundle and, optionally, the root
key the court was given out of band. The zip is never extracted; entries are read
through bounded streams (evidence chunk by chunk) and names are checked before use:
absolute paths, `..`, duplicates, links, encryption, unknown compression and
decompression bombs (declared size against compressed size and a total cap) are
findings, and such entries are not read.
"""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.bundle import layout
from broker.bundle.checks import Checks
from broker.bundle.report import BundleReport, Finding

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class BundleLimits:
    """What a verifier is prepared to read."""

    max_entries: int = 100_000
    max_file_bytes: int = 64 << 20      # any file but evidence is read into memory
    max_total_bytes: int = 1 << 42      # all entries, uncompressed, as declared
    max_ratio: int = 100                # declared / compressed size of a deflated entry


@dataclass(frozen=True)
class _Listed:
    role: str
    size: int
    sha256: bytes


def verify_bundle(path: Path | str, *, expect_root: str | None = None,
                  limits: BundleLimits = BundleLimits()) -> BundleReport:
    """Check everything in the bundle at `path`; the report names each file at fault.

    `expect_root` pins a root key of the trust list (its key id, SHA-256 fingerprint or
    base64 public key): the list must carry a valid signature by that key.
    """
    findings: list[Finding] = []
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as e:
        return BundleReport((Finding("", "ZIP_INVALID", f"not a readable zip file ({e})"),))
    with zf:
        entries, rejected = _inventory(zf, limits, findings)
        listed, header = _manifest(zf, entries, limits, findings)
        files, digests = _read(zf, entries, limits, findings)
    _compare(entries, rejected, listed, digests, findings)
    return _content(files, digests, header, expect_root, findings=findings,
                    count=len(entries))


# -- the zip container -----------------------------------------------------------------

def _inventory(zf: zipfile.ZipFile, limits: BundleLimits, findings: list[Finding]
               ) -> tuple[dict[str, zipfile.ZipInfo], set[str]]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        findings.append(Finding("", "ZIP_TOO_MANY_ENTRIES",
                                f"{len(infos)} entries, more than {limits.max_entries}"))
        return {}, set()
    dupes = {n for n, k in Counter(i.filename for i in infos).items() if k > 1}
    entries: dict[str, zipfile.ZipInfo] = {}
    rejected: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        problem = _entry_problem(info, limits)
        if name in dupes:
            problem = "the name appears more than once in the zip"
        if problem:
            if name not in rejected:
                findings.append(Finding(name, "ZIP_UNSAFE_ENTRY", problem))
            rejected.add(name)
            continue
        total += info.file_size
        entries[name] = info
    if total > limits.max_total_bytes:
        findings.append(Finding("", "ZIP_TOO_LARGE", f"entries declare {total} bytes in all, "
                                f"more than {limits.max_total_bytes}"))
        return {}, set(entries) | rejected
    return entries, rejected


def _entry_problem(info: zipfile.ZipInfo, limits: BundleLimits) -> str | None:
    problem = layout.unsafe_name(info.filename)
    if problem:
        return problem
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    if info.flag_bits & 0x1:
        return "an encrypted entry"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"compression method {info.compress_type} is not allowed"
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > READ_CHUNK and \
            info.file_size > limits.max_ratio * max(info.compress_size, 1):
        return (f"declares {info.file_size} bytes from {info.compress_size} compressed: "
                "a decompression bomb")
    return None


def _manifest(zf: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo],
              limits: BundleLimits, findings: list[Finding]
              ) -> tuple[dict[str, _Listed] | None, dict[str, Any]]:
    info = entries.get(layout.MANIFEST)
    where = layout.MANIFEST
    if info is None:
        findings.append(Finding(where, "FILE_MISSING", "the bundle has no manifest"))
        return None, {}
    try:
        if info.file_size > limits.max_file_bytes:
            raise ValueError("manifest too large")
        doc = json.loads(zf.read(info))
        if doc["format"] != layout.FORMAT or doc["version"] != layout.VERSION:
            raise ValueError(f"format {doc['format']!r} version {doc['version']!r}")
        listed: dict[str, _Listed] = {}
        for f in doc["files"]:
            p, sha = str(f["path"]), bytes.fromhex(f["sha256"])
            if p in listed or len(sha) != 32 or not isinstance(f["size"], int):
                raise ValueError(f"entry {p!r} is listed twice or malformed")
            listed[p] = _Listed(str(f["role"]), f["size"], sha)
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error, EOFError) as e:
        findings.append(Finding(where, "MANIFEST_INVALID", str(e)))
        return None, {}
    return listed, doc


def _read(zf: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo], limits: BundleLimits,
          findings: list[Finding]) -> tuple[dict[str, bytes], dict[str, tuple[int, bytes]]]:
    """Read every entry once: evidence streamed (size and SHA-256), the rest kept."""
    files: dict[str, bytes] = {}
    digests: dict[str, tuple[int, bytes]] = {}
    for name, info in entries.items():
        if name == layout.MANIFEST:
            continue
        keep = layout.role_of(name) != layout.ROLE_EVIDENCE
        if keep and info.file_size > limits.max_file_bytes:
            findings.append(Finding(name, "FILE_TOO_LARGE", f"{info.file_size} bytes, more "
                                    f"than {limits.max_file_bytes} for a {layout.role_of(name)}"))
            continue
        h, size, parts = hashlib.sha256(), 0, []
        try:
            with zf.open(info) as fh:
                while chunk := fh.read(READ_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    if keep:
                        parts.append(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
            findings.append(Finding(name, "ZIP_ENTRY_INVALID", f"cannot be read ({e})"))
            continue
        if size != info.file_size:
            findings.append(Finding(name, "ZIP_ENTRY_INVALID",
                                    f"holds {size} bytes, its zip entry declares "
                                    f"{info.file_size}"))
            continue
        digests[name] = (size, h.digest())
        if keep:
            files[name] = b"".join(parts)
    return files, digests


def _compare(entries: Mapping[str, zipfile.ZipInfo], rejected: set[str],
             listed: Mapping[str, _Listed] | None, digests: Mapping[str, tuple[int, bytes]],
             findings: list[Finding]) -> None:
    """Every file listed, nothing else, every hash as listed, every role as the format's."""
    for name in sorted(entries):
        if name != layout.MANIFEST and layout.role_of(name) is None:
            findings.append(Finding(name, "UNEXPECTED_FILE",
                                    "not a file of the bundle format"))
    if listed is None:
        return
    for name in sorted(set(entries) - set(listed) - {layout.MANIFEST}):
        findings.append(Finding(name, "NOT_IN_MANIFEST", "present but not listed"))
    for name, want in sorted(listed.items()):
        if name not in entries:
            if name not in rejected:
                findings.append(Finding(name, "FILE_MISSING", "listed in the manifest"))
            continue
        if want.role != layout.role_of(name):
            findings.append(Finding(name, "MANIFEST_ROLE", f"listed as {want.role!r}"))
        got = digests.get(name)
        if got is not None and got != (want.size, want.sha256):
            findings.append(Finding(name, "HASH_MISMATCH", f"size {got[0]} sha256 "
                                    f"{got[1].hex()}, the manifest lists size {want.size} "
                                    f"sha256 {want.sha256.hex()}"))


# -- content ---------------------------------------------------------------------------

def _content(files: Mapping[str, bytes], digests: Mapping[str, tuple[int, bytes]],
             manifest: Mapping[str, Any], expect_root: str | None, *,
             findings: list[Finding], count: int) -> BundleReport:
    checks = Checks(files, digests, findings=findings)
    case = _case(checks, manifest)
    checks.trust_list(expect_root)
    checks.tree_head(case.node_id)
    checks.audit_records()
    checks.case_bound(case.case_id)
    ids = {m.envelope_id for m in case.messages}
    for m in case.messages:
        checks.message(m, node_id=case.node_id, case_id=case.case_id)
    for p in sorted(p for p in digests if (layout.message_of(p) or "") not in ids | {""}):
        checks.find(p, "UNEXPECTED_FILE", "belongs to a message case.json does not list")
    trust = checks.trust
    return BundleReport(
        tuple(findings), roots=checks.roots,
        root_threshold=trust.admins.threshold if trust else 0,
        federation=trust.federation if trust else "",
        trust_list_version=trust.version if trust else 0,
        node_id=case.node_id, case_id=case.case_id, exported_at_ms=case.exported_at_ms,
        messages=len(case.messages), evidence_files=checks.evidence_files,
        evidence_bytes=checks.evidence_bytes, audit_records=len(checks.records),
        tree_size=checks.head.tree_size if checks.head else 0, files=count,
        notes=tuple(checks.notes))


@dataclass(frozen=True)
class _Case:
    node_id: str
    case_id: str
    exported_at_ms: int
    messages: tuple[layout.ExportedMessage, ...]


def _case(checks: Checks, manifest: Mapping[str, Any]) -> _Case:
    data = checks.file(layout.CASE)
    try:
        if data is None:
            raise ValueError("missing")
        doc = json.loads(data)
        messages = tuple(layout.ExportedMessage(str(m["envelope_id"]), str(m["direction"]),
                                                str(m["header_sha256"]))
                         for m in doc["messages"])
        case = _Case(str(doc["node_id"]), str(doc["case_id"]), int(doc["exported_at_ms"]),
                     messages)
        if len({m.envelope_id for m in messages}) != len(messages) or any(
                layout.role_of(layout.message_file(m.envelope_id, "header.bin")) is None
                for m in messages):
            raise ValueError("a message is listed twice or has a malformed id")
    except (ValueError, KeyError, TypeError) as e:
        if data is not None:
            checks.find(layout.CASE, "CASE_INVALID", f"does not parse ({e})")
        return _Case(str(manifest.get("node_id", "")), str(manifest.get("case_id", "")), 0, ())
    if manifest and (manifest.get("node_id"), manifest.get("case_id")) != (
            case.node_id, case.case_id):
        checks.find(layout.MANIFEST, "MANIFEST_INVALID", "names another node or case than "
                    "case.json")
    return case
