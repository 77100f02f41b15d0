"""Operator tokens (matrix J01-J03): only short-lived EdDSA JWTs from our issuer key, for
our API, with every required claim, pass `TokenVerifier`. Everything else raises
`Unauthenticated`, never another exception.

PyJWT checks `exp`, `nbf` and `iat` against the wall clock, so tokens are minted
relative to `time.time()` with margins far larger than a test's run time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.adapters.grpc.auth import (
    OPERATOR_ROLES,
    REQUIRED,
    Operator,
    TokenVerifier,
    mint_token,
)
from broker.errors import Unauthenticated

pytestmark = [pytest.mark.unit, pytest.mark.adversarial]

ISSUER = "rogatory:DE-BFJ:operators"
AUDIENCE = "rogatory:DE-BFJ:operator-api"
ISSUER_KEY = Ed25519PrivateKey.generate()
PUBLIC_KEY = ISSUER_KEY.public_key()
PUBLIC_PEM = PUBLIC_KEY.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
PUBLIC_RAW = PUBLIC_KEY.public_bytes(serialization.Encoding.Raw,
                                     serialization.PublicFormat.Raw)
VERIFIER = TokenVerifier(PUBLIC_KEY, issuer=ISSUER, audience=AUDIENCE)


def now_s() -> int:
    return int(time.time())


def claims(**changes: Any) -> dict[str, Any]:
    now = now_s()
    base: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
                            "roles": ["drafter"], "iat": now, "nbf": now, "exp": now + 300,
                            "jti": "token-1"}
    base.update(changes)
    return base


def eddsa(payload: dict[str, Any], key: Ed25519PrivateKey = ISSUER_KEY) -> str:
    return jwt.encode(payload, key, algorithm="EdDSA")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"",
              *, ed_key: Ed25519PrivateKey | None = None) -> str:
    """A compact JWS assembled by hand (PyJWT refuses to produce some of these)."""
    signing_input = (b64url(json.dumps(header).encode()) + "."
                     + b64url(json.dumps(payload).encode()))
    if ed_key is not None:
        signature = ed_key.sign(signing_input.encode())
    return signing_input + "." + b64url(signature)


def eddsa_any(payload: dict[str, Any]) -> str:
    """A genuinely signed token whose claims PyJWT's encoder would refuse to write."""
    return hand_made({"alg": "EdDSA", "typ": "JWT"}, payload, ed_key=ISSUER_KEY)


def rejected(token: str, verifier: TokenVerifier = VERIFIER) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as exc:
        verifier.verify(token)
    return exc.value


# -- the genuine token ---------------------------------------------------------------------

def test_valid_eddsa_token_accepted_with_roles() -> None:
    token = mint_token(ISSUER_KEY, issuer=ISSUER, audience=AUDIENCE, subject="alice",
                       roles=["drafter", "approver"], now_s=now_s(), lifetime_s=300,
                       token_id="t-1")
    operator = VERIFIER.verify(token)
    assert operator == Operator(subject="alice", roles=frozenset({"drafter", "approver"}))
    assert operator.actor == "person:alice"


def test_every_operator_role_accepted() -> None:
    op = VERIFIER.verify(eddsa(claims(roles=sorted(OPERATOR_ROLES))))
    assert op.roles == OPERATOR_ROLES


def test_token_without_roles_has_no_roles() -> None:
    payload = claims()
    del payload["roles"]
    assert VERIFIER.verify(eddsa(payload)).roles == frozenset()


def test_token_expired_within_leeway_accepted() -> None:
    now = now_s()
    assert VERIFIER.verify(eddsa(claims(iat=now - 200, nbf=now - 200, exp=now - 5)))


def test_token_at_max_lifetime_accepted() -> None:
    now = now_s()
    assert VERIFIER.verify(eddsa(claims(iat=now, exp=now + VERIFIER.max_lifetime_s)))


# -- algorithm confusion (J01) ---------------------------------------------------------------

def test_alg_none_token_rejected() -> None:
    """Timeline: the attacker takes a valid token's claims, sets `alg: none` and drops
    the signature, hoping the verifier skips verification.
    """
    for alg in ("none", "None", "NONE"):
        rejected(hand_made({"alg": alg, "typ": "JWT"}, claims()))
    rejected(jwt.encode(claims(), None, algorithm="none"))


