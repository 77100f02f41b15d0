"""The signed trust list: threshold signatures, TUF-style admin rotation, rollback, expiry.

Documents are built by hand in the shape `nodes/federation.py` writes, signed with
`sign_trust_list` and loaded with `load_trust_list`. Time is a parameter (`now_ms`),
so nothing here depends on the wall clock.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest

from broker.crypto import KemPrivateKey, SigningKey
from broker.crypto import signing as sig
from broker.errors import (
    KeyRevoked,
    TrustListError,
    TrustListExpired,
    TrustListRollback,
    UnknownKey,
    UnknownSender,
)
from broker.trust import (
    PAYLOAD_TYPE,
    AdminSet,
    TrustList,
    admin_set_of,
    load_trust_list,
    now_iso,
    pae,
    sign_trust_list,
)

pytestmark = [pytest.mark.unit, pytest.mark.adversarial]

T0 = 1_750_000_000_000          # 2025-06-15T15:06:40Z
HOUR = 3_600_000
DAY = 24 * HOUR

ADMINS = [SigningKey.generate() for _ in range(5)]
A, B, C, D, E = ADMINS
DE_SIGN, DE_SIGN_OLD, NL_SIGN = (SigningKey.generate() for _ in range(3))
DE_KEM, DE_KEM_OLD, NL_KEM = (KemPrivateKey.generate() for _ in range(3))


def admins_spec(keys: Sequence[SigningKey], threshold: int = 1) -> dict[str, Any]:
    return {"threshold": threshold, "keys": [k.verify_key.b64() for k in keys]}


def admin_set(keys: Sequence[SigningKey], threshold: int = 1) -> AdminSet:
    return AdminSet(threshold=threshold, keys={k.key_id: k.verify_key for k in keys})


def node_spec(node_id: str, *, roles: Sequence[str] = ("central_authority",),
              signing: Sequence[dict[str, Any]] | None = None,
              kem: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    sign_key, kem_key = (DE_SIGN, DE_KEM) if node_id.startswith("DE") else (NL_SIGN, NL_KEM)
    return {
        "node_id": node_id, "jurisdiction": node_id[:2], "roles": list(roles),
        "endpoint": "127.0.0.1:7001",
        "signing_keys": list(signing) if signing is not None
        else [{"public": sign_key.verify_key.b64()}],
        "kem_keys": list(kem) if kem is not None else [{"public": kem_key.public.b64()}],
    }


def document(*, version: int = 3, admins: dict[str, Any] | None = None,
             nodes: Sequence[dict[str, Any]] | None = None, issued_at: str | None = None,
             expires_at: str | None = None) -> dict[str, Any]:
    return {
        "federation": "test-federation",
        "version": version,
        "issued_at": issued_at or now_iso(T0),
        "expires_at": expires_at or now_iso(T0 + 90 * DAY),
        "admins": admins or admins_spec([A]),
        "revoked_cert_serials": [7, 11],
        "nodes": list(nodes) if nodes is not None
        else [node_spec("DE-BFJ"), node_spec("NL-24X7", roles=["contact_point"])],
    }


def load(data: bytes, *, trusted: AdminSet | None = None, now_ms: int = T0 + HOUR,
         min_version: int = 0) -> TrustList:
    return load_trust_list(data, trusted_admins=trusted or admin_set([A]), now_ms=now_ms,
                           min_version=min_version)


def wrapper(data: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(data)
    return value


def rewrap(data: bytes, **changes: Any) -> bytes:
    w = wrapper(data)
    w.update(changes)
    return json.dumps(w).encode()


def raw_sig(key: SigningKey, payload: bytes) -> dict[str, str]:
    """A DSSE signature entry as `sign_trust_list` makes it, over arbitrary payload bytes."""
    tbs = sig.to_be_signed(sig.TRUST_LIST, pae(PAYLOAD_TYPE, payload))
    return {"keyid": key.key_id, "sig": base64.b64encode(key.sign(tbs)).decode()}


# -- a valid list ------------------------------------------------------------------------

def test_valid_trust_list_loads() -> None:
    data = sign_trust_list(document(), [A])
    tl = load(data)
    assert tl.federation == "test-federation"
    assert tl.version == 3
    assert tl.issued_at_ms == T0
    assert tl.expires_at_ms == T0 + 90 * DAY
    assert tl.revoked_cert_serials == frozenset({7, 11})
    assert tl.raw == data
    assert tl.admins == admin_set([A])
    assert set(tl.nodes) == {"DE-BFJ", "NL-24X7"}
    de = tl.node("DE-BFJ")
    assert de.jurisdiction == "DE"
    assert de.roles == frozenset({"central_authority"})
    assert de.endpoint == "127.0.0.1:7001"
    assert de.verify_key(DE_SIGN.key_id, T0) == DE_SIGN.verify_key
    assert de.kem_key(T0) == DE_KEM.public
    assert tl.node("NL-24X7").roles == frozenset({"contact_point"})


def test_admin_set_of_pins_the_declared_admins() -> None:
    assert admin_set_of(document(admins=admins_spec([A, B], 2))) == admin_set([A, B], 2)


def test_current_version_is_not_a_rollback() -> None:
    assert load(sign_trust_list(document(version=3), [A]), min_version=3).version == 3


# -- rollback and freeze -----------------------------------------------------------------

def test_trust_list_rollback_rejected() -> None:
    """Timeline: the node trusts version 3; an attacker replays the genuine, still
    unexpired and correctly signed version 2 (which, say, still lists a revoked key).
    """
    old = sign_trust_list(document(version=2), [A])
    with pytest.raises(TrustListRollback):
        load(old, min_version=3)


def test_expired_trust_list_rejected() -> None:
    """Timeline: version 3 expires at T0 + 1 day; a freeze attacker keeps serving it after
    that, hiding every later revocation. Valid one millisecond before, refused at expiry.
    """
    data = sign_trust_list(document(expires_at=now_iso(T0 + DAY)), [A])
    assert load(data, now_ms=T0 + DAY - 1).version == 3
    with pytest.raises(TrustListExpired):
        load(data, now_ms=T0 + DAY)
    with pytest.raises(TrustListExpired):
        load(data, now_ms=T0 + 30 * DAY)


# -- forged or tampered lists ------------------------------------------------------------

def test_unsigned_trust_list_rejected() -> None:
    """Timeline: an attacker with write access to the list's file drops the signatures."""
    data = rewrap(sign_trust_list(document(), [A]), signatures=[])
    with pytest.raises(TrustListError) as exc:
        load(data)
    assert type(exc.value) is TrustListError


