"""Retry backoff: exponential growth, a hard cap, and jitter drawn from the given RNG.

For the k-th retry (1-based) the ceiling is min(max, initial * multiplier^(k-1)) and the
delay is drawn from [ceiling / 2, ceiling].
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.config import DeliveryPolicy
from broker.services.delivery import backoff_ms

pytestmark = pytest.mark.unit

POLICY = DeliveryPolicy()
INITIAL, MAX, MULT = POLICY.initial_backoff_ms, POLICY.max_backoff_ms, POLICY.multiplier


def backoff(attempt: int, rng: random.Random, *, initial: int = INITIAL, max_ms: int = MAX,
            multiplier: float = MULT) -> int:
    return backoff_ms(attempt, initial_ms=initial, max_ms=max_ms, multiplier=multiplier,
                      rng=rng)


def ceiling(attempt: int, *, initial: int = INITIAL, max_ms: int = MAX,
            multiplier: float = MULT) -> float:
    return min(max_ms, initial * multiplier ** max(0, attempt - 1))


@pytest.mark.parametrize("attempt", range(1, 40))
def test_delay_within_half_ceiling_and_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    top = ceiling(attempt)
    for _ in range(50):
        delay = backoff(attempt, rng)
        assert top / 2 - 1 <= delay <= top


def test_ceiling_grows_exponentially_until_the_cap() -> None:
    """With the default policy: 500, 1000, 2000, ... ms, then 5 minutes from then on."""
    expected = [500 * 2**k for k in range(10)]
    assert [ceiling(a) for a in range(1, 11)] == [min(MAX, e) for e in expected]
    rng = random.Random(1)
    first = [backoff(a, rng) for a in range(1, 10)]
    assert all(250 * 2**k <= d <= 500 * 2**k for k, d in enumerate(first))


@settings(max_examples=200, deadline=None)
@given(attempt=st.integers(1, 9), seed=st.integers(0, 2**32))
def test_next_delay_never_shorter_than_this_one_below_the_cap(attempt: int, seed: int) -> None:
    """Doubling makes the next lower bound equal this ceiling: until the cap is reached
    (attempt 11 with the default policy), delays never shrink.
    """
    assert ceiling(attempt + 1) == 2 * ceiling(attempt)
    rng = random.Random(seed)
    assert backoff(attempt + 1, rng) >= backoff(attempt, rng) - 1


@pytest.mark.parametrize("attempt", [11, 12, 50, 100, 1_023, 1_024, 1_025, 2_016, 10**6])
def test_delay_capped_at_maximum(attempt: int) -> None:
    """A week-long TTL with 5-minute retries reaches ~2000 attempts; the float power
    `multiplier ** (attempt - 1)` overflows past 1024 doublings, and must not crash the
    retry (which would leave the item due at once, i.e. retried in a hot loop).
    """
    rng = random.Random(7)
    for _ in range(20):
        assert MAX / 2 - 1 <= backoff(attempt, rng) <= MAX


@pytest.mark.parametrize("attempt", [0, -1, 1])
def test_first_retry_uses_initial_delay(attempt: int) -> None:
    rng = random.Random(3)
    for _ in range(20):
        assert INITIAL / 2 - 1 <= backoff(attempt, rng) <= INITIAL


def test_small_multiplier_and_custom_cap() -> None:
    rng = random.Random(5)
    assert 500 <= backoff(2, rng, initial=1_000, multiplier=1.0) <= 1_000
    assert 750 <= backoff(2, rng, initial=1_000, multiplier=1.5) <= 1_500
    assert 500 <= backoff(30, rng, initial=100, max_ms=1_000, multiplier=3.0) <= 1_000


def test_jitter_differs_across_draws_of_a_seeded_rng() -> None:
    """Many senders retrying after a shared outage must not retry in lock-step."""
    rng = random.Random(42)
    for attempt in (1, 5, 20):
        draws = [backoff(attempt, rng) for _ in range(32)]
        assert len(set(draws)) > 16


def test_jitter_is_reproducible_for_the_same_seed_and_differs_across_seeds() -> None:
    a = [backoff(k, random.Random(99)) for k in range(1, 30)]
    b = [backoff(k, random.Random(99)) for k in range(1, 30)]
    c = [backoff(k, random.Random(100)) for k in range(1, 30)]
    assert a == b
    assert a != c


def test_delay_is_an_integer() -> None:
    assert isinstance(backoff(3, random.Random(0)), int)
