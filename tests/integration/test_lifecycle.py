"""The request lifecycle end to end between real nodes (mTLS, SQLite, Cedar, real clocks
or a travelled one): cases, answers, deadlines, four-eyes, evidence with custody."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.bundle import verify_bundle
from broker.errors import StateError
from broker.lifecycle import ApprovalRefused
from broker.model import EvidenceCustody, MessageId
from broker.services.cases import Cases, Placement, export
from broker.services.mailbox import Mailbox
from broker.services.outgoing import AttachmentSpec, Outgoing, SendRequest
from broker.wire import codec
from nodes.node import AgencyNode
from tests.harness import (
    APPROVER,
    DECLARED,
    DRAFTER,
    Person,
    audit_events,
    make_federation,
    nodes,
    send,
    skeleton,
    state_digest,
    wait_delivered,
)

pytestmark = pytest.mark.asyncio


def payload(message_type: str, **fields: Any) -> bytes:
    doc = json.loads(skeleton(message_type))
    doc.update(fields)
    return json.dumps(doc).encode()


async def state_of(node: AgencyNode, request_id: MessageId, want: str,
                   timeout_s: float = 30) -> str:
    assert node.ctx is not None
    deadline = time.monotonic() + timeout_s
    while True:
        r = await node.ctx.store.get_request(request_id) if await _known(node, request_id) \
            else None
        if r is not None and r.state == want:
            return r.state
        if time.monotonic() > deadline:
            raise AssertionError(f"{request_id} is {r.state if r else 'unknown'}, not {want}")
        await asyncio.sleep(0.02)


async def _known(node: AgencyNode, request_id: MessageId) -> bool:
    assert node.ctx is not None
    return await node.ctx.store.request_of_message(request_id) is not None


async def answer(node: AgencyNode, in_reply_to: MessageId, message_type: str, body: bytes,
                 evidence: list[tuple[bytes, EvidenceCustody]] | None = None) -> MessageId:
    """Send an answer through the node's service (as the operator API does)."""
    assert node.ctx is not None and node._delivery is not None
    request = await node.ctx.store.request_of_message(in_reply_to)
    assert request is not None
    items = evidence or []

    async def pieces() -> AsyncIterator[tuple[int, bytes]]:
        for i, (data, _c) in enumerate(items):
            for off in range(0, len(data), 1 << 20):
                yield i, data[off:off + (1 << 20)]

    sent = await Outgoing(node.ctx).send(SendRequest(
        to=request.peer, message_type=message_type, payload=body, in_reply_to=in_reply_to,
        attachments=[AttachmentSpec(f"item-{i}.bin", "application/octet-stream", len(d), c)
                     for i, (d, c) in enumerate(items)],
        declared={"justification": "criminal investigation BfJ-RHS-2026-0412",
                  "agreement_ref": "EU-US Umbrella Agreement; DE-US MLA Treaty",
                  "quality_verified": True}),
        pieces(), actor="person:officer")
    node._delivery.wake()
    return sent.message.envelope_id


