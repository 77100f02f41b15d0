"""`rogatory demo` (`make demo`): three agencies, three node processes, two exchanges.

1. DE-BFJ sends an expedited preservation request (Budapest Art. 29) to NL-24X7;
2. DE-BFJ sends an MLA request with a 20 MiB evidence attachment to US-OIA;
3. each signed receipt is verified, each request is found in the recipient's inbox and
   the attachment's SHA-256 is compared on both sides.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from broker.adapters.grpc.status import OperatorCallFailed
from broker.errors import RogatoryError
from broker.templating import load_registry
from nodes.config import NodeConfig, load_config
from nodes.federation import AgencySpec, init_federation
from nodes.node import TEMPLATES_DIR
from nodes.operator_client import OperatorClient

AGENCIES = ["DE-BFJ:central_authority", "US-OIA:central_authority", "NL-24X7:contact_point"]
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
# LED Art. 35-37: a transfer to a third country states why and under which agreement.
MLA_DECLARATIONS = {
    "justification": "Evidence for criminal investigation BfJ-RHS-2026-0412 (LED Art. 35(1)(a))",
    "agreement_ref": "EU-US Umbrella Agreement (2016); DE-US MLA Treaty (2003)",
}
JUSTIFICATION = "demo: verify receipt and evidence integrity for BfJ-RHS-2026-0412"


class DemoFailed(RogatoryError):
    code = "DEMO_FAILED"


@contextlib.contextmanager
def running_nodes(configs: dict[str, Path], logdir: Path) -> Iterator[dict[str, NodeConfig]]:
    """Start one `rogatory node run` process per config; SIGTERM them all at the end."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    loaded = {node_id: load_config(path) for node_id, path in configs.items()}
    try:
        for node_id, path in configs.items():
            log = open(logdir / f"{node_id}.log", "wb")  # noqa: SIM115 - owned by the process
            procs[node_id] = subprocess.Popen(
                [sys.executable, "-m", "nodes.cli", "node", "run", "--config", str(path)],
                stdout=log, stderr=log, start_new_session=True)
        for node_id, cfg in loaded.items():
            wait_ready(cfg, procs[node_id])
        yield loaded
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_ready(cfg: NodeConfig, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    with OperatorClient(cfg, timeout_s=2) as client:
        while True:
            if proc.poll() is not None:
                raise DemoFailed(f"node {cfg.node_id} exited with {proc.returncode}")
            try:
                client.status()
                return
            except OperatorCallFailed:
                if time.monotonic() > deadline:
                    raise DemoFailed(f"node {cfg.node_id} did not start") from None
                time.sleep(0.1)


def wait_receipt(client: OperatorClient, message_id: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            r = client.receipt(message_id)
            if r.verified:
                return r
        except OperatorCallFailed as e:
            if e.code != "NOT_FOUND":
                raise
        if time.monotonic() > deadline:
            raise DemoFailed(f"no receipt for {message_id} in {timeout_s:.0f}s")
        time.sleep(0.05)


def example_payload(message_type: str) -> bytes:
    example = EXAMPLES / f"{message_type}.json"
    if example.exists():
        return example.read_bytes()
    template = load_registry(TEMPLATES_DIR).default_for_message_type(message_type)
    return json.dumps(template.skeleton()).encode()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while piece := fh.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def _exchange(nodes: dict[str, NodeConfig], work: Path, attachment_mib: int) -> dict[str, Any]:
    evidence = work / "evidence-extract.bin"
    with open(evidence, "wb") as fh:
        for _ in range(attachment_mib):
            fh.write(os.urandom(1 << 20))
    source_sha = _sha256_file(evidence)
    steps: list[dict[str, Any]] = []
    with OperatorClient(nodes["DE-BFJ"]) as de:
        t0 = time.monotonic()
        pres = de.send(to="NL-24X7", message_type="preservation",
                       payload=example_payload("preservation"), attachments=[])
        # Four-eyes: an MLA request is drafted by one person and approved by another.
        with OperatorClient(nodes["DE-BFJ"], subject="dora.drafter",
                            roles=["drafter"]) as drafter:
            draft = drafter.send(to="US-OIA", message_type="mla_request",
                                 payload=example_payload("mla_request"),
                                 attachments=[evidence], declarations=MLA_DECLARATIONS,
                                 case_reference="BfJ-RHS-2026-0412", draft=True).request
        with OperatorClient(nodes["DE-BFJ"], subject="albert.approver",
                            roles=["approver"]) as approver:
            mla = approver.approve(draft.request_id)
        for sent in (pres, mla):
            m = sent.message
            r = wait_receipt(de, m.message_id)
            steps.append({"message_id": m.message_id, "from": "DE-BFJ", "to": m.peer,
                          "message_type": m.message_type, "template": m.template_id,
                          "template_version": m.template_version,
                          "receipt": {"verified": r.verified, "receiver": r.receiver,
                                      "receiver_key_id": r.receiver_key_id,
                                      "status": r.status},
                          "attachments": [{"filename": a.filename, "size": a.size,
                                           "sha256_sender": a.sha256}
                                          for a in sent.attachments]})
        elapsed = time.monotonic() - t0
    # US-OIA acknowledges the MLA request: the answer is linked to DE-BFJ's case.
    with OperatorClient(nodes["US-OIA"]) as us:
        us.send(to="", message_type="acknowledgement", in_reply_to=mla.message.message_id,
                payload=example_payload("acknowledgement"), attachments=[])
    with OperatorClient(nodes["DE-BFJ"]) as de:
        case = de.case(mla.request.case_id)
        deadline = time.monotonic() + 60
        while case.case.requests[0].state != "acknowledged" and time.monotonic() < deadline:
            time.sleep(0.1)
            case = de.case(mla.request.case_id)
    lifecycle: dict[str, Any] = {"case_id": case.case.case_id, "reference": case.case.reference,
                 "requests": [{"request_id": r.request_id, "kind": r.kind, "state": r.state,
                               "drafter": r.drafter, "approver": r.approver}
                              for r in case.case.requests]}
    for step in steps:
        with OperatorClient(nodes[step["to"]], justification=JUSTIFICATION) as peer:
            inbox = {m.message_id for m in peer.list(direction="incoming").messages}
            step["in_recipient_inbox"] = step["message_id"] in inbox
            detail = peer.show(step["message_id"])
            step["legal_basis"] = detail.legal_basis
            step["obligations"] = [o["id"] for o in json.loads(detail.obligations or "[]")]
            for a, info in zip(step["attachments"], detail.attachments, strict=True):
                digest = hashlib.sha256()
                for piece in peer.read_attachment(step["message_id"], info.index):
                    digest.update(piece)
                a["sha256_recipient"] = digest.hexdigest()
                a["sha256_source_file"] = source_sha
                a["match"] = a["sha256_sender"] == a["sha256_recipient"] == source_sha
    ok = all(s["receipt"]["verified"] and s["in_recipient_inbox"] and
             all(a["match"] for a in s["attachments"]) for s in steps) and \
        all(r["state"] == "acknowledged" for r in lifecycle["requests"])
    return {"ok": ok, "elapsed_s": round(elapsed, 3), "exchanges": steps,
            "case": lifecycle}


def _print_summary(result: dict[str, Any]) -> None:
    print("Rogatory demo: DE-BFJ (central authority), US-OIA (central authority), "
          "NL-24X7 (24/7 contact point)")
    for i, s in enumerate(result["exchanges"], 1):
        r = s["receipt"]
        print(f"{i}. {s['message_type']:13} {s['from']} -> {s['to']}  id {s['message_id']}")
        print(f"   template {s['template']} {s['template_version']}")
        print(f"   receipt  {'verified' if r['verified'] else 'NOT VERIFIED'}, signed by "
              f"{r['receiver']} ({r['receiver_key_id']}), {r['status']}")
        print(f"   inbox    {'present' if s['in_recipient_inbox'] else 'MISSING'} at {s['to']}")
        print(f"   policy   legal basis {s['legal_basis']}; obligations at {s['to']}: "
              f"{', '.join(s['obligations']) or 'none'}")
        for a in s["attachments"]:
            print(f"   evidence {a['filename']} {a['size'] / (1 << 20):.0f} MiB "
                  f"sha256 {a['sha256_sender'][:16]}... "
                  f"{'matches on both sides' if a['match'] else 'MISMATCH'}")
    c = result["case"]
    print(f"case {c['case_id']} at DE-BFJ (reference {c['reference']}):")
    for r in c["requests"]:
        print(f"   {r['kind']} {r['request_id']}: {r['state']} (drafted by {r['drafter']}, "
              f"approved by {r['approver']}; acknowledged by US-OIA)")
    print(f"{'OK' if result['ok'] else 'FAILED'}: both exchanges in {result['elapsed_s']} s")


def run_demo(*, json_output: bool, workdir: Path | None, attachment_mib: int = 20) -> int:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rogatory-")))
        workdir.mkdir(parents=True, exist_ok=True)
        configs = init_federation(workdir / "federation", [AgencySpec.parse(a) for a in AGENCIES],
                                  federation="rogatory-demo")
        try:
            with running_nodes(configs, workdir) as nodes:
                result = _exchange(nodes, workdir, attachment_mib)
        except (RogatoryError, OSError) as e:
            for log in sorted(workdir.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-5:]
                print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)
            raise DemoFailed(f"demo failed: {e}") from e
        if json_output:
            print(json.dumps(result, indent=2))
        else:
            _print_summary(result)
        return 0 if result["ok"] else 1
    return 1
