"""`rogatory verify-bundle BUNDLE`: verify a court bundle fully offline.

Needs no node, no configuration and no network: everything is checked against the
bundle's own trust list, whose root keys are printed so that the court can compare them
with those it received out of band (`--expect-root` pins one). Exit 0 when the bundle
verifies, 1 with one line per finding otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from broker.bundle import BundleReport, verify_bundle
from broker.bundle.layout import utc

EXIT_FINDINGS = 1


def _text(path: str, report: BundleReport) -> Iterator[str]:
    if report.ok:
        yield (f"OK: {path} verifies: case {report.case_id} exported by {report.node_id} at "
               f"{utc(report.exported_at_ms)}; {report.messages} message(s), "
               f"{report.evidence_files} evidence file(s) ({report.evidence_bytes} bytes), "
               f"{report.audit_records} audit record(s) proven in a tree of "
               f"{report.tree_size}")
    else:
        yield f"FAILED: {path}: {len(report.findings)} finding(s)"
        for f in report.findings:
            yield f"  {f}"
    if report.roots:
        yield (f"trust list: federation {report.federation!r} version "
               f"{report.trust_list_version}, {report.root_threshold} of "
               f"{len(report.roots)} root key(s); compare out of band:")
        for r in report.roots:
            mark = "signed" if r.signed else "NOT SIGNED"
            yield f"  {r.key_id}  sha256:{r.fingerprint}  ({mark})"
    for note in report.notes:
        yield f"note: {note}"


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    report = verify_bundle(Path(args.bundle), expect_root=args.expect_root)
    if args.json:
        print(json.dumps({"bundle": args.bundle, **report.as_dict()}, indent=2))
    else:
        print("\n".join(_text(args.bundle, report)))
    sys.stdout.flush()
    return 0 if report.ok else EXIT_FINDINGS


def register(sub: Any, common: argparse.ArgumentParser | None = None) -> None:
    """Add `verify-bundle` to the top-level subcommands."""
    parents = [common] if common is not None else []
    p = sub.add_parser("verify-bundle", parents=parents, help=(
        "verify a case bundle offline (signatures, digests, receipts, audit proofs, "
        "trust list); exits 1 and names each tampered file"))
    p.add_argument("bundle", help="the bundle (.zip) to verify")
    p.add_argument("--expect-root", metavar="FPR", help=(
        "a root key of the trust list the bundle must be signed by: key id "
        "(ed25519:...), SHA-256 fingerprint or base64 public key, as received out of band"))
    if common is None:
        p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_verify_bundle)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (`python -m nodes.cli_bundle verify-bundle ...`)."""
    parser = argparse.ArgumentParser(prog="rogatory")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except OSError as e:
        print(f"rogatory: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return EXIT_FINDINGS


if __name__ == "__main__":
    sys.exit(main())
