"""Decision tables: every case in policy/tests/*.yaml must give the decision it expects.

The tables are written by lawyers (docs/policy.md); pytest runs the same code path as
``rogatory policy test`` and adds coverage checks: enough cases and jurisdictions, every
pack exercised, and every blocking rule named by some case (which is what makes the
mutation check bite).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.policy import PolicySet, load_policy_set
from broker.policy.tables import CaseResult
from nodes.cli_policy import run_tables

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policy"
TABLES = sorted((POLICY / "tests").glob("*.yaml"))


@pytest.fixture(scope="module")
def ps() -> PolicySet:
    return load_policy_set(POLICY)


@pytest.fixture(scope="module")
def results(ps: PolicySet) -> list[CaseResult]:
    return run_tables(ps, TABLES)


def _case_ids() -> list[str]:
    policy = load_policy_set(POLICY)
    return [f"{Path(r.case.table).stem}:{r.case.line}" for r in run_tables(policy, TABLES)]


@pytest.mark.parametrize("case_id", _case_ids())
def test_decision_table_case(case_id: str, results: list[CaseResult]) -> None:
    table, line = case_id.split(":")
    (result,) = [r for r in results
                 if Path(r.case.table).stem == table and r.case.line == int(line)]
    assert result.passed, (f"{result.case.name}: {'; '.join(result.failures)}\n"
                           + "\n".join(result.decision.reasons))


def test_tables_are_large_and_wide_enough(results: list[CaseResult]) -> None:
    states = {c for r in results for c in (r.case.request.sender_jurisdiction,
                                           r.case.request.recipient_jurisdiction)}
    assert len(results) >= 60
    assert len(states) >= 15


def test_every_pack_is_exercised(ps: PolicySet, results: list[CaseResult]) -> None:
    fired = {h.policy_id for r in results for h in r.decision.hits}
    packs = {rule.file for rule in ps.rules}
    untouched = sorted(p for p in packs
                       if not any(rule.policy_id in fired for rule in ps.rules
                                  if rule.file == p))
    assert not untouched, f"no case exercises {untouched}"


def test_every_blocking_rule_is_expected_by_some_case(ps: PolicySet,
                                                      results: list[CaseResult]) -> None:
    expected = {str(x) for r in results for x in r.case.expect.get("rules", [])}
    blocking = {rule.policy_id for rule in ps.rules if rule.blocking}
    assert not sorted(blocking - expected)


def test_every_outcome_and_action_is_covered(results: list[CaseResult]) -> None:
    assert {r.decision.outcome for r in results} == {"allow", "deny", "needs", "review"}
    assert {r.case.request.action for r in results} == {"send", "receive", "onward_transfer",
                                                         "access"}
