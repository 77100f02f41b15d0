"""Results: one row per figure (figure, baseline, ratio, target), the machine, the files.

`bench/results/<UTC timestamp>.json` holds everything measured (rows, raw run details,
environment); `<UTC timestamp>.md` beside it holds the table that is also printed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One figure of merit beside its physical baseline from the same run.

    `ratio` is oriented so that higher is better and the target reads `ratio >= x`
    unless `target` says otherwise; rows without a baseline have `ratio = None`.
    """

    scenario: str
    name: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Results:
    smoke: bool
    argv: list[str]
    started_utc: str
    rows: list[Row] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)


def utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git() -> dict[str, Any]:
    """HEAD and whether the tree is dirty; read-only (no optional index refresh)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=10, check=True)
        status = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain"],
                                cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return {"head": "unknown", "dirty": None}
    changed = [line[3:] for line in status.stdout.splitlines() if line]
    return {"head": head.stdout.strip(), "dirty": bool(changed), "changed": changed}


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "grpcio": _version("grpcio"),
        "cryptography": _version("cryptography"),
        "protobuf": _version("protobuf"),
        "openssl": _openssl(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else None,
        "platform": platform.platform(),
        "git": _git(),
    }


def _openssl() -> str:
    return str(openssl_backend.openssl_version_text())


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def markdown(results: Results) -> str:
    env = results.environment
    smoke = " (smoke: sizes and durations shrunk, figures not meaningful)" if results.smoke else ""
    lines = [
        f"# Rogatory bench {results.started_utc}{smoke}",
        "",
        f"python {env.get('python')}, grpcio {env.get('grpcio')}, cryptography "
        f"{env.get('cryptography')}, protobuf {env.get('protobuf')}, {env.get('openssl')}; "
        f"CPU {env.get('cpu_model')} x {env.get('cpu_count')} cores; git "
        f"{str(env.get('git', {}).get('head', ''))[:10]}"
        f"{' (dirty tree)' if env.get('git', {}).get('dirty') else ''}",
        "",
        "| scenario | figure | value | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results.rows:
        base = f"{_fmt(r.baseline, r.unit)} ({r.baseline_name})" if r.baseline_name else \
            _fmt(r.baseline, r.unit)
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}"
        lines.append(f"| {r.scenario} | {r.name} | {_fmt(r.figure, r.unit)} | {base} | "
                     f"{ratio} | {r.target or '-'} | {met} |")
    notes = [f"- {r.scenario} / {r.name}: {r.note}" for r in results.rows if r.note]
    if notes:
        lines += ["", "Notes:", *notes]
    if results.warnings:
        lines += ["", "Warnings:", *(f"- {w}" for w in results.warnings)]
    return "\n".join(lines) + "\n"


def write(results: Results, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / results.started_utc
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    doc = asdict(results)
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path


def echo(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
