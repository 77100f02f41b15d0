"""Property tests: whatever the input, the engine answers, and any engine error denies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.policy import OUTCOMES, PolicyRequest, PolicySet, load_policy_set
from broker.policy import engine as engine_module
from broker.policy.slicing import Guard

pytestmark = pytest.mark.unit

POLICY = Path(__file__).resolve().parents[2] / "policy"
PS: PolicySet = load_policy_set(POLICY)
FULL: PolicySet = load_policy_set(POLICY)  # evaluated without slicing below

codes = st.sampled_from([*sorted(PS.facts.jurisdictions), "XK", "de", ""])
roles = st.frozensets(st.sampled_from(["central_authority", "contact_point", "prosecutor",
                                       "judicial_authority", "law_enforcement", "auditor",
                                       "service_provider", "astrologer"]), max_size=3)
values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.text(max_size=8),
                   st.sampled_from(["a_vital_interests", "vital_interests", "FR"]),
                   st.lists(st.sampled_from(["speciality", "no_onward_transfer", "x"])))
declared = st.dictionaries(
    st.sampled_from([*sorted(PS.vocabulary.declarations), "obligations", "bogus"]), values,
    max_size=6)
requests = st.builds(
    PolicyRequest,
    action=st.sampled_from(["send", "receive", "onward_transfer", "access", "erase"]),
    sender_node=st.just("AA-ONE"), sender_jurisdiction=codes, sender_roles=roles,
    recipient_node=st.just("BB-TWO"), recipient_jurisdiction=codes, recipient_roles=roles,
    template_id=st.sampled_from([*sorted(PS.facts.templates), "nope"]),
    template_version=st.just("1.0.0"), message_type=st.sampled_from(["", "evidence", "x"]),
    data_categories=st.frozensets(st.sampled_from(
        [*sorted(PS.vocabulary.subject_categories), "official_contact", "dna"]), max_size=4),
    legal_basis=st.sampled_from([*sorted(PS.facts.instruments), "none"]),
    declared=declared)
times = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1),
                     timezones=st.just(UTC))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests, times)
def test_any_request_gets_a_well_formed_decision(req: PolicyRequest, at: datetime) -> None:
    d = PS.decide(req, at)
    assert d.outcome in OUTCOMES
    if d.error is not None:
        assert d.outcome == "deny"
    if d.outcome == "allow":
        assert d.policy_ids and all(h.effect in ("basis", "obligation") for h in d.hits)
    if d.outcome == "needs":
        assert d.missing
    if d.outcome == "review":
        assert d.reviewers


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests, times)
def test_slicing_never_changes_a_decision(req: PolicyRequest, at: datetime) -> None:
    sliced = PS.decide(req, at)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Guard, "admits", lambda _self, _key: True)
        FULL._slices.clear()
        full = FULL.decide(req, at)
        FULL._slices.clear()
    assert (sliced.outcome, sliced.policy_ids, sliced.missing) == (
        full.outcome, full.policy_ids, full.missing)


@settings(max_examples=100, deadline=None)
@given(requests, st.sampled_from([RuntimeError, ValueError, KeyError, TypeError,
                                  MemoryError, OverflowError]),
       st.integers(min_value=0, max_value=1))
def test_any_engine_error_denies(req: PolicyRequest, error: type[Exception],
                                 fail_on_call: int) -> None:
    """Cedar raising on its first or second evaluation (review path) always denies."""
    real = engine_module.cedarpy.is_authorized
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > fail_on_call:
            raise error("injected")
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_module, "RESULT_CACHE", 0)  # evaluate, not remember
        mp.setattr(engine_module.cedarpy, "is_authorized", flaky)
        d = PS.decide(req, datetime(2026, 11, 23, tzinfo=UTC) + timedelta(hours=1))
    if calls["n"] > fail_on_call:
        assert d.outcome == "deny" and d.error
