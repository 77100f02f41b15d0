"""Pure envelope build and verify: every forged or tampered envelope is refused.

Keys are generated here and a trust list is signed and loaded in memory, so the tests
reach `verify_envelope` directly (no node, no network). Forgeries that must survive the
signature check to reach a later check are re-signed with the sender's genuine key (a
buggy or compromised sender) and their body re-sealed under the new header bytes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.config import EnvelopeLimits
from broker.crypto import SUITE_V1, KemPrivateKey, SigningKey, seal_for, sha256
from broker.crypto import signing as sig
from broker.envelope import (
    ENVELOPE_VERSION,
    OutgoingAttachment,
    authenticate_header,
    build_envelope,
    verify_envelope,
)
from broker.errors import (
    EnvelopeExpired,
    EnvelopeNotYetValid,
    KeyRevoked,
    MalformedMessage,
    MessageTooLarge,
    NotForThisRecipient,
    PeerError,
    SenderMismatch,
    SignatureInvalid,
    UnknownKey,
    UnknownSender,
    UnsupportedVersion,
)
from broker.model import (
    AttachmentEntry,
    AttachmentKey,
    Body,
    EnvelopeHeader,
    MessageId,
    SealedEnvelope,
    VerifiedEnvelope,
)
from broker.trust import TrustList, admin_set_of, load_trust_list, now_iso, sign_trust_list
from broker.wire import codec

pytestmark = [pytest.mark.unit, pytest.mark.adversarial]

T0 = 1_750_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR
LIMITS = EnvelopeLimits()
NOW = T0 + 1_000
PAYLOAD = b'{"case": "2025/0042", "measures": ["preserve"]}'


@dataclass(frozen=True)
class Party:
    node_id: str
    signing: SigningKey
    kem: KemPrivateKey


@dataclass(frozen=True)
class World:
    de: Party            # sender
    nl: Party            # recipient
    us: Party            # a third, listed node
    de_revoked: SigningKey
    trust: TrustList


@functools.cache
def world() -> World:
    de, nl, us = (Party(n, SigningKey.generate(), KemPrivateKey.generate())
                  for n in ("DE-BFJ", "NL-24X7", "US-OIA"))
    revoked = SigningKey.generate()
    admin = SigningKey.generate()

    def spec(p: Party, extra: Sequence[dict[str, str]] = ()) -> dict[str, object]:
        return {"node_id": p.node_id, "jurisdiction": p.node_id[:2],
                "roles": ["central_authority"], "endpoint": "127.0.0.1:7001",
                "signing_keys": [{"public": p.signing.verify_key.b64()}, *extra],
                "kem_keys": [{"public": p.kem.public.b64()}]}

    doc = {
        "federation": "test", "version": 5, "issued_at": now_iso(T0 - DAY),
        "expires_at": now_iso(T0 + 90 * DAY),
        "admins": {"threshold": 1, "keys": [admin.verify_key.b64()]},
        "revoked_cert_serials": [],
        "nodes": [spec(de, [{"public": revoked.verify_key.b64(),
                             "revoked_at": now_iso(T0 - HOUR)}]), spec(nl), spec(us)],
    }
    trust = load_trust_list(sign_trust_list(doc, [admin]), trusted_admins=admin_set_of(doc),
                            now_ms=T0)
    return World(de, nl, us, revoked, trust)


def attachment(index: int, data: bytes = b"%PDF-1.7 exhibit", *,
               chunk_size: int = 1 << 16) -> OutgoingAttachment:
    return OutgoingAttachment(
        AttachmentEntry(index, len(data), sha256(data), chunk_size, "application/pdf"),
        bytes([index]) * 32, f"exhibit-{index}.pdf")


def build(*, sender: str = "DE-BFJ", recipient: str = "NL-24X7",
          signer: SigningKey | None = None, payload: bytes = PAYLOAD,
          attachments: Sequence[OutgoingAttachment] = (), now_ms: int = T0,
          ttl_ms: int = HOUR) -> tuple[SealedEnvelope, EnvelopeHeader]:
    w = world()
    return build_envelope(
        signer=signer or w.de.signing, trust=w.trust, sender=sender, recipient=recipient,
        message_type="preservation", template_id="eu.preservation", template_version="1.0",
        payload=payload, attachments=attachments, now_ms=now_ms, ttl_ms=ttl_ms)


def verify(env: SealedEnvelope, *, me: str = "NL-24X7", kem: KemPrivateKey | None = None,
           peer_identity: str | None = "DE-BFJ", now_ms: int = NOW,
           limits: EnvelopeLimits = LIMITS) -> VerifiedEnvelope:
    w = world()
    return verify_envelope(env, trust=w.trust, me=me, kem_key=kem or w.nl.kem,
                           peer_identity=peer_identity, now_ms=now_ms, limits=limits)


def body_of(header: EnvelopeHeader, *, payload: bytes = PAYLOAD,
            keys: Sequence[int] | None = None, **changes: object) -> bytes:
    indices = [a.index for a in header.attachments] if keys is None else keys
    body = Body(sender=header.sender, recipient=header.recipient,
                envelope_id=header.envelope_id, payload=payload,
                attachment_keys=tuple(AttachmentKey(i, bytes([i]) * 32, f"f{i}")
                                      for i in indices))
    return codec.encode_body(dataclasses.replace(body, **changes))  # type: ignore[arg-type]


def seal_and_sign(header_bytes: bytes, body: bytes, *,
                  signer: SigningKey | None = None) -> SealedEnvelope:
    """What a sender holding `signer` sends for these exact header bytes and body."""
    w = world()
    signature = (signer or w.de.signing).sign(sig.to_be_signed(sig.ENVELOPE_HEADER,
                                                               header_bytes))
    return SealedEnvelope(header=header_bytes, signature=signature,
                          sealed_body=seal_for(w.nl.kem.public, body, header_bytes))


def resigned(header: EnvelopeHeader, body: bytes | None = None, *, bind_body: bool = True,
             **changes: object) -> SealedEnvelope:
    """The header with `changes`, bound to `body`, re-signed by DE-BFJ's genuine key."""
    h = dataclasses.replace(header, **changes)  # type: ignore[arg-type]
    b = body if body is not None else body_of(h)
    if bind_body:
        h = dataclasses.replace(h, body_sha256=sha256(b), body_size=len(b))
    return seal_and_sign(codec.encode_header(h), b)


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- the genuine article -----------------------------------------------------------------

