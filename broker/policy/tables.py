"""Decision tables: cases written by lawyers, with the decision they expect.

A table (``policy/tests/*.yaml``) has optional ``defaults`` merged under every case and a
list of ``cases``. A case is the input format of ``rogatory policy decide`` plus an
``expect`` block; docs/policy.md documents both. Pure: the caller reads the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from broker.errors import ConfigError
from broker.policy.engine import PolicySet
from broker.policy.model import OUTCOMES, Decision, PolicyRequest
from broker.policy.yamlsrc import POLICY_CONFIG, Located, parse_yaml

DEFAULT_ROLES = ("central_authority",)
CASE_KEYS = frozenset({"name", "note", "at", "action", "from", "to", "template",
                       "message_type", "legal_basis", "categories", "declared", "expect"})
EXPECT_KEYS = frozenset({"outcome", "rules", "not_rules", "obligations", "not_obligations",
                         "missing", "reviewers"})
NODE_KEYS = frozenset({"node", "jurisdiction", "roles"})


@dataclass(frozen=True)
class Case:
    table: str
    name: str
    line: int
    request: PolicyRequest
    at: datetime
    expect: Mapping[str, Any]


@dataclass(frozen=True)
class CaseResult:
    case: Case
    decision: Decision
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def _bad(source: str, line: int, message: str) -> ConfigError:
    return ConfigError(f"{source}:{line}: {message}", code=POLICY_CONFIG)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError("the time must name its zone, e.g. 2026-11-23T12:00:00Z")
        return parsed
    raise ValueError("`at` must be an ISO 8601 time, e.g. 2026-11-23T12:00:00Z")


def _node(value: Any) -> tuple[str, str, frozenset[str]]:
    spec: Mapping[str, Any] = {"node": value} if isinstance(value, str) else value
    if not isinstance(spec, Mapping) or not isinstance(spec.get("node"), str):
        raise ValueError("`from`/`to` must be a node id or {node, jurisdiction, roles}")
    unknown = set(spec) - NODE_KEYS
    if unknown:
        raise ValueError(f"unknown node keys: {', '.join(sorted(unknown))}")
    node = str(spec["node"])
    jurisdiction = spec.get("jurisdiction") or node.split("-", 1)[0]
    roles = spec.get("roles", list(DEFAULT_ROLES))
    if not isinstance(roles, list):
        raise ValueError("`roles` must be a list")
    return node, str(jurisdiction), frozenset(str(r) for r in roles)


def request_from_case(ps: PolicySet, raw: Mapping[str, Any]) -> tuple[PolicyRequest, datetime]:
    """Turn one case (the ``decide`` input format) into a request and an evaluation time.

    Raises:
        ValueError: a required key is missing or has the wrong shape.
    """
    unknown = set(raw) - CASE_KEYS
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    for key in ("at", "from", "to", "template"):
        if key not in raw:
            raise ValueError(f"`{key}` is required")
    template = str(raw["template"])
    template_id, _, version = template.partition("@")
    facts = ps.facts.templates.get(template_id)
    legal_basis = raw.get("legal_basis") or (facts.default_basis if facts else "")
    sender, sender_j, sender_roles = _node(raw["from"])
    recipient, recipient_j, recipient_roles = _node(raw["to"])
    categories = raw.get("categories", [])
    declared = raw.get("declared", {})
    if not isinstance(categories, list) or not isinstance(declared, Mapping):
        raise ValueError("`categories` must be a list and `declared` a mapping")
    request = PolicyRequest(
        action=str(raw.get("action", "send")), sender_node=sender,
        sender_jurisdiction=sender_j, sender_roles=sender_roles, recipient_node=recipient,
        recipient_jurisdiction=recipient_j, recipient_roles=recipient_roles,
        template_id=template_id, template_version=version,
        message_type=str(raw.get("message_type", "")),
        data_categories=frozenset(str(c) for c in categories), legal_basis=str(legal_basis),
        declared=dict(declared))
    return request, _time(raw["at"])


def parse_table(ps: PolicySet, source: str, text: str) -> list[Case]:
    """The cases of one table file.

    Raises:
        ConfigError: ``source:line: problem`` for a malformed table or case.
    """
    doc = parse_yaml(source, text)
    if not isinstance(doc, Located) or not isinstance(doc.get("cases"), list):
        raise _bad(source, 1, "a table is a mapping with a `cases` list")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise _bad(source, doc.line_of("defaults"), "`defaults` must be a mapping")
    cases: list[Case] = []
    for raw in doc["cases"]:
        line = raw.line if isinstance(raw, Located) else doc.line_of("cases")
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            raise _bad(source, line, "each case is a mapping with a `name`")
        merged = {**defaults, **raw}
        merged["declared"] = {**(defaults.get("declared") or {}), **(raw.get("declared") or {})}
        expect = raw.get("expect")
        if not isinstance(expect, Mapping) or expect.get("outcome") not in OUTCOMES:
            raise _bad(source, line, f"{raw['name']}: `expect.outcome` must be one of "
                       f"{', '.join(OUTCOMES)}")
        if set(expect) - EXPECT_KEYS:
            raise _bad(source, line, f"{raw['name']}: unknown expect keys "
                       f"{', '.join(sorted(set(expect) - EXPECT_KEYS))}")
        try:
            request, at = request_from_case(ps, merged)
        except ValueError as e:
            raise _bad(source, line, f"{raw['name']}: {e}") from e
        cases.append(Case(source, raw["name"], line, request, at, expect))
    return cases


def check(decision: Decision, expect: Mapping[str, Any]) -> list[str]:
    """What differs between ``decision`` and ``expect`` (empty when it matches)."""
    failures: list[str] = []
    if decision.outcome != expect["outcome"]:
        failures.append(f"outcome {decision.outcome}, expected {expect['outcome']}")
    fired = {h.policy_id for h in decision.hits}
    obligations = {o.id for o in decision.obligations}
    for rule in _names(expect.get("rules")):
        if rule not in decision.policy_ids:
            failures.append(f"rule {rule} is not among the determining rules "
                            f"{list(decision.policy_ids)}")
    for rule in _names(expect.get("not_rules")):
        if rule in fired:
            failures.append(f"rule {rule} applied but should not")
    for oid in _names(expect.get("obligations")):
        if oid not in obligations:
            failures.append(f"obligation {oid} missing from {sorted(obligations)}")
    for oid in _names(expect.get("not_obligations")):
        if oid in obligations:
            failures.append(f"obligation {oid} attached but should not be")
    if "missing" in expect and set(_names(expect["missing"])) != set(decision.missing):
        failures.append(f"missing {list(decision.missing)}, expected "
                        f"{list(_names(expect['missing']))}")
    if "reviewers" in expect and set(_names(expect["reviewers"])) != set(decision.reviewers):
        failures.append(f"reviewers {list(decision.reviewers)}, expected "
                        f"{list(_names(expect['reviewers']))}")
    return failures


def _names(value: Any) -> Sequence[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def run_cases(ps: PolicySet, cases: Sequence[Case]) -> list[CaseResult]:
    """Decide every case and compare with what it expects."""
    results = []
    for case in cases:
        decision = ps.decide(case.request, case.at)
        results.append(CaseResult(case, decision, tuple(check(decision, case.expect))))
    return results
