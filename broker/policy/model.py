"""Value objects of the policy engine: the request, the decision and what it is made of.

Nothing here does I/O; a :class:`Decision` renders itself to a JSON-ready dict for the
audit log, the CLI and the envelope (obligations travel with the message).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal

from broker.errors import PolicyDenied

Outcome = Literal["allow", "deny", "needs", "review"]

ACTIONS: Final = ("send", "receive", "onward_transfer", "access")
OUTCOMES: Final = ("allow", "deny", "needs", "review")
EFFECTS: Final = ("deny", "needs", "review", "basis", "obligation")
BLOCKING_EFFECTS: Final = ("deny", "needs", "review")
TAGS: Final = ("V", "R", "U", "E")
TAG_MEANING: Final = {
    "V": "verified in a retrieved source",
    "R": "recalled from the official text, not re-read: check the wording",
    "U": "uncertain: must be verified",
    "E": "engineering safeguard, not a statement of law",
}
_TAG_TOKEN = re.compile(r"(?<![A-Za-z0-9])([VRUE])(?![A-Za-z0-9])")
FAIL_CLOSED_ID: Final = "FAIL-CLOSED"
CARRIED: Final = "carried"

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def weakest_tag(note: str) -> str:
    """The tag a verification note stands for: the weakest of the V/R/U tags it names.

    ``"V: structure (S52); wording R"`` is R: a note is never presented as verified when
    any part of it is only recalled or uncertain. ``E`` marks an engineering safeguard.
    """
    found = set(_TAG_TOKEN.findall(note))
    for tag in ("E", "U", "R", "V"):
        if tag in found:
            return tag
    return "U"


def describe_tag(note: str) -> str:
    """``"R (recalled ...: check the wording): <note>"`` for people to read."""
    tag = weakest_tag(note)
    return f"{tag} ({TAG_MEANING[tag]}): {note}"


@dataclass(frozen=True)
class PolicyRequest:
    """One exchange to decide.

    For ``send`` and ``onward_transfer`` the sender is this node and the recipient the
    peer; for ``receive`` the sender is the peer and the recipient this node; for
    ``access`` the sender is the node the data came from and the recipient this node.
    ``declared`` holds what the request states (policy/vocabulary.yaml ``declarations``),
    plus ``obligations``: the obligation ids the data arrived with.
    """

    action: str
    sender_node: str
    sender_jurisdiction: str
    sender_roles: frozenset[str]
    recipient_node: str
    recipient_jurisdiction: str
    recipient_roles: frozenset[str]
    template_id: str
    template_version: str
    message_type: str
    data_categories: frozenset[str]
    legal_basis: str
    declared: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class Citation:
    """A rule that applied, with its legal source and how far that source is verified."""

    policy_id: str
    source: str
    verification: str

    @property
    def tag(self) -> str:
        """``V``, ``R``, ``U`` or ``E``: the weakest tag of the verification note."""
        return weakest_tag(self.verification)

    def __str__(self) -> str:
        return f"{self.policy_id}: {self.source} [{self.verification}]"

    def to_dict(self) -> dict[str, str]:
        return {"policy_id": self.policy_id, "source": self.source,
                "verification": self.verification, "tag": self.tag}


@dataclass(frozen=True)
class Obligation:
    """A condition attached to the data; it travels with the message and binds the recipient."""

    id: str
    text: str
    params: Mapping[str, Any]
    source: str
    verification: str
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "params": dict(self.params),
                "source": self.source, "verification": self.verification, "rule": self.rule}


@dataclass(frozen=True)
class RuleHit:
    """A policy whose conditions held for the request."""

    policy_id: str
    effect: str
    reason: str
    requires: tuple[str, ...]
    reviewer: str
    citation: Citation


@dataclass(frozen=True)
class Decision:
    """The outcome and everything a lawyer or an auditor needs to follow it.

    ``policy_ids`` are the determining rules: the blocking rules that applied when the
    outcome is deny/needs/review, the legal bases that applied when it is allow.
    ``missing`` lists what would lift a ``needs`` (alternatives joined by `` | ``).
    ``obligations`` are set when the outcome is allow or review.
    """

    outcome: Outcome
    policy_ids: tuple[str, ...]
    citations: tuple[Citation, ...]
    obligations: tuple[Obligation, ...]
    missing: tuple[str, ...]
    reasons: tuple[str, ...]
    policy_set_hash: str
    at: datetime
    hits: tuple[RuleHit, ...] = ()
    reviewers: tuple[str, ...] = ()
    error: str | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    def require_allowed(self) -> None:
        """Raise unless the outcome is allow.

        Raises:
            PolicyDenied: code ``POLICY_DENY``, ``POLICY_NEEDS`` or ``POLICY_REVIEW``; the
                message names the determining rules and what is missing.
        """
        if self.allowed:
            return
        detail = ", ".join(self.policy_ids) or "no rule"
        if self.missing:
            detail += "; missing: " + ", ".join(self.missing)
        raise PolicyDenied(f"policy {self.outcome}: {detail}",
                           code=f"POLICY_{self.outcome.upper()}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready rendering (for the audit record, the CLI and the envelope)."""
        return {
            "outcome": self.outcome,
            "policy_ids": list(self.policy_ids),
            "citations": [c.to_dict() for c in self.citations],
            "obligations": [o.to_dict() for o in self.obligations],
            "missing": list(self.missing),
            "reviewers": list(self.reviewers),
            "reasons": list(self.reasons),
            "policy_set_hash": self.policy_set_hash,
            "at": self.at.isoformat(),
            "error": self.error,
            "rules": [{"policy_id": h.policy_id, "effect": h.effect, "reason": h.reason,
                       "requires": list(h.requires), "source": h.citation.source,
                       "verification": h.citation.verification} for h in self.hits],
        }
