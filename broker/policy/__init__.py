"""The policy engine: data-protection and cooperation rules in Cedar, per jurisdiction.

Rules are data (``policy/``: Cedar schema, packs per instrument, framework and
jurisdiction, facts with an as-of date); this package parses them once and decides
exchanges. Pure: values in, a :class:`Decision` out; time is a parameter.

Example::

    ps = load_policy_set(Path("policy"))
    d = ps.decide(PolicyRequest(action="send", sender_node="DE-BFJ", ...), at=now)
    d.outcome, d.policy_ids, d.obligations, d.missing
"""

from broker.policy.engine import PolicySet
from broker.policy.loader import build_policy_set, load_policy_set, policy_set_hash
from broker.policy.model import (
    ACTIONS,
    OUTCOMES,
    Citation,
    Decision,
    Obligation,
    Outcome,
    PolicyRequest,
    RuleHit,
)
from broker.policy.packs import Rule

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "Citation",
    "Decision",
    "Obligation",
    "Outcome",
    "PolicyRequest",
    "PolicySet",
    "Rule",
    "RuleHit",
    "build_policy_set",
    "load_policy_set",
    "policy_set_hash",
]