def test_trust_list_signed_by_non_admin_key_rejected() -> None:
    """Timeline: a node operator (not a federation admin) signs a list adding a node."""
    with pytest.raises(TrustListError):
        load(sign_trust_list(document(), [DE_SIGN]))


def test_admin_signature_over_other_bytes_rejected() -> None:
    """Timeline: the attacker takes a genuine admin signature over another document
    (an earlier list) and attaches it to its own payload.
    """
    genuine = wrapper(sign_trust_list(document(version=2), [A]))
    forged = rewrap(sign_trust_list(document(version=9), [E]),
                    signatures=genuine["signatures"])
    with pytest.raises(TrustListError):
        load(forged)


def test_trust_list_payload_edited_after_signing_rejected() -> None:
    """Timeline: admin A signs version 3; in transit the payload gets a new node endpoint."""
    data = sign_trust_list(document(), [A])
    payload = base64.b64decode(wrapper(data)["payload"])
    edited = payload.replace(b"127.0.0.1:7001", b"203.0.113.9:7001", 1)
    assert edited != payload
    with pytest.raises(TrustListError) as exc:
        load(rewrap(data, payload=base64.b64encode(edited).decode()))
    assert type(exc.value) is TrustListError


def test_trust_list_signature_in_another_domain_rejected() -> None:
    """Timeline: an admin key's signature over the same bytes in the receipt domain."""
    data = sign_trust_list(document(), [A])
    payload = base64.b64decode(wrapper(data)["payload"])
    tbs = sig.to_be_signed(sig.RECEIPT, pae(PAYLOAD_TYPE, payload))
    entry = {"keyid": A.key_id, "sig": base64.b64encode(A.sign(tbs)).decode()}
    with pytest.raises(TrustListError):
        load(rewrap(data, signatures=[entry]))


