"""Publishes the node's journal to the audit sink (Kafka), in order, at least once.

The journal in the node's store is the source of truth: a record is committed there with
its state change before it is published. The publisher resends from the last
acknowledged sequence after any failure, so an outage of the sink delays records but
never loses or reorders them. While the unpublished backlog is over the limit the node
refuses new exchanges (fail closed, NIST AU-5): `gate()` raises.
"""

from __future__ import annotations

import asyncio
import contextlib

from broker.config import AuditPolicy
from broker.errors import ConfigError, RogatoryError, TransportError
from broker.ports import AuditSink, Store
from broker.services.context import log

CURSOR = "audit_published_seq"


class AuditBacklogFull(TransportError):
    code = "AUDIT_BACKLOG"


class AuditPublisher:
    def __init__(self, store: Store, sink: AuditSink, *, node_id: str,
                 policy: AuditPolicy) -> None:
        self.store = store
        self.sink = sink
        self.node_id = node_id
        self.policy = policy
        self.published = 0
        self.healthy = True
        self.last_error = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.published = int(await self.store.get_meta(CURSOR) or 0)
        self._task = asyncio.create_task(self._run(), name="audit-publisher")

    def wake(self) -> None:
        self._wake.set()

    @property
    def backlog(self) -> int:
        return self.store.audit_sequence - self.published

    def gate(self) -> None:
        """Raise if the node must refuse new exchanges because audit cannot keep up."""
        if self.backlog > self.policy.backlog_limit:
            raise AuditBacklogFull(
                f"{self.backlog} audit records await publication; new exchanges are refused "
                "until the audit log is reachable again")

    async def _run(self) -> None:
        delay = 0.2
        while True:
            batch = await self.store.audit_entries(self.published, self.policy.publish_batch)
            if not batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                continue
            try:
                await self.sink.publish(self.node_id, batch)
            except (TransportError, ConfigError) as e:
                if self.healthy or e.code != self.last_error:
                    log.error("audit.publish_failed", reason=e.code, backlog=self.backlog)
                self.healthy, self.last_error = False, e.code
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.published = batch[-1][0]
            await self.store.set_meta(CURSOR, str(self.published))
            if not self.healthy:
                log.info("audit.publish_resumed", published=self.published)
            self.healthy, self.last_error, delay = True, "", 0.2

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Try to publish what is left (bounded), then stop and flush the sink."""
        if self._task is None:
            return
        deadline = asyncio.get_running_loop().time() + drain_timeout_s
        while self.backlog > 0 and self.healthy and asyncio.get_running_loop().time() < deadline:
            self.wake()
            await asyncio.sleep(0.05)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RogatoryError):
            await self._task
        self._task = None
        await self.sink.close()
