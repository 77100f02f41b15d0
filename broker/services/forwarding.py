"""Onward transfer: pass a stored message (and its evidence) on to another node.

It is a policy decision of its own (`onward_transfer`): the obligations the data arrived
with travel into it (e.g. `no_onward_transfer` needs the originating authority's
authorisation; data from another member state needs its prior authorisation, LED
Art. 35(1)(c) and (e)). The new envelope is signed and sealed afresh; the original is
named in the audit record.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from broker.audit import AuditEvent, EventType
from broker.model import MessageId
from broker.services.cases import Placement
from broker.services.context import NodeContext
from broker.services.mailbox import Mailbox
from broker.services.outgoing import AttachmentSpec, Outgoing, SendRequest, SentMessage


class Forwarding:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    async def forward(self, message_id: MessageId, *, to: str, declared: Mapping[str, Any],
                      actor: str, ttl_ms: int = 0) -> SentMessage:
        ctx = self.ctx
        m = await ctx.store.get_message(message_id)
        payload = ctx.at_rest.open("payload", message_id.raw, m.payload)
        merged = dict(declared)
        if m.direction == "in":
            origin = ctx.trust.node(m.peer).jurisdiction
            if origin != ctx.trust.node(ctx.node_id).jurisdiction:
                merged.setdefault("originating_member_state", origin)
        mailbox = Mailbox(ctx)
        specs = []
        for a in m.attachments:
            rid = message_id.raw + a.index.to_bytes(4, "big")
            name = ctx.at_rest.open("filename", rid, a.filename).decode()
            specs.append(AttachmentSpec(name, a.media_type, a.size))

        async def pieces() -> AsyncIterator[tuple[int, bytes]]:
            for a in m.attachments:
                async for piece in mailbox.stored_plaintext(m, a):
                    yield a.index, piece

        # A forwarded request opens a request of its own with the new recipient, in the
        # case of the original (an answer cannot be forwarded: it answers no request there).
        original = await ctx.store.request_of_message(message_id)
        placement = Placement(case_id=original.case_id) if original is not None else Placement()
        sent = await Outgoing(ctx).send(SendRequest(
            to=to, message_type=m.message_type, payload=payload, template_id=m.template_id,
            template_version=m.template_version, attachments=specs, ttl_ms=ttl_ms,
            legal_basis=m.legal_basis, declared=merged, action="onward_transfer",
            carried_obligations=[o["id"] for o in json.loads(m.obligations)],
            placement=placement),
            pieces(), actor=actor)
        await ctx.store.audit(AuditEvent(
            EventType.ONWARD_TRANSFER, actor=actor, envelope_id=message_id, peer=m.peer,
            message_type=m.message_type, template_id=m.template_id,
            template_version=m.template_version, header_sha256=m.header_sha256,
            recipients=(to,), reason=f"as {sent.message.envelope_id}"))
        return sent