@pytest.mark.parametrize("data", [
    b"",
    b"not json",
    b"[]",
    b'{"payloadType": "application/json", "payload": "", "signatures": []}',
    b'{"payloadType": "' + PAYLOAD_TYPE.encode() + b'", "payload": "***", "signatures": []}',
    b'{"payloadType": "' + PAYLOAD_TYPE.encode() + b'", "signatures": []}',
])
def test_malformed_trust_list_wrapper_rejected(data: bytes) -> None:
    """Timeline: the file is replaced by something that is not a signed trust list."""
    with pytest.raises(TrustListError):
        load(data)


# -- thresholds --------------------------------------------------------------------------

TWO_OF_THREE = admin_set([A, B, C], 2)


def test_two_of_three_threshold_satisfied() -> None:
    doc = document(admins=admins_spec([A, B, C], 2))
    for signers in ([A, B], [B, C], [A, C], [A, B, C], [D, A, C]):
        assert load(sign_trust_list(doc, signers), trusted=TWO_OF_THREE).version == 3


def test_two_of_three_threshold_not_satisfied_rejected() -> None:
    """Timeline: one admin key (A) is compromised; the attacker signs with it alone,
    adding a non-admin key's signature for show.
    """
    doc = document(admins=admins_spec([A, B, C], 2))
    for signers in ([A], [C], [A, D], []):
        with pytest.raises(TrustListError):
            load(sign_trust_list(doc, signers), trusted=TWO_OF_THREE)


def test_same_admin_signature_counted_twice_rejected() -> None:
    """Timeline: with 2-of-3 required, the holder of key A submits A's signature twice."""
    doc = document(admins=admins_spec([A, B, C], 2))
    with pytest.raises(TrustListError):
        load(sign_trust_list(doc, [A, A]), trusted=TWO_OF_THREE)
    once = wrapper(sign_trust_list(doc, [A]))
    twice = rewrap(sign_trust_list(doc, [A]), signatures=once["signatures"] * 2)
    with pytest.raises(TrustListError):
        load(twice, trusted=TWO_OF_THREE)


def test_admin_signature_relabelled_as_another_admin_rejected() -> None:
    """Timeline: A's signature is copied under B's key id to fake a second signer."""
    doc = document(admins=admins_spec([A, B, C], 2))
    entry = wrapper(sign_trust_list(doc, [A]))["signatures"][0]
    relabelled = {"keyid": B.key_id, "sig": entry["sig"]}
    data = rewrap(sign_trust_list(doc, [A]), signatures=[entry, relabelled])
    with pytest.raises(TrustListError):
        load(data, trusted=TWO_OF_THREE)


@pytest.mark.parametrize("threshold", [0, 4, -1])
def test_admin_threshold_out_of_range_rejected(threshold: int) -> None:
    """Timeline: a signed list declares a threshold no admin set can (or must) meet."""
    doc = document(admins=admins_spec([A, B, C], threshold))
    with pytest.raises(TrustListError):
        load(sign_trust_list(doc, [A]), trusted=admin_set([A]))


# -- admin-key rotation (TUF root rotation) ----------------------------------------------

def test_admin_rotation_signed_by_old_and_new_accepted() -> None:
    """Timeline: trusted admins {A}; version 4 rotates to {B}, signed by both A and B.
    Afterwards {B} is the trusted set.
    """
    data = sign_trust_list(document(version=4, admins=admins_spec([B])), [A, B])
    tl = load(data, min_version=3)
    assert tl.admins == admin_set([B])
    nxt = sign_trust_list(document(version=5, admins=admins_spec([B])), [B])
    assert load(nxt, trusted=tl.admins, min_version=tl.version).version == 5


def test_admin_rotation_signed_only_by_old_rejected() -> None:
    """Timeline: an attacker holding old key A (but not B) 'rotates' to B to make the
    node trust a set it never proved control of. The new set must sign too.
    """
    data = sign_trust_list(document(version=4, admins=admins_spec([B])), [A])
    with pytest.raises(TrustListError):
        load(data)


def test_admin_rotation_signed_only_by_new_rejected() -> None:
    """Timeline: an attacker mints its own admin key B and signs a list naming B admin."""
    data = sign_trust_list(document(version=4, admins=admins_spec([B])), [B])
    with pytest.raises(TrustListError):
        load(data)


