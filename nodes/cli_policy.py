"""``rogatory policy explain | test | decide``: the policy engine for lawyers and DPOs.

explain  decide one exchange built from two node ids, a template and a payload file, and
         print the reasoning (facts used, rules that applied, what is missing).
test     run the decision tables (policy/tests/*.yaml) and report every difference.
decide   decide one case written in the decision-table input format (file or ``-``).

Exit codes: 0 allowed / all tables pass; 3 the decision is not allow; 1 a table case
failed or an error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.errors import ConfigError, RogatoryError
from broker.policy import Decision, PolicyRequest, PolicySet, load_policy_set
from broker.policy.model import TAG_MEANING, weakest_tag
from broker.policy.tables import CaseResult, check, parse_table, request_from_case, run_cases
from broker.policy.yamlsrc import parse_yaml
from broker.templating import load_registry

EXIT_NOT_ALLOWED = 3
EXIT_FAILED = 1


def _usage(message: str) -> RogatoryError:
    return RogatoryError(message, code="USAGE")


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def _policy(args: argparse.Namespace) -> PolicySet:
    return load_policy_set(Path(args.policy))


def _at(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise _usage(f"--at {value!r} is not an ISO 8601 time") from e
    if parsed.tzinfo is None:
        raise _usage("--at must name its zone, e.g. 2026-11-23T12:00:00Z")
    return parsed


def _declaration(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise _usage(f"--declare {text!r}: expected KEY=VALUE")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    if isinstance(value, float | dict):
        value = raw
    return key, value


# -- rendering -----------------------------------------------------------------------------

def _tag(note: str) -> str:
    tag = weakest_tag(note)
    return f"{tag} - {TAG_MEANING[tag]}"


def _render_hits(d: Decision) -> list[str]:
    if not d.hits:
        return [] if d.error else ["Rules that applied: none - no rule gives a legal basis: "
                                   "denied"]
    lines = ["Rules that applied:"]
    for h in d.hits:
        lines += [f"  [{h.effect}] {h.policy_id} - {h.citation.source}", f"      {h.reason}",
                  f"      verification {_tag(h.citation.verification)}: "
                  f"{h.citation.verification}"]
        if h.effect == "needs":
            lines.append(f"      missing: {', '.join(h.requires)}")
        if h.effect == "review":
            lines.append(f"      to be reviewed by: {h.reviewer}")
    return lines


def _render_missing(ps: PolicySet, d: Decision) -> list[str]:
    lines = ["Missing (declare to proceed):"] if d.missing else []
    for item in d.missing:
        for name in (p.strip() for p in item.split("|")):
            spec = ps.vocabulary.declarations.get(name)
            lines.append(f"  - {name}: {spec.text if spec else ''}"
                         + ("   (or one of the alternatives)" if "|" in item else ""))
    return lines


def _render_obligations(d: Decision) -> list[str]:
    lines = (["Obligations attached (travel with the message, bind the recipient):"]
             if d.obligations else [])
    for o in d.obligations:
        params = f" {dict(o.params)}" if o.params else ""
        lines.append(f"  - {o.id}{params}: {o.text} ({o.source}; {_tag(o.verification)}; "
                     f"from {o.rule})")
    return lines


def render(ps: PolicySet, request: PolicyRequest, decision: Decision) -> str:
    """The decision as a lawyer reads it."""
    d = decision
    lines = [f"Decision: {d.outcome.upper()}",
             f"  evaluated {d.at.isoformat()} against policy set sha256:{d.policy_set_hash}",
             f"  facts as of {ps.facts.as_of} (review by {ps.facts.review_by})",
             "Exchange:", f"  {d.reasons[0]}" if d.error is None else f"  {request.action} "
             f"{request.sender_node} -> {request.recipient_node}",
             "Facts used:",
             f"  {ps.describe_jurisdiction(request.sender_jurisdiction, d.at)}",
             f"  {ps.describe_jurisdiction(request.recipient_jurisdiction, d.at)}"]
    basis = ps.facts.instruments.get(request.legal_basis)
    if basis is not None:
        lines.append(f"  legal basis {basis.code}: {basis.name} ({basis.citation}) "
                     f"[{_tag(basis.verification)}: {basis.verification}]")
    if d.error:
        lines += ["Why:", f"  denied (fail closed): {d.error}"]
    lines += _render_hits(d) + _render_missing(ps, d) + _render_obligations(d)
    if d.reviewers:
        lines.append(f"Held for review by: {', '.join(d.reviewers)}")
    return "\n".join(lines)


def _emit(args: argparse.Namespace, data: Mapping[str, Any], text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) if args.json
          else text)


# -- commands ------------------------------------------------------------------------------

def cmd_explain(args: argparse.Namespace) -> int:
    ps = _policy(args)
    try:
        payload = json.loads(_read(args.payload))
    except ValueError as e:
        raise _usage(f"{args.payload}: not valid JSON") from e
    if not isinstance(payload, dict):
        raise _usage(f"{args.payload}: the payload must be a JSON object")
    template_id, _, version = args.template.partition("@")
    registry = load_registry(Path(args.templates))
    template = registry.get(template_id, version) if version else registry.latest(template_id)
    problems = template.check(payload)
    declared = ps.declared_from_payload(template.id, payload)
    declared.update(_declaration(d) for d in args.declare or [])
    case: dict[str, Any] = {
        "at": _at(args.at).isoformat(), "action": args.exchange_action,
        "from": {"node": args.sender, "roles": args.from_role or ["central_authority"]},
        "to": {"node": args.recipient, "roles": args.to_role or ["central_authority"]},
        "template": f"{template.id}@{template.version}",
        "message_type": args.message_type or template.message_types[0],
        "legal_basis": args.legal_basis or ps.legal_basis_for(template.id, payload),
        "categories": sorted(template.data_categories(payload)), "declared": declared}
    if args.from_jurisdiction:
        case["from"]["jurisdiction"] = args.from_jurisdiction
    if args.to_jurisdiction:
        case["to"]["jurisdiction"] = args.to_jurisdiction
    request, at = _request(ps, case)
    decision = ps.decide(request, at)
    text = render(ps, request, decision)
    if problems:
        text += (f"\nNote: the payload does not validate against {template.id} "
                 f"{template.version} ({len(problems)} problems); validate before sending.")
    _emit(args, {"input": case, "decision": decision.to_dict(),
                 "template_problems": len(problems)}, text)
    return 0 if decision.allowed else EXIT_NOT_ALLOWED


def _request(ps: PolicySet, case: Mapping[str, Any]) -> tuple[PolicyRequest, datetime]:
    try:
        return request_from_case(ps, case)
    except ValueError as e:
        raise _usage(f"case: {e}") from e


def cmd_decide(args: argparse.Namespace) -> int:
    ps = _policy(args)
    raw = parse_yaml(args.case if args.case != "-" else "<stdin>", _read(args.case))
    if not isinstance(raw, Mapping):
        raise _usage("a case is a mapping (see docs/policy.md)")
    case = {k: v for k, v in raw.items() if k not in ("name", "note", "expect")}
    case.setdefault("at", datetime.now(UTC).isoformat())
    request, at = _request(ps, case)
    decision = ps.decide(request, at)
    data: dict[str, Any] = {"decision": decision.to_dict()}
    text = render(ps, request, decision)
    expect = raw.get("expect")
    if isinstance(expect, Mapping) and "outcome" in expect:
        failures = check(decision, expect)
        data["expectation"] = {"matches": not failures, "failures": failures}
        text += "\nExpectation: " + ("matches" if not failures else "; ".join(failures))
    _emit(args, data, text)
    return 0 if decision.allowed else EXIT_NOT_ALLOWED


def _table_files(args: argparse.Namespace) -> list[Path]:
    if args.tables:
        return [Path(p) for p in args.tables]
    files = sorted((Path(args.policy) / "tests").glob("*.yaml"))
    if not files:
        raise ConfigError(f"no decision tables in {Path(args.policy) / 'tests'}")
    return files


def run_tables(ps: PolicySet, files: Sequence[Path]) -> list[CaseResult]:
    """Parse and run the decision tables in ``files`` (used by the CLI and by pytest)."""
    cases = []
    for path in files:
        cases += parse_table(ps, str(path), path.read_text(encoding="utf-8"))
    return run_cases(ps, cases)


def cmd_test(args: argparse.Namespace) -> int:
    ps = _policy(args)
    results = run_tables(ps, _table_files(args))
    failed = [r for r in results if not r.passed]
    states = sorted({c for r in results for c in (r.case.request.sender_jurisdiction,
                                                  r.case.request.recipient_jurisdiction)})
    data = {"policy_set_hash": ps.hash, "passed": len(results) - len(failed),
            "failed": len(failed), "jurisdictions": states,
            "cases": [{"table": r.case.table, "line": r.case.line, "name": r.case.name,
                       "passed": r.passed, "failures": list(r.failures),
                       "outcome": r.decision.outcome,
                       "policy_ids": list(r.decision.policy_ids)} for r in results]}
    lines = []
    for r in results:
        if r.passed and not args.verbose:
            continue
        mark = "ok  " if r.passed else "FAIL"
        lines.append(f"{mark} {r.case.table}:{r.case.line} {r.case.name} -> "
                     f"{r.decision.outcome} {list(r.decision.policy_ids)}")
        lines += [f"       {f}" for f in r.failures]
    lines.append(f"{len(results)} cases across {len(states)} jurisdictions, policy set "
                 f"sha256:{ps.hash[:16]}")
    lines.append(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    _emit(args, data, "\n".join(lines))
    return EXIT_FAILED if failed else 0


# -- parser --------------------------------------------------------------------------------

def register(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Add ``rogatory policy explain|test|decide`` to the top-level subcommands."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--policy", default="policy",
                       help="the policy directory (default: ./policy)")
    policy = sub.add_parser("policy", help="data-protection policy: explain, test, decide")
    commands = policy.add_subparsers(dest="policy_command", required=True)

    explain = commands.add_parser(
        "explain", parents=[common, where],
        help="decide one exchange from a template payload and explain the reasoning")
    explain.add_argument("--from", dest="sender", required=True, help="sending node id")
    explain.add_argument("--to", dest="recipient", required=True, help="receiving node id")
    explain.add_argument("--template", required=True, help="template id[@version]")
    explain.add_argument("--payload", required=True, help="JSON payload file, or - for stdin")
    explain.add_argument("--from-role", action="append",
                         help="role of the sending node (repeatable; default central_authority)")
    explain.add_argument("--to-role", action="append",
                         help="role of the receiving node (repeatable; default central_authority)")
    explain.add_argument("--from-jurisdiction", help="default: the node id's country prefix")
    explain.add_argument("--to-jurisdiction", help="default: the node id's country prefix")
    explain.add_argument("--action", dest="exchange_action", default="send",
                         choices=["send", "receive", "onward_transfer", "access"])
    explain.add_argument("--legal-basis", help="default: read from the payload / template")
    explain.add_argument("--message-type", help="default: the template's first message type")
    explain.add_argument("--declare", action="append", metavar="KEY=VALUE",
                         help="a declaration (repeatable); VALUE is JSON or a string")
    explain.add_argument("--at", help="evaluation time, ISO 8601 with zone (default: now)")
    explain.add_argument("--templates", default="templates",
                         help="the template directory (default: ./templates)")
    explain.set_defaults(func=cmd_explain)

    test = commands.add_parser("test", parents=[common, where],
                               help="run the decision tables (policy/tests/*.yaml)")
    test.add_argument("tables", nargs="*", help="table files (default: <policy>/tests/*.yaml)")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    test.set_defaults(func=cmd_test)

    decide = commands.add_parser("decide", parents=[common, where],
                                 help="decide one case (decision-table input format)")
    decide.add_argument("case", help="case file (YAML or JSON), or - for stdin")
    decide.set_defaults(func=cmd_decide)
