"""What verifying a bundle found: findings that name the file and the check, and what a
court compares out of band (the trust list's root keys). Pure values."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    """One failed check. `path` is the bundle file at fault ('' for the bundle itself)."""

    path: str
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path or '<bundle>'}: {self.check}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "check": self.check, "detail": self.detail}


@dataclass(frozen=True)
class RootKey:
    """A root (federation-admin) key of the bundle's trust list."""

    key_id: str
    fingerprint: str         # SHA-256 of the raw Ed25519 public key, hex
    signed: bool             # its signature over the trust list verifies

    def as_dict(self) -> dict[str, object]:
        return {"key_id": self.key_id, "fingerprint": self.fingerprint, "signed": self.signed}


@dataclass(frozen=True)
class BundleReport:
    """The outcome of `verify_bundle`: valid only if there is no finding."""

    findings: tuple[Finding, ...]
    roots: tuple[RootKey, ...] = ()
    root_threshold: int = 0
    federation: str = ""
    trust_list_version: int = 0
    node_id: str = ""
    case_id: str = ""
    exported_at_ms: int = 0
    messages: int = 0
    evidence_files: int = 0
    evidence_bytes: int = 0
    audit_records: int = 0
    tree_size: int = 0
    files: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok, "findings": [f.as_dict() for f in self.findings],
            "trust_list": {"federation": self.federation, "version": self.trust_list_version,
                           "threshold": self.root_threshold,
                           "roots": [r.as_dict() for r in self.roots]},
            "node_id": self.node_id, "case_id": self.case_id,
            "exported_at_ms": self.exported_at_ms, "messages": self.messages,
            "evidence_files": self.evidence_files, "evidence_bytes": self.evidence_bytes,
            "audit_records": self.audit_records, "tree_size": self.tree_size,
            "files": self.files, "notes": list(self.notes),
        }
