"""The attachment spool: blocking steps run in order on one thread, a bounded number
ahead of the caller; a failed step stops the rest and reaches the caller."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from broker.services.spool import Spool

pytestmark = pytest.mark.timeout(30)


async def test_steps_run_in_order_off_the_event_loop() -> None:
    seen: list[tuple[int, str]] = []
    loop_thread = threading.current_thread().name
    with Spool(depth=2) as spool:
        for i in range(50):
            await spool.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
        await spool.drain()
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} != {loop_thread}
    assert len({name for _, name in seen}) == 1


async def test_the_caller_waits_when_depth_steps_are_pending() -> None:
    gate = threading.Event()
    with Spool(depth=2) as spool:
        await spool.submit(gate.wait)
        await spool.submit(lambda: None)
        third = asyncio.create_task(spool.submit(lambda: None))
        await asyncio.sleep(0.05)
        assert not third.done()  # two steps pending: the third submit blocks
        gate.set()
        await asyncio.wait_for(third, 5)
        await spool.drain()


async def test_a_failed_step_stops_later_steps_and_reaches_the_caller() -> None:
    ran: list[int] = []

    def fail() -> None:
        raise ValueError("chunk failed authentication")

    with Spool(depth=8) as spool:
        await spool.submit(ran.append, 1)
        await spool.submit(fail)
        await spool.submit(ran.append, 3)
        with pytest.raises(ValueError, match="authentication"):
            await spool.drain()
    assert ran == [1]


async def test_close_waits_for_the_running_step_and_drops_the_queued() -> None:
    ran: list[str] = []

    def slow() -> None:
        time.sleep(0.1)
        ran.append("slow")

    spool = Spool(depth=4)
    await spool.submit(slow)
    await spool.submit(ran.append, "queued")
    await asyncio.sleep(0.02)
    spool.close()
    assert ran == ["slow"]  # the running step finished, the queued one never ran


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Spool(depth=0)
