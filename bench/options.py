"""What a bench invocation asks for; scenarios read their sizes and durations here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Options:
    smoke: bool = False
    workdir: Path = Path("/tmp")
    profile_dir: Path | None = None        # nodes run under a profiler; no baselines, no targets
    profiler: str = "cprofile"             # or "pyinstrument"
    concurrency: tuple[int, ...] = ()      # `small`: requests in flight; () = 16 and 64
    large_bytes: int | None = None         # None: 1 GiB, or 64 MiB with --smoke
    measure_s: float | None = None         # None: 10 s, or 1.5 s with --smoke

    @property
    def profiling(self) -> bool:
        return self.profile_dir is not None

    @property
    def attachment_bytes(self) -> int:
        if self.large_bytes is not None:
            return self.large_bytes
        return 64 * MIB if self.smoke else GIB

    @property
    def system_measure_s(self) -> float:
        if self.measure_s is not None:
            return self.measure_s
        return 1.5 if self.smoke else 10.0

    @property
    def baseline_measure_s(self) -> float:
        return max(1.0, self.system_measure_s / 2)

    @property
    def warmup_s(self) -> float:
        return 0.5 if self.smoke else 2.0

    @property
    def crypto_budget_s(self) -> float:
        """Time per crypto measurement (each is the median of three such repetitions)."""
        return 0.05 if self.smoke else 0.5


def parse_size(text: str) -> int:
    """`1G`, `64M`, `512K` or a byte count."""
    units = {"K": 1 << 10, "M": MIB, "G": GIB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)
