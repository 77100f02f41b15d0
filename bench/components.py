"""`python -m bench.components`: where one small request's CPU goes, without transport.

Not a scenario (no baseline, no target): a cost model to read beside `small`. It
times, in this one process and one at a time, the service-level steps one ~2 KiB
preservation request takes on each node, using the real services over a real SQLite
store (WAL, synchronous=FULL) in a temporary folder, and no gRPC:

sender:   operator JWT check, Outgoing.send (JSON parse, template validation, policy
          decision, build_envelope, at-rest sealing, outbox commit), verify_receipt, one journal
          commit (as mark_delivered does);
receiver: Incoming.accept (verify_envelope, dedup lookup, template validation, policy
          decision, receipt, commit);
and the pure pieces inside them (template validation, build/verify envelope).

The difference between these and the CPU per request measured by `small` is what the
gRPC servers/clients, asyncio, the delivery loop and logging cost.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from bench import cluster as cl
from bench.payload import preservation_payload
from bench.stats import percentile
from broker.adapters.grpc.auth import TokenVerifier, mint_token
from broker.audit import AuditEvent, EventType
from broker.crypto import sha256
from broker.envelope import build_envelope, verify_envelope
from broker.ports import WireChunk
from broker.receipts import verify_receipt
from broker.services.context import NodeContext
from broker.services.incoming import Incoming
from broker.services.outgoing import Outgoing, SendRequest
from broker.services.policy_gate import decide
from nodes.config import NodeConfig, load_config
from nodes.logs import configure_logging
from nodes.node import AgencyNode, wall_clock_ms

N = 300


async def _no_chunks() -> AsyncIterator[tuple[int, bytes]]:
    return
    yield  # pragma: no cover - makes this an async generator


async def _no_wire_chunks() -> AsyncIterator[WireChunk]:
    return
    yield  # pragma: no cover - makes this an async generator


async def _time(fn: Callable[[], Awaitable[Any]], n: int = N) -> tuple[dict[str, float], list[Any]]:
    """Median wall ms of `n` sequential calls, mean process CPU ms (all threads: the
    SQLite store thread included), and what the calls returned."""
    out, times = [], []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        out.append(await fn())
        times.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / n
    return {"wall_p50_ms": round(percentile(times, 50), 3), "cpu_ms": round(cpu, 3)}, out


def _sync(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return fn()
    return call


async def measure(root: Path) -> dict[str, dict[str, float]]:
    configs = {k: load_config(v) for k, v in cl.make_federation(root).items()}
    scfg = configs[cl.SENDER]
    # The nodes are built exactly as the daemon builds them (in this process), then the
    # sender's delivery loop is stopped so that nothing runs behind the timed calls.
    nodes = [AgencyNode(configs[cl.SENDER]), AgencyNode(configs[cl.RECEIVER])]
    started = []
    try:
        for node in nodes:
            await node.start()
            started.append(node)
        if nodes[0]._delivery is not None:
            await nodes[0]._delivery.stop()
        assert nodes[0].ctx is not None
        assert nodes[1].ctx is not None
        return await _measure(nodes[0].ctx, nodes[1].ctx, scfg)
    finally:
        for node in started:
            await node.stop(grace=0.5)


async def _measure(sender: NodeContext, receiver: NodeContext,
                   scfg: NodeConfig) -> dict[str, dict[str, float]]:
    payload = preservation_payload()
    template = sender.templates.default_for_message_type("preservation")
    key = serialization.load_pem_private_key(scfg.operator_issuer_key.read_bytes(), None)
    pub = serialization.load_pem_public_key(scfg.operator_issuer_public_key.read_bytes())
    verifier = TokenVerifier(pub, issuer=scfg.operator_issuer, audience=scfg.operator_audience)
    now_s = int(time.time())
    token = mint_token(key, issuer=scfg.operator_issuer, audience=scfg.operator_audience,
                       subject="bench", roles=["drafter"], now_s=now_s, lifetime_s=600,
                       token_id="x")
    res: dict[str, dict[str, float]] = {}
    res["sender: operator JWT verify"], _ = await _time(_sync(lambda: verifier.verify(token)))
    res["both: template validation (jsonschema)"], _ = await _time(
        _sync(lambda: template.validate(json.loads(payload))))

    doc = json.loads(payload)
    res["sender: policy decision (send, Cedar)"], _ = await _time(_sync(lambda: decide(
        sender, action="send", sender=cl.SENDER, recipient=cl.RECEIVER, template=template,
        message_type="preservation", payload=doc)))

    def build() -> Any:
        return build_envelope(
            signer=sender.signer, trust=sender.trust, sender=cl.SENDER,
            recipient=cl.RECEIVER, message_type="preservation", template_id=template.id,
            template_version=template.version, payload=payload, now_ms=wall_clock_ms(),
            ttl_ms=3_600_000)

    res["sender: build_envelope"], built = await _time(_sync(build))
    res["receiver: verify_envelope"], _ = await _time(_sync(lambda: verify_envelope(
        built[0][0], trust=receiver.trust, me=cl.RECEIVER, kem_key=receiver.kem_key,
        peer_identity=cl.SENDER, now_ms=wall_clock_ms(), limits=receiver.limits)))

    outgoing = Outgoing(sender)
    res["sender: Outgoing.send (parse+validate+policy+build+seal+commit)"], sent = await _time(
        lambda: outgoing.send(SendRequest(to=cl.RECEIVER, message_type="preservation",
                                          payload=payload), _no_chunks(),
                              actor="person:bench"))
    envelopes = iter([b[0] for b in built])
    incoming = Incoming(receiver)
    res["receiver: Incoming.accept (verify+dedup+validate+policy+receipt+commit)"], accepted = \
        await _time(lambda: incoming.accept(next(envelopes), _no_wire_chunks(),
                                            peer_identity=cl.SENDER))
    pairs = iter(zip(built, accepted, strict=True))

    def check() -> Any:
        (env, header), acc = next(pairs)
        return verify_receipt(acc.receipt, trust=sender.trust, receiver=cl.RECEIVER,
                              sender=cl.SENDER, envelope_id=header.envelope_id,
                              header_sha256=sha256(env.header), now_ms=wall_clock_ms())

    res["sender: verify_receipt"], _ = await _time(_sync(check))
    ids = iter(s.message.envelope_id for s in sent)
    res["sender: one journal commit (like mark_delivered)"], _ = await _time(
        lambda: sender.store.audit(AuditEvent(EventType.ENVELOPE_DELIVERED,
                                              actor=sender.actor,
                                              envelope_id=next(ids))))
    return res


def main() -> int:
    configure_logging(json_logs=True, quiet=True)   # the services log every message
    with tempfile.TemporaryDirectory(prefix="rogatory-bench-components-") as tmp:
        res = asyncio.run(measure(Path(tmp)))
    width = max(len(k) for k in res)
    print(f"{N} sequential calls each, one process, no gRPC; wall = median, CPU = mean "
          "over all threads")
    print(f"  {'step':<{width}}  {'wall ms':>8}  {'CPU ms':>7}")
    for name, m in res.items():
        print(f"  {name:<{width}}  {m['wall_p50_ms']:8.3f}  {m['cpu_ms']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
