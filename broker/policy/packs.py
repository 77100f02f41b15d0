"""Cedar policy packs: split, parse, validate against the schema, read the annotations.

A pack is a ``.cedar`` file under ``policy/packs/``. Each policy in it must carry the
annotations docs/policy.md lists; a policy that does not parse, does not validate
against ``policy/schema.cedarschema`` or lacks an annotation is refused with its file and
line, so a broken pack never loads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy

from broker.policy.model import ACTIONS, BLOCKING_EFFECTS, EFFECTS, TAGS
from broker.policy.slicing import Guard, guard_of
from broker.policy.vocabulary import Vocabulary
from broker.policy.yamlsrc import fail

ANNOTATIONS = frozenset({"id", "source", "verification", "effect", "reason", "requires",
                         "review", "obligation"})
_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,63}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, eq=False)
class Rule:
    """One policy of a pack, with what its annotations say (compared by identity)."""

    policy_id: str
    effect: str
    source: str
    verification: str
    reason: str
    requires: tuple[str, ...]
    reviewer: str
    obligations: tuple[str, ...]
    actions: frozenset[str]
    file: str
    line: int
    text: str
    guard: Guard

    @property
    def blocking(self) -> bool:
        return self.effect in BLOCKING_EFFECTS


def split_statements(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line, text)`` for each ``;``-terminated statement (strings and ``//``
    comments are skipped when looking for the end); a trailing fragment is yielded too,
    so that parsing it reports the error."""
    start = -1
    line = 1
    start_line = 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c == '"':
            if start < 0:
                start, start_line = i, line
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif c == ";" and start >= 0:
            yield start_line, text[start:i + 1]
            start = -1
        elif not c.isspace() and start < 0:
            start, start_line = i, line
        i += 1
    if start >= 0:
        yield start_line, text[start:]


def _action_scope(scope: Mapping[str, Any]) -> frozenset[str]:
    op = scope.get("op")
    if op == "All":
        return frozenset(ACTIONS)
    if "entity" in scope:
        return frozenset({str(scope["entity"]["id"])})
    return frozenset(str(e["id"]) for e in scope.get("entities", []))


def _list(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _check_core(path: str, line: int, ann: Mapping[str, str], cedar_effect: str) -> None:
    where = f"policy {ann.get('id', '?')}"
    for key in ann:
        if key not in ANNOTATIONS:
            fail(path, line, f"{where}: unknown annotation @{key}")
    for key in ("id", "source", "verification", "effect", "reason"):
        if not ann.get(key, "").strip():
            fail(path, line, f"{where}: missing @{key}")
    if not _ID.match(ann["id"]):
        fail(path, line, f"@id {ann['id']!r}: use capitals, digits and dashes")
    effect = ann["effect"]
    if effect not in EFFECTS:
        fail(path, line, f"{where}: @effect must be one of {', '.join(EFFECTS)}")
    if (cedar_effect == "forbid") != (effect in BLOCKING_EFFECTS):
        fail(path, line, f"{where}: @effect {effect} does not fit a {cedar_effect} policy")
    if ann["verification"][:1] not in TAGS:
        fail(path, line, f"{where}: @verification must start with V, R, U or E")


def _check_attachments(path: str, line: int, ann: Mapping[str, str], vocab: Vocabulary
                       ) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    where, effect = f"policy {ann['id']}", ann["effect"]
    requires = _list(ann.get("requires", ""))
    if (effect == "needs") != bool(requires):
        fail(path, line, f"{where}: @requires is required for, and only for, @effect needs")
    for name in (p.strip() for item in requires for p in item.split("|")):
        if name not in vocab.declarations:
            fail(path, line, f"{where}: @requires names unknown declaration {name!r}")
    reviewer = ann.get("review", "").strip()
    if (effect == "review") != bool(reviewer) or (reviewer and not _NAME.match(reviewer)):
        fail(path, line, f"{where}: @review (a role name) is required for, and only for, "
             "@effect review")
    obligations = _list(ann.get("obligation", ""))
    if (effect == "obligation" and not obligations) or (
            obligations and effect not in ("obligation", "basis", "review")):
        fail(path, line, f"{where}: @obligation belongs on obligation, basis or review rules")
    for oid in obligations:
        if oid not in vocab.obligations:
            fail(path, line, f"{where}: unknown obligation {oid!r} (policy/vocabulary.yaml)")
    return requires, reviewer, obligations


def _rule(path: str, line: int, text: str, est: Mapping[str, Any], vocab: Vocabulary) -> Rule:
    ann: Mapping[str, str] = est.get("annotations", {})
    _check_core(path, line, ann, str(est["effect"]))
    requires, reviewer, obligations = _check_attachments(path, line, ann, vocab)
    return Rule(policy_id=ann["id"], effect=ann["effect"], source=ann["source"],
                verification=ann["verification"], reason=ann["reason"], requires=requires,
                reviewer=reviewer, obligations=obligations,
                actions=_action_scope(est["action"]), file=path, line=line, text=text,
                guard=guard_of(est))


def parse_pack(path: str, text: str, schema: cedarpy.Schema, vocab: Vocabulary) -> list[Rule]:
    """Parse and validate one pack file.

    Raises:
        ConfigError: ``path:line: message`` for a syntax error, a schema violation or a
            missing or malformed annotation.
    """
    statements = list(split_statements(text))
    for line, stmt in statements:
        try:
            cedarpy.PolicySet.from_str(stmt)
        except ValueError as e:
            fail(path, line, f"Cedar syntax: {e}")
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as e:
        fail(path, 1, f"Cedar syntax: {e}")
    if est.get("templates"):
        fail(path, 1, "policy templates (?principal/?resource slots) are not used here")
    static = est.get("staticPolicies", {})
    if len(static) != len(statements):
        fail(path, 1, f"found {len(statements)} statements but Cedar parsed {len(static)}")
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        first = result.errors[0]
        index = int(first.policy_id[len("policy"):]) if first.policy_id.startswith(
            "policy") else 0
        line = statements[index][0] if index < len(statements) else 1
        fail(path, line, f"does not validate against the schema: {first.error}")
    return [_rule(path, line, stmt, static[f"policy{k}"], vocab)
            for k, (line, stmt) in enumerate(statements)]
