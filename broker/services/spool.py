"""Overlap an attachment's blocking work (hash, AEAD, disk write) with its transfer.

The event loop receives chunk k+1 while a worker thread still hashes, seals or opens,
and writes chunk k. Steps run strictly in submission order on one thread (hashes and
STREAM counters depend on it), at most `depth` steps ahead of the caller, so memory
stays bounded by `depth` chunks whatever the attachment's size.

After a step fails no later step runs; the failure is raised to the caller at its
next `submit` or at `drain`. Leaving the `with` block (or `close()`) waits for the step
that is running, drops the queued ones and stops the thread, so nothing touches a
blob after the caller discarded it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import Callable
from typing import Any

DEFAULT_DEPTH = 3


class Spool:
    __slots__ = ("_depth", "_failed", "_pending", "_pool")

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._depth = depth
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                           thread_name_prefix="spool")
        self._pending: collections.deque[concurrent.futures.Future[None]] = \
            collections.deque()
        self._failed = False

    async def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)`; waits while `depth` steps are already queued or running."""
        while len(self._pending) >= self._depth:
            await self._settle_oldest()
        self._pending.append(self._pool.submit(self._step, fn, args))

    async def drain(self) -> None:
        """Wait until every queued step has run; raises the first step's failure."""
        while self._pending:
            await self._settle_oldest()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._failed = True  # queued steps that still start return at once
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    async def _settle_oldest(self) -> None:
        future = self._pending.popleft()
        await asyncio.wrap_future(future)

    def _step(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._failed:
            return
        try:
            fn(*args)
        except BaseException:
            self._failed = True
            raise
