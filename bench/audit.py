"""Scenario `audit`: append rates (embedded store, real Kafka) and the auditor's verify.

- Verify: a synthetic log of N records (default 1,000,000; smoke 20,000) for three nodes
  (DE-BFJ, US-OIA, NL-24X7) written by the real journal (hash chain, RFC 9162 leaves,
  signed checkpoints every 256 records) as exchanges that reconcile across nodes, into
  node stores; `rogatory audit verify --store ...` runs as its own process: records/s and
  its peak RSS, beside raw SHA-256 over the same record bytes in this process. Run at N
  and N/4: equal peak RSS means constant memory.
- Embedded append: `NodeStore.audit()` (one committed transaction per record, WAL,
  synchronous=FULL) beside raw sqlite3 inserts of same-size rows, one commit each.
- Kafka append (needs java and mvn): `KafkaAuditSink.publish` in batches of 500 beside
  raw aiokafka produce of the same bytes (idempotent, acks=all, same batches), against a
  real broker started by scripts/kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench import procs
from bench.options import Options
from bench.report import Results, Row, echo
from broker.adapters.kafka import KafkaAuditSink, ensure_topic
from broker.adapters.sqlite import NodeStore
from broker.audit import AuditEvent, EventType
from broker.audit.journal import Journal
from broker.crypto import SigningKey
from broker.model import MessageId
from nodes.config import load_config
from nodes.federation import AgencySpec, init_federation

REPO = Path(__file__).resolve().parent.parent
NODES = ("DE-BFJ", "US-OIA", "NL-24X7")
SCHEMA = ("CREATE TABLE audit (seq INTEGER PRIMARY KEY, record BLOB NOT NULL, "
          "record_hash BLOB NOT NULL, leaf_hash BLOB NOT NULL)")


def _federation(root: Path) -> dict[str, Path]:
    return init_federation(root, [AgencySpec.parse(f"{n}:central_authority") for n in NODES])


def _synthetic_log(configs: dict[str, Path], total: int, out: Path) -> list[Path]:
    """~`total` records over three nodes: each exchange is sent+delivered at the sender
    and received at the recipient, so cross-node reconciliation has work to do."""
    signers = {n: SigningKey.from_pem(load_config(p).signing_key.read_bytes())
               for n, p in configs.items()}
    journals = {n: Journal(n, signers[n], checkpoint_every=256) for n in NODES}
    dbs = {}
    for n in NODES:
        path = out / f"{n}.db"
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(SCHEMA)
        dbs[n] = db
    pending: dict[str, list[tuple[int, bytes, bytes, bytes]]] = {n: [] for n in NODES}

    def put(node: str, event: AuditEvent, t: int) -> None:
        j = journals[node]
        entries = [j.append(event, t)]
        if j.due():
            entries.append(j.checkpoint(t))
        pending[node] += [(e.sequence, e.record, e.record_hash, e.leaf_hash) for e in entries]
        if len(pending[node]) >= 5000:
            dbs[node].executemany("INSERT INTO audit VALUES (?, ?, ?, ?)", pending[node])
            pending[node].clear()

    t, i = 1_790_000_000_000, 0
    while sum(j.sequence for j in journals.values()) < total:
        sender, recipient = NODES[i % 3], NODES[(i + 1) % 3]
        eid, h = MessageId.new(), hashlib.sha256(i.to_bytes(8, "big")).digest()
        common = {"envelope_id": eid, "message_type": "preservation",
                  "template_id": "coe-art29-preservation", "template_version": "1.0.0",
                  "header_sha256": h, "body_sha256": h}
        put(sender, AuditEvent(EventType.ENVELOPE_SENT, actor="person:bench", peer=recipient,
                               recipients=(recipient,), **common), t)
        put(recipient, AuditEvent(EventType.ENVELOPE_RECEIVED, actor=f"node:{recipient}",
                                  peer=sender, **common), t + 5)
        put(sender, AuditEvent(EventType.ENVELOPE_DELIVERED, actor=f"node:{sender}",
                               peer=recipient, recipients=(recipient,), **common), t + 9)
        t, i = t + 10, i + 1
    for n in NODES:
        if pending[n]:
            dbs[n].executemany("INSERT INTO audit VALUES (?, ?, ?, ?)", pending[n])
        dbs[n].commit()
        dbs[n].close()
    return [out / f"{n}.db" for n in NODES]


def _raw_sha256(stores: list[Path]) -> tuple[int, float]:
    """Records/s of hashing the same record bytes, read the same way (SQLite cursor)."""
    count, t0 = 0, time.perf_counter()
    for path in stores:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            for (record,) in db.execute("SELECT record FROM audit ORDER BY seq"):
                hashlib.sha256(record).digest()
                count += 1
    return count, count / (time.perf_counter() - t0)


def _verify(stores: list[Path], config: Path, log: Path) -> tuple[dict[str, object], float, int]:
    args = ["-m", "nodes.cli", "audit", "verify", "--json", "--config", str(config)]
    for s in stores:
        args += ["--store", str(s)]
    proc = procs.spawn(args, log, stdout_pipe=True)
    with procs.RssSampler({"verify": proc.pid}) as rss:
        t0 = time.perf_counter()
        out, _ = proc.communicate(timeout=3600)
        elapsed = time.perf_counter() - t0
    result = json.loads(out)
    # the replay itself, as the command times it (process start-up is not verification)
    return result, float(result.get("elapsed_s") or elapsed), rss.peak.get("verify", 0)


def _verify_rows(opts: Options, results: Results, work: Path) -> None:
    total = 20_000 if opts.smoke else 1_000_000
    configs = _federation(work / "fed")
    figures = {}
    for n in (total // 4, total):
        folder = work / f"log-{n}"
        folder.mkdir()
        t0 = time.perf_counter()
        stores = _synthetic_log(configs, n, folder)
        echo(f"  audit: {n:,} records generated in {time.perf_counter() - t0:.1f} s")
        result, elapsed, peak = _verify(stores, configs["DE-BFJ"], work / "verify.log")
        if not result["ok"]:
            raise RuntimeError(f"verify found {len(result['findings'])} findings in a clean log")
        count, raw = _raw_sha256(stores)
        figures[n] = (int(result["records"]) / elapsed, raw, peak, count)
        echo(f"  audit verify {n:,}: {figures[n][0]:,.0f} records/s, raw SHA-256 "
             f"{raw:,.0f}/s, peak RSS {peak / 2**20:.0f} MiB")
    rate, raw, peak, count = figures[total]
    small_peak = figures[total // 4][2]
    results.rows.append(Row("audit", f"audit verify, {count:,} records, 3 nodes", rate,
                            "records/s", baseline=raw, baseline_name="raw SHA-256 of the records",
                            ratio=rate / raw, target=">= 100,000 records/s",
                            met=rate >= 100_000))
    results.rows.append(Row("audit", "audit verify peak RSS", peak / 2**20, "MiB",
                            baseline=small_peak / 2**20,
                            baseline_name=f"peak RSS at {total // 4:,} records",
                            ratio=small_peak / peak if peak else None,
                            target="constant memory (ratio ~ 1)",
                            met=peak <= small_peak * 1.25))


def _embedded_rows(opts: Options, results: Results, work: Path) -> None:
    n = 300 if opts.smoke else 3000
    store = NodeStore(work / "append.db", node_id="DE-BFJ", clock=lambda: 0,
                      signer=SigningKey.generate())
    event = AuditEvent(EventType.ENVELOPE_SENT, actor="person:bench", envelope_id=MessageId.new(),
                       peer="US-OIA", header_sha256=bytes(32), body_sha256=bytes(32))

    async def ours() -> float:
        await store.open()
        t0 = time.perf_counter()
        for _ in range(n):
            await store.audit(event)
        rate = n / (time.perf_counter() - t0)
        await store.close()
        return rate

    rate = asyncio.run(ours())
    size = len(store.journal.last_checkpoint) or 200
    raw_db = sqlite3.connect(work / "raw.db", isolation_level=None)
    raw_db.execute("PRAGMA journal_mode=WAL")
    raw_db.execute("PRAGMA synchronous=FULL")
    raw_db.execute(SCHEMA)
    row = (bytes(size), bytes(32), bytes(32))
    t0 = time.perf_counter()
    for i in range(n):
        raw_db.execute("BEGIN IMMEDIATE")
        raw_db.execute("INSERT INTO audit VALUES (?, ?, ?, ?)", (i + 1, *row))
        raw_db.execute("COMMIT")
    raw = n / (time.perf_counter() - t0)
    raw_db.close()
    echo(f"  audit append (embedded): {rate:,.0f} records/s, raw SQLite commit {raw:,.0f}/s")
    results.rows.append(Row("audit", "audit append, embedded store (1 record per commit)", rate,
                            "records/s", baseline=raw, baseline_name="raw SQLite insert+commit",
                            ratio=rate / raw, target=">= 0.5", met=rate / raw >= 0.5))


def _kafka_rows(opts: Options, results: Results, work: Path) -> None:
    if shutil.which("java") is None or shutil.which("mvn") is None:
        results.warnings.append("audit: no java/mvn, Kafka append not measured")
        return
    kdir = work / "kafka"
    script = [sys.executable, str(REPO / "scripts" / "kafka")]
    out = subprocess.run([*script, "start", "--dir", str(kdir), "--port", "0"], check=True,
                         capture_output=True, text=True, timeout=300)
    bootstrap = out.stdout.strip().splitlines()[-1]
    n = 5_000 if opts.smoke else 100_000
    record = bytes(220)
    try:
        ours, raw = asyncio.run(_kafka_rates(bootstrap, n, record))
    finally:
        # the broker is this scenario's own work, not another process disturbing it
        with contextlib.suppress(OSError, ValueError, IndexError):
            procs.count_detached([int(p.read_text().split()[0])
                                  for p in kdir.glob("node-*/kafka.pid")])
        subprocess.run([*script, "stop", "--dir", str(kdir)], check=False, capture_output=True,
                       timeout=120)
    echo(f"  audit append (Kafka): {ours:,.0f} records/s, raw aiokafka {raw:,.0f}/s")
    results.rows.append(Row("audit", "audit append to Kafka (batches of 500)", ours, "records/s",
                            baseline=raw, baseline_name="aiokafka raw produce, same batches",
                            ratio=ours / raw, target=">= 0.5", met=ours / raw >= 0.5))


async def _kafka_rates(bootstrap: str, n: int, record: bytes) -> tuple[float, float]:
    await ensure_topic(bootstrap, "bench.ours")
    await ensure_topic(bootstrap, "bench.raw")
    batches = [[(i + j + 1, record) for j in range(500)] for i in range(0, n, 500)]
    sink = KafkaAuditSink(bootstrap, "bench.ours", min_retention_ms=0)
    await sink.publish("DE-BFJ", batches[0])  # connect and check the topic
    t0 = time.perf_counter()
    for batch in batches:
        await sink.publish("DE-BFJ", batch)
    ours = n / (time.perf_counter() - t0)
    await sink.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        await (await producer.send("bench.raw", record, key=b"DE-BFJ"))
        t0 = time.perf_counter()
        for batch in batches:
            futures = [await producer.send("bench.raw", value, key=b"DE-BFJ")
                       for _, value in batch]
            await asyncio.gather(*futures)
        raw = n / (time.perf_counter() - t0)
    finally:
        await producer.stop()
    return ours, raw


def run(opts: Options, results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="rogatory-bench-audit-", dir=opts.workdir) as tmp:
        work = Path(tmp)
        _verify_rows(opts, results, work)
        _embedded_rows(opts, results, work)
        _kafka_rows(opts, results, work)
