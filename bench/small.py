"""Scenario `small`: ~2 KiB preservation requests end to end between two node processes.

System: the bench sends through the sender's operator API (grpc.aio, one channel) and a
request is complete when the sender's journal shows `envelope.delivered`, i.e. the
receiver's signed receipt was verified and committed at the sender (bench/journal.py).
Closed loop at 16 and 64 requests in flight, then an open loop paced at half the
best closed-loop rate.

Baseline, same run, same machine: a raw grpcio asyncio unary call with the same payload
bytes over mutual TLS (same federation certificates, same channel options) to a trivial
handler in a separate process, at the same concurrencies and the same paced rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import cluster as cl
from bench import journal, procs, rawgrpc
from bench.load import closed_loop, open_loop
from bench.opclient import AsyncOperatorClient
from bench.options import Options
from bench.payload import preservation_payload
from bench.procs import CpuSnapshot
from bench.report import Results, Row, echo
from bench.stats import RunStats, percentile

CONCURRENCY = (16, 64)
RATIO_TARGET = 0.30
P99_TARGET_MS = 25.0
MESSAGE_TYPE = "preservation"


class _SystemLoad:
    """One closed- or open-loop run against the node pair, with its bookkeeping."""

    def __init__(self, client: AsyncOperatorClient, watch: journal.DeliveryWatch,
                 payload: bytes) -> None:
        self.client = client
        self.watch = watch
        self.payload = payload
        self.sent: dict[str, float] = {}   # message id -> seconds the operator Send RPC took
        self.completed = 0

    async def op(self) -> float:
        t0 = time.perf_counter()
        result = await self.client.send(to=cl.RECEIVER, message_type=MESSAGE_TYPE,
                                        payload=self.payload, timeout_s=60)
        mid = result.message.message_id
        self.sent[mid] = time.perf_counter() - t0
        try:
            done = await self.watch.wait(mid)
        except asyncio.CancelledError:
            self.watch.forget(mid)
            raise
        self.completed += 1
        return done


async def _system(c: cl.Cluster, opts: Options) -> dict[str, Any]:
    client = AsyncOperatorClient(c.sender.config)
    payload = preservation_payload()
    runs: dict[str, Any] = {}
    pids = {"sender": c.sender.pid, "receiver": c.receiver.pid, "bench client": os.getpid()}
    try:
        async with journal.DeliveryWatch(c.sender.db) as watch:
            for label, plan in _plans(opts):
                if label == "paced":
                    peak = max(runs[f"c{n}"]["stats"]["rate"] for n in _levels(opts))
                    plan["rate"] = peak / 2
                runs[label] = await _measure(label, plan, opts, client, watch, payload, pids)
            runs["validation"] = await _validate(client, runs)
            runs["probe_costs_ms"] = await _probe_costs(client, c)
    finally:
        await client.close()
    runs["breakdown"] = _breakdown(c, runs)
    return runs


def _levels(opts: Options) -> tuple[int, ...]:
    return opts.concurrency or CONCURRENCY


def _plans(opts: Options) -> list[tuple[str, dict[str, Any]]]:
    plans: list[tuple[str, dict[str, Any]]] = [
        (f"c{n}", {"concurrency": n}) for n in _levels(opts)]
    if opts.profiling:
        return plans
    return [*plans, ("paced", {})]


async def _measure(label: str, plan: dict[str, Any], opts: Options,
                   client: AsyncOperatorClient, watch: journal.DeliveryWatch, payload: bytes,
                   pids: dict[str, int]) -> dict[str, Any]:
    load = _SystemLoad(client, watch, payload)
    retries_before = watch.retries.copy()
    before = CpuSnapshot.take(list(pids.values()))
    if "rate" in plan:
        stats = await open_loop(load.op, rate=plan["rate"], warmup_s=opts.warmup_s,
                                measure_s=opts.system_measure_s)
    else:
        stats = await closed_loop(load.op, concurrency=plan["concurrency"],
                                  warmup_s=opts.warmup_s, measure_s=opts.system_measure_s)
    cpu = CpuSnapshot.take(list(pids.values())).since(before)
    per_request = {name: {k: round(v / max(load.completed, 1) * 1000, 3)
                          for k, v in cpu[pid].items()}
                   for name, pid in pids.items() if pid in cpu}
    echo(f"  small/system {label}: {_line(stats)}")
    return {"stats": asdict(stats), "completed_total": load.completed,
            "retries": sum((watch.retries - retries_before).values()),
            "retry_reasons": dict(watch.retries - retries_before),
            "cpu_ms_per_request": per_request, "sent": load.sent}


def _reasons(run: dict[str, Any]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in run["retry_reasons"].items())


def _line(s: RunStats) -> str:
    return (f"{s.rate:.1f} req/s, p50 {s.p50_ms:.1f} ms, p99 {s.p99_ms:.1f} ms, "
            f"n={s.completed}, errors={s.errors}")


async def _validate(client: AsyncOperatorClient, runs: dict[str, Any]) -> dict[str, Any]:
    """Ask the node itself, for a sample of the messages, whether the receipt verifies."""
    ids = [mid for r in runs.values() if isinstance(r, dict) and "sent" in r
           for mid in r["sent"]]
    sample = random.sample(ids, min(20, len(ids)))
    verified = 0
    for mid in sample:
        with contextlib.suppress(Exception):
            verified += bool((await client.receipt(mid)).verified)
    return {"sampled": len(sample), "receipt_verified": verified}


async def _probe_costs(client: AsyncOperatorClient, c: cl.Cluster) -> dict[str, float]:
    """What the rejected completion probes cost per call on an idle node (for the README)."""
    out = {}
    mid = next(iter(journal.event_times(c.sender.db, journal.DELIVERED)), "")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "ListMessages(outgoing, limit=100)": lambda: client.list("outgoing", 100),
        "GetReceipt": lambda: client.receipt(mid)}
    for name, call in calls.items():
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            with contextlib.suppress(Exception):
                await call()
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = round(percentile(times, 50), 3)
    return out


def _breakdown(c: cl.Cluster, runs: dict[str, Any]) -> dict[str, Any]:
    """Median and p99 (ms) of each phase, from client clocks and the nodes' journals."""
    sent_ms = journal.event_times(c.sender.db, "envelope.sent")
    received_ms = journal.event_times(c.receiver.db, "envelope.received")
    delivered_ms = journal.event_times(c.sender.db, journal.DELIVERED)
    out = {}
    for label, run in runs.items():
        if not isinstance(run, dict) or "sent" not in run:
            continue
        phases: dict[str, list[float]] = {"operator Send RPC": [], "outbox -> stored at receiver":
                                          [], "stored at receiver -> receipt verified": []}
        for mid, rpc_s in run.pop("sent").items():
            phases["operator Send RPC"].append(rpc_s * 1000)
            if mid in sent_ms and mid in received_ms and mid in delivered_ms:
                phases["outbox -> stored at receiver"].append(received_ms[mid] - sent_ms[mid])
                phases["stored at receiver -> receipt verified"].append(
                    delivered_ms[mid] - received_ms[mid])
        out[label] = {k: {"p50": round(percentile(v, 50), 2), "p99": round(percentile(v, 99), 2)}
                      for k, v in phases.items() if v}
    return out


