"""Real Apache Kafka for the tests, started by scripts/kafka (KRaft, loopback, free ports).

Fixtures (session-scoped, so each kind of cluster starts once per test run):

- ``kafka_bootstrap``: one broker; the value is its bootstrap address ``"127.0.0.1:PORT"``.
- ``kafka_broker``: the same broker as a :class:`KafkaCluster`.
- ``kafka_cluster``: three brokers (replication factor 3, ``min.insync.replicas=2``) as a
  :class:`KafkaCluster`, whose ``bootstrap`` lists all three and which can kill a broker
  (``kill -9`` from its pid file) and start it again.

The fixtures share their cluster with every test of the run: create topics with the names
and settings you need and delete them afterwards (``auto.create.topics.enable=false``).

Without ``java`` or ``mvn`` on PATH the tests that use these fixtures skip with a message
saying what to install; with ``CI=true`` they fail instead (CI must run them). Mark such
tests ``pytest.mark.integration`` and ``pytest.mark.kafka``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "kafka"
START_TIMEOUT_S = 90


def _require_tools() -> None:
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if not missing:
        return
    msg = (
        f"the Kafka tests need {' and '.join(missing)} on PATH to fetch and run a real Apache "
        "Kafka broker (Debian: apt-get install default-jdk-headless maven; then "
        "`scripts/kafka fetch`)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {msg}", pytrace=False)
    pytest.skip(msg)


def _run(*args: str, timeout: float) -> str:
    cmd = [sys.executable, str(SCRIPT), *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s: {exc.stderr!r}",
                    pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout.strip()


def _is_kafka(pid: int) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return b"kafka.Kafka" in args and state not in ("Z", "X")


@dataclass
class KafkaCluster:
    """A KRaft cluster of ``brokers`` combined broker+controller nodes in ``dir``."""

    dir: Path
    brokers: int
    bootstrap: str = ""

    def start(self) -> str:
        """Start the cluster, or the nodes of it that are not running; the bootstrap."""
        first = [] if self.bootstrap else ["--port", "0"]  # 0: a free block of ports
        self.bootstrap = _run(
            "start", "--brokers", str(self.brokers), "--dir", str(self.dir), *first,
            "--timeout", str(START_TIMEOUT_S), timeout=START_TIMEOUT_S + 60,
        ).splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        _run("stop", "--dir", str(self.dir), timeout=90)

    @property
    def addresses(self) -> list[str]:
        return self.bootstrap.split(",")

    def port(self, node: int) -> int:
        """The PLAINTEXT port of node ``node`` (1-based; Kafka's node.id)."""
        return int(self.addresses[node - 1].rsplit(":", 1)[1])

    def pid(self, node: int) -> int | None:
        """The pid of node ``node`` from its pid file, when that process is still Kafka."""
        try:
            pid = int((self.dir / f"node-{node}" / "kafka.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_kafka(pid) else None

    def kill(self, node: int, sig: signal.Signals = signal.SIGKILL, wait_s: float = 15) -> None:
        """Send ``sig`` (default: kill -9) to node ``node`` and wait until it is gone."""
        pid = self.pid(node)
        assert pid is not None, f"node {node} of {self.dir} is not running"
        os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while _is_kafka(pid):
            assert time.monotonic() < deadline, f"node {node} (pid {pid}) survived {sig!r}"
            time.sleep(0.05)


def _cluster(tmp_path_factory: pytest.TempPathFactory, brokers: int) -> Iterator[KafkaCluster]:
    _require_tools()
    cluster = KafkaCluster(dir=tmp_path_factory.mktemp(f"kafka-{brokers}"), brokers=brokers)
    # Belt and braces: stop the brokers even if the session ends without finalizers.
    stop_at_exit = atexit.register(_stop_quietly, cluster.dir)
    try:
        cluster.start()
        yield cluster
    finally:
        atexit.unregister(stop_at_exit)
        cluster.stop()


def _stop_quietly(directory: Path) -> None:
    with contextlib.suppress(Exception):
        subprocess.run([sys.executable, str(SCRIPT), "stop", "--dir", str(directory)],
                       capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One real Kafka broker (KRaft combined mode) for the whole session."""
    yield from _cluster(tmp_path_factory, 1)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaCluster) -> str:
    """``"127.0.0.1:PORT"`` of the session's single real Kafka broker."""
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three real Kafka brokers (RF 3, min.insync.replicas=2) for the whole session."""
    yield from _cluster(tmp_path_factory, 3)
