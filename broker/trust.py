"""The trust list: the federation's signed directory of nodes, keys, roles and endpoints.

The document is JSON wrapped in a DSSE-style envelope; signatures cover the exact
payload bytes (pre-authentication encoding of type and payload), never a re-encoding.
A list is accepted only if it is signed by a threshold of the federation-admin keys
the node already trusts, and, when it rotates those keys, by a threshold of the new
ones as well (TUF root rotation). Older versions (rollback) and expired lists are
refused. Pure: bytes and `now_ms` in, a verified `TrustList` out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.crypto import KemPublicKey, SigningKey, VerifyKey
from broker.crypto import signing as sig
from broker.errors import (
    KeyRevoked,
    TrustListError,
    TrustListExpired,
    TrustListRollback,
    UnknownKey,
    UnknownSender,
)
from broker.model.ids import is_node_id

PAYLOAD_TYPE = "application/vnd.rogatory.trust-list+json"
ROLES = frozenset({"central_authority", "contact_point", "judicial_authority",
                   "prosecutor", "law_enforcement", "auditor", "service_provider"})


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding of (type, payload)."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    raw: bytes = field(repr=False)
    revoked_at_ms: int | None = None

    def active_at(self, at_ms: int) -> bool:
        return self.revoked_at_ms is None or at_ms < self.revoked_at_ms


@dataclass(frozen=True)
class NodeEntry:
    node_id: str
    jurisdiction: str
    roles: frozenset[str]
    endpoint: str
    signing_keys: tuple[KeyEntry, ...]
    kem_keys: tuple[KeyEntry, ...]

    def verify_key(self, key_id: str, at_ms: int) -> VerifyKey:
        """The signing key `key_id` if it is listed and not revoked at `at_ms`."""
        for k in self.signing_keys:
            if k.key_id == key_id:
                if not k.active_at(at_ms):
                    raise KeyRevoked(f"signing key {key_id} of {self.node_id} is revoked")
                return VerifyKey(k.raw)
        raise UnknownKey(f"signing key {key_id} is not listed for {self.node_id}")

    def kem_key(self, at_ms: int) -> KemPublicKey:
        """The node's current key-encapsulation key (the first active one)."""
        for k in self.kem_keys:
            if k.active_at(at_ms):
                return KemPublicKey(k.raw)
        raise UnknownKey(f"{self.node_id} has no active encryption key")


@dataclass(frozen=True)
class AdminSet:
    """Federation-admin keys and how many of them must sign."""

    threshold: int
    keys: Mapping[str, VerifyKey]

    def count_valid(self, message: bytes, signatures: Sequence[tuple[str, bytes]]) -> int:
        seen: set[str] = set()
        for key_id, signature in signatures:
            key = self.keys.get(key_id)
            if key is None or key_id in seen:
                continue
            if sig.verify(key, sig.TRUST_LIST, message, signature):
                seen.add(key_id)
        return len(seen)


@dataclass(frozen=True)
class TrustList:
    federation: str
    version: int
    issued_at_ms: int
    expires_at_ms: int
    admins: AdminSet
    nodes: Mapping[str, NodeEntry]
    revoked_cert_serials: frozenset[int]
    raw: bytes = field(repr=False, compare=False)

    def node(self, node_id: str) -> NodeEntry:
        entry = self.nodes.get(node_id)
        if entry is None:
            raise UnknownSender(f"node {node_id!r} is not in the trust list")
        return entry

    def is_expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_at_ms


# -- signing (federation admin tooling) ---------------------------------------------

def sign_trust_list(document: Mapping[str, Any], admin_keys: Iterable[SigningKey]) -> bytes:
    """Serialize `document` and sign it with each admin key; returns the file bytes."""
    payload = json.dumps(document, sort_keys=True, indent=1).encode()
    message = pae(PAYLOAD_TYPE, payload)
    signatures = [
        {"keyid": k.key_id, "sig": base64.b64encode(k.sign(sig.to_be_signed(sig.TRUST_LIST,
                                                                             message))).decode()}
        for k in admin_keys
    ]
    wrapper = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
               "signatures": signatures}
    return json.dumps(wrapper, indent=1).encode() + b"\n"


def admin_set_of(document: Mapping[str, Any]) -> AdminSet:
    """The admin set a trust-list document declares (used to pin the first anchor)."""
    return _admins(document)


# -- verification --------------------------------------------------------------------

