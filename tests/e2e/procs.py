"""Node processes for the e2e tier: start, wait until serving, SIGTERM or kill -9."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from broker.adapters.grpc.status import OperatorCallFailed
from nodes.config import NodeConfig
from nodes.operator_client import OperatorClient

ROOT = Path(__file__).resolve().parents[2]


def rogatory(*args: str, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `rogatory` CLI (the console script's module) as a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "nodes.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"rogatory {' '.join(args)} failed: {proc.stderr}")
    return proc


class NodeProcess:
    def __init__(self, config: NodeConfig, logdir: Path) -> None:
        self.config = config
        self.log = logdir / f"{config.node_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> NodeProcess:
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nodes.cli", "node", "run", "--config",
             str(self.config.path)], stdout=log, stderr=log, cwd=ROOT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        with OperatorClient(self.config, timeout_s=2) as client:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.config.node_id} exited: {self.log.read_text()}")
                with contextlib.suppress(OperatorCallFailed):
                    client.status()
                    return self
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.config.node_id} did not start")
                time.sleep(0.1)

    def kill(self) -> None:
        """kill -9: no shutdown handler runs."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@contextlib.contextmanager
def processes(*procs: NodeProcess) -> Iterator[tuple[NodeProcess, ...]]:
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


def wait_for(predicate, timeout_s: float = 60, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)
