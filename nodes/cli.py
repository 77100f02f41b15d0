"""The `rogatory` command line. Errors are one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.errors import RogatoryError
from nodes import cli_audit, cli_bundle, cli_cases, cli_common, cli_policy, cli_templates
from nodes.config import load_config
from nodes.demo import run_demo
from nodes.federation import AgencySpec, init_federation
from nodes.logs import configure_logging
from nodes.node import run_until_signalled

EXIT_ERROR = 1
EXIT_USAGE = 2


_when = cli_common.when
_as_dict = cli_common.as_dict
_emit = cli_common.emit
_client = cli_common.client
_declarations = cli_common.declarations


# -- commands ----------------------------------------------------------------------------

def cmd_federation_init(args: argparse.Namespace) -> int:
    configs = init_federation(Path(args.dir), [AgencySpec.parse(a) for a in args.agency],
                              federation=args.name)
    paths = {k: str(v) for k, v in configs.items()}
    root = str(Path(args.dir).resolve())
    _emit(args, {"federation": root, "configs": paths}, lambda: "\n".join(
        [f"federation created in {root}"] + [f"  {k}: {v}" for k, v in paths.items()]))
    return 0


def cmd_node_run(args: argparse.Namespace) -> int:
    configure_logging(json_logs=True)
    asyncio.run(run_until_signalled(load_config(Path(args.config))))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    payload = Path(args.payload).read_bytes() if args.payload != "-" else sys.stdin.buffer.read()
    with _client(args) as client:
        result = client.send(to=args.to, message_type=args.type, payload=payload,
                             attachments=[Path(p) for p in args.attach or []],
                             template=args.template or "", ttl_seconds=args.ttl,
                             declarations=_declarations(args.declare or []),
                             legal_basis=args.legal_basis or "", case_id=args.case or "",
                             case_reference=args.case_ref or "", follows=args.follows or [])
    data = _as_dict(result)
    m = result.message
    _emit(args, data, lambda: "\n".join(
        [f"queued {m.message_id} -> {m.peer} ({m.message_type}, {m.template_id} "
         f"{m.template_version})"] +
        [f"  attachment {a.index}: {a.filename} {a.size} bytes sha256={a.sha256}"
         for a in result.attachments]))
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.forward(args.message_id, to=args.to,
                                declarations=_declarations(args.declare or []),
                                ttl_seconds=args.ttl)
    m = result.message
    _emit(args, _as_dict(result), lambda: (
        f"forwarded {args.message_id} -> {m.peer} as {m.message_id} "
        f"({len(result.attachments)} attachment(s))"))
    return 0


def cmd_deadlines(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.deadlines(cli_cases.parse_duration_ms(args.due_within))

    def text() -> str:
        if not result.deadlines:
            return f"no deadline due within {args.due_within}"
        rows = [f"{'DUE':20}  {'STATUS':11}  {'CASE':13}  {'SIDE':10}  {'PEER':10}  "
                f"{'DEADLINE':28}  REQUEST"]
        rows += [f"{_when(d.due_at_ms):20}  {d.status:11}  {d.case_id:13}  {d.side:10}  "
                 f"{d.peer:10}  {d.name:28}  {d.request_id}" for d in result.deadlines]
        return "\n".join(rows)

    _emit(args, _as_dict(result), text)
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    if args.due_within:
        return cmd_deadlines(args)
    direction = "" if args.all else ("outgoing" if args.outgoing else "incoming")
    with _client(args) as client:
        result = client.list(direction=direction, limit=args.limit)
    data = _as_dict(result)

    def text() -> str:
        if not result.messages:
            return "no messages"
        rows = [f"{'MESSAGE ID':32}  {'DIR':3}  {'PEER':10}  {'TYPE':14}  {'STATUS':10}  "
                f"{'CREATED':20}  ATT"]
        rows += [f"{m.message_id}  {m.direction[:3]:3}  {m.peer:10}  {m.message_type:14}  "
                 f"{m.status:10}  {_when(m.created_at_ms):20}  {m.attachment_count}"
                 for m in result.messages]
        return "\n".join(rows)

    _emit(args, data, text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        d = client.show(args.message_id)
    data = _as_dict(d)
    try:
        payload: Any = json.loads(d.payload)
    except ValueError:
        payload = None
    data["payload"] = payload
    m = d.message

    def text() -> str:
        lines = [f"message   {m.message_id} ({m.direction})", f"peer      {m.peer}",
                 f"type      {m.message_type} / {m.template_id} {m.template_version}",
                 f"status    {m.status}", f"created   {_when(m.created_at_ms)}",
                 f"expires   {_when(m.expires_at_ms)}", f"header    sha256={d.header_sha256}",
                 f"signed by {d.signer_key_id} (signature {d.signature_fingerprint[:16]})"]
        if d.legal_basis:
            obligations = ", ".join(o["id"] for o in json.loads(d.obligations or "[]"))
            lines.append(f"policy    legal basis {d.legal_basis}; obligations: "
                         f"{obligations or 'none'}")
        if d.last_error:
            lines.append(f"delivery  {d.delivery_attempts} attempts, last error {d.last_error}")
        lines += [f"attachment {a.index}: {a.filename} {a.media_type} {a.size} bytes "
                  f"sha256={a.sha256}" for a in d.attachments]
        lines.append("payload:")
        lines.append(json.dumps(payload, indent=2, ensure_ascii=False))
        return "\n".join(lines)

    _emit(args, data, text)
    return 0


def cmd_receipt(args: argparse.Namespace) -> int:
    with _client(args) as client:
        r = client.receipt(args.message_id)
    data = _as_dict(r)
    data.pop("receipt", None)
    data["receipt_b64"] = _as_dict(r).get("receipt", "")
    _emit(args, data, lambda: (
        f"receipt for {r.message_id}: {'VERIFIED' if r.verified else 'NOT VERIFIED'}\n"
        f"  receiver  {r.receiver} (key {r.receiver_key_id})\n"
        f"  status    {r.status}\n  received  {_when(r.received_at_ms)}\n"
        f"  header    sha256={r.header_sha256}"))
    return 0 if r.verified else EXIT_ERROR


def cmd_attachment(args: argparse.Namespace) -> int:
    digest, size = hashlib.sha256(), 0
    out = Path(args.out)
    with _client(args) as client, open(out, "wb") as fh:
        for piece in client.read_attachment(args.message_id, args.index):
            fh.write(piece)
            digest.update(piece)
            size += len(piece)
    data = {"message_id": args.message_id, "index": args.index, "out": str(out),
            "size": size, "sha256": digest.hexdigest()}
    _emit(args, data, lambda: f"wrote {size} bytes to {out} sha256={digest.hexdigest()}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        s = client.status()
    _emit(args, _as_dict(s), lambda: (
        f"node {s.node_id}: trust list v{s.trust_list_version}, {s.inbox_count} received, "
        f"{s.outbox_pending} pending delivery, {s.audit_records} audit records"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(json_output=args.json, workdir=Path(args.dir) if args.dir else None,
                    attachment_mib=args.attachment_mib)


# -- parser ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    node_opt = argparse.ArgumentParser(add_help=False)
    node_opt.add_argument("--config", help="the node's node.toml (or ROGATORY_CONFIG)")
    node_opt.add_argument("--as", dest="as_subject", metavar="PERSON",
                          help="act as this person (development token issuer; default: "
                               "your login name)")
    node_opt.add_argument("--role", action="append", help="the person's roles (repeatable; "
                          "default: drafter, approver, contact_point_officer)")

    parser = argparse.ArgumentParser(prog="rogatory", description=(
        "Secure cross-border evidence exchange between justice agencies."))
    sub = parser.add_subparsers(dest="command", required=True)

    fed = sub.add_parser("federation", help="federation administration")
    fed_sub = fed.add_subparsers(dest="action", required=True)
    init = fed_sub.add_parser("init", parents=[common], help="create a local federation")
    init.add_argument("dir")
    init.add_argument("--agency", action="append", required=True,
                      help="NODE_ID:role[,role] e.g. DE-BFJ:central_authority")
    init.add_argument("--name", default="rogatory-dev", help="federation name")
    init.set_defaults(func=cmd_federation_init)

    node = sub.add_parser("node", help="run a node")
    node_sub = node.add_subparsers(dest="action", required=True)
    run = node_sub.add_parser("run", help="run one node until SIGTERM")
    run.add_argument("--config", required=True)
    run.set_defaults(func=cmd_node_run)

    _message_commands(sub, common, node_opt)

    demo = sub.add_parser("demo", parents=[common], help="run the three-agency demo")
    demo.add_argument("--dir", help="keep the federation in this folder")
    demo.add_argument("--attachment-mib", type=int, default=20)
    demo.set_defaults(func=cmd_demo)
    cli_audit.register(sub, common)
    cli_policy.register(sub, common)
    cli_templates.register(sub, common)
    cli_cases.register(sub, [common, node_opt])
    cli_bundle.register(sub, common)
    return parser


def _message_commands(sub: Any, common: argparse.ArgumentParser,
                      node_opt: argparse.ArgumentParser) -> None:
    send = sub.add_parser("send", parents=[common, node_opt], help="send a request")
    send.add_argument("--to", required=True, help="recipient node id")
    send.add_argument("--type", required=True, help="message type, e.g. preservation")
    send.add_argument("--payload", required=True, help="JSON payload file, or - for stdin")
    send.add_argument("--attach", action="append", help="evidence file (repeatable)")
    send.add_argument("--template", help="template id[@version] (default: by message type)")
    send.add_argument("--ttl", type=int, default=0, help="lifetime in seconds")
    send.add_argument("--declare", action="append", metavar="KEY=VALUE", help=(
        "a declaration for the policy engine, e.g. justification=... or "
        "agreement_ref=... (repeatable; see `rogatory policy explain`)"))
    send.add_argument("--legal-basis", help="the legal basis (default: from the template)")
    send.add_argument("--case", help="add the request to this case")
    send.add_argument("--case-ref", help="open a new case with your own reference")
    send.add_argument("--follows", action="append", metavar="REQUEST_ID",
                      help="a request this one follows up (e.g. a preservation)")
    send.set_defaults(func=cmd_send)

    fwd = sub.add_parser("forward", parents=[common, node_opt],
                         help="onward transfer of a stored message to another node")
    fwd.add_argument("message_id")
    fwd.add_argument("--to", required=True)
    fwd.add_argument("--declare", action="append", metavar="KEY=VALUE",
                     help="e.g. onward_authorisation_ref=... or prior_authorisation_ref=...")
    fwd.add_argument("--ttl", type=int, default=0)
    fwd.set_defaults(func=cmd_forward)

    inbox = sub.add_parser("inbox", parents=[common, node_opt], help="list received messages")
    inbox.add_argument("--outgoing", action="store_true", help="list sent messages instead")
    inbox.add_argument("--all", action="store_true", help="both directions")
    inbox.add_argument("--limit", type=int, default=100)
    inbox.add_argument("--due-within", metavar="DURATION",
                       help="list the legal deadlines due within e.g. 48h or 7d instead "
                            "(passed ones not yet met included)")
    inbox.set_defaults(func=cmd_inbox)

    show = sub.add_parser("show", parents=[common, node_opt], help="show one message")
    show.add_argument("message_id")
    show.add_argument("--justification", help="why you consult it (audited; a reference, "
                      "e.g. a case number, not personal data)")
    show.set_defaults(func=cmd_show)

    receipt = sub.add_parser("receipt", parents=[common, node_opt],
                             help="show and verify a message's signed receipt")
    receipt.add_argument("message_id")
    receipt.set_defaults(func=cmd_receipt)

    att = sub.add_parser("attachment", parents=[common, node_opt],
                         help="decrypt one attachment to a file")
    att.add_argument("message_id")
    att.add_argument("index", type=int)
    att.add_argument("--out", required=True)
    att.add_argument("--justification", help="why you consult it (audited)")
    att.set_defaults(func=cmd_attachment)

    status = sub.add_parser("status", parents=[common, node_opt], help="node status")
    status.set_defaults(func=cmd_status)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "node":
        configure_logging(json_logs=True, quiet=True)
    try:
        return int(args.func(args))
    except RogatoryError as e:
        print(f"rogatory: error: {e.message} [{e.code}]", file=sys.stderr)
        return EXIT_USAGE if e.code == "USAGE" else EXIT_ERROR
    except OSError as e:
        print(f"rogatory: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
