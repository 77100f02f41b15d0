"""A revoked client certificate is refused on every call, even on a node already running."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from broker.crypto import SigningKey
from broker.trust import PAYLOAD_TYPE, sign_trust_list
from tests.harness import Federation, audit_events, craft, evil_deliver, nodes, state_digest

pytestmark = [pytest.mark.integration, pytest.mark.adversarial, pytest.mark.timeout(60)]


def _revoke_cert(fed: Federation, node_id: str) -> None:
    """Re-issue the trust list (version + 1) with `node_id`'s TLS certificate revoked."""
    import base64
    path = fed.root / "trust-list.json"
    wrapper = json.loads(path.read_text())
    assert wrapper["payloadType"] == PAYLOAD_TYPE
    doc = json.loads(base64.b64decode(wrapper["payload"]))
    serial = x509.load_pem_x509_certificate(fed.tls(node_id)[1]).serial_number
    doc["version"] += 1
    doc["revoked_cert_serials"] = [serial]
    admin = SigningKey.from_pem((fed.root / "admin" / "admin-1.pem").read_bytes())
    path.write_bytes(sign_trust_list(doc, [admin]))


async def test_revoked_client_certificate_rejected(fed: Federation, tmp_path: Path) -> None:
    """Timeline: US-OIA's certificate is revoked in trust list v2; NL-24X7 runs with v2;
    US-OIA delivers a correctly signed envelope over that certificate: refused, audited."""
    _revoke_cert(fed, "US-OIA")
    c = craft(fed, sender="US-OIA", recipient="NL-24X7")
    cfg = fed.configs["NL-24X7"]
    async with nodes(fed, "NL-24X7") as n:
        assert n["NL-24X7"].ctx is not None and n["NL-24X7"].ctx.trust.version == 2
        before = state_digest(cfg)
        count = len(audit_events(cfg))
        code, _, _ = await evil_deliver(fed, n["NL-24X7"], c.envelope, as_node="US-OIA")
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert state_digest(cfg) == before
        reasons = [e["reason"] for e in audit_events(cfg)[count:]
                   if e["event_type"] == "envelope.rejected"]
        assert reasons == ["CERT_REVOKED"]
        # a node whose certificate is not revoked still gets through
        ok = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
        code, _, _ = await evil_deliver(fed, n["NL-24X7"], ok.envelope, as_node="DE-BFJ")
        assert code == grpc.StatusCode.OK


async def test_trust_list_rollback_refused_at_start(fed: Federation) -> None:
    """Timeline: a node has run with trust list v2; v1 is put back; the node refuses to start."""
    from broker.errors import TrustListRollback
    old = (fed.root / "trust-list.json").read_bytes()
    _revoke_cert(fed, "US-OIA")
    async with nodes(fed, "NL-24X7"):
        pass
    (fed.root / "trust-list.json").write_bytes(old)
    with pytest.raises(TrustListRollback):
        async with nodes(fed, "NL-24X7"):
            pass


async def test_receipt_signed_before_a_key_revocation_still_verifies(tmp_path: Path) -> None:
    """Matrix C09. Timeline: US-OIA receipts a DE-BFJ request; later US-OIA's signing key
    is revoked (trust list v2); DE-BFJ restarts with v2: the old receipt still verifies
    (checked at the time DE-BFJ stored it, which its audit log countersigns) and says the
    key has been revoked since; a new envelope signed with that key is refused."""
    import asyncio
    import base64
    from datetime import UTC, datetime, timedelta

    from broker.services.mailbox import Mailbox
    from tests.harness import make_federation, send, wait_delivered

    fed = make_federation(tmp_path / "fed")
    async with nodes(fed, "DE-BFJ", "US-OIA") as n:
        mid = await send(n["DE-BFJ"], "US-OIA", "preservation")
        assert await wait_delivered(n["DE-BFJ"], mid) == "delivered"
    await asyncio.sleep(0.01)
    path = fed.root / "trust-list.json"
    doc = json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))
    doc["version"] += 1
    revoked = (datetime.now(UTC) + timedelta(milliseconds=1)).isoformat()
    for node in doc["nodes"]:
        if node["node_id"] == "US-OIA":
            node["signing_keys"][0]["revoked_at"] = revoked
    admin = SigningKey.from_pem((fed.root / "admin" / "admin-1.pem").read_bytes())
    path.write_bytes(sign_trust_list(doc, [admin]))
    await asyncio.sleep(0.01)
    async with nodes(fed, "DE-BFJ") as n:
        de = n["DE-BFJ"]
        assert de.ctx is not None and de.ctx.trust.version == 2
        view = await Mailbox(de.ctx).receipt(mid)
        assert view.verified and view.key_status == "revoked_after_receipt"
        forged = craft(fed, sender="US-OIA", recipient="DE-BFJ")
        code, _, _ = await evil_deliver(fed, de, forged.envelope, as_node="US-OIA")
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    reasons = [e["reason"] for e in audit_events(fed.configs["DE-BFJ"])
               if e["event_type"] == "envelope.rejected"]
    assert reasons[-1] == "KEY_REVOKED"
