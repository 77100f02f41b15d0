"""Shared fixtures: a fresh three-agency federation per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Federation, make_federation

# kafka_bootstrap / kafka_broker / kafka_cluster: real Apache Kafka started by scripts/kafka.
pytest_plugins = ["tests.kafka_fixture"]


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    return make_federation(tmp_path / "federation")
