"""Scenario `scale`: 2, 3, 10 and 30 nodes on loopback, all-to-all traffic.

Each node is its own `rogatory node run` process; one async operator client per node
sends ~2 KiB preservation requests to the other nodes in turn (closed loop, 2 in flight
per node). The figure is the aggregate rate of *delivered* requests (signed receipt
verified at the sender, counted from the senders' audit journals over the measured
window) and each node's RSS at the end. The baseline is the 2-node figure of the same
run; the target: no collapse (the aggregate stays within half of it on 2 cores) and
memory per node flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import cluster as cl
from bench.journal import event_times
from bench.opclient import AsyncOperatorClient
from bench.options import Options
from bench.payload import preservation_payload
from bench.report import Results, Row, echo
from nodes.config import load_config
from nodes.federation import AgencySpec, init_federation

# Budapest Convention parties (so a preservation request is lawful between any pair).
COUNTRIES = ["DE", "NL", "FR", "BE", "AT", "IT", "ES", "PT", "SE", "FI", "DK", "PL", "CZ",
             "SK", "HU", "RO", "BG", "HR", "SI", "EE", "LV", "LT", "IE", "LU", "GR", "CY",
             "MT", "NO", "CH", "GB"]
IN_FLIGHT_PER_NODE = 2


async def _load(clients: dict[str, AsyncOperatorClient], payload: bytes, seconds: float) -> int:
    ids = list(clients)
    stop = time.perf_counter() + seconds
    errors = 0

    async def worker(me: str, offset: int) -> None:
        nonlocal errors
        peers = [p for p in ids if p != me]
        i = offset
        while time.perf_counter() < stop:
            try:
                await clients[me].send(to=peers[i % len(peers)], message_type="preservation",
                                       payload=payload, timeout_s=30)
            except Exception:
                errors += 1
                await asyncio.sleep(0.05)
            i += 1

    await asyncio.gather(*(worker(me, k) for me in ids for k in range(IN_FLIGHT_PER_NODE)))
    return errors


def _delivered(c: cl.Cluster) -> int:
    return sum(len(event_times(n.db, "envelope.delivered")) for n in c.nodes.values())


def _measure(n: int, opts: Options, work: Path) -> dict[str, Any]:
    root = work / f"n{n}"
    configs = init_federation(root / "federation", [
        AgencySpec.parse(f"{COUNTRIES[i]}-N{i:02d}:central_authority") for i in range(n)],
        federation="rogatory-bench-scale")
    payload = preservation_payload()
    warmup, seconds = (1.0, 3.0) if opts.smoke else (3.0, 10.0)
    with cl.running(root, configs=configs) as c:
        async def drive() -> tuple[int, int, int]:
            clients = {nid: AsyncOperatorClient(load_config(p)) for nid, p in configs.items()}
            try:
                await _load(clients, payload, warmup)
                before = _delivered(c)
                errors = await _load(clients, payload, seconds)
                await asyncio.sleep(1.0)   # let in-flight deliveries finish their receipts
                return before, _delivered(c), errors
            finally:
                for client in clients.values():
                    await client.close()

        before, after, errors = asyncio.run(drive())
        rss = []
        for node in c.nodes.values():
            with contextlib.suppress(psutil.Error):
                rss.append(psutil.Process(node.pid).memory_info().rss)
    rate = (after - before) / (seconds + 1.0)
    mean_rss = sum(rss) / len(rss) / 2**20 if rss else 0.0
    echo(f"  scale {n} nodes: {rate:,.1f} delivered/s, {errors} send errors, "
         f"RSS per node {mean_rss:.0f} MiB (max {max(rss, default=0) / 2**20:.0f})")
    return {"rate": rate, "rss_mib": mean_rss, "errors": errors}


def run(opts: Options, results: Results) -> None:
    sizes = (2, 3) if opts.smoke else (2, 3, 10, 30)
    with tempfile.TemporaryDirectory(prefix="rogatory-bench-scale-", dir=opts.workdir) as tmp:
        figures = {n: _measure(n, opts, Path(tmp)) for n in sizes}
    base = figures[2]
    results.details["scale"] = figures
    for n in sizes[1:]:
        f = figures[n]
        ratio = f["rate"] / base["rate"] if base["rate"] else None
        results.rows.append(Row("scale", f"{n} nodes all-to-all, delivered requests/s", f["rate"],
                                "req/s", baseline=base["rate"], baseline_name="2 nodes",
                                ratio=ratio, target=">= 0.5 (no collapse)",
                                met=ratio is not None and ratio >= 0.5))
        results.rows.append(Row("scale", f"{n} nodes: RSS per node", f["rss_mib"], "MiB",
                                baseline=base["rss_mib"], baseline_name="2 nodes",
                                ratio=base["rss_mib"] / f["rss_mib"] if f["rss_mib"] else None,
                                target="flat per node", met=f["rss_mib"] <= base["rss_mib"] * 1.5))
