"""Court-ready case bundles: the format, a writer and the offline verifier.

See `broker.bundle.layout` for the format. `verify_bundle(path)` needs no node, no
network and no clock; `BundleWriter` is used by `broker.services.export`.
"""

from broker.bundle.layout import CaseInfo, ExportedMessage, RequestInfo
from broker.bundle.proofs import inclusion_proofs
from broker.bundle.report import BundleReport, Finding, RootKey
from broker.bundle.verify import BundleLimits, verify_bundle
from broker.bundle.writer import BundleWriter

__all__ = [
    "BundleLimits",
    "BundleReport",
    "BundleWriter",
    "CaseInfo",
    "ExportedMessage",
    "Finding",
    "RequestInfo",
    "RootKey",
    "inclusion_proofs",
    "verify_bundle",
]