async def test_preservation_extended_then_mla_answered_with_200_mib_evidence(
        tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    async with nodes(fed, "DE-BFJ", "US-OIA") as n:
        de, us = n["DE-BFJ"], n["US-OIA"]
        assert de.ctx is not None and us.ctx is not None
        # 1. Preservation (Budapest Art. 29), new case with DE's own reference.
        pres = await send(de, "US-OIA", "preservation",
                          placement=Placement(case_reference="BfJ-RHS-2026-0412"))
        assert await wait_delivered(de, pres) == "delivered"
        await state_of(de, pres, "delivered")
        await state_of(us, pres, "delivered")
        us_pres = await us.ctx.store.get_request(pres)
        assert us_pres.side == "executing" and us_pres.kind == "preservation"
        assert Cases(us.ctx).peer_reference(us_pres) == "BfJ-RHS-2026-0412"
        # 2. US confirms the preservation; DE extends it before expiry.
        await answer(us, pres, "execution_response", payload("execution_response"))
        await state_of(de, pres, "preserved")
        minimum = {d.name: d for d in await de.ctx.store.deadlines(pres)}
        assert minimum["minimum_preservation"].status == "running"
        first_due = minimum["minimum_preservation"].due_at_ms
        await asyncio.sleep(0.05)
        ext = await answer(de, pres, "preservation", payload(
            "preservation", request_status="extension_of_previous_preservation",
            previous_request_reference="BfJ-RHS-2026-0412"))
        await state_of(us, pres, "extended")
        await state_of(de, pres, "extended")
        restarted = {d.name: d for d in await us.ctx.store.deadlines(pres)}
        assert restarted["minimum_preservation"].status == "running"
        assert restarted["minimum_preservation"].due_at_ms > first_due
        assert ext in await us.ctx.store.request_messages(pres)
        # 3. The MLA request follows the preservation up: drafted, approved by another.
        mla = await send(de, "US-OIA", "mla_request",
                         placement=Placement(follows=(pres,)))
        assert await wait_delivered(de, mla) == "delivered"
        de_mla = await de.ctx.store.get_request(mla)
        assert (de_mla.drafter, de_mla.approver) == (DRAFTER.subject, APPROVER.subject)
        assert de_mla.case_id == (await de.ctx.store.get_request(pres)).case_id
        assert (await de.ctx.store.get_request(pres)).state == "followed_up"
        await state_of(us, pres, "followed_up")
        assert (await us.ctx.store.get_request(mla)).case_id == us_pres.case_id
        # 4. US acknowledges, begins execution, answers with 200 MiB of evidence.
        await answer(us, mla, "acknowledgement", payload("acknowledgement"))
        await state_of(de, mla, "acknowledged")
        await Cases(us.ctx).record(mla, Cases.event("begin_execution"), actor="person:officer")
        evidence = os.urandom(200 << 20)
        custody = EvidenceCustody(index=0, acquired_by="US-OIA computer forensics unit",
                                  acquired_at_ms=1_760_000_000_000,
                                  method="production order served on provider",
                                  source="provider account records",
                                  request_reference="BfJ-RHS-2026-0412")
        resp = await answer(us, mla, "execution_response", payload("execution_response"),
                            evidence=[(evidence, custody)])
        assert await wait_delivered(us, resp, timeout_s=300) == "delivered"
        await state_of(de, mla, "executed")
        await state_of(us, mla, "executed")
        # The evidence verifies against the signed manifest; custody travelled sealed.
        got = hashlib.sha256()
        async for piece in await Mailbox(de.ctx).read_attachment(
                resp, 0, actor="person:officer", justification="BfJ-RHS-2026-0412"):
            got.update(piece)
        assert got.digest() == hashlib.sha256(evidence).digest()
        stored = await de.ctx.store.get_message(resp)
        body = codec.decode_body(de.ctx.at_rest.open("body", resp.raw, stored.body))
        assert body.custody[0].method == custody.method
        assert body.custody[0].request_id == mla
        del evidence
        # 5. Both sides export the case; the bundles verify offline.
        for node in (de, us):
            assert node.ctx is not None
            case_id = (await node.ctx.store.get_request(mla)).case_id
            out = tmp_path / f"{node.ctx.node_id}.zip"
            await export(node.ctx, case_id, out, actor="person:officer",
                         justification="court order 2026/77")
            report = verify_bundle(out)
            assert report.ok, report.findings
    events = {e["event_type"] for e in audit_events(fed.configs["DE-BFJ"])}
    assert {"request.sent", "request.delivered", "preservation.confirmed",
            "preservation.extended", "preservation.followed_up", "request.approved",
            "request.acknowledged", "request.executed"} <= events


async def test_refusal_with_grounds_ends_the_request(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    async with nodes(fed, "DE-BFJ", "US-OIA") as n:
        de, us = n["DE-BFJ"], n["US-OIA"]
        mla = await send(de, "US-OIA", "mla_request")
        await state_of(us, mla, "delivered")
        refusal = await answer(us, mla, "refusal", payload(
            "refusal", decision="refused", grounds=["political_offence"]))
        assert await wait_delivered(us, refusal) == "delivered"
        await state_of(de, mla, "refused")
        await state_of(us, mla, "refused")
        assert de.ctx is not None
        deadlines = await de.ctx.store.deadlines(mla)
        assert all(d.status in ("pending", "stopped", "met") for d in deadlines)
        # A refused request accepts nothing more: an execution response is refused.
        before = state_digest(fed.configs["US-OIA"])
        with pytest.raises(StateError) as err:
            await answer(us, mla, "execution_response", payload("execution_response"))
        assert err.value.code == "ILLEGAL_TRANSITION"
        assert state_digest(fed.configs["US-OIA"]) == before
    refused = [e for e in audit_events(fed.configs["US-OIA"])
               if e["event_type"] == "envelope.send_refused"]
    assert refused and refused[-1]["reason"] == "ILLEGAL_TRANSITION"


async def test_drafter_cannot_approve_own_request(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    async with nodes(fed, "DE-BFJ") as n:
        de = n["DE-BFJ"]
        assert de.ctx is not None
        out = Outgoing(de.ctx)
        req = SendRequest(to="US-OIA", message_type="mla_request",
                          payload=skeleton("mla_request"),
                          declared={"justification": "criminal investigation X",
                                    "agreement_ref": "DE-US MLA Treaty"})
        # Sending an MLA request directly is refused: four-eyes.
        with pytest.raises(StateError) as direct:
            await out.send(req, _nothing(), actor="person:dora.drafter")
        assert direct.value.code == "APPROVAL_REQUIRED"
        both = Person("dora.drafter", frozenset({"drafter", "approver"}))
        draft = await out.draft(req, _nothing(), drafter=both)
        before = state_digest(fed.configs["DE-BFJ"])
        with pytest.raises(ApprovalRefused) as own:
            await out.approve(draft.request_id, approver=both)
        assert own.value.code == "FOUR_EYES"
        with pytest.raises(ApprovalRefused) as role:
            await out.approve(draft.request_id,
                              approver=Person("carl.clerk", frozenset({"drafter"})))
        assert role.value.code == "NOT_APPROVER"
        assert state_digest(fed.configs["DE-BFJ"]) == before
        assert (await de.ctx.store.get_request(draft.request_id)).state == "draft"
        sent = await out.approve(draft.request_id, approver=APPROVER)
        record = await de.ctx.store.get_request(draft.request_id)
        assert (record.state, record.drafter, record.approver) == (
            "sent", "dora.drafter", APPROVER.subject)
        assert sent.message.envelope_id == draft.request_id
    refusals = [e["reason"] for e in audit_events(fed.configs["DE-BFJ"])
                if e["event_type"] == "envelope.send_refused"]
    assert refusals == ["APPROVAL_REQUIRED", "FOUR_EYES", "NOT_APPROVER"]


async def test_illegal_transition_from_a_peer_is_refused_and_stores_nothing(
        tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    async with nodes(fed, "DE-BFJ", "US-OIA") as n:
        de, us = n["DE-BFJ"], n["US-OIA"]
        assert de.ctx is not None and us.ctx is not None
        pres = await send(de, "US-OIA", "preservation")
        await state_of(us, pres, "delivered")
        # The executing side may not send a withdrawal (only the requesting side does).
        with pytest.raises(StateError) as err:
            await answer(us, pres, "withdrawal", payload("withdrawal"))
        assert err.value.code == "ILLEGAL_TRANSITION"
        # An answer to a request never exchanged with this peer is refused as unknown.
        with pytest.raises(StateError) as unknown:
            await Outgoing(de.ctx).send(SendRequest(
                to="US-OIA", message_type="withdrawal", payload=payload("withdrawal"),
                in_reply_to=MessageId.new()), _nothing(), actor="person:x")
        assert unknown.value.code == "UNKNOWN_REQUEST"
        # A local step that travels as a message is refused too.
        with pytest.raises(StateError):
            await Cases(de.ctx).record(pres, Cases.event("close"), actor="person:x")


async def test_emergency_epoc_deadline_passes_with_time_travel(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    clock = TravelClock()
    started = [AgencyNode(fed.configs[i], clock=clock) for i in ("DE-BFJ", "NL-24X7")]
    try:
        for node in started:
            await node.start()
        de, nl = started
        assert de.ctx is not None and nl.ctx is not None
        epoc = await send(de, "NL-24X7", "epoc",
                          payload=payload("epoc", deadline="within_8_hours_emergency",
                                          emergency_ground="imminent_threat_to_life_"
                                                           "physical_integrity_or_safety"),
                          declared={**DECLARED, "judicial_validation_ref": "AG-Berlin-77"})
        await state_of(nl, epoc, "delivered")
        dl = {d.name: d for d in await nl.ctx.store.deadlines(epoc)}
        assert dl["production_emergency"].status == "running"
        assert "production_no_notification" not in dl   # the emergency limit applies
        due = dl["production_emergency"].due_at_ms - dl["production_emergency"].started_at_ms
        assert due == 8 * 3_600_000
        assert nl.cases is not None
        clock.travel(int(6.5 * 3_600_000))      # 81 %: approaching
        assert await nl.cases.scan_deadlines() == 1
        clock.travel(2 * 3_600_000)             # 8 h 30 min: passed
        assert await nl.cases.scan_deadlines() == 1
        assert await nl.cases.scan_deadlines() == 0   # raised once
        status = {d.name: d.status for d in await nl.ctx.store.deadlines(epoc)}
        assert status["production_emergency"] == "passed"
        due_now = await nl.ctx.store.deadlines(due_before_ms=clock())
        assert [d.name for d in due_now] == ["production_emergency"]
    finally:
        for node in started:
            await node.stop(grace=0.5)
    raised = [(e["event_type"], e["reason"]) for e in audit_events(fed.configs["NL-24X7"])
              if str(e["event_type"]).startswith("deadline.")]
    assert raised == [("deadline.approaching", "production_emergency"),
                      ("deadline.passed", "production_emergency")]


class TravelClock:
    def __init__(self) -> None:
        self.offset = 0

    def travel(self, ms: int) -> None:
        self.offset += ms

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset


async def _nothing() -> AsyncIterator[tuple[int, bytes]]:
    return
    yield



async def test_epoc_pr_extended_by_30_days_then_expires_on_both_sides(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    clock = TravelClock()
    started = [AgencyNode(fed.configs[i], clock=clock) for i in ("DE-BFJ", "NL-24X7")]
    declared = {**DECLARED, "judicial_validation_ref": "AG-Berlin-77"}
    try:
        for node in started:
            await node.start()
        de, nl = started
        assert de.ctx is not None and nl.ctx is not None
        pr = await send(de, "NL-24X7", "epoc_pr", declared=declared)
        await state_of(nl, pr, "delivered")
        await answer(nl, pr, "execution_response", payload("execution_response"))
        await state_of(de, pr, "preserved")
        base = {d.name: d for d in await nl.ctx.store.deadlines(pr)}["preservation"]
        assert base.due_at_ms - base.started_at_ms == 60 * 86_400_000
        await send(de, "NL-24X7", "epoc_pr_extension", in_reply_to=pr, declared=declared)
        await state_of(nl, pr, "extended")
        for node in (de, nl):
            assert node.ctx is not None
            dl = {d.name: d for d in await node.ctx.store.deadlines(pr)}
            assert dl["preservation"].status == "met"            # replaced...
            assert dl["extension"].status == "running"           # ...by 30 more days
            assert dl["extension"].started_at_ms == dl["preservation"].due_at_ms
        # A second extension is refused (EPOC-PR: once), and stores nothing.
        before = state_digest(fed.configs["DE-BFJ"])
        with pytest.raises(StateError) as again:
            await send(de, "NL-24X7", "epoc_pr_extension", in_reply_to=pr, declared=declared)
        assert again.value.code == "ILLEGAL_TRANSITION"
        assert state_digest(fed.configs["DE-BFJ"]) == before
        clock.travel(91 * 86_400_000)
        for node in (de, nl):
            assert node.cases is not None and node.ctx is not None
            await node.cases.scan_deadlines()
            assert (await node.ctx.store.get_request(pr)).state == "expired"
    finally:
        for node in started:
            await node.stop(grace=0.5)
    events = [e["event_type"] for e in audit_events(fed.configs["NL-24X7"])]
    assert "preservation.extended" in events and "preservation.expired" in events


async def test_additional_information_partial_execution_and_withdrawal(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    async with nodes(fed, "DE-BFJ", "US-OIA") as n:
        de, us = n["DE-BFJ"], n["US-OIA"]
        mla = await send(de, "US-OIA", "mla_request")
        await state_of(us, mla, "delivered")
        ask = await answer(us, mla, "additional_information_request",
                           payload("additional_information_request"))
        await state_of(de, mla, "additional_information_requested")
        # The answer may name the question rather than the request: same request.
        await answer(de, ask, "additional_information", payload("additional_information"))
        await state_of(us, mla, "additional_information_supplied")
        await answer(us, mla, "execution_response", payload(
            "execution_response", execution_status="partially_executed",
            not_executed_part="Traffic data older than six months: no longer held."))
        await state_of(de, mla, "partially_executed")
        # A second request in the same case is withdrawn before it is answered.
        assert de.ctx is not None
        case_id = (await de.ctx.store.get_request(mla)).case_id
        second = await send(de, "US-OIA", "mla_request", placement=Placement(case_id=case_id))
        await state_of(us, second, "delivered")
        await answer(de, second, "withdrawal", payload("withdrawal"))
        await state_of(us, second, "withdrawn")
        await state_of(de, second, "withdrawn")
        assert [r.request_id for r in await de.ctx.store.list_requests(case_id)] == [
            mla, second]
        for rid in (mla, second):
            await Cases(de.ctx).record(rid, Cases.event("close"), actor="person:officer")
            assert (await de.ctx.store.get_request(rid)).state == "closed"


async def test_agency_deadline_in_business_days_met_by_acknowledgement_and_references(
        tmp_path: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from nodes.config import load_config

    fed = make_federation(tmp_path / "fed")
    toml = fed.configs["US-OIA"].path
    toml.write_text(toml.read_text() + '''
[lifecycle]
timezone = "America/New_York"
day_count = "business"
holidays = ["2026-12-25", "2027-01-01"]
deadlines = [{message_type = "mla_request", name = "acknowledge_within", value = "P5D", \
basis = "OIA practice: acknowledge within 5 business days", kind = "maximum", \
starts = "receipt", verification = "V", met_by = ["acknowledgement"]}]
''')
    fed.configs["US-OIA"] = load_config(toml)
    async with nodes(fed, "DE-BFJ", "US-OIA") as n:
        de, us = n["DE-BFJ"], n["US-OIA"]
        assert de.ctx is not None and us.ctx is not None
        mla = await send(de, "US-OIA", "mla_request",
                         placement=Placement(case_reference="BfJ-RHS-2026-0412"))
        await state_of(us, mla, "delivered")
        dl = {d.name: d for d in await us.ctx.store.deadlines(mla)}["acknowledge_within"]
        ny = ZoneInfo("America/New_York")
        start = datetime.fromtimestamp(dl.started_at_ms / 1000, ny)
        end = datetime.fromtimestamp(dl.due_at_ms / 1000, ny)
        assert end.weekday() < 5                           # a business day...
        assert end.time().replace(microsecond=0) == start.time().replace(microsecond=0)
        assert (end.date() - start.date()).days >= 5      # weekends skipped
        # The executing side gives the case its own reference; its answer carries it.
        case_id = (await us.ctx.store.get_request(mla)).case_id
        await Cases(us.ctx).set_reference(case_id, "OIA-2026-331", actor="person:officer")
        await answer(us, mla, "acknowledgement", payload("acknowledgement"))
        await state_of(de, mla, "acknowledged")
        met = {d.name: d for d in await us.ctx.store.deadlines(mla)}["acknowledge_within"]
        assert met.status == "met"
        seen = await de.ctx.store.get_request(mla)
        assert Cases(de.ctx).peer_reference(seen) == "OIA-2026-331"
        # A draft never sent is withdrawn locally, and its draft dropped.
        annex = b"court order" * 1000

        async def annexes() -> AsyncIterator[tuple[int, bytes]]:
            yield 0, annex

        draft = await Outgoing(de.ctx).draft(SendRequest(
            to="US-OIA", message_type="mla_request", payload=skeleton("mla_request"),
            attachments=[AttachmentSpec("order.pdf", "application/pdf", len(annex))],
            declared=DECLARED), annexes(), drafter=DRAFTER)
        [sealed] = await de.ctx.store.draft_attachments(draft.request_id)
        assert (de.ctx.blobs.root / sealed.path).exists()
        await Cases(de.ctx).record(draft.request_id, Cases.event("withdrawal"),
                                   actor="person:dora.drafter")
        assert (await de.ctx.store.get_request(draft.request_id)).state == "withdrawn"
        assert await de.ctx.store.draft_attachments(draft.request_id) == []
        assert not (de.ctx.blobs.root / sealed.path).exists()
        with pytest.raises(StateError):
            await Outgoing(de.ctx).approve(draft.request_id, approver=APPROVER)


async def test_eio_acknowledgement_and_recognition_deadlines_from_template_data(
        tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    async with nodes(fed, "DE-BFJ", "NL-24X7") as n:
        de, nl = n["DE-BFJ"], n["NL-24X7"]
        assert de.ctx is not None and nl.ctx is not None
        eio = await send(de, "NL-24X7", "eio",
                         declared={**DECLARED, "judicial_validation_ref": "AG-Berlin-77"})
        await state_of(nl, eio, "delivered")
        dl = {d.name: d for d in await nl.ctx.store.deadlines(eio)}
        assert dl["acknowledge_receipt"].status == "running"       # Art. 16(1): 1 week
        assert dl["acknowledge_receipt"].due_at_ms - dl["acknowledge_receipt"].started_at_ms \
            == 7 * 86_400_000
        assert dl["recognition_decision"].status == "running"      # Art. 12(3): 30 days
        assert dl["execution_after_decision"].status == "pending"
        # An EIO is acknowledged with Annex B, not the generic acknowledgement.
        with pytest.raises(StateError) as wrong:
            await answer(nl, eio, "acknowledgement", payload("acknowledgement"))
        assert wrong.value.code == "ILLEGAL_TRANSITION"
        await answer(nl, eio, "eio_acknowledgement", payload("eio_acknowledgement"))
        await state_of(de, eio, "acknowledged")
        await Cases(nl.ctx).record(eio, Cases.event("begin_execution"), actor="person:x")
        dl = {d.name: d for d in await nl.ctx.store.deadlines(eio)}
        assert dl["acknowledge_receipt"].status == "met"
        assert dl["recognition_decision"].status == "met"          # the decision is taken
        assert dl["execution_after_decision"].status == "running"  # Art. 12(4): 90 days
        assert dl["execution_after_decision"].due_at_ms \
            - dl["execution_after_decision"].started_at_ms == 90 * 86_400_000
