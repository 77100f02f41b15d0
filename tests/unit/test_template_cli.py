"""`rogatory template list|show|skeleton|validate|render`, run in-process through `nodes.cli.main`.

Errors are one line on stderr and a non-zero exit; every command has `--json`. The
subprocess version of these checks is tests/e2e/test_template_cli.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodes.cli import main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
EXAMPLES = ROOT / "docs" / "examples"
EXIT_ERROR, EXIT_USAGE = 1, 2


@pytest.fixture(autouse=True)
def _no_global_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() configures structlog process-wide; keep other tests' logging untouched."""
    monkeypatch.setattr("nodes.cli.configure_logging", lambda **_: None)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["template", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "list")
    assert len(data["templates"]) == 22
    assert data["message_types"]["preservation"] == "coe-art29-preservation@1.0.0"
    assert data["message_types"]["mla_request"] == "mla-request@1.0.0"
    art31 = next(t for t in data["templates"] if t["id"] == "coe-art31-mla-stored-data")
    assert art31["message_types"] == ["mla_request"] and art31["default_for"] == []
    code, out, _ = run(capsys, "list", "--lang", "fr")
    assert code == 0
    assert "Demande de conservation rapide" in out
    assert "preservation*" in out and "22 templates" in out


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(capsys, "show", "eu-epoc-annex-i@1.0.0", "--lang", "de")
    assert info["id"] == "eu-epoc-annex-i" and info["version"] == "1.0.0"
    assert info["title"].startswith("Europäische Herausgabeanordnung")
    deadlines = {d["name"]: d for d in info["deadlines"]}
    assert deadlines["production_emergency"]["value"] == "PT8H"
    assert deadlines["production_emergency"]["condition"] == "deadline == within_8_hours_emergency"
    assert info["json_schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {c["verification"] for c in info["legal_basis"]} <= {"V", "R", "U"}
    assert "service_provider" in info["roles"]["recipient"]
    code, out, _ = run(capsys, "show", "coe-art29-preservation")
    assert code == 0
    assert "minimum_preservation: P60D (minimum)" in out
    assert "previous_request_reference" in out and "request_status != new_request" in out


def test_skeleton_is_a_valid_payload(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "skeleton", "exchange-execution-response")
    assert code == 0
    skeleton = json.loads(out)
    assert skeleton["evidence"][0]["sha256"]
    path = tmp_path / "response.json"
    path.write_text(out)
    assert run_json(capsys, "validate", "exchange-execution-response", str(path))["valid"] is True


def test_validate_reports_categories_and_deadlines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "skeleton", "eu-epoc-annex-i")
    payload = json.loads(out)
    payload["deadline"] = "within_8_hours_emergency"
    payload["emergency_ground"] = "imminent_threat_to_critical_infrastructure"
    path = tmp_path / "epoc.json"
    path.write_text(json.dumps(payload))
    data = run_json(capsys, "validate", "eu-epoc-annex-i", str(path))
    assert data == {
        "template": "eu-epoc-annex-i@1.0.0",
        "valid": True,
        "data_categories": ["free_text", "identification", "official_contact"],
        "deadlines": [{"name": "production_emergency", "value": "PT8H", "starts": "receipt"}],
    }
    code, out, _ = run(capsys, "validate", "eu-epoc-annex-i", str(path))
    assert code == 0
    assert "starts deadline production_emergency: PT8H" in out