def test_round_trip() -> None:
    w = world()
    env, header = build(attachments=[attachment(0), attachment(1, b"")])
    v = verify(env)
    assert v.header == header == codec.decode_header(env.header)
    assert v.raw == env
    assert v.header_sha256 == sha256(env.header)
    assert v.envelope_id == header.envelope_id
    assert header.version == ENVELOPE_VERSION
    assert header.suite == SUITE_V1
    assert header.sender_key_id == w.de.signing.key_id
    assert header.recipient_key_id == w.nl.kem.key_id
    assert header.trust_list_version == 5
    assert header.expires_at_ms == T0 + HOUR
    assert v.body.payload == PAYLOAD
    assert v.body.sender == "DE-BFJ"
    assert v.body.recipient == "NL-24X7"
    assert [(k.index, k.key, k.filename) for k in v.body.attachment_keys] == [
        (0, b"\x00" * 32, "exhibit-0.pdf"), (1, b"\x01" * 32, "exhibit-1.pdf")]
    assert verify(codec.decode_envelope(codec.encode_envelope(env))).header == header


def test_round_trip_without_transport_identity() -> None:
    env, header = build()
    assert verify(env, peer_identity=None).header == header


def test_authenticate_header_needs_no_private_key() -> None:
    env, header = build()
    w = world()
    assert authenticate_header(env, trust=w.trust, me="NL-24X7", peer_identity="DE-BFJ",
                               now_ms=NOW, limits=LIMITS) == header


# -- bit flips (matrix C01) --------------------------------------------------------------

@functools.cache
def flip_target() -> SealedEnvelope:
    return build(attachments=[attachment(0)])[0]


def _assert_refused(env: SealedEnvelope) -> None:
    with pytest.raises(PeerError):
        verify(env)


def test_bit_flip_anywhere_in_header_or_signature_rejected_exhaustive() -> None:
    """Timeline: the sender signs; in transit one bit of the signed header or of the
    signature changes (every bit position is tried). Each copy is refused with a peer
    error: never accepted, never another exception.
    """
    env = flip_target()
    for bit in range(len(env.header) * 8):
        _assert_refused(dataclasses.replace(env, header=flip(env.header, bit)))
    for bit in range(len(env.signature) * 8):
        _assert_refused(dataclasses.replace(env, signature=flip(env.signature, bit)))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_bit_flips_in_header_and_signature_rejected(data: st.DataObject) -> None:
    """Timeline: several bits of the header and the signature change together."""
    env = flip_target()
    header, signature = env.header, env.signature
    for bit in data.draw(st.lists(st.integers(0, len(header) * 8 - 1), max_size=4)):
        header = flip(header, bit)
    for bit in data.draw(st.lists(st.integers(0, len(signature) * 8 - 1), max_size=4)):
        signature = flip(signature, bit)
    if (header, signature) == (env.header, env.signature):
        return
    _assert_refused(SealedEnvelope(header, signature, env.sealed_body))


