"""`rogatory federation init`: the federation CA, node certificates and keys, the signed
trust list and one config file per node. For development and pilots: production keys
belong in an HSM behind the `Signer` port, and the CA offline.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.adapters.grpc.identity import node_dns_name, node_uri
from broker.crypto import AtRestCipher, KemPrivateKey, SigningKey
from broker.errors import ConfigError
from broker.model.ids import validate_node_id
from broker.trust import ROLES, now_iso, sign_trust_list

CERT_DAYS = 365
TRUST_LIST_DAYS = 90


@dataclass(frozen=True)
class AgencySpec:
    node_id: str
    roles: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> AgencySpec:
        node_id, _, roles = text.partition(":")
        validate_node_id(node_id)
        role_list = tuple(r for r in roles.split(",") if r) or ("central_authority",)
        unknown = set(role_list) - ROLES
        if unknown:
            raise ConfigError(f"unknown role(s) {sorted(unknown)}; known: {sorted(ROLES)}")
        return cls(node_id, role_list)


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if secret:
        os.chmod(path, 0o600)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rogatory federation CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS * 2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue_node_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                    node_id: str, now: dt.datetime, *, days: int = CERT_DAYS,
                    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS certificate for both server and client use, naming the node in a URI SAN."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([
                x509.UniformResourceIdentifier(node_uri(node_id)),
                x509.DNSName(node_dns_name(node_id)),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _pem_key(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def init_federation(root: Path, agencies: list[AgencySpec], *, federation: str = "rogatory-dev",
                    host: str = "127.0.0.1", now: dt.datetime | None = None) -> dict[str, Path]:
    """Create everything a local federation needs; returns node id -> config path."""
    if not agencies:
        raise ConfigError("a federation needs at least one agency")
    if len({a.node_id for a in agencies}) != len(agencies):
        raise ConfigError("an agency is named twice")
    if (root / "trust-list.json").exists():
        raise ConfigError(f"{root} already holds a federation")
    now = now or dt.datetime.now(dt.UTC)
    now_ms = int(now.timestamp() * 1000)
    ca_key, ca_cert = _ca(now)
    _write(root / "ca" / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(root / "ca" / "ca.key", _pem_key(ca_key), secret=True)
    admin = SigningKey.generate()
    _write(root / "admin" / "admin-1.pem", admin.to_pem(), secret=True)

    nodes, configs = [], {}
    for agency in agencies:
        node_dir = root / agency.node_id
        keys = node_dir / "keys"
        signing, kem = SigningKey.generate(), KemPrivateKey.generate()
        tls_key, tls_cert = issue_node_cert(ca_key, ca_cert, agency.node_id, now)
        issuer = Ed25519PrivateKey.generate()
        _write(keys / "signing.pem", signing.to_pem(), secret=True)
        _write(keys / "kem.pem", kem.to_pem(), secret=True)
        _write(keys / "storage.key", AtRestCipher.generate_key(), secret=True)
        _write(keys / "tls.key", _pem_key(tls_key), secret=True)
        _write(keys / "tls.pem", tls_cert.public_bytes(serialization.Encoding.PEM))
        _write(keys / "operator-issuer.pem", _pem_key(issuer), secret=True)
        _write(keys / "operator-issuer.pub.pem", issuer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        exchange = f"{host}:{_free_port()}"
        nodes.append({
            "node_id": agency.node_id, "jurisdiction": agency.node_id[:2],
            "roles": list(agency.roles), "endpoint": exchange,
            "signing_keys": [{"public": signing.verify_key.b64()}],
            "kem_keys": [{"public": kem.public.b64()}],
        })
        config = {
            "node": {"id": agency.node_id, "jurisdiction": agency.node_id[:2],
                     "roles": list(agency.roles), "data_dir": "data"},
            "exchange": {"listen": exchange},
            "operator": {"listen": f"127.0.0.1:{_free_port()}",
                         "issuer": f"rogatory:{agency.node_id}:operators",
                         "audience": f"rogatory:{agency.node_id}:operator-api",
                         "issuer_key": "keys/operator-issuer.pem",
                         "issuer_public_key": "keys/operator-issuer.pub.pem"},
            "trust": {"list": "../trust-list.json", "anchor": "trust-anchor.json",
                      "ca": "../ca/ca.pem"},
            "keys": {"signing": "keys/signing.pem", "kem": "keys/kem.pem",
                     "storage": "keys/storage.key", "tls_key": "keys/tls.key",
                     "tls_cert": "keys/tls.pem"},
        }
        _write(node_dir / "node.toml", tomli_w.dumps(config).encode())
        configs[agency.node_id] = node_dir / "node.toml"

    anchor = {"threshold": 1, "keys": [admin.verify_key.b64()]}
    document = {
        "federation": federation, "version": 1, "issued_at": now_iso(now_ms),
        "expires_at": now_iso(now_ms + TRUST_LIST_DAYS * 86_400_000),
        "admins": anchor, "revoked_cert_serials": [], "nodes": nodes,
    }
    _write(root / "trust-list.json", sign_trust_list(document, [admin]))
    for node_id in configs:
        _write(root / node_id / "trust-anchor.json",
               json.dumps({"admins": anchor, "min_version": 1}, indent=1).encode())
    return configs
