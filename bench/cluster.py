"""A federation in a temporary folder and real node processes, as `nodes/demo.py` runs them.

Each node is `python -m nodes.cli node run --config <node.toml>` in its own process
(optionally under `cProfile`), listening on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import pstats
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

from bench import procs
from broker.errors import RogatoryError
from nodes.config import NodeConfig, load_config
from nodes.demo import wait_ready
from nodes.federation import AgencySpec, init_federation

SENDER, RECEIVER = "DE-BFJ", "NL-24X7"


class NodeFailed(RuntimeError):
    pass
AGENCIES = [f"{SENDER}:central_authority", f"{RECEIVER}:contact_point"]


@dataclass
class Node:
    node_id: str
    config: NodeConfig
    proc: subprocess.Popen[bytes]
    log: Path
    profile: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def db(self) -> Path:
        return self.config.data_dir / "node.db"


@dataclass
class Cluster:
    root: Path
    nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def sender(self) -> Node:
        return self.nodes[SENDER]

    @property
    def receiver(self) -> Node:
        return self.nodes[RECEIVER]

    def tls(self, node_id: str) -> tuple[Path, Path, Path]:
        return tls(self.nodes[node_id].config)


def tls(cfg: NodeConfig) -> tuple[Path, Path, Path]:
    """(key, certificate, CA) of a node's mutual-TLS identity."""
    return cfg.tls_key, cfg.tls_cert, cfg.ca_cert


def make_federation(root: Path) -> dict[str, Path]:
    return init_federation(root / "federation", [AgencySpec.parse(a) for a in AGENCIES],
                           federation="rogatory-bench")


@contextlib.contextmanager
def running(root: Path, *, profile_dir: Path | None = None, profiler: str = "cprofile",
            configs: dict[str, Path] | None = None) -> Iterator[Cluster]:
    """Start both nodes of a federation (created under `root` unless given), stop them
    (by pid) at the end."""
    configs = configs or make_federation(root)
    cluster = Cluster(root)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for node_id, path in configs.items():
            log = root / f"{node_id}.log"
            args = ["-m", "nodes.cli", "node", "run", "--config", str(path)]
            prof = None
            if profile_dir is not None and profiler == "pyinstrument":
                prof = profile_dir / f"{node_id}.pyisession"
                args = ["-m", "pyinstrument", "-r", "pyisession", "-o", str(prof), *args]
            elif profile_dir is not None:
                prof = profile_dir / f"{node_id}.prof"
                args = ["-m", "cProfile", "-o", str(prof), *args]
            proc = procs.spawn(args, log)
            started.append(proc)
            cluster.nodes[node_id] = Node(node_id, load_config(path), proc, log, prof)
        for node in cluster.nodes.values():
            try:
                wait_ready(node.config, node.proc, timeout_s=60)
            except RogatoryError as e:
                raise NodeFailed(f"{e.message}; its log ends with:\n{log_tail(node)}") from e
        yield cluster
    finally:
        procs.stop(started)


def log_tail(node: Node, lines: int = 8) -> str:
    try:
        return "\n".join(node.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def write_profile_reports(folder: Path) -> list[Path]:
    """Render every node profile in `folder` as text; returns the report files."""
    written = []
    for session in sorted(folder.glob("*.pyisession")):
        if not session.stat().st_size:
            continue  # the node did not run to a clean exit: nothing was recorded
        tree = session.with_suffix(".tree.txt")
        flat = session.with_suffix(".prof")
        for renderer, out in (("text", tree), ("pstats", flat)):
            done = subprocess.run([sys.executable, "-m", "pyinstrument", "--load", str(session),
                                   "-r", renderer, "--no-color", "-o", str(out)],
                                  check=False, timeout=300, capture_output=True)
            if done.returncode == 0 and renderer == "text":
                written.append(out)
    for prof in sorted(folder.glob("*.prof")):
        if not prof.stat().st_size:
            continue
        text = prof.with_suffix(".txt")
        try:
            text.write_text(profile_report(prof))
        except (OSError, ValueError, TypeError, EOFError) as e:
            text.write_text(f"unreadable profile {prof.name}: {e}\n")
        written.append(text)
    return written


def profile_report(path: Path, *, top: int = 40) -> str:
    """The hottest functions of one profile, by own time and by cumulative time."""
    out = StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    total = stats.total_tt  # type: ignore[attr-defined]
    out.write(f"total profiled CPU time on the main thread: {total:.2f} s\n")
    out.write("\n== by own time (tottime) ==\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("\n== by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()