@settings(max_examples=100, deadline=None)
@given(bit=st.integers(0, 10_000))
def test_bit_flip_in_sealed_body_rejected(bit: int) -> None:
    """Timeline: one bit of the sealed body changes in transit: the HPKE tag fails."""
    env = flip_target()
    _assert_refused(dataclasses.replace(
        env, sealed_body=flip(env.sealed_body, bit % (len(env.sealed_body) * 8))))


@pytest.mark.parametrize("part", ["header", "signature", "sealed_body"])
def test_truncated_envelope_part_rejected(part: str) -> None:
    """Timeline: the header, signature or sealed body is cut short in transit."""
    env = flip_target()
    value: bytes = getattr(env, part)
    for cut in (0, 1, len(value) // 2, len(value) - 1):
        _assert_refused(dataclasses.replace(env, **{part: value[:cut]}))


# -- addressing and identity -------------------------------------------------------------

def test_envelope_for_another_recipient_rejected() -> None:
    """Timeline: DE-BFJ sends to NL-24X7; a hub forwards the same bytes to US-OIA."""
    env, _ = build()
    w = world()
    with pytest.raises(NotForThisRecipient):
        verify(env, me="US-OIA", kem=w.us.kem)


def test_envelope_sealed_to_another_key_rejected() -> None:
    """Timeline: the recipient's verifier is (mis)configured with another KEM key."""
    env, _ = build()
    with pytest.raises(NotForThisRecipient):
        verify(env, kem=world().us.kem)


def test_envelope_relayed_by_another_node_rejected() -> None:
    """Timeline: US-OIA, itself a member, replays DE-BFJ's envelope over its own mTLS
    connection: the transport identity is not the signed sender.
    """
    env, _ = build()
    with pytest.raises(SenderMismatch):
        verify(env, peer_identity="US-OIA")


def test_envelope_from_unlisted_sender_rejected() -> None:
    """Timeline: a node outside the federation (FR-PNF, with a valid-looking
    envelope and a matching transport identity) sends to NL-24X7."""
    _, header = build()
    forged = resigned(header, sender="FR-PNF")
    with pytest.raises(UnknownSender):
        verify(forged, peer_identity="FR-PNF")


def test_envelope_signed_by_another_nodes_key_rejected() -> None:
    """Timeline: US-OIA signs an envelope claiming to be DE-BFJ, naming DE's key id."""
    _, header = build()
    w = world()
    h = codec.encode_header(header)
    forged = seal_and_sign(h, body_of(header), signer=w.us.signing)
    with pytest.raises(SignatureInvalid):
        verify(forged)


def test_envelope_naming_an_unlisted_key_rejected() -> None:
    """Timeline: an attacker signs as DE-BFJ with its own key and names that key."""
    attacker = SigningKey.generate()
    env, _ = build(signer=attacker)
    with pytest.raises(UnknownKey):
        verify(env)


def test_envelope_signed_with_revoked_key_rejected() -> None:
    """Timeline: DE's old key was revoked at T0 - 1 h; its thief signs at T0."""
    env, _ = build(signer=world().de_revoked)
    with pytest.raises(KeyRevoked):
        verify(env)


# -- time --------------------------------------------------------------------------------

def test_expired_envelope_rejected() -> None:
    """Timeline: an envelope valid for one hour is held back and delivered later."""
    env, _ = build(ttl_ms=HOUR)
    assert verify(env, now_ms=T0 + HOUR - 1)
    for now in (T0 + HOUR, T0 + DAY):
        with pytest.raises(EnvelopeExpired) as exc:
            verify(env, now_ms=now)
        assert exc.value.code == "EXPIRED"


def test_envelope_from_the_future_rejected() -> None:
    """Timeline: a sender's clock runs ahead by more than the allowed skew."""
    skew = LIMITS.clock_skew_ms
    env, _ = build(now_ms=T0 + skew + 1, ttl_ms=HOUR)
    with pytest.raises(EnvelopeNotYetValid) as exc:
        verify(env, now_ms=T0)
    assert exc.value.code == "NOT_YET_VALID"
    env, _ = build(now_ms=T0 + skew, ttl_ms=HOUR)
    assert verify(env, now_ms=T0)


def test_envelope_lifetime_above_maximum_rejected() -> None:
    """Timeline: a sender asks for a TTL beyond the replay window, so a replay after the
    dedup entry is dropped would still look fresh.
    """
    env, _ = build(ttl_ms=LIMITS.max_ttl_ms + 1)
    with pytest.raises(MalformedMessage) as exc:
        verify(env)
    assert exc.value.code == "TTL_TOO_LONG"
    env, _ = build(ttl_ms=LIMITS.max_ttl_ms)
    assert verify(env)


# -- version and suite downgrade (matrix C10) --------------------------------------------

@pytest.mark.parametrize("version", [0, 2, 255])
def test_unsupported_envelope_version_rejected(version: int) -> None:
    """Timeline: the sender's genuine key signs a header claiming another version."""
    _, header = build()
    with pytest.raises(UnsupportedVersion) as exc:
        verify(resigned(header, version=version))
    assert exc.value.code == "VERSION_UNSUPPORTED"


@pytest.mark.parametrize("suite", ["", "none", "ed25519+hpke-x25519-sha256-aes128gcm+stream",
                                   SUITE_V1.upper(), SUITE_V1 + " "])
def test_disallowed_suite_rejected(suite: str) -> None:
    """Timeline: the genuine key signs a header naming a weaker or unknown suite
    (a downgrade probe); any suite outside the allow-list for version 1 is refused."""
    _, header = build()
    with pytest.raises(UnsupportedVersion) as exc:
        verify(resigned(header, suite=suite))
    assert exc.value.code == "ALG_NOT_ALLOWED"


# -- non-canonical encodings (matrix C02) ------------------------------------------------

def _string_field(number: int, value: str) -> bytes:
    raw = value.encode()
    return bytes([number << 3 | 2, len(raw)]) + raw


@pytest.mark.parametrize("second_sender", ["DE-BFJ", "US-OIA", ""])
def test_duplicate_sender_field_in_signed_header_rejected(second_sender: str) -> None:
    """Timeline: the signed header bytes get a second encoding of field 4 (`sender`)
    appended; protobuf parses it last-wins. The legitimate key then signs the new bytes
    (a buggy encoder, or a parser-differential probe). Refused as non-canonical.
    """
    env, _ = build()
    header_bytes = env.header + _string_field(4, second_sender)
    forged = seal_and_sign(header_bytes, body_of(codec.decode_header(env.header)))
    with pytest.raises(MalformedMessage) as exc:
        verify(forged)
    assert exc.value.code == "NON_CANONICAL"


def test_reordered_header_fields_rejected() -> None:
    """Timeline: the same fields, but `sender` encoded first; re-signed by the real key."""
    _, header = build()
    canonical = codec.encode_header(header)
    field = _string_field(4, "DE-BFJ")
    assert field in canonical
    reordered = field + canonical.replace(field, b"", 1)
    forged = seal_and_sign(reordered, body_of(header))
    with pytest.raises(MalformedMessage) as exc:
        verify(forged)
    assert exc.value.code == "NON_CANONICAL"


def test_unknown_field_in_signed_header_rejected() -> None:
    """Timeline: field 1023 appended to the header, and the result re-signed by the
    genuine key: still refused, whatever a newer parser would make of it."""
    _, header = build()
    forged = seal_and_sign(codec.encode_header(header) + b"\xf8\x3f\x01", body_of(header))
    with pytest.raises(MalformedMessage) as exc:
        verify(forged)
    assert exc.value.code == "UNKNOWN_FIELDS"


# -- body binding --------------------------------------------------------------------------

def test_sealed_body_naming_another_sender_rejected() -> None:
    """Timeline: DE-BFJ (genuine key, genuine header) seals a Body that claims to come
    from US-OIA, hoping the recipient trusts the inner sender.
    """
    _, header = build()
    body = body_of(header, sender="US-OIA")
    forged = resigned(header, body)
    with pytest.raises(SenderMismatch):
        verify(forged)


@pytest.mark.parametrize("change", [{"recipient": "US-OIA"},
                                    {"envelope_id": MessageId(b"\x07" * 16)}])
def test_sealed_body_bound_to_another_envelope_rejected(change: dict[str, object]) -> None:
    """Timeline: the sealed body repeats another recipient or envelope id than the
    signed header (a body lifted from another envelope and re-sealed)."""
    _, header = build()
    with pytest.raises(MalformedMessage):
        verify(resigned(header, body_of(header, **change)))


def test_body_digest_mismatch_rejected() -> None:
    """Timeline: the header commits to one body; a different body is sealed under it."""
    _, header = build()
    signed_for = body_of(header)
    swapped = body_of(header, payload=b'{"case": "another"}')
    h = dataclasses.replace(header, body_sha256=sha256(signed_for),
                            body_size=len(signed_for))
    with pytest.raises(SignatureInvalid):
        verify(seal_and_sign(codec.encode_header(h), swapped))
    same_size = body_of(header, payload=PAYLOAD.upper())
    assert len(same_size) == len(signed_for)
    with pytest.raises(SignatureInvalid):
        verify(seal_and_sign(codec.encode_header(h), same_size))


def test_body_size_mismatch_rejected() -> None:
    """Timeline: the signed header declares another size than the body has."""
    _, header = build()
    body = body_of(header)
    forged = resigned(header, body, bind_body=False, body_sha256=sha256(body),
                      body_size=len(body) + 1)
    with pytest.raises(SignatureInvalid):
        verify(forged)


def test_sealed_body_moved_under_another_header_rejected() -> None:
    """Timeline: the attacker keeps a genuine signed header and swaps in the sealed body
    of another genuine envelope to the same recipient.
    """
    env_a, _ = build()
    env_b, _ = build(payload=b'{"case": "b"}')
    with pytest.raises(PeerError):
        verify(dataclasses.replace(env_a, sealed_body=env_b.sealed_body))


@pytest.mark.parametrize("keys", [[], [0], [0, 1, 2], [1, 2], [0, 0]])
def test_attachment_keys_not_matching_manifest_rejected(keys: list[int]) -> None:
    """Timeline: the manifest lists attachments 0 and 1, the body carries other keys."""
    _, header = build(attachments=[attachment(0), attachment(1)])
    with pytest.raises(MalformedMessage):
        verify(resigned(header, body_of(header, keys=keys)))


# -- size and manifest limits --------------------------------------------------------------

def test_oversized_envelope_rejected() -> None:
    """Timeline: a peer sends an envelope above the size limit (memory exhaustion)."""
    env, _ = build()
    with pytest.raises(MessageTooLarge):
        verify(env, limits=dataclasses.replace(LIMITS, max_envelope_bytes=env.size - 1))
    assert verify(env, limits=dataclasses.replace(LIMITS, max_envelope_bytes=env.size))


def test_oversized_payload_rejected() -> None:
    """Timeline: the sealed payload is larger than the payload limit."""
    env, _ = build(payload=b"x" * 2048)
    with pytest.raises(MessageTooLarge):
        verify(env, limits=dataclasses.replace(LIMITS, max_payload_bytes=2047))


def test_too_many_attachments_rejected() -> None:
    """Timeline: a manifest lists more attachments than allowed."""
    env, _ = build(attachments=[attachment(i) for i in range(3)])
    with pytest.raises(MessageTooLarge):
        verify(env, limits=dataclasses.replace(LIMITS, max_attachments=2))


def test_oversized_attachment_rejected() -> None:
    """Timeline: a manifest declares an attachment above the size limit."""
    env, _ = build(attachments=[attachment(0, b"x" * 100)])
    with pytest.raises(MessageTooLarge):
        verify(env, limits=dataclasses.replace(LIMITS, max_attachment_bytes=99))


@pytest.mark.parametrize("indices", [[1], [0, 2], [1, 0], [0, 0], [0, 1, 3]])
def test_manifest_with_non_dense_indices_rejected(indices: list[int]) -> None:
    """Timeline: a signed manifest skips or repeats an index, so 'attachment 2' could be
    two different streams to two components of the receiver.
    """
    env, _ = build(attachments=[attachment(i) for i in indices])
    with pytest.raises(MalformedMessage):
        verify(env)


@pytest.mark.parametrize("chunk_size", [0, LIMITS.max_chunk_size + 1])
def test_manifest_with_invalid_chunk_size_rejected(chunk_size: int) -> None:
    """Timeline: a manifest declares a zero or oversized chunk size."""
    env, _ = build(attachments=[attachment(0, chunk_size=chunk_size)])
    with pytest.raises(MalformedMessage):
        verify(env)


def test_manifest_with_short_digest_rejected() -> None:
    """Timeline: a manifest entry carries a truncated SHA-256."""
    a = attachment(0)
    short = dataclasses.replace(a, entry=dataclasses.replace(a.entry, sha256=b"\x00" * 31))
    env, _ = build(attachments=[short])
    with pytest.raises(MalformedMessage):
        verify(env)
