"""Four-eyes: a drafter prepares an outgoing request, a different approver approves it.

Required for MLA and production requests (:attr:`KindRules.four_eyes`). Every approval
records both identities; an approval always needs the ``approver`` role.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Protocol

from broker.lifecycle.errors import APPROVAL_MISSING, FOUR_EYES, NOT_APPROVER, ApprovalRefused
from broker.lifecycle.kinds import Kind, rules

APPROVER_ROLE = "approver"


class Person(Protocol):
    """An authenticated operator (e.g. ``broker.adapters.grpc.auth.Operator``)."""

    @property
    def subject(self) -> str: ...

    @property
    def roles(self) -> Set[str]: ...


@dataclass(frozen=True)
class Approval:
    """Who drafted and who approved a request, as recorded in the transition.

    Attributes:
        drafter: the drafter's subject (the token's ``sub``).
        approver: the approver's subject.
        approver_roles: the approver's roles when approving.
    """

    drafter: str
    approver: str
    approver_roles: frozenset[str]

    @classmethod
    def of(cls, approver: Person, drafter: Person | str) -> Approval:
        """The approval of ``approver`` for a draft by ``drafter`` (a person or subject)."""
        drafter_id = drafter if isinstance(drafter, str) else drafter.subject
        return cls(drafter_id, approver.subject, frozenset(approver.roles))


def check_approval(kind: Kind, approval: Approval | None) -> Approval:
    """The approval itself, if it may approve a draft of ``kind``.

    Raises:
        ApprovalRefused: no identities were given, the approver lacks the ``approver``
            role, or (four-eyes kinds) the approver drafted the request.
    """
    if approval is None or not approval.drafter or not approval.approver:
        raise ApprovalRefused(
            f"approving a {kind} request needs the drafter's and the approver's identities",
            code=APPROVAL_MISSING,
        )
    if APPROVER_ROLE not in approval.approver_roles:
        raise ApprovalRefused(
            f"{approval.approver!r} lacks the {APPROVER_ROLE!r} role and cannot approve "
            f"a {kind} request",
            code=NOT_APPROVER,
        )
    if rules(kind).four_eyes and approval.approver.casefold() == approval.drafter.casefold():
        raise ApprovalRefused(
            f"four-eyes: {approval.approver!r} drafted this {kind} request and cannot also "
            "approve it; a different person with the approver role must",
            code=FOUR_EYES,
        )
    return approval
