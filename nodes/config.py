"""Node configuration (TOML). Paths are relative to the config file's folder."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from broker.config import AuditPolicy, DeliveryPolicy, EnvelopeLimits, LifecyclePolicy
from broker.errors import ConfigError
from broker.model.ids import validate_node_id


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    node_id: str
    jurisdiction: str
    roles: tuple[str, ...]
    data_dir: Path
    exchange_listen: str
    operator_listen: str
    operator_issuer: str
    operator_audience: str
    operator_issuer_key: Path
    operator_issuer_public_key: Path
    trust_list: Path
    trust_anchor: Path
    ca_cert: Path
    signing_key: Path
    kem_key: Path
    storage_key: Path
    tls_key: Path
    tls_cert: Path
    limits: EnvelopeLimits
    delivery: DeliveryPolicy
    audit: AuditPolicy
    lifecycle: LifecyclePolicy


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"config has no [{name}] section")
    return value


def _overrides(cls: type[Any], values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)} for {cls.__name__}")
    return cls(**values)


def load_config(path: Path) -> NodeConfig:
    """Read and check one node's config file."""
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    base = path.resolve().parent

    def p(value: str) -> Path:
        return (base / value).resolve()

    try:
        node, ex, opr = _section(doc, "node"), _section(doc, "exchange"), _section(doc, "operator")
        trust, keys = _section(doc, "trust"), _section(doc, "keys")
        return NodeConfig(
            path=path.resolve(),
            node_id=validate_node_id(str(node["id"])),
            jurisdiction=str(node["jurisdiction"]),
            roles=tuple(str(r) for r in node["roles"]),
            data_dir=p(node.get("data_dir", "data")),
            exchange_listen=str(ex["listen"]),
            operator_listen=str(opr["listen"]),
            operator_issuer=str(opr["issuer"]),
            operator_audience=str(opr["audience"]),
            operator_issuer_key=p(opr["issuer_key"]),
            operator_issuer_public_key=p(opr["issuer_public_key"]),
            trust_list=p(trust["list"]),
            trust_anchor=p(trust["anchor"]),
            ca_cert=p(trust["ca"]),
            signing_key=p(keys["signing"]),
            kem_key=p(keys["kem"]),
            storage_key=p(keys["storage"]),
            tls_key=p(keys["tls_key"]),
            tls_cert=p(keys["tls_cert"]),
            limits=_overrides(EnvelopeLimits, doc.get("limits", {})),
            delivery=_overrides(DeliveryPolicy, doc.get("delivery", {})),
            audit=_overrides(AuditPolicy, doc.get("audit", {})),
            lifecycle=_overrides(LifecyclePolicy, doc.get("lifecycle", {})),
        )
    except KeyError as e:
        raise ConfigError(f"config {path} misses the setting {e.args[0]!r}") from e


def check_loopback(listen: str) -> None:
    """The operator API listens only on loopback or a Unix socket."""
    if listen.startswith("unix:"):
        return
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host not in {"127.0.0.1", "::1", "localhost"}:
        raise ConfigError(f"the operator API must listen on loopback, not {host}")
