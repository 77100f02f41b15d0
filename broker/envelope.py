"""Build and verify envelopes: bytes in, verified objects out. Pure (time is `now_ms`).

Verification order (cheap and unauthenticated checks first; nothing is decrypted before
the signature has been checked over the exact received header bytes):
size -> structure -> version/suite -> recipient -> sender listed -> transport identity
== sender -> signing key listed and not revoked -> signature -> times -> seal -> body
binding (digest, sender, recipient, id) -> attachment keys match the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from broker.config import EnvelopeLimits
from broker.crypto import SUITE_V1, KemPrivateKey, chunk_count, open_sealed, seal_for, sha256
from broker.crypto import signing as sig
from broker.errors import (
    EnvelopeExpired,
    EnvelopeNotYetValid,
    MalformedMessage,
    MessageTooLarge,
    NotForThisRecipient,
    SenderMismatch,
    SignatureInvalid,
    UnsupportedVersion,
)
from broker.model import (
    AttachmentEntry,
    AttachmentKey,
    Body,
    EnvelopeHeader,
    EvidenceCustody,
    MessageId,
    ObligationRef,
    SealedEnvelope,
    VerifiedEnvelope,
)
from broker.trust import TrustList
from broker.wire import codec

ENVELOPE_VERSION = 1
SUPPORTED = {ENVELOPE_VERSION: frozenset({SUITE_V1})}


class Signer(Protocol):
    """Signs a short to-be-signed message with one key (in process, another process or HSM)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class OutgoingAttachment:
    """An attachment prepared for sending: its manifest entry, stream key and file name."""

    entry: AttachmentEntry
    key: bytes
    filename: str


class BuiltEnvelope(NamedTuple):
    """A signed, sealed envelope, its header, and the plaintext Body bytes it seals."""

    sealed: SealedEnvelope
    header: EnvelopeHeader
    body: bytes


def build_envelope(**kwargs: Any) -> tuple[SealedEnvelope, EnvelopeHeader]:
    """Sign and seal one envelope (see :func:`compose_envelope`); (envelope, header)."""
    built = compose_envelope(**kwargs)
    return built.sealed, built.header


def compose_envelope(
    *,
    signer: Signer,
    trust: TrustList,
    sender: str,
    recipient: str,
    message_type: str,
    template_id: str,
    template_version: str,
    payload: bytes,
    attachments: Sequence[OutgoingAttachment] = (),
    now_ms: int,
    ttl_ms: int,
    envelope_id: MessageId | None = None,
    in_reply_to: MessageId | None = None,
    legal_basis: str = "",
    obligations: Sequence[ObligationRef] = (),
    policy_set_hash: bytes = b"",
    case_reference: str = "",
    related_requests: Sequence[MessageId] = (),
    custody: Sequence[EvidenceCustody] = (),
) -> BuiltEnvelope:
    """Sign and seal one envelope to `recipient` as listed in `trust`.

    The case reference, related requests and chain of custody travel in the sealed body
    (bound to the signed header through its digest), never in the header.
    """
    indices = {a.entry.index for a in attachments}
    _check_custody(custody, indices)
    target = trust.node(recipient)
    kem = target.kem_key(now_ms)
    eid = envelope_id or MessageId.new()
    body = codec.encode_body(Body(
        sender=sender, recipient=recipient, envelope_id=eid, payload=payload,
        attachment_keys=tuple(AttachmentKey(index=a.entry.index, key=a.key, filename=a.filename)
                              for a in attachments),
        case_reference=case_reference, related_requests=tuple(related_requests),
        custody=tuple(sorted(custody, key=lambda c: c.index)),
    ))
    header = EnvelopeHeader(
        version=ENVELOPE_VERSION, suite=SUITE_V1, envelope_id=eid, sender=sender,
        recipient=recipient, sender_key_id=signer.key_id, recipient_key_id=kem.key_id,
        message_type=message_type, template_id=template_id,
        template_version=template_version, created_at_ms=now_ms,
        expires_at_ms=now_ms + ttl_ms, body_sha256=sha256(body), body_size=len(body),
        attachments=tuple(a.entry for a in attachments),
        trust_list_version=trust.version, in_reply_to=in_reply_to,
        legal_basis=legal_basis, obligations=tuple(obligations),
        policy_set_hash=policy_set_hash,
    )
    header_bytes = codec.encode_header(header)
    signature = signer.sign(sig.to_be_signed(sig.ENVELOPE_HEADER, header_bytes))
    sealed = seal_for(kem, body, header_bytes)
    return BuiltEnvelope(
        SealedEnvelope(header=header_bytes, signature=signature, sealed_body=sealed),
        header, body)


