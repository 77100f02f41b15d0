"""Node configuration: the files `federation init` writes load; damaged ones fail with a
ConfigError that names what is wrong; the operator API listens on loopback only.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from broker.config import DeliveryPolicy, EnvelopeLimits
from broker.errors import ConfigError
from nodes.config import check_loopback, load_config
from nodes.federation import AgencySpec, init_federation

pytestmark = pytest.mark.unit


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    paths = init_federation(tmp_path / "federation",
                            [AgencySpec.parse("DE-BFJ:central_authority,contact_point")])
    return paths["DE-BFJ"]


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    doc = tomllib.loads(path.read_text())
    change(doc)
    path.write_text(tomli_w.dumps(doc))
    return path


def test_config_written_by_federation_init_loads(config_path: Path) -> None:
    cfg = load_config(config_path)
    base = config_path.resolve().parent
    assert cfg.path == config_path.resolve()
    assert cfg.node_id == "DE-BFJ"
    assert cfg.jurisdiction == "DE"
    assert cfg.roles == ("central_authority", "contact_point")
    assert cfg.data_dir == base / "data"
    assert cfg.operator_issuer == "rogatory:DE-BFJ:operators"
    assert cfg.operator_audience == "rogatory:DE-BFJ:operator-api"
    assert cfg.trust_list == base.parent / "trust-list.json"
    assert cfg.ca_cert == base.parent / "ca" / "ca.pem"
    for p in (cfg.operator_issuer_key, cfg.operator_issuer_public_key, cfg.trust_list,
              cfg.trust_anchor, cfg.ca_cert, cfg.signing_key, cfg.kem_key, cfg.storage_key,
              cfg.tls_key, cfg.tls_cert):
        assert p.is_absolute()
        assert p.is_file(), p
    assert cfg.limits == EnvelopeLimits()
    assert cfg.delivery == DeliveryPolicy()
    check_loopback(cfg.operator_listen)
    assert cfg.exchange_listen.startswith("127.0.0.1:")


def test_limits_and_delivery_overrides_load(config_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["limits"] = {"max_ttl_ms": 3_600_000, "max_attachments": 4}
        doc["delivery"] = {"initial_backoff_ms": 100}

    cfg = load_config(edit(config_path, change))
    assert cfg.limits == EnvelopeLimits(max_ttl_ms=3_600_000, max_attachments=4)
    assert cfg.delivery == DeliveryPolicy(initial_backoff_ms=100)


@pytest.mark.parametrize("section", ["node", "exchange", "operator", "trust", "keys"])
def test_missing_section_named(config_path: Path, section: str) -> None:
    edit(config_path, lambda doc: doc.pop(section))
    with pytest.raises(ConfigError, match=rf"\[{section}\]"):
        load_config(config_path)


def test_section_that_is_not_a_table_named(config_path: Path) -> None:
    edit(config_path, lambda doc: doc.update(keys="keys/signing.pem"))
    with pytest.raises(ConfigError, match=r"\[keys\]"):
        load_config(config_path)


@pytest.mark.parametrize(("section", "setting"), [
    ("node", "id"), ("node", "jurisdiction"), ("node", "roles"), ("exchange", "listen"),
    ("operator", "listen"), ("operator", "issuer"), ("operator", "audience"),
    ("operator", "issuer_key"), ("operator", "issuer_public_key"), ("trust", "list"),
    ("trust", "anchor"), ("trust", "ca"), ("keys", "signing"), ("keys", "kem"),
    ("keys", "storage"), ("keys", "tls_key"), ("keys", "tls_cert"),
])
def test_missing_setting_named(config_path: Path, section: str, setting: str) -> None:
    edit(config_path, lambda doc: doc[section].pop(setting))
    with pytest.raises(ConfigError, match=f"'{setting}'"):
        load_config(config_path)


def test_missing_data_dir_defaults_to_data(config_path: Path) -> None:
    edit(config_path, lambda doc: doc["node"].pop("data_dir"))
    assert load_config(config_path).data_dir == config_path.resolve().parent / "data"


@pytest.mark.parametrize(("section", "cls"), [("limits", "EnvelopeLimits"),
                                              ("delivery", "DeliveryPolicy")])
def test_unknown_tuning_key_named(config_path: Path, section: str, cls: str) -> None:
    """A misspelt limit must not be ignored silently (the default would apply unseen)."""
    edit(config_path, lambda doc: doc.update({section: {"max_ttl_hours": 1}}))
    with pytest.raises(ConfigError, match=r"max_ttl_hours") as exc:
        load_config(config_path)
    assert cls in exc.value.message


@pytest.mark.parametrize("node_id", ["de-bfj", "DE_BFJ", "DEBFJ", ""])
def test_invalid_node_id_rejected(config_path: Path, node_id: str) -> None:
    edit(config_path, lambda doc: doc["node"].update(id=node_id))
    with pytest.raises(ConfigError, match="node id"):
        load_config(config_path)


def test_invalid_toml_rejected(config_path: Path) -> None:
    config_path.write_text("[node\nid = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(config_path)


def test_missing_config_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


# -- loopback ------------------------------------------------------------------------------

@pytest.mark.parametrize("listen", [
    "127.0.0.1:7443", "127.0.0.1:0", "[::1]:7443", "::1:7443", "localhost:7443",
    "unix:/run/rogatory/operator.sock", "unix:operator.sock",
])
def test_loopback_listen_accepted(listen: str) -> None:
    check_loopback(listen)


@pytest.mark.parametrize("listen", [
    "0.0.0.0:7443", "[::]:7443", "8.8.8.8:7443", "203.0.113.7:7443", "192.168.1.10:7443",
    "127.0.0.2:7443", "localhost.example.com:7443", "127.0.0.1.nip.io:7443",
    "[2001:db8::1]:7443", ":7443",
])
def test_non_loopback_listen_refused(listen: str) -> None:
    """Timeline: an operator binds the operator API to all interfaces, exposing token
    authenticated but otherwise unprotected (no mTLS) access to the network.
    """
    with pytest.raises(ConfigError, match="loopback"):
        check_loopback(listen)


def test_lifecycle_settings_are_checked(tmp_path: Path) -> None:
    """A node refuses to start on an unknown time zone, day count or deadline event."""
    from broker.config import LifecyclePolicy
    from broker.errors import ConfigError as Refused
    from broker.services.cases import Cases
    from broker.services.context import NodeContext

    def cases(**settings: object) -> Cases:
        ctx = NodeContext.__new__(NodeContext)
        ctx.lifecycle = LifecyclePolicy(**settings)  # type: ignore[arg-type]
        return Cases(ctx)

    assert cases(timezone="Europe/Berlin", day_count="business").tz.key == "Europe/Berlin"
    for bad in ({"timezone": "Mars/Olympus"}, {"day_count": "lunar"},
                {"holidays": ["not-a-date"]},
                {"deadlines": [{"message_type": "mla_request", "name": "x", "value": "P5D",
                                "basis": "b", "met_by": ["teatime"]}]},
                {"deadlines": [{"message_type": "mla_request", "name": "x", "value": "5 days",
                                "basis": "b"}]},
                {"deadlines": [{"message_type": "mla_request", "value": "P5D"}]}):
        with pytest.raises(Refused):
            cases(**bad)
