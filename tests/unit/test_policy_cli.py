"""``rogatory policy explain | test | decide``."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from nodes.cli import main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
POLICY = str(ROOT / "policy")
EXAMPLE = str(ROOT / "docs/examples/mla_request.json")
TEMPLATES = str(ROOT / "templates")

CASE = """
at: 2026-11-23T12:00:00Z
from: {node: DE-BFJ, roles: [central_authority]}
to: {node: GB-UKCA, roles: [central_authority]}
template: exchange-execution-response
categories: [suspect, content]
declared: {justification: "Answer to UK letter of request", quality_verified: true}
expect: {outcome: allow, rules: [LED-XFER-05]}
"""


def test_policy_test_runs_every_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "test", "--policy", POLICY]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith(" passed, 0 failed")


def test_policy_test_json_and_a_failing_table(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "wrong.yaml"
    table.write_text("cases:\n  - name: expects the wrong thing\n" + "".join(
        f"    {line}\n" for line in CASE.strip().splitlines() if not line.startswith("expect"))
        + "    expect: {outcome: deny}\n")
    assert main(["policy", "test", "--policy", POLICY, "--json", str(table)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["failed"] == 1
    assert data["cases"][0]["failures"] == ["outcome allow, expected deny"]


def test_policy_decide_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "case.yaml"
    case.write_text(CASE)
    assert main(["policy", "decide", str(case), "--policy", POLICY, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decision"]["outcome"] == "allow"
    assert data["decision"]["policy_ids"] == ["LED-XFER-05"]
    assert data["expectation"] == {"matches": True, "failures": []}
    assert {o["id"] for o in data["decision"]["obligations"]} >= {"adequacy_expiry_check",
                                                                  "speciality"}


def test_policy_decide_from_stdin_not_allowed_exits_3(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CASE.replace("GB-UKCA", "US-OIA")))
    assert main(["policy", "decide", "-", "--policy", POLICY]) == 3
    out = capsys.readouterr().out
    assert out.startswith("Decision: NEEDS")
    assert "LED-XFER-04" in out and "Expectation: outcome needs, expected allow" in out


def test_policy_explain_reads_the_payload(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["policy", "explain", "--from", "DE-BFJ", "--to", "US-OIA",
                 "--template", "mla-request", "--payload", EXAMPLE,
                 "--at", "2026-11-23T12:00:00Z", "--templates", TEMPLATES, "--policy", POLICY])
    assert code == 3
    out = capsys.readouterr().out
    assert "Decision: NEEDS" in out
    assert "[needs] LED-XFER-01" in out and "death penalty retentionist" in out
    assert "Missing (declare to proceed):" in out


def test_policy_explain_with_declarations_allows(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["policy", "explain", "--from", "DE-BFJ", "--to", "US-OIA",
                 "--template", "mla-request", "--payload", EXAMPLE,
                 "--declare", "justification=registrant of phishing domains",
                 "--declare", "agreement_ref=eu_us_umbrella_agreement",
                 "--declare", "underlying_legal_basis_ref=DE-US MLAT 2003",
                 "--at", "2026-11-23T12:00:00Z", "--templates", TEMPLATES, "--policy", POLICY,
                 "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decision"]["outcome"] == "allow"
    assert data["input"]["legal_basis"] == "mla_generic"
    assert data["template_problems"] == 0


def test_broken_pack_is_one_line_on_stderr(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "policy"
    shutil.copytree(POLICY, root)
    pack = root / "packs" / "core.cedar"
    lines = pack.read_text().splitlines()
    lines.append("forbid (principal, action, resource) when { context.nothing };")
    pack.write_text("\n".join(lines) + "\n")
    assert main(["policy", "test", "--policy", str(root)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{root}/packs/core.cedar:{len(lines)}: does not validate" in err


def test_missing_case_file_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "decide", "/nonexistent/case.yaml", "--policy", POLICY]) == 1
    assert capsys.readouterr().err.startswith("rogatory: error:")


def test_bad_case_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "case.yaml"
    case.write_text("from: DE-BFJ\n")
    assert main(["policy", "decide", str(case), "--policy", POLICY]) == 2
    assert "`to` is required" in capsys.readouterr().err