def test_hs256_token_keyed_with_public_key_rejected() -> None:
    """Timeline: the issuer's public key is public; the attacker HMACs a token with its
    PEM (or raw) bytes as the secret, hoping the verifier feeds its key to HS256
    (CVE-2022-29217). Tried against a verifier holding the key object and one holding
    the PEM bytes.
    """
    pem_verifier = TokenVerifier(PUBLIC_PEM, issuer=ISSUER, audience=AUDIENCE)
    for secret in (PUBLIC_PEM, PUBLIC_RAW, PUBLIC_PEM.strip()):
        for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384)):
            signing_input = (b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "."
                             + b64url(json.dumps(claims()).encode()))
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            token = signing_input + "." + b64url(mac)
            rejected(token)
            rejected(token, pem_verifier)


def test_pem_verifier_accepts_genuine_token() -> None:
    pem_verifier = TokenVerifier(PUBLIC_PEM, issuer=ISSUER, audience=AUDIENCE)
    assert pem_verifier.verify(eddsa(claims())).subject == "alice"


def test_token_signed_by_another_ed25519_key_rejected() -> None:
    """Timeline: another node's (or an attacker's) issuer key mints a token for our API."""
    rejected(eddsa(claims(), Ed25519PrivateKey.generate()))


def test_token_with_tampered_claims_rejected() -> None:
    """Timeline: a drafter's genuine token is edited to claim the admin role."""
    header, _, signature = eddsa(claims()).split(".")
    payload = b64url(json.dumps(claims(roles=["admin"])).encode())
    rejected(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("token", ["", "Bearer", "a.b.c", "a.b", "...", "x" * 200])
def test_garbage_token_rejected(token: str) -> None:
    """Timeline: a client sends no token, or something that is not a JWS."""
    rejected(token)


# -- issuer and audience confusion (J02) --------------------------------------------------

@pytest.mark.parametrize("issuer", [
    "rogatory:US-OIA:operators",
    "rogatory:DE-BFJ:operator",           # a prefix of ours
    "rogatory:DE-BFJ",                    # a shorter prefix
    "rogatory:DE-BFJ:operators.evil",     # a superstring of ours
    "xrogatory:DE-BFJ:operators",
    "",
    "http",
])
def test_token_from_wrong_issuer_rejected(issuer: str) -> None:
    """Timeline: a token from another issuer (or one whose name merely contains ours,
    CVE-2024-53861) is presented to our operator API.
    """
    rejected(eddsa(claims(iss=issuer)))


def test_token_with_issuer_list_rejected() -> None:
    """Timeline: a genuinely signed token whose `iss` is not a string."""
    assert VERIFIER.verify(eddsa_any(claims()))  # the hand-made signer is sound
    rejected(eddsa_any(claims(iss=[ISSUER])))
    rejected(eddsa_any(claims(iss=None)))


@pytest.mark.parametrize("audience", [
    "rogatory:US-OIA:operator-api",       # a token for another node's API, replayed here
    "rogatory:DE-BFJ:operator",
    "rogatory:DE-BFJ:operator-api-v2",
    "",
    ["rogatory:US-OIA:operator-api"],
])
def test_token_for_wrong_audience_rejected(audience: str | list[str]) -> None:
    """Timeline: a token minted for another node's operator API is replayed here."""
    rejected(eddsa(claims(aud=audience)))


# -- required claims and lifetimes (J03) ----------------------------------------------------

@pytest.mark.parametrize("claim", REQUIRED)
def test_token_missing_a_required_claim_rejected(claim: str) -> None:
    """Timeline: the attacker obtains a signing oracle that leaves out one claim (e.g. a
    token with no `exp` would never expire).
    """
    payload = claims()
    del payload[claim]
    rejected(eddsa(payload))


def test_required_claims_cover_the_matrix() -> None:
    assert set(REQUIRED) >= {"exp", "iat", "iss", "aud", "sub", "jti"}


def test_expired_token_rejected() -> None:
    """Timeline: an operator's token, stolen from a log, is replayed an hour later."""
    now = now_s()
    rejected(eddsa(claims(iat=now - 3600, nbf=now - 3600, exp=now - 3600 + 300)))
    rejected(eddsa(claims(iat=now - 400, nbf=now - 400, exp=now - VERIFIER.leeway_s - 60)))


def test_token_not_yet_valid_rejected() -> None:
    """Timeline: a token presented before its `nbf`."""
    now = now_s()
    rejected(eddsa(claims(iat=now, nbf=now + 600, exp=now + 800)))


def test_token_issued_in_the_future_rejected() -> None:
    """Timeline: a token minted on an issuer whose clock is ten minutes ahead."""
    now = now_s()
    rejected(eddsa(claims(iat=now + 600, nbf=now, exp=now + 800)))


def test_token_lifetime_above_maximum_rejected() -> None:
    """Timeline: a long-lived token (a day) would outlive any revocation of the person."""
    now = now_s()
    rejected(eddsa(claims(iat=now, exp=now + VERIFIER.max_lifetime_s + 1)))
    rejected(eddsa(claims(iat=now, exp=now + 86_400)))
    short = TokenVerifier(PUBLIC_KEY, issuer=ISSUER, audience=AUDIENCE, max_lifetime_s=60)
    rejected(eddsa(claims(iat=now, exp=now + 61)), short)


@pytest.mark.parametrize(("claim", "value"), [
    ("exp", "tomorrow"), ("iat", "now"), ("nbf", "soon"), ("sub", 42), ("jti", 7),
])
def test_token_with_mistyped_claim_rejected(claim: str, value: object) -> None:
    """Timeline: a genuinely signed token with a claim of the wrong type."""
    rejected(eddsa_any(claims(**{claim: value})))


# -- roles ---------------------------------------------------------------------------------

@pytest.mark.parametrize("roles", [
    ["root"], ["drafter", "superuser"], ["Admin"], "admin", {"admin": True}, [None], [1],
    [["admin"]], [{"role": "admin"}],
])
def test_token_with_unknown_role_rejected(roles: object) -> None:
    """Timeline: the issuer (or a bug in it) puts a role we do not define, or a role in
    a shape we do not accept; the verifier refuses rather than guessing.
    """
    rejected(eddsa_any(claims(roles=roles)))


def test_unauthenticated_carries_its_code() -> None:
    err = rejected(eddsa(claims(iss="rogatory:US-OIA:operators")))
    assert err.code == "UNAUTHENTICATED"
    assert "InvalidIssuerError" in err.message


# -- the verified-token cache ---------------------------------------------------------------

def test_verified_token_answered_from_cache_until_it_expires(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Timeline: a client sends one token with every call; its signature is checked on
    the first call only. Once `exp` (plus leeway) has passed on the verifier's clock, the
    cache no longer answers and the full check runs again (and refuses the token).
    """
    clock = [float(now_s())]
    verifier = TokenVerifier(PUBLIC_KEY, issuer=ISSUER, audience=AUDIENCE,
                             clock=lambda: clock[0])
    payload = claims(exp=now_s() + 300)
    token = eddsa(payload)
    assert verifier.verify(token).subject == "alice"
    decoded: list[str] = []

    def expired(token: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        decoded.append(token)
        raise jwt.ExpiredSignatureError("Signature has expired")

    monkeypatch.setattr("broker.adapters.grpc.auth.jwt.decode", expired)
    clock[0] = payload["exp"] + verifier.leeway_s - 1
    assert verifier.verify(token).subject == "alice"      # cached, still valid
    assert decoded == []
    clock[0] = payload["exp"] + verifier.leeway_s
    rejected(token, verifier)                             # expired: verified again
    assert decoded == [token]


def test_refused_token_is_not_cached() -> None:
    """Timeline: a forged token is presented twice; both times the full check refuses it."""
    verifier = TokenVerifier(PUBLIC_KEY, issuer=ISSUER, audience=AUDIENCE, cache_size=2)
    forged = eddsa(claims(), Ed25519PrivateKey.generate())
    rejected(forged, verifier)
    rejected(forged, verifier)
    for i in range(5):   # the cache stays bounded
        assert verifier.verify(eddsa(claims(jti=f"t-{i}"))).subject == "alice"
    assert len(verifier._verified) <= 2
