"""Peer identity from the mutual-TLS certificate: exactly one URI SAN urn:rogatory:node:<id>.

Never "any of the SANs": a certificate with no such SAN, or with two, identifies nobody.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography import x509

from broker.errors import PeerError
from broker.model.ids import is_node_id

URI_PREFIX = "urn:rogatory:node:"


class PeerIdentityError(PeerError):
    code = "AMBIGUOUS_IDENTITY"


def node_uri(node_id: str) -> str:
    return URI_PREFIX + node_id


def node_dns_name(node_id: str) -> str:
    """The DNS SAN a node's server certificate carries (checked by the calling client)."""
    return f"{node_id.lower()}.nodes.rogatory.invalid"


@lru_cache(maxsize=256)
def identity_from_pem(pem: bytes) -> tuple[str, int]:
    """(node id, certificate serial) of a peer certificate."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound) as e:
        raise PeerIdentityError("peer certificate has no usable subject alternative name") from e
    ids = [u[len(URI_PREFIX):] for u in sans.get_values_for_type(x509.UniformResourceIdentifier)
           if u.startswith(URI_PREFIX)]
    if len(ids) != 1 or not is_node_id(ids[0]):
        raise PeerIdentityError("peer certificate does not name exactly one node")
    return ids[0], cert.serial_number
