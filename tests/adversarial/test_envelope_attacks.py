"""Attacks on a live node over real mutual TLS. Each: a specific error, audited, nothing stored.

The peer only sees an opaque status for authentication and decryption failures; the
exact reason is in the receiving node's audit journal, which is what these tests read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import grpc
import pytest

from broker.crypto import SigningKey
from broker.model import MessageId, SealedEnvelope
from tests.harness import (
    Crafted,
    Federation,
    audit_events,
    craft,
    evil_deliver,
    make_federation,
    nodes,
    now_ms,
    state_digest,
)

pytestmark = [pytest.mark.adversarial, pytest.mark.integration, pytest.mark.timeout(90)]


async def _assert_rejected(fed: Federation, target: str, crafted: Crafted | SealedEnvelope,
                           chunks: Sequence[tuple[int, int, bytes]] | None = None, *,
                           reason: str, as_node: str = "DE-BFJ",
                           status: grpc.StatusCode | None = None, **kw: object) -> None:
    """Deliver, then check: refused, the audit names `reason`, the store is unchanged."""
    env = crafted.envelope if isinstance(crafted, Crafted) else crafted
    frames = chunks if chunks is not None else (
        crafted.chunks if isinstance(crafted, Crafted) else [])
    cfg = fed.configs[target]
    async with nodes(fed, target) as n:
        before = state_digest(cfg)
        audit_before = len(audit_events(cfg))
        code, _, reply = await evil_deliver(fed, n[target], env, frames, as_node=as_node,
                                            **kw)  # type: ignore[arg-type]
        assert code != grpc.StatusCode.OK, "the node accepted a forged delivery"
        assert not reply
        if status is not None:
            assert code == status
        assert state_digest(cfg) == before
        new = audit_events(cfg)[audit_before:]
    rejections = [e for e in new if e["event_type"] == "envelope.rejected"]
    assert [e["reason"] for e in rejections] == [reason]


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


async def test_tampered_header_rejected(fed: Federation) -> None:
    """The header is changed after signing (recipient-visible field: the message type)."""
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    header = c.envelope.header.replace(b"preservation", b"preservatioN")
    await _assert_rejected(fed, "NL-24X7", dataclasses.replace(c.envelope, header=header),
                           [], reason="SIGNATURE_INVALID",
                           status=grpc.StatusCode.INVALID_ARGUMENT)


@pytest.mark.parametrize("bit", [0, 77, 200, 511])
async def test_bit_flipped_signature_rejected(fed: Federation, bit: int) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    env = dataclasses.replace(c.envelope, signature=_flip(c.envelope.signature, bit))
    await _assert_rejected(fed, "NL-24X7", env, [], reason="SIGNATURE_INVALID")


async def test_unknown_field_appended_to_signed_header_rejected(fed: Federation) -> None:
    """Field 1023 appended to the signed bytes: refused before any signature check."""
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    env = dataclasses.replace(c.envelope, header=c.envelope.header + b"\xf8\x3f\x01")
    await _assert_rejected(fed, "NL-24X7", env, [], reason="UNKNOWN_FIELDS")


async def test_tampered_sealed_body_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    env = dataclasses.replace(c.envelope, sealed_body=_flip(c.envelope.sealed_body, 400))
    await _assert_rejected(fed, "NL-24X7", env, [], reason="DECRYPTION_FAILED")


async def test_body_moved_under_another_header_rejected(fed: Federation) -> None:
    """A valid signed header with the sealed body of another envelope to the same node."""
    a = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    b = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    env = dataclasses.replace(a.envelope, sealed_body=b.envelope.sealed_body)
    await _assert_rejected(fed, "NL-24X7", env, [], reason="DECRYPTION_FAILED")


async def test_tampered_attachment_chunk_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="US-OIA", message_type="mla_request",
              attachments=[os.urandom(200_000)])
    chunks = list(c.chunks)
    index, counter, data = chunks[1]
    chunks[1] = (index, counter, _flip(data, 9))
    await _assert_rejected(fed, "US-OIA", c, chunks, reason="CHUNK_AUTH")


async def test_truncated_attachment_stream_rejected(fed: Federation) -> None:
    """The stream ends exactly at a chunk boundary, before the final chunk."""
    c = craft(fed, sender="DE-BFJ", recipient="US-OIA", message_type="mla_request",
              attachments=[os.urandom(300_000)])
    await _assert_rejected(fed, "US-OIA", c, c.chunks[:-1], reason="STREAM_TRUNCATED")


async def test_reordered_attachment_stream_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="US-OIA", message_type="mla_request",
              attachments=[os.urandom(300_000)])
    chunks = list(c.chunks)
    chunks[0], chunks[1] = chunks[1], chunks[0]
    await _assert_rejected(fed, "US-OIA", c, chunks, reason="CHUNK_SEQ")


async def test_relabelled_reordered_chunks_rejected(fed: Federation) -> None:
    """Chunks swapped and their counters rewritten to look in order: the nonce gives it away."""
    c = craft(fed, sender="DE-BFJ", recipient="US-OIA", message_type="mla_request",
              attachments=[os.urandom(300_000)])
    chunks = list(c.chunks)
    chunks[0], chunks[1] = (0, 0, chunks[1][2]), (0, 1, chunks[0][2])
    await _assert_rejected(fed, "US-OIA", c, chunks, reason="CHUNK_AUTH")


async def test_trailing_data_after_last_chunk_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="US-OIA", message_type="mla_request",
              attachments=[os.urandom(1000)])
    await _assert_rejected(fed, "US-OIA", c, [*c.chunks, (0, 1, b"x" * 32)],
                           reason="TRAILING_DATA")


async def test_envelope_sealed_to_another_node_rejected(fed: Federation) -> None:
    """An envelope for US-OIA is delivered to NL-24X7 (misrouting)."""
    c = craft(fed, sender="DE-BFJ", recipient="US-OIA", message_type="mla_request")
    await _assert_rejected(fed, "NL-24X7", c, reason="NOT_FOR_THIS_RECIPIENT")


async def test_replayed_envelope_id_with_other_content_rejected(fed: Federation) -> None:
    """Timeline: envelope E is accepted; a second, different envelope reuses E's id."""
    eid = MessageId.new()
    first = craft(fed, sender="DE-BFJ", recipient="NL-24X7", envelope_id=eid)
    replay = craft(fed, sender="DE-BFJ", recipient="NL-24X7", envelope_id=eid)
    async with nodes(fed, "NL-24X7") as n:
        code, _, _ = await evil_deliver(fed, n["NL-24X7"], first.envelope)
        assert code == grpc.StatusCode.OK
    await _assert_rejected(fed, "NL-24X7", replay, reason="REPLAY")


