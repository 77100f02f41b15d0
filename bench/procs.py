"""Processes the bench starts, and what it observes of them (RSS, CPU per thread).

Every process is started here in its own session and stopped here by its own pid:
SIGTERM, a grace period, then SIGKILL. Nothing is matched by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent


def spawn(args: Sequence[str], log: Path, *, stdout_pipe: bool = False) -> subprocess.Popen[bytes]:
    """`python <args>` from the repository root, stderr (and stdout) to `log`."""
    fh = open(log, "ab")  # noqa: SIM115 - handed to the child; closed when we stop it
    try:
        return subprocess.Popen(
            [sys.executable, *args], cwd=REPO, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else fh, stderr=fh,
            start_new_session=True)
    finally:
        fh.close()


def stop(procs: Sequence[subprocess.Popen[bytes]], grace_s: float = 20.0) -> None:
    """SIGTERM each (by pid), wait up to `grace_s`, then SIGKILL what is left."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(timeout=10)
        if p.stdout is not None:
            p.stdout.close()


@contextlib.contextmanager
def stopping(procs: list[subprocess.Popen[bytes]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    try:
        yield procs
    finally:
        stop(procs)


def vm_hwm_bytes(pid: int) -> int | None:
    """The kernel's peak resident set size of a live process (VmHWM), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def rss_kinds(pid: int) -> dict[str, int]:
    """RssAnon / RssFile / RssShmem of a live process, in bytes (what the RSS is made of)."""
    out = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


def _thread_names(pid: int) -> dict[int, str]:
    names = {}
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                names[int(task)] = Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
    return names


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    per_pid: dict[int, float]                       # user + system seconds
    per_thread: dict[int, dict[int, tuple[str, float]]]

    @classmethod
    def take(cls, pids: Sequence[int]) -> CpuSnapshot:
        per_pid, per_thread = {}, {}
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                times = proc.cpu_times()
                per_pid[pid] = times.user + times.system
                names = _thread_names(pid)
                per_thread[pid] = {t.id: (_thread_class(pid, t.id, names.get(t.id, "?")),
                                          t.user_time + t.system_time)
                                   for t in proc.threads()}
            except psutil.Error:
                continue
        return cls(time.perf_counter(), per_pid, per_thread)

    def since(self, earlier: CpuSnapshot) -> dict[int, dict[str, float]]:
        """CPU seconds used per pid between two snapshots, in total and per thread class."""
        out: dict[int, dict[str, float]] = {}
        for pid, total in self.per_pid.items():
            row = {"total": round(total - earlier.per_pid.get(pid, 0.0), 3)}
            before = earlier.per_thread.get(pid, {})
            for tid, (klass, cpu) in self.per_thread.get(pid, {}).items():
                used = cpu - before.get(tid, (klass, 0.0))[1]
                row[klass] = round(row.get(klass, 0.0) + used, 3)
            out[pid] = row
        return out


def _thread_class(pid: int, tid: int, comm: str) -> str:
    """main (the event loop), python (worker threads: the SQLite store), or the C name."""
    if tid == pid:
        return "main"
    if comm.startswith("python"):
        return "python-threads"
    # gRPC core threads carry their own names (e.g. grpc_global_tim, default-executo).
    return f"native:{comm.rstrip('0123456789')}"


@dataclass
class RssSampler:
    """Samples the RSS of some processes every `interval_s` on a thread; keeps the peak."""

    pids: dict[str, int]
    interval_s: float = 0.05
    peak: dict[str, int] = field(default_factory=dict)
    at_peak: dict[str, dict[str, int]] = field(default_factory=dict)   # RssAnon/File/Shmem
    samples: int = 0
    timeline: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        procs = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(psutil.Error):
                procs[name] = psutil.Process(pid)

        t0 = time.perf_counter()

        def loop() -> None:
            while not self._stop.is_set():
                now: dict[str, int] = {}
                for name, proc in procs.items():
                    with contextlib.suppress(psutil.Error):
                        now[name] = rss = proc.memory_info().rss
                        if rss > self.peak.get(name, 0):
                            self.peak[name] = rss
                            self.at_peak[name] = rss_kinds(proc.pid)
                self.timeline.append((round(time.perf_counter() - t0, 3), now))
                self.samples += 1
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _busy_s(t: Any) -> float:
    """Busy CPU seconds of the machine (Linux counts guest time inside user time)."""
    return float(sum(getattr(t, name, 0.0) for name in
                     ("user", "nice", "system", "irq", "softirq")))


_detached_cpu_s = [0.0]


def count_detached(pids: list[int]) -> None:
    """Count as the bench's own the CPU of processes it started detached (e.g. the Kafka
    broker that scripts/kafka daemonizes), read just before they are stopped."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            _detached_cpu_s[0] += t.user + t.system


def _own_cpu_s() -> float:
    """CPU of this process, its live descendants, its already reaped children, and the
    detached processes it started (`count_detached`)."""
    me = psutil.Process()
    times = me.cpu_times()
    total = (times.user + times.system + times.children_user + times.children_system
             + _detached_cpu_s[0])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            t = child.cpu_times()
            total += t.user + t.system
    return float(total)


def speed_probe(seconds: float = 0.3) -> float:
    """Single-core speed now: rounds/s of a fixed mix of interpreter work and SHA-256.

    Taken before and after each scenario. A shared VM changes speed by the minute
    (host contention shows in no counter here, not even steal time), and a scenario
    measures its system and its baseline one after the other: if the speed moved in
    between, their ratio mixes two machines.
    """
    block = bytes(range(256)) * 16
    rounds = 0
    end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        for _ in range(50):
            hashlib.sha256(block).digest()
            sum(range(200))
        rounds += 1
    return rounds / (time.perf_counter() - t0)


@dataclass
class Interference:
    """How much CPU *other* processes used while a scenario ran (a shared machine is noisy).

    foreign = machine-wide busy CPU - CPU of the bench and every process it started.
    """

    _t0: float = 0.0
    _busy0: float = 0.0
    _own0: float = 0.0
    _steal0: float = 0.0
    _load0: float = 0.0

    def __enter__(self) -> Interference:
        t = psutil.cpu_times()
        self._t0, self._busy0, self._own0 = time.perf_counter(), _busy_s(t), _own_cpu_s()
        self._steal0 = getattr(t, "steal", 0.0)
        self._load0 = os.getloadavg()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def report(self) -> dict[str, float]:
        t = psutil.cpu_times()
        wall = time.perf_counter() - self._t0
        cores = psutil.cpu_count() or 1
        foreign = max(0.0, (_busy_s(t) - self._busy0) - (_own_cpu_s() - self._own0))
        return {"wall_s": round(wall, 1), "foreign_cpu_s": round(foreign, 2),
                "foreign_share_of_machine": round(foreign / (wall * cores), 3) if wall else 0.0,
                "steal_s": round(getattr(t, "steal", 0.0) - self._steal0, 2),
                "loadavg1_start": round(self._load0, 2),
                "loadavg1_end": round(os.getloadavg()[0], 2)}
