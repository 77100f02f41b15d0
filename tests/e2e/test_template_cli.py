"""The real `rogatory template ...` command as a subprocess: output, files, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.e2e.procs import rogatory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def test_list_show_skeleton_validate_render(tmp_path: Path) -> None:
    listed = json.loads(rogatory("template", "list", "--json").stdout)
    assert {t["id"] for t in listed["templates"]} >= {"eu-epoc-annex-i", "exchange-withdrawal"}

    skeleton = rogatory("template", "skeleton", "eu-epoc-pr-annex-ii").stdout
    payload = tmp_path / "epoc-pr.json"
    payload.write_text(skeleton)
    checked = json.loads(
        rogatory("template", "validate", "eu-epoc-pr-annex-ii", str(payload), "--json").stdout
    )
    assert checked["valid"] is True
    assert [d["value"] for d in checked["deadlines"]] == ["P60D", "P30D"]

    pdf, page = tmp_path / "out.pdf", tmp_path / "out.html"
    rendered = rogatory(
        "template",
        "render",
        "eu-epoc-pr-annex-ii@1.0.0",
        str(payload),
        "--lang",
        "de",
        "--pdf",
        str(pdf),
        "--html",
        str(page),
        "--message-id",
        "m-1",
        "--json",
    )
    assert json.loads(rendered.stdout)["pdf"] == str(pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert "Europäische Sicherungsanordnung" in page.read_text(encoding="utf-8")


def test_error_is_one_line_with_non_zero_exit() -> None:
    proc = rogatory("template", "show", "no-such-template", check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert (
        proc.stderr.strip()
        == "rogatory: error: unknown template 'no-such-template' [TEMPLATE_UNKNOWN]"
    )


def test_invalid_payload_exit_status(tmp_path: Path) -> None:
    payload = json.loads((EXAMPLES / "preservation.json").read_text())
    payload["data_to_preserve"][0]["observed_at"] = "2026-11-18T21:14:05"  # no time zone
    path = tmp_path / "p.json"
    path.write_text(json.dumps(payload))
    proc = rogatory("template", "validate", "coe-art29-preservation", str(path), check=False)
    assert proc.returncode == 1
    assert "data_to_preserve/0/observed_at: format" in proc.stdout


def test_new_version_dropped_in_is_used(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", root)
    data = yaml.safe_load((root / "exchange-withdrawal" / "1.0.0.yaml").read_text(encoding="utf-8"))
    data["version"] = "2.0.0"
    (root / "exchange-withdrawal" / "2.0.0.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
    )
    listed = json.loads(rogatory("template", "list", "--templates", str(root), "--json").stdout)
    assert listed["message_types"]["withdrawal"] == "exchange-withdrawal@2.0.0"
