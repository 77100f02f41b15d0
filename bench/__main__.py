"""`python -m bench [scenario ...] [--smoke] [--profile]` (`make bench BENCH_ARGS=...`).

Runs the scenarios (default: all), prints the table and writes
`bench/results/<UTC timestamp>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import audit, crypto, decisions, large, report, scale, small
from bench.cluster import write_profile_reports
from bench.options import Options, parse_size
from bench.procs import Interference, speed_probe
from bench.report import Results, echo

SCENARIOS = ("small", "large", "crypto", "audit", "decisions", "scale")
FOREIGN_WARN = 0.05
SPEED_WARN = 0.10


RUNNERS: dict[str, Callable[[Options, Results], None]] = {
    "small": small.run, "large": large.run, "crypto": crypto.run, "audit": audit.run,
    "decisions": decisions.run, "scale": scale.run}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="*", choices=[*SCENARIOS, []], metavar="scenario",
                   help=f"any of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--smoke", action="store_true",
                   help="shrink sizes and durations (whole run under 2 minutes); "
                   "the figures are then not meaningful")
    p.add_argument("--size", type=parse_size, default=None,
                   help="attachment size for `large`, e.g. 256M (default 1G, smoke 64M)")
    p.add_argument("--duration", type=float, default=None,
                   help="measured seconds per system load run (default 10, smoke 1.5)")
    p.add_argument("--profile", nargs="?", const="cprofile", choices=["cprofile", "pyinstrument"],
                   help="run the node processes under a profiler (cProfile, or pyinstrument "
                   "if installed in the venv), skip baselines and targets, and write the "
                   "hottest functions per node beside the results")
    p.add_argument("--concurrency", type=int, action="append", default=None,
                   help="requests in flight for `small` (repeatable; default 16 and 64)")
    p.add_argument("--out", type=Path, default=report.RESULTS,
                   help="results folder (default bench/results)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp"),
                   help="where the temporary federations and files go (default /tmp)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = list(dict.fromkeys(args.scenario)) or list(SCENARIOS)
    results = Results(smoke=args.smoke, argv=list(sys.argv[1:] if argv is None else argv),
                      started_utc=report.utc_stamp(), environment=report.environment())
    profile_root = None
    if args.profile:
        profile_root = args.out / f"{results.started_utc}-profile"
    t0 = time.monotonic()
    failed = []
    for name in chosen:
        opts = Options(smoke=args.smoke, workdir=args.workdir, large_bytes=args.size,
                       measure_s=args.duration, profiler=args.profile or "cprofile",
                       concurrency=tuple(args.concurrency or ()),
                       profile_dir=(profile_root / name) if profile_root else None)
        if opts.profile_dir is not None:
            opts.profile_dir.mkdir(parents=True, exist_ok=True)
        echo(f"== {name}{' (smoke)' if args.smoke else ''}")
        started = time.monotonic()
        speed_before = speed_probe()
        monitor = Interference().__enter__()
        try:
            RUNNERS[name](opts, results)
        except Exception as e:
            echo(f"{name} failed: {type(e).__name__}: {e}")
            results.details.setdefault("failures", {})[name] = f"{type(e).__name__}: {e}"
            failed.append(name)
        results.details.setdefault("durations_s", {})[name] = round(time.monotonic() - started, 1)
        noise = monitor.report()
        speed_after = speed_probe()
        drift = speed_after / speed_before - 1
        noise |= {"speed_before": round(speed_before), "speed_after": round(speed_after),
                  "speed_drift": round(drift, 3)}
        results.details.setdefault("interference", {})[name] = noise
        if abs(drift) > SPEED_WARN:
            warning = (f"{name}: single-core speed changed by {drift:+.0%} between its start "
                       "and end (speed probe): figures and baselines measured at different "
                       "times within it may not be comparable")
            results.warnings.append(warning)
            echo("WARNING " + warning)
        if noise["foreign_share_of_machine"] > FOREIGN_WARN:
            warning = (f"{name}: other processes used {noise['foreign_cpu_s']} CPU-s "
                       f"({noise['foreign_share_of_machine']:.0%} of the machine) during this "
                       "scenario: its figures are disturbed")
            results.warnings.append(warning)
            echo("WARNING " + warning)
        if opts.profile_dir is not None:
            _write_profiles(opts.profile_dir)
    results.details["total_s"] = round(time.monotonic() - t0, 1)
    json_path, md_path = report.write(results, args.out)
    print(report.markdown(results))
    echo(f"results: {json_path}\n         {md_path}")
    return 1 if failed else 0


def _write_profiles(folder: Path) -> None:
    for path in write_profile_reports(folder):
        echo(f"profile: {path}")


if __name__ == "__main__":
    sys.exit(main())
