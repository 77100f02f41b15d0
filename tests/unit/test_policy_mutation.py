"""Mutation check: turning any single ``forbid`` into a ``permit`` must fail a table case.

Each blocking rule is rewritten into a legal basis (``forbid`` -> ``permit``,
``@effect`` -> ``basis``, without ``@requires``/``@review``), the policy set is rebuilt
from the mutated files, and the decision tables must notice.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.policy import Rule, build_policy_set, load_policy_set
from broker.policy.tables import parse_table, run_cases

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policy"
BASE = load_policy_set(POLICY)
TABLES = [(str(p), p.read_text(encoding="utf-8"))
          for p in sorted((POLICY / "tests").glob("*.yaml"))]


def _flip(text: str) -> str:
    text = re.sub(r'@effect\("(deny|needs|review)"\)', '@effect("basis")', text)
    text = re.sub(r'@(requires|review)\("[^"]*"\)\s*', "", text)
    return re.sub(r"\bforbid\b", "permit", text, count=1)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("rule", [r for r in BASE.rules if r.blocking],
                         ids=lambda r: r.policy_id)
def test_forbid_flipped_to_permit_fails_a_case(rule: Rule) -> None:
    files = dict(BASE.files)
    mutated = files[rule.file].replace(rule.text, _flip(rule.text), 1)
    assert mutated != files[rule.file]
    files[rule.file] = mutated
    ps = build_policy_set(files)
    assert ps.hash != BASE.hash
    assert next(r for r in ps.rules if r.policy_id == rule.policy_id).effect == "basis"
    cases = [c for source, text in TABLES for c in parse_table(ps, source, text)]
    failing = [r for r in run_cases(ps, cases) if not r.passed]
    assert failing, f"flipping {rule.policy_id} to permit went unnoticed by every table"
