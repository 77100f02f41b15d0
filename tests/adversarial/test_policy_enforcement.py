"""The policy engine at the node's doors, with real nodes: refusals are specific, audited
with the determining policy ids, and leave the store unchanged."""

from __future__ import annotations

import json

import grpc
import pytest

from broker.errors import PolicyDenied
from broker.services.mailbox import Mailbox
from broker.wire import codec
from tests.harness import (
    Federation,
    audit_events,
    craft,
    evil_deliver,
    nodes,
    send,
    skeleton,
    state_digest,
    wait_delivered,
)

pytestmark = [pytest.mark.adversarial, pytest.mark.integration, pytest.mark.timeout(90)]


async def test_transfer_to_third_country_without_justification_refused_at_send(
        fed: Federation) -> None:
    """An MLA request DE-BFJ -> US-OIA (LED Chapter V transfer) with no justification and
    no agreement reference: the sender's policy says what is missing; nothing is stored."""
    cfg = fed.configs["DE-BFJ"]
    async with nodes(fed, "DE-BFJ") as n:
        before = state_digest(cfg)
        with pytest.raises(PolicyDenied) as err:
            await send(n["DE-BFJ"], "US-OIA", "mla_request", declared={})
        assert err.value.code == "POLICY_NEEDS"
        assert "justification" in err.value.message
        assert state_digest(cfg) == before
    denied = [e for e in audit_events(cfg) if e["event_type"] == "policy.denied"]
    assert len(denied) == 1
    assert denied[0]["reason"] == "POLICY_NEEDS" and denied[0]["policy_decision_ids"]


async def test_request_under_an_instrument_not_in_force_refused_on_receive(
        fed: Federation) -> None:
    """A correctly signed SAP Art. 8 production order DE-BFJ -> US-OIA: the Second
    Additional Protocol is not in force between them, so the receiver refuses it."""
    c = craft(fed, sender="DE-BFJ", recipient="US-OIA", message_type="production_order_request",
              payload=skeleton("production_order_request"))
    cfg = fed.configs["US-OIA"]
    async with nodes(fed, "US-OIA") as n:
        before = state_digest(cfg)
        count = len(audit_events(cfg))
        code, reason, _ = await evil_deliver(fed, n["US-OIA"], c.envelope, as_node="DE-BFJ")
        assert code == grpc.StatusCode.FAILED_PRECONDITION and reason == "POLICY_DENY"
        assert state_digest(cfg) == before
        rejected = [e for e in audit_events(cfg)[count:] if e["event_type"] == "envelope.rejected"]
    assert [e["reason"] for e in rejected] == ["POLICY_DENY"]
    assert any(p.startswith("SAP-00") for p in rejected[0]["policy_decision_ids"])


async def test_obligations_travel_signed_and_are_stored_by_the_receiver(fed: Federation) -> None:
    async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
        mid = await send(n["DE-BFJ"], "NL-24X7", "preservation")
        await wait_delivered(n["DE-BFJ"], mid)
        assert n["NL-24X7"].ctx is not None and n["DE-BFJ"].ctx is not None
        sent = await n["DE-BFJ"].ctx.store.get_message(mid)
        header = codec.decode_header(sent.header)
        assert header.legal_basis == "budapest_29" and header.policy_set_hash
        carried = {o.id for o in header.obligations}
        assert carried
        received = await n["NL-24X7"].ctx.store.get_message(mid)
        stored = {o["id"] for o in json.loads(received.obligations)}
        assert carried <= stored
        with pytest.raises(PolicyDenied) as err:
            await Mailbox(n["NL-24X7"].ctx).show(mid, actor="person:officer")
        assert err.value.code == "POLICY_NEEDS"
    sent = [e for e in audit_events(fed.configs["DE-BFJ"]) if e["event_type"] == "envelope.sent"]
    assert sent[0]["policy_set_hash"] == header.policy_set_hash.hex()
    assert sent[0]["policy_decision_ids"] and sent[0]["citations"]
    got = [e for e in audit_events(fed.configs["NL-24X7"]) if e["event_type"] in
           ("envelope.received", "policy.denied")]
    assert all(e["policy_set_hash"] == header.policy_set_hash.hex() for e in got)


async def test_onward_transfer_needs_the_originating_states_authorisation(
        fed: Federation) -> None:
    """Timeline: DE-BFJ sends a preservation request with evidence to NL-24X7; NL-24X7 tries
    to pass it on to US-OIA. Without DE's prior authorisation (LED Art. 35(1)(c)) the
    transfer is refused and nothing leaves; with it, the evidence arrives intact and the
    onward transfer is audited against the original envelope."""
    from broker.services.forwarding import Forwarding
    evidence = b"log extract " * 5000
    async with nodes(fed, "DE-BFJ", "NL-24X7", "US-OIA") as n:
        original = await send(n["DE-BFJ"], "NL-24X7", "preservation", attachments=[evidence])
        await wait_delivered(n["DE-BFJ"], original)
        nl = n["NL-24X7"]
        assert nl.ctx is not None and n["US-OIA"].ctx is not None
        before = state_digest(fed.configs["NL-24X7"])
        third_country = {"justification": "US investigation assistance",
                         "agreement_ref": "EU-US Umbrella Agreement"}
        with pytest.raises(PolicyDenied) as err:
            await Forwarding(nl.ctx).forward(original, to="US-OIA", declared=third_country,
                                             actor="person:officer-nl")
        assert err.value.code == "POLICY_NEEDS" and "prior_authorisation_ref" in err.value.message
        assert state_digest(fed.configs["NL-24X7"]) == before
        sent = await Forwarding(nl.ctx).forward(
            original, to="US-OIA", actor="person:officer-nl",
            declared={**third_country, "prior_authorisation_ref": "BfJ authorisation 2026/88"})
        assert nl._delivery is not None
        nl._delivery.wake()
        assert await wait_delivered(nl, sent.message.envelope_id) == "delivered"
        got = b"".join([p async for p in await Mailbox(n["US-OIA"].ctx).read_attachment(
            sent.message.envelope_id, 0, actor="person:us", justification="case 9")])
        assert got == evidence
    events = audit_events(fed.configs["NL-24X7"])
    forwarded = [e for e in events if e["event_type"] == "envelope.forwarded"]
    assert len(forwarded) == 1 and forwarded[0]["envelope_id"] == str(original)
    assert forwarded[0]["recipients"] == ["US-OIA"]
    assert [e["reason"] for e in events if e["event_type"] == "policy.denied"] == ["POLICY_NEEDS"]
