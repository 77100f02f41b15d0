"""The policy engine API: decisions, time as a parameter, fail-closed behaviour, slicing."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from broker.errors import PolicyDenied
from broker.policy import PolicyRequest, PolicySet, load_policy_set, policy_set_hash
from broker.policy import engine as engine_module
from broker.policy.slicing import Guard
from nodes.cli_policy import run_tables

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policy"
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def ps() -> PolicySet:
    return load_policy_set(POLICY)


def _request(**changes: Any) -> PolicyRequest:
    base = PolicyRequest(
        action="send", sender_node="DE-BFJ", sender_jurisdiction="DE",
        sender_roles=frozenset({"central_authority"}), recipient_node="US-OIA",
        recipient_jurisdiction="US", recipient_roles=frozenset({"central_authority"}),
        template_id="mla-request", template_version="1.0.0", message_type="mla_request",
        data_categories=frozenset({"suspect", "identification", "official_contact"}),
        legal_basis="mla_generic",
        declared={"justification": "suspect's account is hosted in the US",
                  "agreement_ref": "eu_us_umbrella_agreement",
                  "underlying_legal_basis_ref": "DE-US MLAT 2003",
                  "case_reference": "BfJ-RHS-2026-0412"})
    return dataclasses.replace(base, **changes)


def test_allowed_transfer_names_basis_citations_and_obligations(ps: PolicySet) -> None:
    d = ps.decide(_request(), NOW)
    assert d.outcome == "allow" and d.allowed
    assert d.policy_ids == ("LED-XFER-06",)
    assert {o.id for o in d.obligations} == {"no_onward_transfer", "speciality"}
    speciality = next(o for o in d.obligations if o.id == "speciality")
    assert speciality.params == {"case_reference": "BfJ-RHS-2026-0412"}
    assert speciality.rule == "NAT-SPEC-01"
    assert {c.policy_id for c in d.citations} >= {"LED-XFER-06", "NAT-SPEC-01"}
    assert d.policy_set_hash == ps.hash == policy_set_hash(ps.files)
    assert len(d.policy_set_hash) == 64
    assert d.missing == () and d.error is None
    json.dumps(d.to_dict())
    d.require_allowed()


def test_recalled_sources_are_never_shown_as_verified(ps: PolicySet) -> None:
    d = ps.decide(_request(), NOW)
    led06 = next(c for c in d.citations if c.policy_id == "LED-XFER-06")
    assert led06.verification.startswith("V") and led06.tag == "R"  # "...; wording R"
    line = next(r for r in d.reasons if "LED-XFER-06" in r)
    assert "R (recalled" in line


@pytest.mark.parametrize(("declared", "code"), [
    ({}, "POLICY_NEEDS"),
    ({"justification": "x", "derogation": "d_individual_case_art1_purposes"}, "POLICY_NEEDS"),
])
def test_require_allowed_raises_policy_denied(ps: PolicySet, declared: dict[str, Any],
                                              code: str) -> None:
    d = ps.decide(_request(declared=declared), NOW)
    with pytest.raises(PolicyDenied) as e:
        d.require_allowed()
    assert e.value.code == code
    assert d.policy_ids[0] in e.value.message


def test_deny_outcome_code(ps: PolicySet) -> None:
    d = ps.decide(_request(recipient_roles=frozenset({"auditor"})), NOW)
    assert d.outcome == "deny"
    with pytest.raises(PolicyDenied) as e:
        d.require_allowed()
    assert e.value.code == "POLICY_DENY"


@pytest.mark.parametrize(("when", "outcome"), [
    (datetime(2021, 1, 15, tzinfo=UTC), "needs"),   # before the UK LED decision
    (datetime(2021, 6, 28, tzinfo=UTC), "allow"),   # first day
    (datetime(2031, 12, 27, 23, 59, tzinfo=UTC), "review"),  # last day; facts are stale
])
def test_uk_adequacy_follows_the_evaluation_time(ps: PolicySet, when: datetime,
                                                 outcome: str) -> None:
    d = ps.decide(_request(recipient_node="GB-UKCA", recipient_jurisdiction="GB",
                           declared={"justification": "x"}), when)
    assert d.outcome == outcome
    if outcome == "allow":
        assert d.policy_ids == ("LED-XFER-05",)


def test_uk_adequacy_last_day_counts(ps: PolicySet) -> None:
    """On 2031-12-27 the decision still holds; on 2031-12-28 it does not (rule LED-XFER-05)."""
    req = _request(recipient_node="GB-UKCA", recipient_jurisdiction="GB",
                   declared={"justification": "x"})
    last = ps.decide(req, datetime(2031, 12, 27, 12, tzinfo=UTC))
    after = ps.decide(req, datetime(2031, 12, 28, 0, tzinfo=UTC))
    assert "LED-XFER-05" in {h.policy_id for h in last.hits}
    assert "LED-XFER-05" not in {h.policy_id for h in after.hits}


def test_e_evidence_applies_from_18_august_2026(ps: PolicySet) -> None:
    req = _request(recipient_node="NL-OM", recipient_jurisdiction="NL",
                   sender_roles=frozenset({"judicial_authority"}), template_id="eu-epoc-annex-i",
                   message_type="epoc", legal_basis="epoc",
                   data_categories=frozenset({"subscriber"}), declared={})
    before = ps.decide(req, datetime(2026, 8, 17, 23, 59, 59, tzinfo=UTC))
    on = ps.decide(req, datetime(2026, 8, 18, 0, 0, tzinfo=UTC))
    assert before.outcome == "deny" and before.policy_ids == ("EEV-01-DATE",)
    assert on.outcome == "allow"


def test_evaluation_time_in_another_zone_is_read_as_utc(ps: PolicySet) -> None:
    from datetime import timedelta, timezone

    req = _request(recipient_node="NL-OM", recipient_jurisdiction="NL",
                   sender_roles=frozenset({"judicial_authority"}), template_id="eu-epoc-annex-i",
                   message_type="epoc", legal_basis="epoc",
                   data_categories=frozenset({"subscriber"}), declared={})
    # 01:30 on 18 August in UTC+2 is still 17 August in UTC.
    at = datetime(2026, 8, 18, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert ps.decide(req, at).outcome == "deny"


def test_naive_evaluation_time_denies(ps: PolicySet) -> None:
    d = ps.decide(_request(), datetime(2026, 11, 23, 12))
    assert d.outcome == "deny" and d.error and "timezone" in d.error


@pytest.mark.parametrize("changes", [
    {"sender_jurisdiction": "XK"}, {"recipient_jurisdiction": "us"},
    {"legal_basis": "letters_rogatory_by_pigeon"}, {"action": "delete"},
    {"template_id": "unmapped-form"}, {"data_categories": frozenset({"dna_profile"})},
    {"declared": {"justfication": "typo"}}, {"declared": {"emergency": "yes"}},
    {"declared": {"max_penalty_years": True}}, {"declared": {"derogation": "f_convenience"}},
    {"declared": {"obligations": "speciality"}},
])
def test_bad_input_fails_closed(ps: PolicySet, changes: dict[str, Any]) -> None:
    d = ps.decide(_request(**changes), NOW)
    assert d.outcome == "deny"
    assert d.policy_ids == ("FAIL-CLOSED",)
    assert d.error and d.reasons[0].startswith("denied (fail closed)")


def test_cedar_exception_denies(ps: PolicySet, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("engine crashed")

    monkeypatch.setattr(engine_module, "RESULT_CACHE", 0)  # evaluate, not remember
    monkeypatch.setattr(engine_module.cedarpy, "is_authorized", boom)
    d = ps.decide(_request(), NOW)
    assert d.outcome == "deny" and d.error and "engine crashed" in d.error


def test_cedar_evaluation_error_denies_even_when_cedar_allows(
        ps: PolicySet, monkeypatch: pytest.MonkeyPatch) -> None:
    """An erroring forbid is skipped by Cedar, which may then allow: we deny instead."""
    real = cedarpy.is_authorized

    def with_error(*args: Any, **kwargs: Any) -> cedarpy.AuthzResult:
        result = real(*args, **kwargs)
        raw = dict(result._authz_resp)
        raw["diagnostics"] = {**raw.get("diagnostics", {}),
                              "errors": ["error while evaluating policy `policy0`: oops"]}
        return cedarpy.AuthzResult(raw)

    monkeypatch.setattr(engine_module, "RESULT_CACHE", 0)  # evaluate, not remember
    monkeypatch.setattr(engine_module.cedarpy, "is_authorized", with_error)
    d = ps.decide(_request(), NOW)
    assert d.outcome == "deny" and d.error and "evaluation error" in d.error


def _counting(monkeypatch: pytest.MonkeyPatch, *, errors: bool = False) -> list[int]:
    """Count Cedar evaluations (optionally reporting an evaluation error each time)."""
    real = cedarpy.is_authorized
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> cedarpy.AuthzResult:
        calls.append(1)
        result = real(*args, **kwargs)
        if not errors:
            return result
        raw = dict(result._authz_resp)
        raw["diagnostics"] = {**raw.get("diagnostics", {}),
                              "errors": ["error while evaluating policy `policy0`: oops"]}
        return cedarpy.AuthzResult(raw)

    monkeypatch.setattr(engine_module.cedarpy, "is_authorized", counted)
    return calls


def test_a_repeated_request_is_decided_from_the_remembered_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = load_policy_set(POLICY)
    calls = _counting(monkeypatch)
    first, second = fresh.decide(_request(), NOW), fresh.decide(_request(), NOW)
    assert len(calls) == 1
    assert first.to_dict() | {"at": None} == second.to_dict() | {"at": None}


def test_a_remembered_result_never_answers_another_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = load_policy_set(POLICY)
    calls = _counting(monkeypatch)
    assert fresh.decide(_request(), NOW).outcome == "allow"
    assert fresh.decide(_request(recipient_roles=frozenset({"auditor"})), NOW).outcome == "deny"
    gb = _request(recipient_node="GB-UKCA", recipient_jurisdiction="GB",
                  declared={"justification": "x"})
    assert fresh.decide(gb, datetime(2021, 6, 28, tzinfo=UTC)).outcome == "allow"
    assert fresh.decide(gb, datetime(2021, 1, 15, tzinfo=UTC)).outcome == "needs"
    assert fresh.decide(_request(), NOW).outcome == "allow"
    assert len(calls) == 4   # the last one only was remembered


def test_a_result_with_errors_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = load_policy_set(POLICY)
    calls = _counting(monkeypatch, errors=True)
    for _ in range(2):
        d = fresh.decide(_request(), NOW)
        assert d.outcome == "deny" and d.error and "evaluation error" in d.error
    assert len(calls) == 2


def test_no_basis_denies(ps: PolicySet) -> None:
    """A receive by a node that is neither competent nor a provider has no basis."""
    d = ps.decide(_request(action="receive", recipient_roles=frozenset({"auditor"})), NOW)
    assert d.outcome == "deny" and d.policy_ids == ()
    assert any("no rule gives a legal basis" in r for r in d.reasons)


def test_slicing_changes_no_table_decision(ps: PolicySet,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sliced = run_tables(ps, sorted((POLICY / "tests").glob("*.yaml")))
    monkeypatch.setattr(Guard, "admits", lambda _self, _key: True)
    full = load_policy_set(POLICY)
    unsliced = run_tables(full, sorted((POLICY / "tests").glob("*.yaml")))
    for a, b in zip(sliced, unsliced, strict=True):
        assert (a.decision.outcome, a.decision.policy_ids, a.decision.missing,
                [o.id for o in a.decision.obligations]) == (
            b.decision.outcome, b.decision.policy_ids, b.decision.missing,
            [o.id for o in b.decision.obligations]), a.case.name


def test_payload_helpers_read_the_example_request(ps: PolicySet) -> None:
    payload = json.loads((ROOT / "docs/examples/mla_request.json").read_text())
    assert ps.legal_basis_for("mla-request", payload) == "mla_generic"
    assert ps.legal_basis_for("mla-request", {"legal_basis": ["budapest_convention"]}) == (
        "budapest_31")
    assert ps.legal_basis_for("unmapped", payload) == ""
    declared = ps.declared_from_payload("mla-request", payload)
    assert declared["death_penalty_possible"] is False
    assert declared["case_reference"] == "BfJ-RHS-2026-0412"


def test_describe_jurisdiction_carries_tags(ps: PolicySet) -> None:
    text = ps.describe_jurisdiction("US", NOW)
    assert "retentionist" in text and "[V (S54" in text
    assert "no facts" in ps.describe_jurisdiction("XK", NOW)


def test_vocabulary_matches_template_categories_and_trust_roles(ps: PolicySet) -> None:
    from broker.templating import DATA_CATEGORIES
    from broker.trust import ROLES

    v = ps.vocabulary
    assert v.subject_categories | v.other_categories == DATA_CATEGORIES
    assert v.competent_roles <= ROLES


def test_every_template_is_mapped_to_legal_bases(ps: PolicySet) -> None:
    """A template without an entry in policy/facts/instruments.yaml cannot be sent (deny)."""
    templates = {p.parent.name for p in (ROOT / "templates").glob("*/*.yaml")}
    assert not sorted(templates - set(ps.facts.templates))