# Port of python-tuf's root-rotation table: (old set, old threshold), (new set, new
# threshold), signers, accepted?
ROTATIONS = {
    "1-of-1 rotated, both sign": (([A], 1), ([B], 1), [A, B], True),
    "1-of-1 rotated, old missing": (([A], 1), ([B], 1), [B], False),
    "1-of-1 rotated, new missing": (([A], 1), ([B], 1), [A], False),
    "2-of-3 one key rotated, two old + new": (([A, B, C], 2), ([A, B, D], 2), [A, B], True),
    "2-of-3 one key rotated, new key + one old": (([A, B, C], 2), ([A, B, D], 2), [A, D],
                                                  False),
    "2-of-3 one key rotated, only removed and new": (([A, B, C], 2), ([A, B, D], 2), [C, D],
                                                     False),
    "threshold up 1 -> 2, one signer": (([A, B], 1), ([A, B], 2), [A], False),
    "threshold up 1 -> 2, two signers": (([A, B], 1), ([A, B], 2), [A, B], True),
    "threshold down 2 -> 1, one signer": (([A, B], 2), ([A, B], 1), [A], False),
    "threshold down 2 -> 1, two signers": (([A, B], 2), ([A, B], 1), [B, A], True),
    "3-of-5 rotated to 3-of-5, three old only": (([A, B, C, D, E], 3),
                                                 ([A, B, C, DE_SIGN, NL_SIGN], 3),
                                                 [D, E, A], False),
}


@pytest.mark.parametrize(("old", "new", "signers", "accepted"), ROTATIONS.values(),
                         ids=ROTATIONS.keys())
def test_admin_rotation_table(old: tuple[list[SigningKey], int],
                              new: tuple[list[SigningKey], int],
                              signers: list[SigningKey], accepted: bool) -> None:
    data = sign_trust_list(document(version=4, admins=admins_spec(*new)), signers)
    if accepted:
        assert load(data, trusted=admin_set(*old)).admins == admin_set(*new)
    else:
        with pytest.raises(TrustListError):
            load(data, trusted=admin_set(*old))


# -- node and key lookups ----------------------------------------------------------------

def test_unknown_node_is_unknown_sender() -> None:
    """Timeline: an envelope names a sender the federation never listed."""
    tl = load(sign_trust_list(document(), [A]))
    for node_id in ("US-OIA", "DE-BFJX", "de-bfj", ""):
        with pytest.raises(UnknownSender):
            tl.node(node_id)


def test_revoked_signing_key_rejected_after_revocation_time() -> None:
    """Timeline: DE-BFJ's old key leaks; the admins list it as revoked at T0 + 1 h.
    Signatures checked at or after that instant are refused; before it the key is valid.
    """
    revoked_at = T0 + HOUR
    de = node_spec("DE-BFJ", signing=[
        {"public": DE_SIGN_OLD.verify_key.b64(), "revoked_at": now_iso(revoked_at)},
        {"public": DE_SIGN.verify_key.b64()},
    ])
    tl = load(sign_trust_list(document(nodes=[de]), [A]))
    entry = tl.node("DE-BFJ")
    assert entry.verify_key(DE_SIGN_OLD.key_id, revoked_at - 1) == DE_SIGN_OLD.verify_key
    for at in (revoked_at, revoked_at + DAY):
        with pytest.raises(KeyRevoked):
            entry.verify_key(DE_SIGN_OLD.key_id, at)
    assert entry.verify_key(DE_SIGN.key_id, revoked_at + DAY) == DE_SIGN.verify_key


def test_revoked_kem_key_is_skipped_for_sealing() -> None:
    de = node_spec("DE-BFJ", kem=[
        {"public": DE_KEM_OLD.public.b64(), "revoked_at": now_iso(T0 + HOUR)},
        {"public": DE_KEM.public.b64()},
    ])
    entry = load(sign_trust_list(document(nodes=[de]), [A])).node("DE-BFJ")
    assert entry.kem_key(T0) == DE_KEM_OLD.public
    assert entry.kem_key(T0 + HOUR) == DE_KEM.public


def test_node_without_active_kem_key_has_no_kem_key() -> None:
    de = node_spec("DE-BFJ", kem=[{"public": DE_KEM.public.b64(), "revoked_at": now_iso(T0)}])
    entry = load(sign_trust_list(document(nodes=[de]), [A])).node("DE-BFJ")
    with pytest.raises(UnknownKey):
        entry.kem_key(T0)