async def _baseline(c: cl.Cluster, opts: Options, paced_rate: float | None) -> dict[str, Any]:
    key, cert, ca = c.tls(cl.SENDER)
    server_key, server_cert, _ = c.tls(cl.RECEIVER)
    proc, port = rawgrpc.start(key=server_key, cert=server_cert, ca=ca,
                               log=c.root / "rawgrpc-small.log")
    payload = preservation_payload()
    runs: dict[str, Any] = {}
    try:
        channel = rawgrpc.channel(port, key=key, cert=cert, ca=ca, server_node=cl.RECEIVER)
        echo_call = channel.unary_unary(rawgrpc.ECHO)

        async def op() -> float:
            await echo_call(payload, timeout=30)
            return time.perf_counter()

        await channel.channel_ready()
        for n in _levels(opts):
            s = await closed_loop(op, concurrency=n, warmup_s=min(1.0, opts.warmup_s),
                                  measure_s=opts.baseline_measure_s)
            echo(f"  small/baseline c{n}: {_line(s)}")
            runs[f"c{n}"] = {"stats": asdict(s)}
        if paced_rate:
            s = await open_loop(op, rate=paced_rate, warmup_s=min(1.0, opts.warmup_s),
                                measure_s=opts.baseline_measure_s)
            echo(f"  small/baseline paced {paced_rate:.1f}/s: {_line(s)}")
            runs["paced"] = {"stats": asdict(s)}
        await channel.close()
    finally:
        procs.stop([proc])
    return runs


def run(opts: Options, results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="rogatory-bench-small-", dir=opts.workdir) as tmp:
        root = Path(tmp)
        echo("small: starting two node processes")
        with cl.running(root, profile_dir=opts.profile_dir, profiler=opts.profiler) as c:
            system = asyncio.run(_system(c, opts))
        paced = system.get("paced", {}).get("stats", {}).get("offered_rate")
        baseline = {} if opts.profiling else asyncio.run(_baseline(c, opts, paced))
    results.details["small"] = {"system": system, "baseline": baseline,
                                "payload_bytes": len(preservation_payload()),
                                "watch_poll_s": journal.DeliveryWatch.poll_s}
    _rows(results, system, baseline, opts)


def _rows(results: Results, system: dict[str, Any], baseline: dict[str, Any],
          opts: Options) -> None:
    judge = not opts.profiling
    for label in [f"c{n}" for n in _levels(opts)] + ["paced"]:
        if label not in system:
            continue
        s = system[label]["stats"]
        b = baseline.get(label, {}).get("stats")
        where = (f"{s['concurrency']} in flight" if label != "paced"
                 else f"paced {s['offered_rate']:.0f}/s (half peak)")
        retries = system[label]["retries"]
        cpu = system[label]["cpu_ms_per_request"]
        note = "CPU per request: " + ", ".join(
            f"{name} {c['total']:.1f} ms" + (f" (event loop {c['main']:.1f})"
                                             if name != "bench client" else "")
            for name, c in cpu.items())
        if retries:
            note += f"; {retries} delivery retries ({_reasons(system[label])})"
        if label != "paced":
            ratio = s["rate"] / b["rate"] if b else None
            results.rows.append(Row(
                "small", f"requests/s, {where}", s["rate"], "req/s",
                baseline=b["rate"] if b else None, baseline_name="raw grpc unary" if b else "",
                ratio=ratio, target=f">= {RATIO_TARGET}" if judge else "",
                met=(ratio >= RATIO_TARGET) if judge and ratio is not None else None,
                note=note))
        for q in ("p50", "p99"):
            is_target = label == "paced" and q == "p99" and judge
            results.rows.append(Row(
                "small", f"{q} latency, {where}", s[f"{q}_ms"], "ms",
                baseline=b[f"{q}_ms"] if b else None,
                baseline_name="raw grpc unary" if b else "",
                target=f"< {P99_TARGET_MS:.0f} ms" if is_target else "",
                met=(s[f"{q}_ms"] < P99_TARGET_MS) if is_target else None,
                note=note if label == "paced" and q == "p99" else ""))
