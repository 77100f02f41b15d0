"""The `rogatory` CLI against node processes: init, run, send, inbox, show, receipt."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from nodes.config import load_config
from tests.e2e.procs import NodeProcess, processes, rogatory, wait_for
from tests.harness import REGISTRY

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
WHY = "case BfJ-RHS-2026-0412"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def cli_fed(tmp_path: Path) -> Path:
    out = rogatory("federation", "init", str(tmp_path / "fed"), "--agency",
                   "DE-BFJ:central_authority", "--agency", "US-OIA:central_authority",
                   "--json")
    configs = json.loads(out.stdout)["configs"]
    assert set(configs) == {"DE-BFJ", "US-OIA"}
    return tmp_path


def test_send_inbox_show_receipt_attachment_through_the_cli(cli_fed: Path) -> None:
    fed = cli_fed / "fed"
    de_cfg, us_cfg = fed / "DE-BFJ" / "node.toml", fed / "US-OIA" / "node.toml"
    payload = cli_fed / "mla.json"
    payload.write_bytes((EXAMPLES / "mla_request.json").read_bytes())
    evidence = cli_fed / "extract.bin"
    evidence.write_bytes(os.urandom(3 << 20))
    de = NodeProcess(load_config(de_cfg), cli_fed)
    us = NodeProcess(load_config(us_cfg), cli_fed)
    with processes(de.start(), us.start()):
        # Four-eyes: one person drafts the MLA request, another approves (and sends) it.
        drafted = json.loads(rogatory(
            "draft", "--config", str(de_cfg), "--as", "dora", "--role", "drafter", "--to",
            "US-OIA", "--type", "mla_request", "--payload", str(payload), "--attach",
            str(evidence), "--declare", f"justification={WHY}", "--declare",
            "agreement_ref=EU-US Umbrella Agreement", "--case-ref", "BfJ-2026-7",
            "--json").stdout)
        request_id = drafted["request"]["request_id"]
        assert drafted["request"]["state"] == "draft"
        own = rogatory("approve", request_id, "--config", str(de_cfg), "--as", "dora",
                       "--role", "approver", check=False)
        assert own.returncode == 1 and "FOUR_EYES" in own.stderr
        sent = json.loads(rogatory("approve", request_id, "--config", str(de_cfg), "--as",
                                   "albert", "--role", "approver", "--json").stdout)
        mid = sent["message"]["message_id"]
        assert mid == request_id
        assert (sent["request"]["drafter"], sent["request"]["approver"]) == ("dora", "albert")
        assert sent["attachments"][0]["sha256"] == hashlib.sha256(
            evidence.read_bytes()).hexdigest()

        def receipt() -> dict[str, object] | None:
            r = rogatory("receipt", mid, "--config", str(de_cfg), "--json", check=False)
            return json.loads(r.stdout) if r.returncode == 0 else None

        r = wait_for(receipt)
        assert r["verified"] is True and r["receiver"] == "US-OIA"
        inbox = json.loads(rogatory("inbox", "--config", str(us_cfg), "--json").stdout)
        assert [m["message_id"] for m in inbox["messages"]] == [mid]
        refused = rogatory("show", mid, "--config", str(us_cfg), check=False)
        assert refused.returncode == 1 and "POLICY_NEEDS" in refused.stderr
        assert "justification" in refused.stderr
        shown = json.loads(rogatory("show", mid, "--config", str(us_cfg), "--justification",
                                    WHY, "--json").stdout)
        assert shown["payload"] == json.loads(payload.read_bytes())
        assert shown["message"]["peer"] == "DE-BFJ"
        assert shown["legal_basis"] == "mla_generic"
        assert "no_onward_transfer" in {o["id"] for o in json.loads(shown["obligations"])}
        out = cli_fed / "received.bin"
        got = json.loads(rogatory("attachment", mid, "0", "--out", str(out), "--config",
                                  str(us_cfg), "--justification", WHY, "--json").stdout)
        assert out.read_bytes() == evidence.read_bytes()
        assert got["sha256"] == sent["attachments"][0]["sha256"]
        human = rogatory("inbox", "--config", str(us_cfg)).stdout
        assert mid in human and "DE-BFJ" in human
        # The answer goes back through the CLI, linked to the request and its case.
        ack = cli_fed / "ack.json"
        ack.write_bytes(json.dumps(REGISTRY.default_for_message_type(
            "acknowledgement").skeleton()).encode())
        acked = json.loads(rogatory("acknowledge", mid, "--config", str(us_cfg), "--payload",
                                    str(ack), "--json").stdout)
        assert acked["request"]["state"] == "acknowledged"
        cases = json.loads(rogatory("case", "list", "--config", str(de_cfg), "--json").stdout)
        [case] = cases["cases"]
        assert case["reference"] == "BfJ-2026-7"
        wait_for(lambda: json.loads(rogatory(
            "case", "show", case["case_id"], "--config", str(de_cfg), "--json").stdout
        )["case"]["requests"][0]["state"] == "acknowledged" or None)
        bundle = cli_fed / "bundle.zip"
        rogatory("case", "export", case["case_id"], "--out", str(bundle), "--config",
                 str(de_cfg), "--justification", WHY)
        checked = rogatory("verify-bundle", str(bundle))
        assert checked.returncode == 0
        due = json.loads(rogatory("inbox", "--due-within", "400d", "--config", str(us_cfg),
                                  "--json").stdout)
        assert isinstance(due.get("deadlines", []), list)
    assert de.proc is not None and de.proc.returncode == 0  # graceful SIGTERM
    # Logs carry ids, hashes and codes: never request content or file names.
    logs = de.log.read_text() + us.log.read_text()
    assert mid in logs
    for secret in ("registrant@mail.example", "Example Mail Inc", "extract.bin",
                   "phishing", "Desk officer", WHY):
        assert secret not in logs


def test_errors_are_one_clear_line_and_non_zero(cli_fed: Path) -> None:
    fed = cli_fed / "fed"
    de_cfg = fed / "DE-BFJ" / "node.toml"
    payload = cli_fed / "p.json"
    payload.write_text('{"not": "a preservation request"}')
    # node not running
    r = rogatory("inbox", "--config", str(de_cfg), check=False)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "not running" in r.stderr
    de = NodeProcess(load_config(de_cfg), cli_fed)
    with processes(de.start()):
        for args, needle in [
            (["show", "00" * 16], "NOT_FOUND"),
            (["show", "nothex"], "MALFORMED"),
            (["send", "--to", "FR-NONE", "--type", "preservation", "--payload", str(payload)],
             "UNKNOWN_SENDER"),
            (["send", "--to", "US-OIA", "--type", "preservation", "--payload", str(payload)],
             "TEMPLATE_INVALID"),
            (["send", "--to", "US-OIA", "--type", "no_such_type", "--payload", str(payload)],
             "TEMPLATE"),
        ]:
            r = rogatory(*args, "--config", str(de_cfg), check=False)
            assert r.returncode == 1, args
            assert r.stderr.startswith("rogatory: error:") and needle in r.stderr, r.stderr
            assert r.stderr.count("\n") == 1, r.stderr
            assert "a preservation request" not in r.stderr  # never echo content
    r = rogatory("send", "--to", "US-OIA", "--type", "x", "--payload", str(payload), check=False)
    assert r.returncode == 2 and "ROGATORY_CONFIG" in r.stderr


def test_operator_api_refuses_calls_without_a_valid_token(cli_fed: Path) -> None:
    import grpc

    from broker.wire.gen.rogatory.v1 import operator_pb2, operator_pb2_grpc
    cfg = load_config(cli_fed / "fed" / "DE-BFJ" / "node.toml")
    with processes(NodeProcess(cfg, cli_fed).start()), \
            grpc.insecure_channel(cfg.operator_listen) as ch:
        stub = operator_pb2_grpc.OperatorStub(ch)
        for metadata in [(), (("authorization", "Bearer not-a-jwt"),),
                         (("authorization", "Bearer eyJhbGciOiJub25lIn0.e30."),)]:
            with pytest.raises(grpc.RpcError) as err:
                stub.GetStatus(operator_pb2.StatusRequest(), metadata=metadata, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_node_shuts_down_gracefully_on_sigterm(cli_fed: Path) -> None:
    cfg = load_config(cli_fed / "fed" / "DE-BFJ" / "node.toml")
    node = NodeProcess(cfg, cli_fed).start()
    assert node.proc is not None
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(timeout=15) == 0
    assert '"node.stopped"' in node.log.read_text()
