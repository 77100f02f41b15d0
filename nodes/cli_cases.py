"""`rogatory` commands of the request lifecycle: draft, approve, answers, cases, export.

Answers (acknowledge, respond, refuse, extend, withdraw) name any message of the request
they answer; the node sends them to that request's peer, checks the step is legal on
this side, and links them to the case. Payloads are template payloads (see
``rogatory template skeleton``).
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.errors import RogatoryError
from nodes import cli_common as common

# Answer command -> (default message type, what it does); --type overrides (e.g. an EPOC
# is refused with epoc_impossibility, an EIO acknowledged with eio_acknowledgement).
ANSWERS = {
    "acknowledge": ("acknowledgement", "acknowledge receipt of a request"),
    "respond": ("execution_response", "answer a request (execution response, evidence)"),
    "refuse": ("refusal", "refuse a request, with grounds"),
    "extend": ("preservation", "extend a preservation (Budapest: a preservation whose "
               "request_status is extension_of_previous_preservation)"),
    "withdraw": ("withdrawal", "withdraw a request"),
    "request-info": ("additional_information_request", "ask for additional information"),
    "supply-info": ("additional_information", "supply the additional information asked"),
}
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


def parse_duration_ms(text: str) -> int:
    """``48h``, ``7d``, ``30m``... as milliseconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise RogatoryError(f"a duration is a number and a unit (s, m, h, d, w), not {text!r}",
                            code="USAGE")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def _custody(args: argparse.Namespace) -> dict[str, Any] | None:
    fields = {"acquired_by": args.acquired_by or "", "method": args.method or "",
              "source": args.source or "", "request_reference": args.request_reference or ""}
    if args.acquired_at:
        try:
            at = datetime.fromisoformat(args.acquired_at)
        except ValueError as e:
            raise RogatoryError("--acquired-at is an ISO 8601 time", code="USAGE") from e
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        fields["acquired_at_ms"] = int(at.timestamp() * 1000)
    return fields if any(fields.values()) else None


def cmd_draft(args: argparse.Namespace) -> int:
    with common.client(args) as client:
        result = client.send(to=args.to, message_type=args.type,
                             payload=common.read_payload(args.payload),
                             attachments=[Path(p) for p in args.attach or []],
                             template=args.template or "", ttl_seconds=args.ttl,
                             declarations=common.declarations(args.declare or []),
                             legal_basis=args.legal_basis or "", case_id=args.case or "",
                             case_reference=args.case_ref or "", follows=args.follows or [],
                             draft=True)
    r = result.request
    common.emit(args, common.as_dict(result), lambda: (
        f"drafted {r.request_id} ({r.kind} -> {r.peer}, case {r.case_id}) by {r.drafter}; "
        "a different person with the approver role must approve it"))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    with common.client(args) as client:
        result = client.approve(args.request_id)
    r, m = result.request, result.message
    common.emit(args, common.as_dict(result), lambda: (
        f"approved {r.request_id} (drafted by {r.drafter}, approved by {r.approver}); "
        f"queued {m.message_id} -> {m.peer}"))
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    message_type = args.type or ANSWERS[args.command][0]
    with common.client(args) as client:
        result = client.send(to="", message_type=message_type,
                             payload=common.read_payload(args.payload),
                             attachments=[Path(p) for p in args.attach or []],
                             template=args.template or "", ttl_seconds=args.ttl,
                             in_reply_to=args.message_id,
                             declarations=common.declarations(args.declare or []),
                             legal_basis=args.legal_basis or "", custody=_custody(args))
    m, r = result.message, result.request
    common.emit(args, common.as_dict(result), lambda: "\n".join(
        [f"queued {m.message_id} -> {m.peer} ({m.message_type}); request {r.request_id} "
         f"is now {r.state}"] +
        [f"  attachment {a.index}: {a.filename} {a.size} bytes sha256={a.sha256}"
         for a in result.attachments]))
    return 0


def cmd_case_list(args: argparse.Namespace) -> int:
    with common.client(args) as client:
        result = client.cases(limit=args.limit)

    def text() -> str:
        if not result.cases:
            return "no cases"
        rows = [f"{'CASE':13}  {'OPENED':20}  {'REQUESTS':8}  STATES"]
        rows += [f"{c.case_id:13}  {common.when(c.opened_at_ms):20}  {len(c.requests):8}  "
                 + ", ".join(f"{r.kind}:{r.state}" for r in c.requests) for c in result.cases]
        return "\n".join(rows)

    common.emit(args, common.as_dict(result), text)
    return 0


