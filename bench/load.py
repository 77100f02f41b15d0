"""Load generators: closed loop (fixed requests in flight) and open loop (paced rate).

Both take `op`, an async callable that performs one request and returns the
`perf_counter()` time it completed (for the system: when the delivery was seen), and
count only requests that complete inside the measured window, after a warm-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.stats import RunStats

Op = Callable[[], Awaitable[float]]
OP_TIMEOUT_S = 60.0


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def closed_loop(op: Op, *, concurrency: int, warmup_s: float,
                      measure_s: float) -> RunStats:
    """`concurrency` workers, each sending its next request as soon as one completes."""
    tally = _Tally()
    start = time.perf_counter()
    t_measure, t_end = start + warmup_s, start + warmup_s + measure_s

    async def worker() -> None:
        while (t0 := time.perf_counter()) < t_end:
            try:
                t1 = await asyncio.wait_for(op(), OP_TIMEOUT_S)
            except Exception as e:
                if t0 >= t_measure:
                    tally.errors.append(type(e).__name__ + ": " + str(e)[:200])
                await asyncio.sleep(0.01)   # a failing system must not be hammered
                continue
            if t_measure <= t1 <= t_end:
                tally.latencies.append(t1 - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return RunStats.of(tally.latencies, measure_s, concurrency=concurrency,
                       errors=len(tally.errors), error_samples=tally.errors)


async def open_loop(op: Op, *, rate: float, warmup_s: float, measure_s: float,
                    max_outstanding: int = 2048) -> RunStats:
    """Start requests at a fixed rate whatever the completions (no coordinated omission).

    Latency runs from each request's *scheduled* start, so a stalled client or system
    shows up as latency rather than as a silently lower rate.
    """
    tally = _Tally()
    interval = 1.0 / rate
    start = time.perf_counter()
    t_measure, t_end = start + warmup_s, start + warmup_s + measure_s
    tasks: set[asyncio.Task[None]] = set()
    skipped = 0

    async def one(t_sched: float) -> None:
        try:
            t1 = await asyncio.wait_for(op(), OP_TIMEOUT_S)
        except Exception as e:
            if t_sched >= t_measure:
                tally.errors.append(type(e).__name__ + ": " + str(e)[:200])
            return
        if t_measure <= t_sched < t_end:
            tally.latencies.append(t1 - t_sched)

    i = 0
    while (t_sched := start + i * interval) < t_end:
        delay = t_sched - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        i += 1
        if len(tasks) >= max_outstanding:
            skipped += 1
            continue
        task = asyncio.create_task(one(t_sched))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return RunStats.of(tally.latencies, measure_s, offered_rate=rate,
                       errors=len(tally.errors) + skipped,
                       error_samples=[*tally.errors, *(["client: max outstanding reached"]
                                                       if skipped else [])])
