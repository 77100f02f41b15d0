"""A peer that answers what it may not: unknown requests, another peer's request, steps
its side never takes, answers after the end. Each is refused with a specific code,
audited, and leaves the stored state unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from broker.model import MessageId
from tests.harness import (
    audit_events,
    craft,
    evil_deliver,
    make_federation,
    nodes,
    send,
    skeleton,
    state_digest,
    wait_delivered,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.adversarial]


def _payload(message_type: str, **fields: object) -> bytes:
    doc = json.loads(skeleton(message_type))
    doc.update(fields)
    return json.dumps(doc).encode()


async def test_answers_a_peer_may_not_send_are_refused(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    cfg = fed.configs["DE-BFJ"]
    async with nodes(fed, "DE-BFJ", "US-OIA", "NL-24X7") as n:
        de = n["DE-BFJ"]
        to_us = await send(de, "US-OIA", "preservation")
        to_nl = await send(de, "NL-24X7", "preservation")
        assert await wait_delivered(de, to_us) == "delivered"
        assert await wait_delivered(de, to_nl) == "delivered"
        cases = [
            # No in_reply_to at all.
            ("UNKNOWN_REQUEST", craft(fed, sender="US-OIA", recipient="DE-BFJ",
                                      message_type="acknowledgement")),
            # A request that does not exist.
            ("UNKNOWN_REQUEST", craft(fed, sender="US-OIA", recipient="DE-BFJ",
                                      message_type="acknowledgement",
                                      in_reply_to=MessageId.new())),
            # A request DE-BFJ holds with NL-24X7, answered by US-OIA.
            ("UNKNOWN_REQUEST", craft(fed, sender="US-OIA", recipient="DE-BFJ",
                                      message_type="acknowledgement", in_reply_to=to_nl)),
            # The executing side withdrawing the request (only the requester does).
            ("ILLEGAL_TRANSITION", craft(fed, sender="US-OIA", recipient="DE-BFJ",
                                         message_type="withdrawal", in_reply_to=to_us)),
            # A request that names a message it answers.
            ("ILLEGAL_TRANSITION", craft(fed, sender="US-OIA", recipient="DE-BFJ",
                                         message_type="preservation", in_reply_to=to_us)),
        ]
        for code, crafted in cases:
            before = state_digest(cfg)
            status, reason, _ = await evil_deliver(fed, de, crafted.envelope, as_node="US-OIA")
            assert (status, reason) == (grpc.StatusCode.FAILED_PRECONDITION, code), code
            assert state_digest(cfg) == before
        rejected = [e["reason"] for e in audit_events(cfg)
                    if e["event_type"] == "envelope.rejected"]
        assert rejected == [code for code, _ in cases]
        # A legal answer from the right peer still goes through.
        ok = craft(fed, sender="US-OIA", recipient="DE-BFJ", message_type="acknowledgement",
                   in_reply_to=to_us)
        status, _, _ = await evil_deliver(fed, de, ok.envelope, as_node="US-OIA")
        assert status == grpc.StatusCode.OK
        assert de.ctx is not None
        assert (await de.ctx.store.get_request(to_us)).state == "acknowledged"
        # After a refusal, nothing more: an execution response is an illegal step.
        refusal = craft(fed, sender="US-OIA", recipient="DE-BFJ", message_type="refusal",
                        in_reply_to=to_us, payload=_payload("refusal", decision="refused"))
        status, _, _ = await evil_deliver(fed, de, refusal.envelope, as_node="US-OIA")
        assert status == grpc.StatusCode.OK
        late = craft(fed, sender="US-OIA", recipient="DE-BFJ", message_type="execution_response",
                     in_reply_to=to_us)
        before = state_digest(cfg)
        status, reason, _ = await evil_deliver(fed, de, late.envelope, as_node="US-OIA")
        assert (status, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")
        assert state_digest(cfg) == before