def cmd_case_show(args: argparse.Namespace) -> int:
    with common.client(args) as client:
        result = client.case(args.case_id)

    def text() -> str:
        c = result.case
        lines = [f"case {c.case_id}  opened {common.when(c.opened_at_ms)}"
                 + (f"  reference {c.reference}" if c.reference else "")]
        for d in result.requests:
            r = d.request
            lines.append(f"  request {r.request_id}  {r.side} {r.kind} with {r.peer}: "
                         f"{r.state}" + (f"  (their reference {r.peer_reference})"
                                         if r.peer_reference else ""))
            if r.drafter or r.approver:
                lines.append(f"    drafted by {r.drafter or '-'}, approved by "
                             f"{r.approver or '-'}")
            for st in d.steps:
                lines.append(f"    {common.when(st.at_ms)}  {st.event:32} {st.source or '-'} "
                             f"-> {st.target}  {st.actor}")
            for dl in d.deadlines:
                if dl.status != "pending":
                    lines.append(f"    deadline {dl.name} ({dl.kind or 'period'}, "
                                 f"{dl.verification}): due {common.when(dl.due_at_ms)} "
                                 f"[{dl.status}]")
            if r.allowed_events:
                lines.append(f"    next: {', '.join(r.allowed_events)}")
        return "\n".join(lines)

    common.emit(args, common.as_dict(result), text)
    return 0


def cmd_case_step(args: argparse.Namespace) -> int:
    with common.client(args) as client:
        r = client.record_step(args.request_id, args.event)
    common.emit(args, common.as_dict(r), lambda: f"request {r.request_id} is now {r.state}")
    return 0


def cmd_case_reference(args: argparse.Namespace) -> int:
    with common.client(args) as client:
        c = client.set_case_reference(args.case_id, args.reference)
    common.emit(args, common.as_dict(c), lambda: f"case {c.case_id}: reference {c.reference}")
    return 0


def cmd_case_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    with common.client(args) as client:
        size = client.export_case(args.case_id, out)
    common.emit(args, {"case_id": args.case_id, "out": str(out), "bytes": size},
                lambda: f"exported case {args.case_id} to {out} ({size} bytes); check it "
                        f"offline with: rogatory verify-bundle {out}")
    return 0


def _send_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--payload", required=True, help="JSON payload file, or - for stdin")
    p.add_argument("--attach", action="append", help="evidence file (repeatable)")
    p.add_argument("--template", help="template id[@version] (default: by message type)")
    p.add_argument("--ttl", type=int, default=0, help="lifetime in seconds")
    p.add_argument("--declare", action="append", metavar="KEY=VALUE",
                   help="a declaration for the policy engine (repeatable)")
    p.add_argument("--legal-basis", help="the legal basis (default: from the template)")


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    draft = sub.add_parser("draft", parents=parents,
                           help="draft a request for four-eyes approval (MLA, production)")
    draft.add_argument("--to", required=True)
    draft.add_argument("--type", required=True, help="message type, e.g. mla_request")
    _send_options(draft)
    draft.add_argument("--case", help="add the request to this case")
    draft.add_argument("--case-ref", help="open a new case with your own reference")
    draft.add_argument("--follows", action="append", metavar="REQUEST_ID",
                       help="a request this one follows up (e.g. a preservation)")
    draft.set_defaults(func=cmd_draft)

    approve = sub.add_parser("approve", parents=parents,
                             help="approve a draft (a different person from the drafter)")
    approve.add_argument("request_id")
    approve.set_defaults(func=cmd_approve)

    for name, (default, what) in ANSWERS.items():
        p = sub.add_parser(name, parents=parents, help=what)
        p.add_argument("message_id", help="the request, or any message of it, answered")
        p.add_argument("--type", help=f"message type (default: {default})")
        _send_options(p)
        custody = p.add_argument_group("chain of custody of the attached evidence")
        custody.add_argument("--acquired-by", help="who acquired it")
        custody.add_argument("--acquired-at", help="when (ISO 8601)")
        custody.add_argument("--method", help="how (e.g. production order to provider)")
        custody.add_argument("--source", help="from which source")
        custody.add_argument("--request-reference", help="the requesting side's reference")
        p.set_defaults(func=cmd_answer, command=name)

    case = sub.add_parser("case", help="cases: requests grouped with their answers")
    case_sub = case.add_subparsers(dest="case_command", required=True)
    lst = case_sub.add_parser("list", parents=parents, help="list cases")
    lst.add_argument("--limit", type=int, default=100)
    lst.set_defaults(func=cmd_case_list)
    show = case_sub.add_parser("show", parents=parents,
                               help="a case: requests, states, history, deadlines")
    show.add_argument("case_id")
    show.set_defaults(func=cmd_case_show)
    step = case_sub.add_parser("step", parents=parents,
                               help="record a local step: begin_execution, lift, close")
    step.add_argument("request_id")
    step.add_argument("event", choices=["begin_execution", "lift", "close", "expire",
                                        "withdrawal"],
                      help="withdrawal: of a draft never sent (once sent: rogatory withdraw)")
    step.set_defaults(func=cmd_case_step)
    ref = case_sub.add_parser("reference", parents=parents,
                              help="set your own reference for a case (sent in answers)")
    ref.add_argument("case_id")
    ref.add_argument("reference")
    ref.set_defaults(func=cmd_case_reference)
    export = case_sub.add_parser("export", parents=parents,
                                 help="write a court-ready bundle of the case")
    export.add_argument("case_id")
    export.add_argument("--out", required=True, help="bundle.zip")
    export.add_argument("--justification", required=True,
                        help="why you export it (audited; a reference, not personal data)")
    export.set_defaults(func=cmd_case_export)
