"""Ed25519: RFC 8032 Sec. 7.1 vectors, then forgeries against our signing recipe.

Vectors: RFC 8032, Section 7.1 "Test Vectors for Ed25519", TEST 1, TEST 2, TEST 3,
TEST 1024 and TEST SHA(abc), copied verbatim (hex of SECRET KEY, PUBLIC KEY, MESSAGE,
SIGNATURE). Ed25519 is deterministic, so a transcription error cannot pass: the public
key and the signature are recomputed from the secret key and compared byte for byte.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto.keys import SigningKey, VerifyKey
from broker.crypto.signing import (
    ENVELOPE_HEADER,
    RECEIPT,
    TRUST_LIST,
    to_be_signed,
    verify,
)

pytestmark = pytest.mark.unit

# The order of the Ed25519 base point (RFC 8032 Sec. 5.1, "L").
GROUP_ORDER_L = 2**252 + 27742317777372353535851937790883648493
SIGNATURE_SIZE = 64


@dataclass(frozen=True)
class Rfc8032Vector:
    name: str
    secret_key: str
    public_key: str
    message: str
    signature: str


TEST_1024_MESSAGE = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98"
    "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8"
    "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc"
    "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe"
    "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef"
    "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7"
    "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2"
    "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
    "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07"
    "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a"
    "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e"
    "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c"
    "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8"
    "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
    "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3"
    "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
    "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5"
    "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1"
    "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c"
    "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0"
)

RFC8032_VECTORS = [
    Rfc8032Vector(
        name="TEST 1",
        secret_key="9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public_key="d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message="",
        signature=(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
    ),
    Rfc8032Vector(
        name="TEST 2",
        secret_key="4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public_key="3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message="72",
        signature=(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
            "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ),
    ),
    Rfc8032Vector(
        name="TEST 3",
        secret_key="c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public_key="fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message="af82",
        signature=(
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
            "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
        ),
    ),
    Rfc8032Vector(
        name="TEST 1024",
        secret_key="f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        public_key="278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        message=TEST_1024_MESSAGE,
        signature=(
            "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
            "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"
        ),
    ),
    Rfc8032Vector(
        name="TEST SHA(abc)",
        secret_key="833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        public_key="ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        message=(
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        ),
        signature=(
            "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
            "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"
        ),
    ),
]


def _signing_key(v: Rfc8032Vector) -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v.secret_key)))


def _with_s(signature: bytes, s: int) -> bytes:
    return signature[:32] + s.to_bytes(32, "little")


def _s(signature: bytes) -> int:
    return int.from_bytes(signature[32:], "little")


# -- RFC 8032 Sec. 7.1 ----------------------------------------------------------------


def test_vector_messages_have_their_published_lengths() -> None:
    lengths = {v.name: len(bytes.fromhex(v.message)) for v in RFC8032_VECTORS}
    assert lengths == {
        "TEST 1": 0,
        "TEST 2": 1,
        "TEST 3": 2,
        "TEST 1024": 1023,
        "TEST SHA(abc)": 64,
    }
    sha_abc = next(v for v in RFC8032_VECTORS if v.name == "TEST SHA(abc)")
    assert bytes.fromhex(sha_abc.message) == hashlib.sha512(b"abc").digest()


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=lambda v: v.name)
def test_public_key_from_secret_key(v: Rfc8032Vector) -> None:
    key = _signing_key(v)

    assert key.verify_key.raw == bytes.fromhex(v.public_key)
    assert key.key_id == VerifyKey(bytes.fromhex(v.public_key)).key_id


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=lambda v: v.name)
def test_signature_matches_vector(v: Rfc8032Vector) -> None:
    assert _signing_key(v).sign(bytes.fromhex(v.message)) == bytes.fromhex(v.signature)


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=lambda v: v.name)
def test_vector_signature_verifies(v: Rfc8032Vector) -> None:
    public = VerifyKey(bytes.fromhex(v.public_key)).public_key()
    public.verify(bytes.fromhex(v.signature), bytes.fromhex(v.message))


@pytest.mark.parametrize("v", RFC8032_VECTORS, ids=lambda v: v.name)
def test_vector_signature_with_s_plus_l_rejected(v: Rfc8032Vector) -> None:
    """Malleability: S + L satisfies the group equation but is not canonical (S >= L)."""
    signature = bytes.fromhex(v.signature)
    public = VerifyKey(bytes.fromhex(v.public_key)).public_key()

    with pytest.raises(InvalidSignature):
        public.verify(_with_s(signature, _s(signature) + GROUP_ORDER_L), bytes.fromhex(v.message))


# -- our recipe: broker.crypto.signing ------------------------------------------------

SIGNER = SigningKey.generate()
OTHER_SIGNER = SigningKey.generate()
DATA = b"\x0a\x06DE-BFJ\x12\x06US-OIA exact serialized header bytes"
LABELS = [ENVELOPE_HEADER, RECEIPT, TRUST_LIST]
SIGNATURE = SIGNER.sign(to_be_signed(ENVELOPE_HEADER, DATA))


def test_genuine_signature_verifies() -> None:
    assert verify(SIGNER.verify_key, ENVELOPE_HEADER, DATA, SIGNATURE)


def test_to_be_signed_is_label_separator_digest() -> None:
    for label in LABELS:
        assert to_be_signed(label, DATA) == label + b"\x00" + hashlib.sha256(DATA).digest()


def test_unknown_signature_domain_refused() -> None:
    with pytest.raises(ValueError, match="unknown signature domain"):
        to_be_signed(b"rogatory/v1/something-else", DATA)


@pytest.mark.parametrize(
    ("signed_as", "presented_as"),
    list(itertools.permutations(LABELS, 2)),
    ids=lambda label: label.decode(),
)
def test_signature_moved_to_another_domain_rejected(signed_as: bytes, presented_as: bytes) -> None:
    """Cross-protocol reuse of a signature.

    1. A node signs bytes under one domain (say a receipt).
    2. An attacker presents the same bytes and signature as another kind of object
       (say an envelope header or a trust list).
    3. The to-be-signed message names the domain, so verification fails.
    """
    signature = SIGNER.sign(to_be_signed(signed_as, DATA))

    assert verify(SIGNER.verify_key, signed_as, DATA, signature)
    assert not verify(SIGNER.verify_key, presented_as, DATA, signature)


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0, max_value=SIGNATURE_SIZE * 8 - 1))
def test_bit_flipped_signature_rejected(bit: int) -> None:
    forged = bytearray(SIGNATURE)
    forged[bit // 8] ^= 1 << (bit % 8)

    assert not verify(SIGNER.verify_key, ENVELOPE_HEADER, DATA, bytes(forged))


def test_every_bit_flip_of_signature_rejected() -> None:
    """Exhaustive companion of the property above: all 512 positions, R and S."""
    for bit in range(SIGNATURE_SIZE * 8):
        forged = bytearray(SIGNATURE)
        forged[bit // 8] ^= 1 << (bit % 8)
        assert not verify(SIGNER.verify_key, ENVELOPE_HEADER, DATA, bytes(forged)), bit


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=256))
def test_signature_over_other_data_rejected(data: bytes) -> None:
    if data != DATA:
        assert not verify(SIGNER.verify_key, ENVELOPE_HEADER, data, SIGNATURE)


def test_signature_checked_with_wrong_key_rejected() -> None:
    """A signature by one node's key presented as another node's signature."""
    assert not verify(OTHER_SIGNER.verify_key, ENVELOPE_HEADER, DATA, SIGNATURE)
    forged = OTHER_SIGNER.sign(to_be_signed(ENVELOPE_HEADER, DATA))
    assert not verify(SIGNER.verify_key, ENVELOPE_HEADER, DATA, forged)


@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 63])
def test_truncated_signature_rejected(length: int) -> None:
    assert not verify(SIGNER.verify_key, ENVELOPE_HEADER, DATA, SIGNATURE[:length])


@pytest.mark.parametrize("suffix", [b"\x00", SIGNATURE])
def test_extended_signature_rejected(suffix: bytes) -> None:
    assert not verify(SIGNER.verify_key, ENVELOPE_HEADER, DATA, SIGNATURE + suffix)


def test_non_canonical_s_rejected() -> None:
    """Signature malleability: S replaced by S + L.

    1. A node publishes a signature (R, S) over an envelope header.
    2. An attacker re-encodes it as (R, S + L). The group equation still holds, since
       L is the order of the base point, so a lax verifier accepts a second, different
       signature over the same bytes (and anything keyed on signature bytes is fooled).
    3. RFC 8032 Sec. 5.1.7 requires S < L: the verifier rejects it.
    """
    s = _s(SIGNATURE)
    assert s < GROUP_ORDER_L
    malleated = _with_s(SIGNATURE, s + GROUP_ORDER_L)
    assert len(malleated) == SIGNATURE_SIZE

    assert not verify(SIGNER.verify_key, ENVELOPE_HEADER, DATA, malleated)


def test_s_at_or_above_group_order_rejected() -> None:
    for s in (GROUP_ORDER_L, GROUP_ORDER_L + 1, 2**256 - 1):
        assert not verify(SIGNER.verify_key, ENVELOPE_HEADER, DATA, _with_s(SIGNATURE, s))
