"""Small statistics helpers (no numpy): percentiles and latency summaries."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class RunStats:
    """One load run: completed requests in the measured window, rate, latency (ms)."""

    concurrency: int | None
    offered_rate: float | None
    window_s: float
    completed: int
    rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int = 0
    error_samples: tuple[str, ...] = ()

    @classmethod
    def of(cls, latencies_s: Sequence[float], window_s: float, *,
           concurrency: int | None = None, offered_rate: float | None = None,
           errors: int = 0, error_samples: Sequence[str] = ()) -> RunStats:
        ms = [x * 1000 for x in latencies_s]
        return cls(concurrency=concurrency, offered_rate=offered_rate,
                   window_s=round(window_s, 3), completed=len(ms),
                   rate=len(ms) / window_s if window_s > 0 else math.nan,
                   p50_ms=percentile(ms, 50), p90_ms=percentile(ms, 90),
                   p99_ms=percentile(ms, 99), max_ms=max(ms) if ms else math.nan,
                   errors=errors, error_samples=tuple(dict.fromkeys(error_samples))[:5])
