"""The policy set: parsed once, then decides exchanges in well under a millisecond.

One Cedar evaluation per decision: the policies whose action scope covers the request's
action are evaluated together. Cedar denies when any ``forbid`` applies and reports
every ``forbid`` that did; otherwise it reports every ``permit`` that applied. The
``@effect`` annotations turn that into the four outcomes:

* a ``deny`` rule applied -> **deny**; else a ``needs`` rule -> **needs** (``@requires``
  says what is missing); else a ``review`` rule -> **review** (``@review`` says who);
* otherwise at least one ``basis`` rule must apply -> **allow**, with the obligations of
  the ``obligation`` and ``basis`` rules that applied; no basis -> **deny**.

Fail closed: bad input, a missing fact, a Cedar evaluation error or any exception denies,
with the reason in the decision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import cedarpy

from broker.policy import payload as payload_helpers
from broker.policy.facts import Facts, Instrument, Jurisdiction, TemplateFacts
from broker.policy.model import (
    ACTIONS,
    CARRIED,
    FAIL_CLOSED_ID,
    Citation,
    Decision,
    Obligation,
    Outcome,
    PolicyRequest,
    RuleHit,
    describe_tag,
)
from broker.policy.packs import Rule
from broker.policy.slicing import SliceKey
from broker.policy.vocabulary import Vocabulary

MAX_SLICES = 4096
# Cedar results remembered per policy slice, by the exact evaluation input (facts epoch
# and request JSON); 0 turns the memory off (the bench's uncached figure does).
RESULT_CACHE = 1024
_CODE = re.compile(r"^[A-Z]{2}$")
_ERRORED = re.compile(r"policy `(policy\d+)`")
_FAIL_CITATION = Citation(FAIL_CLOSED_ID, "DESIGN.md Policy: policies fail closed",
                          "E: engineering safeguard")


class _Refused(ValueError):
    """The request names something the policy set does not know: deny, fail closed."""


class _Handle:
    """A Cedar policy set for one action, with its rules in Cedar's positional order.

    Cedar evaluation is a pure function of the policies, the entities and the request,
    and this handle's policies never change, so a result is remembered by the facts'
    epoch (which fixes the entities) and the request's canonical JSON: requests of the
    same shape between the same States (most of a node's traffic) skip Cedar. Results
    with errors are never remembered; the memory is bounded (oldest out first).
    """

    __slots__ = ("by_annotation", "cedar", "results", "rules")

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self.cedar = cedarpy.PolicySet.from_str("\n".join(r.text for r in self.rules))
        self.by_annotation = {r.policy_id: r for r in self.rules}
        self.results: dict[tuple[int, str], cedarpy.AuthzResult] = {}

    def evaluate(self, request: Mapping[str, Any], entities: cedarpy.Entities,
                 epoch: int) -> cedarpy.AuthzResult:
        if RESULT_CACHE <= 0:
            return cedarpy.is_authorized(dict(request), self.cedar, entities)
        key = (epoch, json.dumps(request, sort_keys=True, separators=(",", ":")))
        found = self.results.get(key)
        if found is None:
            found = cedarpy.is_authorized(dict(request), self.cedar, entities)
            if not found.diagnostics.errors:
                if len(self.results) >= RESULT_CACHE:
                    del self.results[next(iter(self.results))]
                self.results[key] = found
        return found

    def errored(self, errors: Iterable[str]) -> list[str]:
        found = []
        for message in errors:
            m = _ERRORED.search(message)
            index = int(m.group(1)[len("policy"):]) if m else -1
            found.append(self.rules[index].policy_id if 0 <= index < len(self.rules)
                         else message)
        return found


class PolicySet:
    """The loaded packs, schema, vocabulary and facts; immutable.

    Build it with :func:`broker.policy.load_policy_set` (from a directory) or
    :func:`broker.policy.build_policy_set` (from file contents).
    """

    def __init__(self, *, schema: cedarpy.Schema, vocabulary: Vocabulary, facts: Facts,
                 rules: Sequence[Rule], files: Mapping[str, str], digest: str) -> None:
        self._schema = schema
        self.vocabulary = vocabulary
        self.facts = facts
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.files: Mapping[str, str] = dict(files)
        self.hash = digest
        self._slices: dict[SliceKey, tuple[_Handle, _Handle]] = {}
        self._hit: dict[str, tuple[Citation, RuleHit, str]] = {}
        for r in self.rules:
            citation = Citation(r.policy_id, r.source, r.verification)
            line = (f"[{r.effect}] {r.policy_id}: {r.reason} ({r.source}; "
                    f"{describe_tag(r.verification)})"
                    + (f" - missing: {', '.join(r.requires)}" if r.effect == "needs" else "")
                    + (f" - reviewed by: {r.reviewer}" if r.effect == "review" else ""))
            self._hit[r.policy_id] = (citation, RuleHit(r.policy_id, r.effect, r.reason,
                                                        r.requires, r.reviewer, citation), line)
        self._epochs: dict[int, tuple[cedarpy.Entities, dict[str, dict[str, Any]]]] = {}

    def __repr__(self) -> str:
        return f"PolicySet({len(self.rules)} rules, sha256={self.hash[:12]})"

    # -- facts ---------------------------------------------------------------------------

    def entities_at(self, day: date) -> tuple[cedarpy.Entities, dict[str, dict[str, Any]]]:
        """Cedar entities (States, legal bases) as of ``day``; built once per epoch."""
        epoch = self.facts.epoch(day)
        cached = self._epochs.get(epoch)
        if cached is not None:
            return cached
        states = {c: j.attrs_at(day) for c, j in self.facts.jurisdictions.items()}
        doc = [{"uid": {"type": "Jurisdiction", "id": c}, "attrs": a, "parents": []}
               for c, a in states.items()]
        doc += [{"uid": {"type": "Instrument", "id": i.code}, "parents": [],
                 "attrs": {"family": i.family, "in_force": i.in_force(day)}}
                for i in self.facts.instruments.values()]
        built = (cedarpy.Entities.from_json_str(json.dumps(doc), self._schema), states)
        self._epochs[epoch] = built
        return built

    def describe_jurisdiction(self, code: str, at: datetime) -> str:
        """The facts about ``code`` used on ``at``, with their verification tags."""
        j = self.facts.jurisdictions.get(code)
        if j is None:
            return f"{code}: no facts (unknown jurisdiction - every decision denies)"
        return j.summary_at(at.astimezone(UTC).date())

    # -- deciding ------------------------------------------------------------------------

    def decide(self, request: PolicyRequest, at: datetime) -> Decision:
        """Decide ``request`` as of ``at`` (timezone-aware; UTC is used). Never raises."""
        try:
            return self._decide(request, at)
        except Exception as e:  # fail closed: any engine error denies
            return self._fail(at, f"engine error: {type(e).__name__}: {e}")

    def _fail(self, at: datetime, why: str) -> Decision:
        when = at if isinstance(at, datetime) else datetime.min.replace(tzinfo=UTC)
        return Decision(outcome="deny", policy_ids=(FAIL_CLOSED_ID,),
                        citations=(_FAIL_CITATION,), obligations=(), missing=(),
                        reasons=(f"denied (fail closed): {why}",), policy_set_hash=self.hash,
                        at=when, error=why)

    def _decide(self, req: PolicyRequest, at: datetime) -> Decision:
        if not isinstance(at, datetime) or at.tzinfo is None:
            return self._fail(at, "the evaluation time must be a timezone-aware datetime")
        at = at.astimezone(UTC)
        try:
            sender, recipient, instrument, template = self._inputs(req)
            record, carried = self.vocabulary.check_declared(req.declared)
        except ValueError as e:  # _Refused, or a declaration of the wrong type
            return self._fail(at, str(e))
        day = at.date()
        entities, states = self.entities_at(day)
        context = self._context(req, s=states[sender.code], r=states[recipient.code],
                                template=template, record=record, carried=carried, day=day)
        request = {"principal": f'Jurisdiction::"{sender.code}"',
                   "action": f'Action::"{req.action}"',
                   "resource": f'Jurisdiction::"{recipient.code}"', "context": context}
        gate, permits = self._slice(SliceKey.of(req.action, instrument.family, context))
        epoch = self.facts.epoch(day)
        result = gate.evaluate(request, entities, epoch)
        if result.diagnostics.errors:
            return self._fail(at, "policy evaluation error in "
                              + ", ".join(gate.errored(result.diagnostics.errors)))
        hits = [gate.by_annotation[result.diagnostics.id_annotations_by_reason[p]]
                for p in result.diagnostics.reasons]
        blocking = [r for r in hits if r.blocking]
        if result.decision == cedarpy.Decision.Deny and not blocking and hits:
            return self._fail(at, "Cedar denied with permits as reasons")
        outcome: Outcome
        if blocking:
            outcome = ("deny" if any(r.effect == "deny" for r in blocking)
                       else "needs" if any(r.effect == "needs" for r in blocking) else "review")
            determining = blocking
            if outcome == "review":
                again = permits.evaluate(request, entities, epoch)
                if again.diagnostics.errors:
                    return self._fail(at, "policy evaluation error in "
                                      + ", ".join(permits.errored(again.diagnostics.errors)))
                hits += [permits.by_annotation[again.diagnostics.id_annotations_by_reason[p]]
                         for p in again.diagnostics.reasons]
        elif result.decision == cedarpy.Decision.Allow:
            determining = [r for r in hits if r.effect == "basis"]
            outcome = "allow" if determining else "deny"
        else:
            determining, outcome = [], "deny"
        return self._decision(req, at, outcome=outcome, determining=determining, hits=hits,
                              record=record, carried=carried, context=context)

    def _slice(self, key: SliceKey) -> tuple[_Handle, _Handle]:
        """The Cedar policy sets (all, permits only) of the rules that can apply to ``key``."""
        found = self._slices.get(key)
        if found is None:
            rules = [r for r in self.rules if key.action in r.actions and r.guard.admits(key)]
            found = (_Handle(rules), _Handle([r for r in rules if not r.blocking]))
            if len(self._slices) < MAX_SLICES:
                self._slices[key] = found
        return found

    def _inputs(self, req: PolicyRequest) -> tuple[Jurisdiction, Jurisdiction, Instrument,
                                                     TemplateFacts]:
        """The facts the request refers to. Raises _Refused for anything unknown."""
        f = self.facts
        if req.action not in ACTIONS:
            raise _Refused(f"unknown action {req.action!r}")
        for code in (req.sender_jurisdiction, req.recipient_jurisdiction):
            if not isinstance(code, str) or not _CODE.match(code):
                raise _Refused(f"{code!r} is not an ISO 3166-1 alpha-2 code")
            if code not in f.jurisdictions:
                raise _Refused(f"no facts for jurisdiction {code!r} in "
                               "policy/facts/jurisdictions.yaml")
        instrument = f.instruments.get(req.legal_basis)
        if instrument is None:
            raise _Refused(f"unknown legal basis {req.legal_basis!r}")
        template = f.templates.get(req.template_id)
        if template is None:
            raise _Refused(f"template {req.template_id!r} is not mapped in "
                           "policy/facts/instruments.yaml")
        v = self.vocabulary
        unknown = sorted(c for c in req.data_categories
                         if c not in v.subject_categories and c not in v.other_categories)
        if unknown:
            raise _Refused(f"unknown data category {unknown[0]!r} (policy/vocabulary.yaml)")
        return (f.jurisdictions[req.sender_jurisdiction],
                f.jurisdictions[req.recipient_jurisdiction], instrument, template)

    def _context(self, req: PolicyRequest, *, s: Mapping[str, Any], r: Mapping[str, Any],
                 template: TemplateFacts, record: Mapping[str, Any], carried: Sequence[str],
                 day: date) -> dict[str, Any]:
        v = self.vocabulary
        sender_roles = frozenset(req.sender_roles)
        recipient_roles = frozenset(req.recipient_roles)
        sender_competent = not sender_roles.isdisjoint(v.competent_roles)
        regime = ("LED" if sender_competent and s["led_area"]
                  else "GDPR" if not sender_roles.isdisjoint(v.private_roles) and s["gdpr_area"]
                  else "OTHER")
        return {
            "legal_basis": req.legal_basis,
            "instrument": {"__entity": {"type": "Instrument", "id": req.legal_basis}},
            "template": req.template_id,
            "template_allows_basis": template.allows(req.legal_basis),
            "direction": self.facts.message_types.get(req.message_type, template.direction),
            "categories": sorted(req.data_categories),
            "personal_data": not v.subject_categories.isdisjoint(req.data_categories),
            "regime": regime,
            "third_country": regime == "LED" and not r["led_area"],
            "sender_roles": sorted(sender_roles),
            "recipient_roles": sorted(recipient_roles),
            "sender_competent": sender_competent,
            "recipient_competent": not recipient_roles.isdisjoint(v.competent_roles),
            "recipient_private": not recipient_roles.isdisjoint(v.private_roles),
            "carried_obligations": sorted(set(carried)),
            "unknown_obligations": any(o not in v.obligations for o in carried),
            "facts_stale": day > self.facts.review_by,
            "declared": dict(record),
        }

    # -- the decision --------------------------------------------------------------------

    def _decision(self, req: PolicyRequest, at: datetime, *, outcome: Outcome,
                  determining: Sequence[Rule], hits: Sequence[Rule],
                  record: Mapping[str, Any], carried: Sequence[str],
                  context: Mapping[str, Any]) -> Decision:
        order = {"deny": 0, "needs": 1, "review": 2, "basis": 3, "obligation": 4}
        hits = sorted(dict.fromkeys(hits), key=lambda r: (order[r.effect], r.policy_id))
        determining = sorted(determining, key=lambda r: (order[r.effect], r.policy_id))
        missing = tuple(dict.fromkeys(item for r in hits if r.effect == "needs"
                                      for item in r.requires))
        reviewers = tuple(dict.fromkeys(r.reviewer for r in hits if r.effect == "review"))
        obligations: tuple[Obligation, ...] = ()
        if outcome in ("allow", "review"):
            obligations = self._obligations(hits, record, carried, req.action)
        static = [self._hit[r.policy_id] for r in hits]
        citations = tuple(c for c, _, _ in static)
        rule_hits = tuple(h for _, h, _ in static)
        reasons = [
            f"{req.action} {req.sender_node} ({req.sender_jurisdiction}) -> "
            f"{req.recipient_node} ({req.recipient_jurisdiction}); legal basis "
            f"{req.legal_basis}; template {req.template_id} {req.template_version} "
            f"({context['direction']}); regime {context['regime']}"
            + ("; transfer to a third country" if context["third_country"] else "")
            + ("; personal data: " + ", ".join(context["categories"])
               if context["personal_data"] else "; no personal data of persons concerned")]
        reasons += [line for _, _, line in static]
        if outcome == "deny" and not determining:
            reasons.append("no rule gives a legal basis for this exchange: denied")
        reasons.append(f"outcome: {outcome}" + (f" - provide: {'; '.join(missing)}"
                                                if outcome == "needs" else ""))
        return Decision(outcome=outcome, policy_ids=tuple(r.policy_id for r in determining),
                        citations=citations, obligations=obligations, missing=missing,
                        reasons=tuple(reasons), policy_set_hash=self.hash, at=at,
                        hits=rule_hits, reviewers=reviewers)

    def _obligations(self, hits: Sequence[Rule], record: Mapping[str, Any],
                     carried: Sequence[str], action: str) -> tuple[Obligation, ...]:
        out: dict[str, Obligation] = {}
        specs = self.vocabulary.obligations
        for rule in hits:
            if rule.effect not in ("basis", "obligation", "review"):
                continue
            for oid in rule.obligations:
                spec = specs[oid]
                params = {p: record[p] for p in spec.params if p in record}
                out.setdefault(oid, Obligation(oid, spec.text, params, spec.source,
                                               spec.verification, rule.policy_id))
        if action == "receive":
            for oid in carried:
                known = specs.get(oid)
                if known is not None:
                    out.setdefault(oid, Obligation(oid, known.text, {}, known.source,
                                                   known.verification, CARRIED))
        return tuple(out.values())

    # -- payload helpers -----------------------------------------------------------------

    def legal_basis_for(self, template_id: str, payload: Mapping[str, Any]) -> str:
        """The legal basis a payload of ``template_id`` invokes (see :mod:`.payload`)."""
        return payload_helpers.legal_basis_for(self.facts, template_id, payload)

    def declared_from_payload(self, template_id: str, payload: Mapping[str, Any]
                              ) -> dict[str, Any]:
        """Declarations read from a payload (see :mod:`.payload`)."""
        return payload_helpers.declared_from_payload(self.facts, self.vocabulary, template_id,
                                                     payload)