def test_unknown_signing_key_id_rejected() -> None:
    """Timeline: a signer names a key id that the list does not hold for that node,
    including another node's (genuine) key.
    """
    entry = load(sign_trust_list(document(), [A])).node("DE-BFJ")
    for key_id in (NL_SIGN.key_id, DE_SIGN_OLD.key_id, DE_KEM.key_id, ""):
        with pytest.raises(UnknownKey):
            entry.verify_key(key_id, T0)


# -- malformed documents (signed by a genuine admin) --------------------------------------

def test_duplicate_node_id_rejected() -> None:
    """Timeline: a list names DE-BFJ twice with different keys; which entry wins would
    depend on the parser. Refused outright.
    """
    twin = node_spec("DE-BFJ", signing=[{"public": NL_SIGN.verify_key.b64()}])
    doc = document(nodes=[node_spec("DE-BFJ"), node_spec("NL-24X7"), twin])
    with pytest.raises(TrustListError):
        load(sign_trust_list(doc, [A]))


@pytest.mark.parametrize("roles", [["superuser"], ["central_authority", "root"], [],
                                   ["Central_Authority"]])
def test_unknown_role_rejected(roles: list[str]) -> None:
    """Timeline: a list grants a node a role the broker does not define (or none),
    which a later policy check might read in its own way."""
    doc = document(nodes=[node_spec("DE-BFJ", roles=roles)])
    with pytest.raises(TrustListError):
        load(sign_trust_list(doc, [A]))


@pytest.mark.parametrize("node_id", ["DE_BFJ", "de-BFJ", "DEU-BFJ", "DE-", "DE-B!J"])
def test_invalid_node_id_rejected(node_id: str) -> None:
    """Timeline: a node id outside CC-AGENCY slips in, to collide with another in logs."""
    with pytest.raises(TrustListError):
        load(sign_trust_list(document(nodes=[node_spec(node_id)]), [A]))


NAIVE = "2025-06-15T15:06:40"


@pytest.mark.parametrize("field", ["issued_at", "expires_at"])
def test_timestamp_without_utc_offset_rejected(field: str) -> None:
    """Timeline: a naive timestamp would be read in each node's local time zone, so
    nodes in different countries would disagree on when the list expires."""
    doc = document(**{field: NAIVE})
    with pytest.raises(TrustListError):
        load(sign_trust_list(doc, [A]))


def test_revocation_time_without_utc_offset_rejected() -> None:
    """Timeline: as above, for the instant a key stops being valid."""
    de = node_spec("DE-BFJ", signing=[{"public": DE_SIGN.verify_key.b64(),
                                       "revoked_at": NAIVE}])
    with pytest.raises(TrustListError):
        load(sign_trust_list(document(nodes=[de]), [A]))


def test_timestamp_with_offset_is_converted_to_utc() -> None:
    doc = document(issued_at="2025-06-15T17:06:40+02:00")
    assert load(sign_trust_list(doc, [A])).issued_at_ms == T0


@pytest.mark.parametrize("bad", ["yesterday", "", "2025-13-01T00:00:00+00:00"])
def test_unparseable_timestamp_rejected(bad: str) -> None:
    doc = document()
    doc["expires_at"] = bad
    with pytest.raises(TrustListError):
        load(sign_trust_list(doc, [A]))


@pytest.mark.parametrize("public", ["not base64!", base64.b64encode(b"\x01" * 31).decode()])
def test_malformed_node_key_rejected(public: str) -> None:
    """Timeline: a node key that is not 32 bytes of base64 is listed."""
    doc = document(nodes=[node_spec("DE-BFJ", signing=[{"public": public}])])
    with pytest.raises(TrustListError):
        load(sign_trust_list(doc, [A]))


@pytest.mark.parametrize("missing", ["federation", "version", "issued_at", "expires_at",
                                     "nodes"])
def test_document_missing_a_field_rejected(missing: str) -> None:
    """Timeline: a signed list omits a field (e.g. `expires_at`, so it never expires)."""
    doc = document()
    del doc[missing]
    with pytest.raises(TrustListError):
        load(sign_trust_list(doc, [A]))


def test_signed_payload_not_an_object_rejected() -> None:
    """Timeline: an admin-signed payload that is JSON but not a trust-list object."""
    payload = b"[1, 2, 3]"
    data = json.dumps({"payloadType": PAYLOAD_TYPE,
                       "payload": base64.b64encode(payload).decode(),
                       "signatures": [raw_sig(A, payload)]}).encode()
    with pytest.raises(TrustListError):
        load(data)
