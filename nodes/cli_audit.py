"""`rogatory audit verify`: replay and verify the audit log (Kafka or embedded stores)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from broker.adapters.kafka import read_topic
from broker.adapters.sqlite.audit_source import read_store
from broker.audit.verifier import AuditVerifier, VerifiedHead
from broker.errors import ConfigError
from broker.trust import TrustList, admin_set_of, load_trust_list
from nodes.config import load_config
from nodes.node import load_trust, wall_clock_ms


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


async def _records(args: argparse.Namespace) -> AsyncIterator[tuple[str, bytes, str | None]]:
    for store in args.store or []:
        for item in read_store(Path(store)):
            yield item
    if args.kafka:
        async for position, value, key in read_topic(args.kafka, args.topic):
            yield position, value, key


def run_verify(args: argparse.Namespace) -> dict[str, Any]:
    if not args.store and not args.kafka:
        raise ConfigError("nothing to verify: pass --kafka HOST:PORT and/or --store PATH")
    state = Path(args.state) if args.state else None
    verifier = AuditVerifier(_trust(args), known_heads=_load_state(state))
    started = time.monotonic()

    async def feed() -> None:
        async for position, data, key in _records(args):
            verifier.feed(position, data, key=key)

    asyncio.run(feed())
    findings = verifier.finish()
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
        print("\n".join(_text(result)))
    sys.stdout.flush()
    return 0 if result["ok"] else 1


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", help="verify and replay the audit log")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify", parents=[common], help=(
        "replay every record and check chains, tree heads, signatures and cross-node "
        "consistency; exits 1 on any finding"))
    verify.add_argument("--kafka", help="bootstrap HOST:PORT of the audit topic's cluster")
    verify.add_argument("--topic", default="rogatory.audit.v1")
    verify.add_argument("--store", action="append", help="a node store (node.db); repeatable")
    verify.add_argument("--config", help="a node config whose trust list to use")
    verify.add_argument("--trust-list", help="trust list file (with --trust-anchor)")
    verify.add_argument("--trust-anchor", help="pinned admin keys for the trust list")
    verify.add_argument("--state", help="file remembering verified tree heads between runs")
    verify.set_defaults(func=cmd_verify)
