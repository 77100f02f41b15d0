"""Tampering with a court bundle after export: each forgery is detected offline and the
finding names the file.

Timeline for every test: two nodes exchange evidence, each exports its case bundle
(module fixture); someone holding the bundle on its way to court then edits it. "Naive"
edits leave the manifest alone (the manifest names the file); "careful" ones recompute
the manifest, so only the signed checks stand between the edit and the court.
"""

from __future__ import annotations

import base64
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.bundle import BundleReport, verify_bundle
from broker.crypto import SigningKey
from broker.trust import sign_trust_list
from tests.bundle_support import RECEIVER, SENDER, Exported, exported, flip, rewrite

pytestmark = [pytest.mark.adversarial, pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def e(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported(tmp_path_factory.mktemp("tamper"))


def _paths(e: Exported) -> dict[str, str]:
    sent, custody = e.sent.raw.hex(), e.custody.raw.hex()
    with zipfile.ZipFile(e.bundles[RECEIVER]) as z:
        records = sorted(n for n in z.namelist() if n.endswith(".record"))
    return {
        "evidence": f"messages/{sent}/evidence/000-file-0.bin",
        "custody_evidence": f"messages/{custody}/evidence/000-image_1.E01",
        "payload": f"messages/{sent}/payload.json",
        "header": f"messages/{sent}/header.bin",
        "signature": f"messages/{sent}/header.sig",
        "body": f"messages/{sent}/body.bin",
        "receipt": f"messages/{sent}/receipt.bin",
        "other_receipt": f"messages/{custody}/receipt.bin",
        "custody": f"messages/{custody}/custody.json",
        "summary": f"messages/{custody}/message.json",
        "record": records[0],
        "proof": records[0].replace(".record", ".proof.json"),
    }


def _tampered(e: Exported, tmp: Path, mutate: Callable[[str, bytes], tuple[str, bytes] | None],
              *, careful: bool, extra: dict[str, bytes] | None = None,
              node: str = RECEIVER) -> BundleReport:
    out = rewrite(e.bundles[node], tmp / "tampered.zip", mutate, extra=extra,
                  fix_manifest=careful)
    report = verify_bundle(out)
    assert not report.ok
    return report


def _named(report: BundleReport, path: str, check: str | None = None) -> None:
    hits = [f for f in report.findings if f.path == path and check in (None, f.check)]
    assert hits, f"{path} {check} not among {[str(f) for f in report.findings]}"


def _edit(target: str, change: Callable[[bytes], bytes] = flip
          ) -> Callable[[str, bytes], tuple[str, bytes]]:
    return lambda n, d: (n, change(d) if n == target else d)


# -- one flipped byte per artefact, naive and careful --------------------------------------

SIGNED_CHECK = {
    "evidence": "EVIDENCE_DIGEST", "custody_evidence": "EVIDENCE_DIGEST",
    "payload": "CONTENT_MISMATCH", "custody": "CONTENT_MISMATCH", "summary": "CONTENT_MISMATCH",
    "header": None, "signature": None, "body": "BODY_DIGEST", "receipt": "RECEIPT_INVALID",
    "record": "AUDIT_PROOF_INVALID", "proof": "AUDIT_PROOF_INVALID",
}
# Where a careful edit is reported when the edited file is not the one that fails: a bad
# signature on the bytes it should cover, a bad proof on the record it should prove.
REPORTED_ON = {"signature": "header", "proof": "record"}


@pytest.mark.parametrize("what", sorted(SIGNED_CHECK))
def test_flipped_byte_detected_by_the_manifest(e: Exported, tmp_path: Path, what: str) -> None:
    path = _paths(e)[what]
    _named(_tampered(e, tmp_path, _edit(path), careful=False), path, "HASH_MISMATCH")


@pytest.mark.parametrize("what", sorted(SIGNED_CHECK))
def test_flipped_byte_with_recomputed_manifest_detected_by_signed_checks(
        e: Exported, tmp_path: Path, what: str) -> None:
    path = _paths(e)[what]
    report = _tampered(e, tmp_path, _edit(path), careful=True)
    reported = _paths(e)[REPORTED_ON.get(what, what)]
    _named(report, reported, SIGNED_CHECK[what])
    assert any(path in f"{f.path} {f.detail}" for f in report.findings)


def test_audit_proof_hash_changed_detected(e: Exported, tmp_path: Path) -> None:
    proof = _paths(e)["proof"]

    def change(data: bytes) -> bytes:
        doc = json.loads(data)
        doc["hashes"][0] = "00" * 32
        return json.dumps(doc).encode()

    report = _tampered(e, tmp_path, _edit(proof, change), careful=True)
    _named(report, _paths(e)["record"], "AUDIT_PROOF_INVALID")
    assert any(proof in f.detail for f in report.findings)


def test_tree_head_flipped_detected(e: Exported, tmp_path: Path) -> None:
    report = _tampered(e, tmp_path, _edit("audit/tree-head.bin", lambda d: flip(d, len(d) - 3)),
                       careful=True)
    _named(report, "audit/tree-head.bin", "TREE_HEAD_INVALID")


def test_case_json_rewritten_detected(e: Exported, tmp_path: Path) -> None:
    """case.json is bound only by the node's signed case.exported record."""
    def change(data: bytes) -> bytes:
        return data.replace(b'"reference": "US-OIA 4711/26"', b'"reference": "other"')

    _named(_tampered(e, tmp_path, _edit("case.json", change), careful=True), "case.json",
           "CASE_NOT_SIGNED")


def test_receipt_moved_from_another_message_detected(e: Exported, tmp_path: Path) -> None:
    p = _paths(e)
    with zipfile.ZipFile(e.bundles[RECEIVER]) as z:
        other = z.read(p["other_receipt"])
    report = _tampered(e, tmp_path, _edit(p["receipt"], lambda _d: other), careful=True)
    _named(report, p["receipt"], "RECEIPT_INVALID")


def test_outgoing_receipt_flipped_detected(e: Exported, tmp_path: Path) -> None:
    """On the sender's side the receipt is the receiver's signature."""
    path = f"messages/{e.sent.raw.hex()}/receipt.bin"
    report = _tampered(e, tmp_path, _edit(path, lambda d: flip(d, len(d) - 5)), careful=True,
                       node=SENDER)
    _named(report, path, "RECEIPT_INVALID")


# -- the trust list ---------------------------------------------------------------------

def test_trust_list_flipped_detected(e: Exported, tmp_path: Path) -> None:
    def change(data: bytes) -> bytes:
        doc = json.loads(data)
        payload = base64.b64decode(doc["payload"]).replace(b'"version": 1', b'"version": 9')
        doc["payload"] = base64.b64encode(payload).decode()
        return json.dumps(doc).encode()

    report = _tampered(e, tmp_path, _edit("trust-list.json", change), careful=True)
    _named(report, "trust-list.json", "TRUST_LIST_INVALID")


def test_trust_list_resigned_by_another_root_caught_by_the_pin(e: Exported,
                                                                tmp_path: Path) -> None:
    """An attacker re-signs the (otherwise identical) list with a root of its own: the
    bundle is self-consistent, so only the root the court holds out of band catches it,
    and the printed fingerprints differ from the genuine one."""
    genuine = json.loads(e.fed.configs[SENDER].trust_anchor.read_text())["admins"]["keys"][0]
    attacker = SigningKey.generate()

    def change(data: bytes) -> bytes:
        doc = json.loads(base64.b64decode(json.loads(data)["payload"]))
        doc["admins"] = {"threshold": 1, "keys": [attacker.verify_key.b64()]}
        return sign_trust_list(doc, [attacker])

    out = rewrite(e.bundles[RECEIVER], tmp_path / "t.zip", _edit("trust-list.json", change),
                  fix_manifest=True)
    assert verify_bundle(out).roots[0].key_id == attacker.verify_key.key_id
    report = verify_bundle(out, expect_root=genuine)
    _named(report, "trust-list.json", "ROOT_NOT_PINNED")


# -- removed, added, renamed files ------------------------------------------------------

@pytest.mark.parametrize("careful", [False, True])
def test_removed_evidence_detected(e: Exported, tmp_path: Path, careful: bool) -> None:
    path = _paths(e)["evidence"]
    report = _tampered(e, tmp_path, lambda n, d: None if n == path else (n, d),
                       careful=careful)
    _named(report, path, "FILE_MISSING")


def test_removed_message_detected(e: Exported, tmp_path: Path) -> None:
    """A whole message withdrawn from the bundle: case.json still lists it."""
    prefix = f"messages/{e.custody.raw.hex()}/"
    report = _tampered(e, tmp_path, lambda n, d: None if n.startswith(prefix) else (n, d),
                       careful=True)
    _named(report, prefix + "header.bin", "FILE_MISSING")


def test_removed_audit_record_detected(e: Exported, tmp_path: Path) -> None:
    record = _paths(e)["record"]
    _named(_tampered(e, tmp_path, lambda n, d: None if n == record else (n, d),
                     careful=False), record, "FILE_MISSING")


@pytest.mark.parametrize("careful", [False, True])
def test_added_file_detected(e: Exported, tmp_path: Path, careful: bool) -> None:
    report = _tampered(e, tmp_path, lambda n, d: (n, d), careful=careful,
                       extra={"notes.txt": b"planted"})
    _named(report, "notes.txt", "UNEXPECTED_FILE")
    if not careful:
        _named(report, "notes.txt", "NOT_IN_MANIFEST")


def test_added_evidence_detected(e: Exported, tmp_path: Path) -> None:
    planted = f"messages/{e.sent.raw.hex()}/evidence/002-planted.pdf"
    report = _tampered(e, tmp_path, lambda n, d: (n, d), careful=True,
                       extra={planted: b"%PDF-1.7 planted"})
    _named(report, planted, "UNEXPECTED_FILE")


@pytest.mark.parametrize("careful", [False, True])
def test_renamed_evidence_detected(e: Exported, tmp_path: Path, careful: bool) -> None:
    path = _paths(e)["evidence"]
    renamed = path.replace("000-file-0.bin", "000-file-0.pdf")
    report = _tampered(e, tmp_path, lambda n, d: (renamed if n == path else n, d),
                       careful=careful)
    _named(report, path, "FILE_MISSING")
    _named(report, renamed)


def test_evidence_swapped_between_messages_detected(e: Exported, tmp_path: Path) -> None:
    p = _paths(e)
    with zipfile.ZipFile(e.bundles[RECEIVER]) as z:
        other = z.read(p["custody_evidence"])
    report = _tampered(e, tmp_path, _edit(p["evidence"], lambda _d: other), careful=True)
    _named(report, p["evidence"], "EVIDENCE_DIGEST")


# -- zip tricks -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../etc/cron.d/evil", "/etc/passwd", "C:/evil.bat",
                                  "messages/../../evil", "a\\..\\evil"])
