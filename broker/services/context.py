"""What every service of one node shares: identity, keys, trust, limits, store, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from broker.config import DeliveryPolicy, EnvelopeLimits, LifecyclePolicy
from broker.crypto import AtRestCipher, KemPrivateKey
from broker.envelope import Signer
from broker.policy import PolicySet
from broker.ports import Blobs, Clock, Store
from broker.templating import TemplateRegistry
from broker.trust import TrustList

if TYPE_CHECKING:
    from broker.services.cases import Cases

log = structlog.get_logger("rogatory")


@dataclass
class NodeContext:
    node_id: str
    signer: Signer
    kem_key: KemPrivateKey
    trust: TrustList
    store: Store
    blobs: Blobs
    at_rest: AtRestCipher
    templates: TemplateRegistry
    policy: PolicySet
    clock: Clock
    limits: EnvelopeLimits = field(default_factory=EnvelopeLimits)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    lifecycle: LifecyclePolicy = field(default_factory=LifecyclePolicy)
    # Raises when the node must refuse new exchanges (e.g. the audit backlog is full).
    gate: Callable[[], None] = lambda: None
    # The lifecycle planner built from `lifecycle`, once (see `Cases.of`).
    cases: Cases | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def actor(self) -> str:
        return f"node:{self.node_id}"