def load_trust_list(data: bytes, *, trusted_admins: AdminSet, now_ms: int,
                    min_version: int = 0) -> TrustList:
    """Verify and parse a trust list against the admin keys already trusted.

    Raises TrustListError (bad signature or form), TrustListRollback (version below
    `min_version`) or TrustListExpired.
    """
    payload, signatures = _unwrap(data)
    message = pae(PAYLOAD_TYPE, payload)
    if trusted_admins.count_valid(message, signatures) < trusted_admins.threshold:
        raise TrustListError("trust list is not signed by a threshold of trusted admin keys")
    document = _json_object(payload)
    new_admins = _admins(document)
    if new_admins != trusted_admins and (
        new_admins.count_valid(message, signatures) < new_admins.threshold
    ):
        raise TrustListError("admin-key rotation is not signed by a threshold of the new keys")
    tl = _parse(document, new_admins, data)
    if tl.version < min_version:
        raise TrustListRollback(
            f"trust list version {tl.version} is older than the trusted version {min_version}")
    if tl.is_expired(now_ms):
        raise TrustListExpired(f"trust list version {tl.version} has expired")
    return tl


def _unwrap(data: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    wrapper = _json_object(data)
    if wrapper.get("payloadType") != PAYLOAD_TYPE:
        raise TrustListError("not a trust list (payloadType)")
    try:
        payload = base64.b64decode(wrapper["payload"], validate=True)
        signatures = [(str(s["keyid"]), base64.b64decode(s["sig"], validate=True))
                      for s in wrapper["signatures"]]
    except (KeyError, TypeError, binascii.Error) as e:
        raise TrustListError("malformed trust list envelope") from e
    return payload, signatures


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise TrustListError("trust list is not valid JSON") from e
    if not isinstance(value, dict):
        raise TrustListError("trust list is not a JSON object")
    return value


def _b64key(text: object) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except binascii.Error as e:
        raise TrustListError("a key is not valid base64") from e
    if len(raw) != 32:
        raise TrustListError("a key does not have 32 bytes")
    return raw


def _admins(document: Mapping[str, Any]) -> AdminSet:
    try:
        spec = document["admins"]
        keys = {VerifyKey(_b64key(k)).key_id: VerifyKey(_b64key(k)) for k in spec["keys"]}
        threshold = int(spec["threshold"])
    except (KeyError, TypeError, ValueError) as e:
        raise TrustListError("trust list has no valid admins section") from e
    if not 1 <= threshold <= len(keys):
        raise TrustListError("admin threshold out of range")
    return AdminSet(threshold=threshold, keys=keys)


def _time_ms(text: object) -> int:
    try:
        dt = datetime.fromisoformat(str(text))
    except ValueError as e:
        raise TrustListError(f"bad timestamp {text!r}") from e
    if dt.tzinfo is None:
        raise TrustListError("timestamps must carry a UTC offset")
    return int(dt.timestamp() * 1000)


def _keys(specs: Iterable[Mapping[str, Any]], cls: type[VerifyKey] | type[KemPublicKey]
          ) -> tuple[KeyEntry, ...]:
    out = []
    for s in specs:
        raw = _b64key(s["public"])
        revoked = s.get("revoked_at")
        out.append(KeyEntry(key_id=cls(raw).key_id, raw=raw,
                            revoked_at_ms=_time_ms(revoked) if revoked else None))
    return tuple(out)


def _node(spec: Mapping[str, Any]) -> NodeEntry:
    node_id = str(spec["node_id"])
    if not is_node_id(node_id):
        raise TrustListError(f"invalid node id {node_id!r}")
    roles = frozenset(str(r) for r in spec["roles"])
    if not roles or not roles <= ROLES:
        raise TrustListError(f"node {node_id} has unknown roles {sorted(roles - ROLES)}")
    return NodeEntry(
        node_id=node_id,
        jurisdiction=str(spec["jurisdiction"]),
        roles=roles,
        endpoint=str(spec["endpoint"]),
        signing_keys=_keys(spec["signing_keys"], VerifyKey),
        kem_keys=_keys(spec["kem_keys"], KemPublicKey),
    )


def _parse(document: Mapping[str, Any], admins: AdminSet, raw: bytes) -> TrustList:
    try:
        nodes = [_node(n) for n in document["nodes"]]
        tl = TrustList(
            federation=str(document["federation"]),
            version=int(document["version"]),
            issued_at_ms=_time_ms(document["issued_at"]),
            expires_at_ms=_time_ms(document["expires_at"]),
            admins=admins,
            nodes={n.node_id: n for n in nodes},
            revoked_cert_serials=frozenset(int(s) for s in
                                           document.get("revoked_cert_serials", [])),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise TrustListError(f"malformed trust list: {e}") from e
    if len(tl.nodes) != len(nodes):
        raise TrustListError("a node id is listed twice")
    return tl


def now_iso(ms: int) -> str:
    """Format epoch milliseconds the way trust-list documents store times."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()
