"""Policy decisions at the node's doors: on send (before sealing), on receive (before
accepting) and on local access. Every decision is audited by the caller with the
determining policy ids, citations and the policy set's hash; anything but `allow`
raises PolicyDenied with a diagnosis a person can act on (what is missing)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.errors import PolicyDenied
from broker.model import ObligationRef
from broker.policy import Decision, PolicyRequest
from broker.services.context import NodeContext
from broker.templating import Template

ACTION_CODES = {"deny": "POLICY_DENY", "needs": "POLICY_NEEDS", "review": "POLICY_REVIEW"}


class PolicyRefused(PolicyDenied):
    """A decision other than allow; carries the decision for the audit record."""

    def __init__(self, decision: Decision, action: str) -> None:
        self.decision = decision
        detail = f"policy refuses to {action}: {decision.outcome}"
        if decision.missing:
            detail += "; missing: " + ", ".join(decision.missing)
        if decision.policy_ids:
            detail += " (" + ", ".join(decision.policy_ids[:4]) + ")"
        super().__init__(detail, code=ACTION_CODES.get(decision.outcome, "POLICY_DENY"))


@dataclass(frozen=True)
class Decided:
    """An allow decision and the legal basis it was taken on."""

    decision: Decision
    legal_basis: str

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return self.decision.policy_ids


def audited(decision: Decision) -> dict[str, Any]:
    """The audit-record fields of a decision: policy ids, citations, policy-set hash."""
    return {"policy_decision_ids": decision.policy_ids, "citations": citations(decision),
            "policy_set_hash": bytes.fromhex(decision.policy_set_hash)}


def citations(decision: Decision) -> tuple[str, ...]:
    """Short citations for the audit record: policy id and legal source."""
    return tuple(f"{c.policy_id}: {c.source}" for c in decision.citations)


def obligation_refs(decision: Decision) -> tuple[ObligationRef, ...]:
    return tuple(ObligationRef(o.id, json.dumps(dict(o.params), sort_keys=True,
                                                separators=(",", ":")) if o.params else "")
                 for o in decision.obligations)


def obligations_json(refs: Sequence[ObligationRef]) -> str:
    """How a message's obligations are stored (and shown to operators)."""
    return json.dumps([{"id": r.id, "params": json.loads(r.params_json) if r.params_json
                        else {}} for r in refs], sort_keys=True)


def _at(ctx: NodeContext) -> datetime:
    return datetime.fromtimestamp(ctx.clock() / 1000, tz=UTC)


def decide(ctx: NodeContext, *, action: str, sender: str, recipient: str,
           template: Template, message_type: str, payload: Mapping[str, Any],
           legal_basis: str = "", declared: Mapping[str, Any] | None = None,
           obligations: Sequence[str] = ()) -> Decided:
    """Decide one action and raise PolicyRefused unless it is allowed."""
    s, r = ctx.trust.node(sender), ctx.trust.node(recipient)
    ps = ctx.policy
    basis = legal_basis or ps.legal_basis_for(template.id, payload)
    merged: dict[str, Any] = dict(ps.declared_from_payload(template.id, payload))
    merged.update(declared or {})
    if obligations:
        merged["obligations"] = list(obligations)
    decision = ps.decide(PolicyRequest(
        action=action, sender_node=s.node_id, sender_jurisdiction=s.jurisdiction,
        sender_roles=s.roles, recipient_node=r.node_id, recipient_jurisdiction=r.jurisdiction,
        recipient_roles=r.roles, template_id=template.id, template_version=template.version,
        message_type=message_type, data_categories=template.data_categories(payload),
        legal_basis=basis, declared=merged), _at(ctx))
    if decision.outcome != "allow":
        raise PolicyRefused(decision, action)
    return Decided(decision, basis)
