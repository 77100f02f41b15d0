"""The auditor's HTML report: one standalone, printable file, no script, no external asset.

Pure: a replayed :class:`History`, the verifier's result and the template registry in,
a string out; the caller passes the time of the report. Every value drawn from a
record is escaped (Jinja autoescaping): record fields are chosen by whoever wrote the
log, and an altered log is exactly what this report must display safely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jinja2
from markupsafe import Markup

from broker.audit.lifecycle import History, duration, utc, visible
from broker.audit.report_page import PAGE
from broker.audit.timeliness import deadline_checks, response_times
from broker.audit.verifier import AuditVerifier, Finding
from broker.templating import TemplateRegistry

# Colour-blind-safe (Okabe-Ito); node i gets PALETTE[i % len(PALETTE)].
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
MAX_FILLED_DAYS = 400      # a longer span shows only the days with traffic

MAX_BAR_WIDTH = 40


def _finalize(value: object) -> object:
    return visible(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def _utc_cell(ms: int | None) -> Markup:
    """A time that may wrap between the date and the time of day, nowhere else."""
    day, _, clock = utc(ms).partition(" ")
    return Markup('<span class="nw">{}</span> <span class="nw">{}</span>').format(day, clock)


_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True, finalize=_finalize)
_ENV.filters["utc"] = utc
_ENV.filters["utc_cell"] = _utc_cell
_ENV.filters["duration"] = duration
_PAGE = _ENV.from_string(PAGE)


@dataclass(frozen=True)
class Verification:
    """What the verifier concluded over the same records."""

    records: int
    duplicates: int
    findings: tuple[Finding, ...]
    verified_tree_sizes: Mapping[str, int] = field(default_factory=dict)
    awaiting_delivery: int = 0

    @classmethod
    def of(cls, verifier: AuditVerifier, findings: Sequence[Finding]) -> Verification:
        """From a verifier after :meth:`AuditVerifier.finish` returned `findings`."""
        return cls(verifier.records, verifier.duplicates, tuple(findings),
                   {n: s.latest_head.tree_size if s.latest_head else 0
                    for n, s in verifier.nodes.items()},
                   sum(1 for _ in verifier.pending()))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Chart:
    """Geometry of the volume chart (numbers only; labels are escaped when rendered)."""

    width: int
    height: int
    left: int
    top: int
    plot_height: int
    bars: tuple[Bar, ...]
    x_labels: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, int], ...]
    legend: tuple[tuple[str, str], ...]      # (colour, node)


def volume_chart(history: History, *, width: int = 1000, height: int = 280) -> Chart:
    """Messages (sent + received) per UTC day and node, as grouped bars."""
    nodes = sorted({node for _, node in history.volumes})
    colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(nodes)}
    days = _days(sorted({day for day, _ in history.volumes}))
    left, top, bottom = 48, 12, 40
    plot_w, plot_h = width - left - 12, height - top - bottom
    peak = max((s + r for s, r in history.volumes.values()), default=0)
    step = _nice_step(peak)
    y_max = max(step * 4, 1)
    slot = plot_w / max(len(days), 1)
    bar_w = min(max(slot * 0.8 / max(len(nodes), 1), 0.5), MAX_BAR_WIDTH)
    pad = (slot - bar_w * len(nodes)) / 2
    bars = []
    for i, day in enumerate(days):
        for j, node in enumerate(nodes):
            sent, received = history.volumes.get((day, node), (0, 0))
            if sent + received == 0:
                continue
            h = plot_h * (sent + received) / y_max
            bars.append(Bar(left + i * slot + pad + j * bar_w, top + plot_h - h,
                            bar_w, h, colours[node],
                            f"{node} {day}: {sent} sent, {received} received"))
    every = max(1, round(len(days) / 12))
    x_labels = tuple((left + (i + 0.5) * slot, day) for i, day in enumerate(days)
                     if i % every == 0)
    y_ticks = tuple((top + plot_h - plot_h * v / y_max, v) for v in range(0, y_max + 1, step))
    return Chart(width, height, left, top, plot_h, tuple(bars), x_labels, y_ticks,
                 tuple((colours[n], n) for n in nodes))


def _days(present: list[str]) -> list[str]:
    """Every day from the first to the last with traffic, unless the span is too long."""
    try:
        first, last = (datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=UTC)
                       for d in (present[0], present[-1]))
    except (IndexError, ValueError):
        return present
    span = (last - first).days + 1
    if span > MAX_FILLED_DAYS:
        return present
    return [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(span)]


def _nice_step(peak: int) -> int:
    """A round tick step so that four steps cover `peak`."""
    raw = max(peak / 4, 1)
    magnitude = int(10 ** (len(str(int(raw))) - 1))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def render_report(history: History, verification: Verification, *,
                  registry: TemplateRegistry | None, generated_at_ms: int,
                  sources: Sequence[str] = ()) -> str:
    """The report as one HTML document.

    Args:
        history: the replayed lifecycles (:meth:`broker.audit.replay.Replay.result`).
        verification: the verifier's result over the same records.
        registry: templates whose deadlines apply; None: deadlines are reported unknown.
        generated_at_ms: the report's "now", for deadlines still running.
        sources: where the records were read (stores, Kafka topics), as shown.
    """
    checks, deadline_notes = deadline_checks(history, registry, now_ms=generated_at_ms)
    consulted = {n: a.events.get("message.consulted", 0) + a.events.get(
        "attachment.consulted", 0) for n, a in history.nodes.items()}
    return _PAGE.render(
        history=history, verification=verification, sources=list(sources),
        generated_at_ms=generated_at_ms, chart=volume_chart(history),
        agencies=response_times(history), deadlines=checks, deadline_notes=deadline_notes,
        consulted=consulted, ok=not verification.findings)