def test_validate_invalid_payload(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    payload = json.loads((EXAMPLES / "preservation.json").read_text())
    del payload["reference"]
    payload["request_status"] = "urgent"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    code, out, _ = run(
        capsys, "validate", "coe-art29-preservation", str(path), "--json", "--lang", "fr"
    )
    assert code == EXIT_ERROR
    data = json.loads(out)
    assert data["valid"] is False
    assert [(e["path"], e["rule"], e["label"]) for e in data["errors"]] == [
        ("reference", "required", "Référence"),
        ("request_status", "enum", "Statut de la demande"),
    ]
    code, out, _ = run(capsys, "validate", "coe-art29-preservation", str(path))
    assert code == EXIT_ERROR
    assert out.splitlines()[0] == "invalid: 2 error(s) against coe-art29-preservation@1.0.0"


def test_validate_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = (EXAMPLES / "mla_request.json").read_bytes()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert run_json(capsys, "validate", "mla-request", "-")["valid"] is True


def test_render_html_and_pdf(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = EXAMPLES / "preservation.json"
    out_pdf, out_html = tmp_path / "form.pdf", tmp_path / "form.html"
    data = run_json(
        capsys,
        "render",
        "coe-art29-preservation",
        str(source),
        "--lang",
        "fr",
        "--pdf",
        str(out_pdf),
        "--html",
        str(out_html),
        "--message-id",
        "msg-42",
        "--sender",
        "DE-BFJ",
        "--signature-fingerprint",
        "ab" * 32,
    )
    assert data["payload_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert data["pdf_bytes"] == out_pdf.stat().st_size
    assert out_pdf.read_bytes().startswith(b"%PDF-")
    page = out_html.read_text(encoding="utf-8")
    assert "msg-42" in page and "DE-BFJ" in page and "ab" * 32 in page
    assert "Base juridique" in page


def test_render_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "render", "mla-request", str(EXAMPLES / "mla_request.json"))
    assert code == 0
    assert out.startswith("<!DOCTYPE html>") and "UNSIGNED DRAFT" in out


@pytest.mark.parametrize(
    ("argv", "code", "reason"),
    [
        (["show", "no-such-template"], EXIT_ERROR, "[TEMPLATE_UNKNOWN]"),
        (["show", "coe-art29-preservation@9.9.9"], EXIT_ERROR, "[TEMPLATE_UNKNOWN]"),
        (["skeleton", "a@b@c"], EXIT_USAGE, "[USAGE]"),
        (["skeleton", "coe-art29-preservation@"], EXIT_USAGE, "[USAGE]"),
        (["validate", "mla-request", "/no/such/file.json"], EXIT_ERROR, "/no/such/file.json"),
        (["validate", "mla-request", "NOTJSON"], EXIT_ERROR, "[PAYLOAD_NOT_JSON]"),
        (["render", "mla-request", "INVALID"], EXIT_ERROR, "[TEMPLATE_INVALID]"),
        (["list", "--templates", "/no/such/dir"], EXIT_ERROR, "/no/such/dir"),
    ],
)
def test_errors_are_one_line_and_non_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], code: int, reason: str
) -> None:
    (tmp_path / "NOTJSON").write_text("{ not json")
    invalid = json.loads((EXAMPLES / "mla_request.json").read_text())
    del invalid["purpose"]
    (tmp_path / "INVALID").write_text(json.dumps(invalid))
    argv = [str(tmp_path / a) if a in ("NOTJSON", "INVALID") else a for a in argv]
    got, out, err = run(capsys, *argv)
    assert got == code
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("rogatory: error: ") and reason in err


def _tmp_templates(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    shutil.copytree(TEMPLATES, root)
    data = yaml.safe_load((root / "exchange-refusal" / "1.0.0.yaml").read_text(encoding="utf-8"))
    data["version"] = "1.1.0"
    data["title"]["en"] = "Refusal (revised)"
    (root / "exchange-refusal" / "1.1.0.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
    )
    return root


def test_new_version_in_a_template_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tmp_templates(tmp_path)
    data = run_json(capsys, "list", "--templates", str(root))
    assert data["message_types"]["refusal"] == "exchange-refusal@1.1.0"
    assert len(data["templates"]) == 23
    assert run_json(capsys, "show", "exchange-refusal", "--templates", str(root))["title"] == (
        "Refusal (revised)"
    )
    monkeypatch.setenv("ROGATORY_TEMPLATES", str(root))
    assert run_json(capsys, "show", "exchange-refusal@1.0.0")["version"] == "1.0.0"
    assert run_json(capsys, "show", "exchange-refusal")["version"] == "1.1.0"
