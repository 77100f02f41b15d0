"""The committed protobuf/gRPC code is exactly what `make proto` generates from proto/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "broker" / "wire" / "gen"


def test_generated_code_is_current(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), str(out)],
                   check=True, capture_output=True)
    fresh = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()
                   and "__pycache__" not in p.parts)
    committed = sorted(p.relative_to(COMMITTED) for p in COMMITTED.rglob("*") if p.is_file()
                       and "__pycache__" not in p.parts)
    assert fresh == committed, "generated file set differs: run `make proto`"
    stale = [str(p) for p in fresh if not filecmp.cmp(out / p, COMMITTED / p, shallow=False)]
    assert not stale, f"stale generated code (run `make proto`): {stale}"


def test_protobuf_uses_the_upb_backend() -> None:
    """The pure-Python backend has had recursion DoS bugs (CVE-2025-4565); refuse it."""
    from google.protobuf.internal import api_implementation
    assert api_implementation.Type() == "upb"