def _check_custody(custody: Sequence[EvidenceCustody], indices: set[int]) -> None:
    """One custody record at most per attachment, and only for attachments listed."""
    seen = [c.index for c in custody]
    if len(set(seen)) != len(seen) or not set(seen) <= indices:
        raise MalformedMessage("chain-of-custody records must name distinct attachments "
                               "of the manifest")


def authenticate_header(
    env: SealedEnvelope,
    *,
    trust: TrustList,
    me: str,
    peer_identity: str | None,
    now_ms: int,
    limits: EnvelopeLimits,
) -> EnvelopeHeader:
    """Check everything that needs no private key; returns the signed header."""
    if env.size > limits.max_envelope_bytes:
        raise MessageTooLarge(f"envelope of {env.size} bytes exceeds the limit")
    header = codec.decode_header(env.header)
    if header.version not in SUPPORTED:
        raise UnsupportedVersion(f"envelope version {header.version} is not supported")
    if header.suite not in SUPPORTED[header.version]:
        raise UnsupportedVersion("cipher suite not allowed", code="ALG_NOT_ALLOWED")
    if header.recipient != me:
        raise NotForThisRecipient("envelope is addressed to another node")
    sender = trust.node(header.sender)
    if peer_identity is not None and peer_identity != header.sender:
        raise SenderMismatch("the transport identity is not the envelope's sender")
    key = sender.verify_key(header.sender_key_id, now_ms)
    if not sig.verify(key, sig.ENVELOPE_HEADER, env.header, env.signature):
        raise SignatureInvalid("envelope signature does not verify")
    _check_times(header, now_ms, limits)
    _check_manifest(header, limits)
    return header


def verify_envelope(
    env: SealedEnvelope,
    *,
    trust: TrustList,
    me: str,
    kem_key: KemPrivateKey,
    peer_identity: str | None,
    now_ms: int,
    limits: EnvelopeLimits,
) -> VerifiedEnvelope:
    """Authenticate, then open and bind the body. Raises a PeerError subclass on failure."""
    header = authenticate_header(env, trust=trust, me=me, peer_identity=peer_identity,
                                 now_ms=now_ms, limits=limits)
    if header.recipient_key_id != kem_key.key_id:
        raise NotForThisRecipient("envelope is sealed to another key")
    plaintext = open_sealed(kem_key, env.sealed_body, env.header)
    if len(plaintext) != header.body_size or sha256(plaintext) != header.body_sha256:
        raise SignatureInvalid("body does not match the signed digest")
    body = codec.decode_body(plaintext)
    if body.sender != header.sender:
        raise SenderMismatch("the sealed body names another sender")
    if body.recipient != header.recipient or body.envelope_id != header.envelope_id:
        raise MalformedMessage("the sealed body is bound to another envelope")
    if len(body.payload) > limits.max_payload_bytes:
        raise MessageTooLarge("payload exceeds the limit")
    keys = sorted(k.index for k in body.attachment_keys)
    if keys != [a.index for a in header.attachments]:
        raise MalformedMessage("attachment keys do not match the manifest")
    _check_custody(body.custody, set(keys))
    if len(set(body.related_requests)) != len(body.related_requests):
        raise MalformedMessage("a related request is named twice")
    return VerifiedEnvelope(raw=env, header=header, body=body, header_sha256=sha256(env.header),
                            body_bytes=plaintext)


def _check_times(h: EnvelopeHeader, now_ms: int, limits: EnvelopeLimits) -> None:
    if h.created_at_ms > now_ms + limits.clock_skew_ms:
        raise EnvelopeNotYetValid("envelope is created in the future")
    if h.expires_at_ms <= now_ms:
        raise EnvelopeExpired("envelope has expired")
    if h.expires_at_ms - h.created_at_ms > limits.max_ttl_ms:
        raise MalformedMessage("envelope lifetime exceeds the maximum", code="TTL_TOO_LONG")


def _check_manifest(h: EnvelopeHeader, limits: EnvelopeLimits) -> None:
    if len(h.attachments) > limits.max_attachments:
        raise MessageTooLarge("too many attachments")
    for position, a in enumerate(h.attachments):
        if a.index != position:
            raise MalformedMessage("attachment indices are not dense")
        if a.size > limits.max_attachment_bytes:
            raise MessageTooLarge("attachment exceeds the limit")
        if not 0 < a.chunk_size <= limits.max_chunk_size or len(a.sha256) != 32:
            raise MalformedMessage("attachment manifest entry is invalid")
        chunk_count(a.size, a.chunk_size)