async def test_expired_envelope_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7", created_ms=now_ms() - 7_200_000,
              ttl_ms=3_600_000)
    await _assert_rejected(fed, "NL-24X7", c, reason="EXPIRED")


async def test_envelope_from_the_future_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7", created_ms=now_ms() + 3_600_000)
    await _assert_rejected(fed, "NL-24X7", c, reason="NOT_YET_VALID")


async def test_sender_not_in_trust_list_rejected(fed: Federation) -> None:
    """A certificate from the federation CA for a node the trust list does not list."""
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    header = c.envelope.header.replace(b"DE-BFJ", b"FR-PNF")
    env = dataclasses.replace(c.envelope, header=header)
    await _assert_rejected(fed, "NL-24X7", env, [], tls=fed.issue_cert("FR-PNF"),
                           reason="UNKNOWN_SENDER")


async def test_certificate_of_one_node_claiming_another_rejected(fed: Federation) -> None:
    """US-OIA's valid client certificate delivers an envelope signed as DE-BFJ."""
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    await _assert_rejected(fed, "NL-24X7", c, as_node="US-OIA", reason="SENDER_MISMATCH",
                           status=grpc.StatusCode.PERMISSION_DENIED)


async def test_signature_by_key_not_in_trust_list_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7", signer=SigningKey.generate())
    await _assert_rejected(fed, "NL-24X7", c, reason="UNKNOWN_KEY")


async def test_oversized_envelope_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    env = dataclasses.replace(c.envelope, sealed_body=c.envelope.sealed_body + bytes(2 << 20))
    await _assert_rejected(fed, "NL-24X7", env, [], reason="TOO_LARGE")


async def test_payload_failing_its_template_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7", payload=b'{"request_status": 7}')
    await _assert_rejected(fed, "NL-24X7", c, reason="TEMPLATE_INVALID",
                           status=grpc.StatusCode.FAILED_PRECONDITION)


async def test_unknown_template_version_rejected(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7",
              template=("coe-art29-preservation", "99.0.0"))
    await _assert_rejected(fed, "NL-24X7", c, reason="TEMPLATE_UNKNOWN")


async def test_empty_envelope_rejected(fed: Federation) -> None:
    await _assert_rejected(fed, "NL-24X7", SealedEnvelope(b"", b"", b""), [],
                           reason="MALFORMED")


async def test_client_without_certificate_cannot_connect(fed: Federation) -> None:
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    cfg = fed.configs["NL-24X7"]
    async with nodes(fed, "NL-24X7") as n:
        before = state_digest(cfg)
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{n['NL-24X7'].exchange_port}",
            grpc.ssl_channel_credentials(root_certificates=fed.ca()),
            options=[("grpc.ssl_target_name_override", "nl-24x7.nodes.rogatory.invalid")])
        from broker.wire import codec
        from broker.wire.gen.rogatory.v1 import exchange_pb2, exchange_pb2_grpc

        async def frames():  # type: ignore[no-untyped-def]
            yield exchange_pb2.DeliverFrame(envelope=codec.to_envelope_pb(c.envelope))

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await exchange_pb2_grpc.ExchangeStub(channel).Deliver(frames(), timeout=5)
        await channel.close()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert state_digest(cfg) == before


async def test_certificate_from_another_ca_cannot_connect(fed: Federation, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rogue = make_federation(tmp_path / "rogue")
    c = craft(fed, sender="DE-BFJ", recipient="NL-24X7")
    cfg = fed.configs["NL-24X7"]
    async with nodes(fed, "NL-24X7") as n:
        before = state_digest(cfg)
        code, _, _ = await evil_deliver(fed, n["NL-24X7"], c.envelope,
                                        tls=rogue.tls("DE-BFJ"), ca=fed.ca())
        assert code == grpc.StatusCode.UNAVAILABLE
        assert state_digest(cfg) == before
