"""Case bundles: the format's pure parts, then a real exchange exported on both sides and
verified offline (library and CLI)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from broker.bundle import BundleWriter, CaseInfo, inclusion_proofs, layout, verify_bundle
from broker.errors import PolicyDenied
from broker.services.export import export_case
from broker.transparency import hash_leaf, inclusion_proof
from tests.bundle_support import (
    EVIDENCE,
    JUSTIFICATION,
    RECEIVER,
    SENDER,
    Exported,
    exported,
    flip,
    messages_of,
    rewrite,
)
from tests.harness import make_federation, nodes

ROOT = Path(__file__).resolve().parents[2]


# -- pure ---------------------------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\b", "a//b",
                                  "./a", "dir/", "", "a\x00b", "x" * 600])
def test_unsafe_names_are_named(name: str) -> None:
    assert layout.unsafe_name(name) is not None


@pytest.mark.unit
def test_paths_and_roles() -> None:
    eid = "ab" * 16
    assert layout.safe_name("../../image 1.E01") == "image_1.E01"
    assert layout.safe_name("...") == "attachment"
    path = layout.evidence_path(eid, 3, "../../Bericht (final).pdf")
    assert path == f"messages/{eid}/evidence/003-Bericht_final_.pdf"
    assert layout.unsafe_name(path) is None
    assert layout.role_of(path) == layout.ROLE_EVIDENCE
    assert layout.role_of(layout.message_file(eid, "receipt.bin")) == layout.ROLE_RECEIPT
    assert layout.role_of(layout.audit_proof_path(7)) == layout.ROLE_AUDIT_PROOF
    assert layout.audit_sequence_of(layout.audit_record_path(7)) == 7
    for other in ("notes.txt", f"messages/{eid}/notes.txt", f"messages/{eid[:-1]}/header.bin",
                  "audit/7.record", f"messages/{eid}/evidence/x"):
        assert layout.role_of(other) is None


@pytest.mark.unit
def test_batch_inclusion_proofs_match_rfc9162_path() -> None:
    for n in range(1, 40):
        leaves = [hash_leaf(bytes([i])) for i in range(n)]
        assert inclusion_proofs(leaves, range(n)) == {
            i: inclusion_proof(leaves, i) for i in range(n)}


@pytest.mark.unit
def test_not_a_zip_is_one_finding(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(b"PK\x03\x04 not really")
    report = verify_bundle(path)
    assert [f.check for f in report.findings] == ["ZIP_INVALID"]


@pytest.mark.unit
def test_empty_bundle_names_the_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    with BundleWriter(path) as w:
        w.finish(node_id="DE-BFJ", case_id="C-1", exported_at_ms=0)
    missing = {f.path for f in verify_bundle(path).findings if f.check == "FILE_MISSING"}
    assert missing >= {layout.CASE, layout.TRUST_LIST}


@pytest.mark.unit
def test_writer_refuses_unsafe_and_duplicate_paths(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "b.zip") as w:
        w.add(layout.CASE, layout.ROLE_CASE, b"{}")
        for bad in ("../x", layout.CASE, "/abs", layout.MANIFEST):
            with pytest.raises(ValueError):  # noqa: PT011 - the message names the path
                w.add(bad, "x", b"")


@pytest.mark.unit
def test_decompression_bomb_is_not_read(tmp_path: Path) -> None:
    """An entry declaring 64 MiB from a few KiB of deflate is refused before reading."""
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("case.json", b"\x00" * (64 << 20))
    report = verify_bundle(path)
    bomb = [f for f in report.findings if f.path == "case.json"]
    assert bomb and bomb[0].check == "ZIP_UNSAFE_ENTRY" and "bomb" in bomb[0].detail


# -- a real exchange -------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return exported(tmp_path_factory.mktemp("bundle"))


def _anchor_key(e: Exported) -> str:
    anchor = json.loads(e.fed.configs[SENDER].trust_anchor.read_text())
    return str(anchor["admins"]["keys"][0])


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("node_id", [SENDER, RECEIVER])
def test_exported_bundle_verifies_offline(bundles: Exported, node_id: str) -> None:
    report = verify_bundle(bundles.bundles[node_id], expect_root=_anchor_key(bundles))
    assert report.ok, [str(f) for f in report.findings]
    summary = bundles.summaries[node_id]
    assert (report.node_id, report.case_id) == (node_id, summary.case_id)
    assert report.messages == summary.messages == (1 if node_id == SENDER else 2)
    assert report.evidence_files == summary.evidence_files
    assert report.audit_records == summary.audit_records > 0
    assert [r.signed for r in report.roots] == [True]
    raw = base64.b64decode(_anchor_key(bundles))
    assert report.roots[0].fingerprint == hashlib.sha256(raw).hexdigest()


@pytest.mark.integration
def test_bundle_carries_the_evidence_and_custody_verbatim(bundles: Exported) -> None:
    with zipfile.ZipFile(bundles.bundles[RECEIVER]) as z:
        eid = bundles.sent.raw.hex()
        for i, data in enumerate(EVIDENCE):
            assert z.read(f"messages/{eid}/evidence/{i:03d}-file-{i}.bin") == data
        cid = bundles.custody.raw.hex()
        custody = json.loads(z.read(f"messages/{cid}/custody.json"))
        assert custody[0]["method"] == "forensic image"
        assert custody[0]["filename"] == "../../image 1.E01"
        assert f"messages/{cid}/evidence/000-image_1.E01" in z.namelist()
        summary = json.loads(z.read(f"messages/{cid}/message.json"))
        assert summary["case_reference"] == "BfJ 4711/26"
        records = [n for n in z.namelist() if n.endswith(".record")]
        case = json.loads(z.read("case.json"))
        assert case["justification"] == JUSTIFICATION
        assert {m["envelope_id"] for m in case["messages"]} == {eid, cid}
        assert records


@pytest.mark.integration
def test_pinning_another_root_is_a_finding(bundles: Exported) -> None:
    report = verify_bundle(bundles.bundles[SENDER], expect_root="ed25519:" + "00" * 16)
    assert [(f.path, f.check) for f in report.findings] == [("trust-list.json",
                                                              "ROOT_NOT_PINNED")]


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_export_without_justification_is_refused(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")

    async def run() -> None:
        async with nodes(fed, SENDER) as n:
            node = n[SENDER]
            assert node.ctx is not None
            with pytest.raises(PolicyDenied) as refused:
                await export_case(node.ctx, CaseInfo("C-1"), await messages_of(node),
                                  tmp_path / "b.zip", actor="person:clerk", justification=" ")
            assert refused.value.code == "JUSTIFICATION_REQUIRED"
            assert not (tmp_path / "b.zip").exists()

    asyncio.run(run())


# -- the CLI, as a court runs it --------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nodes.cli_bundle", "verify-bundle", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_cli_verify_bundle_good_and_tampered(bundles: Exported, tmp_path: Path) -> None:
    good = _cli(str(bundles.bundles[RECEIVER]), "--expect-root", _anchor_key(bundles))
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("OK: ")
    assert "sha256:" in good.stdout and "(signed)" in good.stdout

    eid = bundles.sent.raw.hex()
    target = f"messages/{eid}/evidence/001-file-1.bin"
    bad = rewrite(bundles.bundles[RECEIVER], tmp_path / "bad.zip",
                  lambda n, d: (n, flip(d) if n == target else d))
    proc = _cli(str(bad))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("FAILED: ")
    assert any(line.strip().startswith(f"{target}: HASH_MISMATCH") for line in lines)

    as_json = json.loads(_cli(str(bad), "--json").stdout)
    assert as_json["ok"] is False
    assert target in {f["path"] for f in as_json["findings"]}


@pytest.mark.unit
def test_cli_on_a_missing_file_is_an_error(tmp_path: Path) -> None:
    proc = _cli(str(tmp_path / "nope.zip"))
    assert proc.returncode == 1
    assert "rogatory: error:" in proc.stderr