def test_zip_slip_name_detected(e: Exported, tmp_path: Path, name: str) -> None:
    report = _tampered(e, tmp_path, lambda n, d: (n, d), careful=False, extra={name: b"x"})
    _named(report, name, "ZIP_UNSAFE_ENTRY")


def test_duplicate_entry_detected(e: Exported, tmp_path: Path) -> None:
    """A second entry under an existing name (readers disagree which one counts)."""
    path = _paths(e)["payload"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # zipfile warns: that is the attack
        report = _tampered(e, tmp_path, lambda n, d: (n, d), careful=False,
                           extra={path: b'{"forged": true}'})
    _named(report, path, "ZIP_UNSAFE_ENTRY")


def test_decompression_bomb_inside_a_bundle_detected(e: Exported, tmp_path: Path) -> None:
    src = rewrite(e.bundles[RECEIVER], tmp_path / "copy.zip", lambda n, d: (n, d))
    with zipfile.ZipFile(src, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("audit/99999999.record", b"\x00" * (32 << 20))
    report = verify_bundle(src)
    _named(report, "audit/99999999.record", "ZIP_UNSAFE_ENTRY")


def test_truncated_bundle_detected(e: Exported, tmp_path: Path) -> None:
    data = e.bundles[RECEIVER].read_bytes()
    out = tmp_path / "cut.zip"
    out.write_bytes(data[: len(data) // 2])
    assert not verify_bundle(out).ok
