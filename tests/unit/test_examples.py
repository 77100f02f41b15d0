"""The example payloads in docs/examples (used by the demo) validate against their templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import REGISTRY

pytestmark = pytest.mark.unit
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.mark.parametrize("message_type", ["preservation", "mla_request"])
def test_example_payload_validates(message_type: str) -> None:
    payload = json.loads((EXAMPLES / f"{message_type}.json").read_text())
    assert REGISTRY.default_for_message_type(message_type).check(payload) == []
