"""`rogatory audit verify | replay | report`: verify the audit log (Kafka or embedded
stores), rebuild each request's lifecycle from it, and write the auditor's HTML report.

Every command reads the records once and runs the verifier over them: a lifecycle is
never shown without saying whether the log it comes from verified.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from broker.adapters.kafka import read_topic
from broker.adapters.sqlite.audit_source import read_stores
from broker.audit.lifecycle import Lifecycle, duration, utc, visible
from broker.audit.replay import Replay
from broker.audit.report import Verification, render_report
from broker.audit.verifier import AuditVerifier, Finding, VerifiedHead
from broker.errors import ConfigError, RogatoryError
from broker.model import MessageId
from broker.templating import load_registry
from broker.trust import TrustList, admin_set_of, load_trust_list
from nodes.config import load_config
from nodes.node import TEMPLATES_DIR, load_trust, wall_clock_ms


def _trust(args: argparse.Namespace) -> TrustList:
    if args.config:
        return load_trust(load_config(Path(args.config)), wall_clock_ms(), 0)
    if not (args.trust_list and args.trust_anchor):
        raise ConfigError("pass --config, or --trust-list and --trust-anchor")
    anchor = json.loads(Path(args.trust_anchor).read_text())
    return load_trust_list(Path(args.trust_list).read_bytes(),
                           trusted_admins=admin_set_of(anchor), now_ms=wall_clock_ms())


def _load_state(path: Path | None) -> dict[str, VerifiedHead]:
    if path is None or not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {node: VerifiedHead(int(h["tree_size"]), bytes.fromhex(h["root_hash"]))
            for node, h in data.get("verified_heads", {}).items()}


def _save_state(path: Path, heads: dict[str, VerifiedHead]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"verified_heads": {
        node: {"tree_size": h.tree_size, "root_hash": h.root_hash.hex()}
        for node, h in sorted(heads.items())}}, indent=1))
    tmp.replace(path)


async def _topic(args: argparse.Namespace) -> AsyncIterator[tuple[str, bytes, str | None]]:
    async for position, value, key in read_topic(args.kafka, args.topic):
        yield position, value, key


def _scan(args: argparse.Namespace, verifier: AuditVerifier,
          also: Callable[[bytes], None] | None = None) -> list[Finding]:
    """One pass over the sources: every record to the verifier (and to `also`)."""
    if not args.store and not args.kafka:
        raise ConfigError("no audit log named: pass --kafka HOST:PORT and/or --store PATH")

    def take(position: str, data: bytes, key: str | None) -> None:
        verifier.feed(position, data, key=key)
        if also is not None:
            also(data)

    # Stores are read synchronously (no event loop per record: ~7% of a verify).
    for position, data, key in read_stores([Path(s) for s in args.store or []]):
        take(position, data, key)
    if args.kafka:
        async def feed() -> None:
            async for position, data, key in _topic(args):
                take(position, data, key)
        asyncio.run(feed())
    return verifier.finish()


def _sources(args: argparse.Namespace) -> list[str]:
    return [*(args.store or []), *([f"kafka://{args.kafka}/{args.topic}"] if args.kafka else [])]


def run_verify(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(args.state) if args.state else None
    verifier = AuditVerifier(_trust(args), known_heads=_load_state(state))
    started = time.monotonic()
    findings = _scan(args, verifier)
    elapsed = time.monotonic() - started
    if state is not None and not findings:
        _save_state(state, verifier.verified_heads())
    return {
        "ok": not findings,
        "records": verifier.records,
        "duplicates": verifier.duplicates,
        "nodes": {n: {"records": s.records, "last_sequence": s.next_seq - 1,
                      "verified_tree_size": s.latest_head.tree_size if s.latest_head else 0}
                  for n, s in sorted(verifier.nodes.items())},
        "pending_exchanges": [{"envelope_id": e.hex(), "from": s, "to": r}
                              for e, s, r in verifier.pending()],
        "findings": [f.as_dict() for f in findings],
        "elapsed_s": round(elapsed, 3),
    }


def _text(result: dict[str, Any]) -> Iterator[str]:
    yield (f"{'OK' if result['ok'] else 'FINDINGS'}: {result['records']} records "
           f"({result['duplicates']} duplicates) from {len(result['nodes'])} nodes in "
           f"{result['elapsed_s']} s")
    for node, s in result["nodes"].items():
        yield (f"  {node}: {s['records']} records, last sequence {s['last_sequence']}, "
               f"verified tree size {s['verified_tree_size']}")
    for f in result["findings"]:
        yield f"  {f['code']}: {f['node_id']} seq {f['sequence']} at {f['position']}: {f['detail']}"
    if result["pending_exchanges"]:
        yield f"  {len(result['pending_exchanges'])} exchange(s) still awaiting delivery"


def cmd_verify(args: argparse.Namespace) -> int:
    result = run_verify(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(visible(line) for line in _text(result)))
    sys.stdout.flush()
    return 0 if result["ok"] else 1


# -- replay and report ---------------------------------------------------------------------

def _envelope_filter(args: argparse.Namespace) -> list[bytes] | None:
    if not args.envelope:
        return None
    try:
        return [MessageId.parse(e).raw for e in args.envelope]
    except RogatoryError as e:
        raise RogatoryError(f"--envelope: {e.message}", code="USAGE") from e


def run_replay(args: argparse.Namespace) -> tuple[list[Lifecycle], list[Finding]]:
    replay = Replay(envelope_ids=_envelope_filter(args))
    findings = _scan(args, AuditVerifier(_trust(args)), replay.feed)
    return list(replay.result().lifecycles), findings


def _lifecycle_text(lc: Lifecycle) -> Iterator[str]:
    yield f"{lc.envelope_id}  {lc.status.upper()}"
    yield (f"  {lc.sender or '?'} -> {lc.recipient or '?'}: {lc.message_type or '?'} "
           f"({lc.template or 'no template'})" + (f", case {lc.case_id}" if lc.case_id else ""))
    yield (f"  sent {utc(lc.sent_ms)}, delivered {utc(lc.delivered_ms)} "
           f"(+{duration(lc.delivery_ms)}), received {utc(lc.received_ms)} "
           f"(+{duration(lc.transit_ms)})")
    if lc.retries or lc.duplicates or lc.invalid_receipts:
        reasons = ", ".join(f"{r} x{n}" for r, n in lc.retry_reasons.items())
        yield (f"  {lc.retries} retries{f' ({reasons})' if reasons else ''}, "
               f"{lc.duplicates} duplicate deliveries, {lc.invalid_receipts} invalid receipts")
    if lc.refused_ms is not None:
        yield f"  refused {utc(lc.refused_ms)}: {lc.refused_reason}"
    if lc.expired_ms is not None:
        yield f"  expired {utc(lc.expired_ms)}"
    for when, node, reason in lc.rejections:
        yield f"  rejected by {node} {utc(when)}: {reason}"
    for c in lc.consultations:
        why = f" ({c.justification})" if c.justification else ""
        yield f"  {c.what} consulted by {c.actor} at {c.node_id} {utc(c.time_ms)}{why}"
    if lc.policy_decision_ids:
        yield f"  policy decisions: {', '.join(lc.policy_decision_ids)}"
    if lc.citations:
        yield f"  citations: {'; '.join(lc.citations)}"


def _findings_line(findings: list[Finding]) -> str:
    if not findings:
        return "verified: no findings"
    return (f"WARNING: {len(findings)} verification finding(s): this history comes from a log "
            "that does not verify; run 'rogatory audit verify' for the details")


def cmd_replay(args: argparse.Namespace) -> int:
    lifecycles, findings = run_replay(args)
    if args.json:
        print(json.dumps([lc.as_dict() for lc in lifecycles], indent=2))
        if findings:
            print(_findings_line(findings), file=sys.stderr)
    else:
        lines = [f"{len(lifecycles)} request(s); {_findings_line(findings)}"]
        for lc in lifecycles:
            lines += ["", *_lifecycle_text(lc)]
        print("\n".join(visible(line) for line in lines))
    sys.stdout.flush()
    return 0 if not findings else 1


def cmd_report(args: argparse.Namespace) -> int:
    registry = load_registry(Path(args.templates)) if args.templates else None
    verifier = AuditVerifier(_trust(args))
    replay = Replay()
    findings = _scan(args, verifier, replay.feed)
    history = replay.result()
    html = render_report(history, Verification.of(verifier, findings), registry=registry,
                         generated_at_ms=wall_clock_ms(), sources=_sources(args))
    out = Path(args.html)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    summary = {"html": str(out), "records": verifier.records,
               "requests": len(history.lifecycles), "cases": len(history.cases),
               "findings": [f.as_dict() for f in findings]}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"report written to {out}: {len(history.lifecycles)} request(s) in "
              f"{len(history.cases)} case(s), {verifier.records} records; "
              f"{_findings_line(findings)}")
    sys.stdout.flush()
    return 0 if not findings else 1


# -- parser ------------------------------------------------------------------------------

def _source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", help="bootstrap HOST:PORT of the audit topic's cluster")
    parser.add_argument("--topic", default="rogatory.audit.v1")
    parser.add_argument("--store", action="append", help="a node store (node.db); repeatable")
    parser.add_argument("--config", help="a node config whose trust list to use")
    parser.add_argument("--trust-list", help="trust list file (with --trust-anchor)")
    parser.add_argument("--trust-anchor", help="pinned admin keys for the trust list")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", help="verify and replay the audit log")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify", parents=[common], help=(
        "replay every record and check chains, tree heads, signatures and cross-node "
        "consistency; exits 1 on any finding"))
    _source_args(verify)
    verify.add_argument("--state", help="file remembering verified tree heads between runs")
    verify.set_defaults(func=cmd_verify)

    replay = audit_sub.add_parser("replay", parents=[common], help=(
        "rebuild each request's lifecycle (who sent what to whom, delivery, receipt, "
        "retries, consultations, policy decisions) from the log alone; verifies the log "
        "in the same pass and exits 1 on any finding"))
    _source_args(replay)
    replay.add_argument("--envelope", action="append",
                        help="only this envelope id (32 hex digits); repeatable")
    replay.set_defaults(func=cmd_replay)

    report = audit_sub.add_parser("report", parents=[common], help=(
        "write a standalone HTML report: verification findings, per-case timelines, "
        "response times against legal deadlines, volumes; exits 1 on any finding"))
    _source_args(report)
    report.add_argument("--html", required=True, help="the report file to write")
    report.add_argument("--templates", default=str(TEMPLATES_DIR),
                        help="template directory whose deadlines apply (default: the "
                        "bundled templates/)")
    report.set_defaults(func=cmd_report)
