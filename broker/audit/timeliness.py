"""Response times per agency and legal deadlines, computed from a replayed history.

Pure: a :class:`History` (and a template registry for the deadlines) in, figures out.
A figure the log cannot support is never estimated: the deadline rows say what is
missing instead (the answer messages, the event that starts the clock, the payload a
condition reads).
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from broker.audit.lifecycle import History, Lifecycle, duration
from broker.errors import TemplateError
from broker.templating import TemplateRegistry
from broker.templating.model import Deadline

_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_FIXED_MS = (7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000)   # W D H M S

NOT_IN_LOG = ("cannot be evaluated yet: the log holds no acknowledgement or execution "
              "message for this request")


@dataclass(frozen=True)
class Spread:
    """Nearest-rank percentiles of a set of durations (ms)."""

    count: int
    p50: int | None
    p90: int | None
    max: int | None

    @classmethod
    def of(cls, values: Sequence[int]) -> Spread:
        if not values:
            return cls(0, None, None, None)
        ordered = sorted(values)
        return cls(len(ordered), _rank(ordered, 0.5), _rank(ordered, 0.9), ordered[-1])

    def as_dict(self) -> dict[str, int | None]:
        return {"count": self.count, "p50_ms": self.p50, "p90_ms": self.p90,
                "max_ms": self.max}


def _rank(ordered: Sequence[int], q: float) -> int:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class AgencyTimes:
    """How fast requests to one agency got there: receipt verified and stored."""

    agency: str
    requests: int
    open_requests: int        # neither delivered, refused nor expired
    delivery: Spread          # sent -> receipt verified at the sender (sender's clock)
    transit: Spread           # sent -> received at the agency (two clocks)


def response_times(history: History) -> list[AgencyTimes]:
    """Per recipient agency, in name order."""
    by_agency: dict[str, list[Lifecycle]] = {}
    for lc in history.lifecycles:
        if lc.recipient and lc.sent_ms is not None:
            by_agency.setdefault(lc.recipient, []).append(lc)
    out = []
    for agency, lcs in sorted(by_agency.items()):
        out.append(AgencyTimes(
            agency, len(lcs), sum(1 for lc in lcs if lc.status in ("pending", "received")),
            Spread.of([d for lc in lcs if (d := lc.delivery_ms) is not None]),
            Spread.of([d for lc in lcs if (d := lc.transit_ms) is not None])))
    return out


@dataclass(frozen=True)
class DeadlineCheck:
    """One legal deadline of one request, and what the log lets us say about it."""

    envelope_id: str
    agency: str               # the addressee, whose clock it is
    template: str
    name: str
    value: str
    kind: str
    basis: str
    verification: str
    starts: str
    start_ms: int | None
    due_ms: int | None
    status: str


def deadline_checks(history: History, registry: TemplateRegistry | None, *,
                    now_ms: int) -> tuple[list[DeadlineCheck], list[str]]:
    """Each deadline that the templates of the replayed requests define, and notes on
    the requests whose deadlines could not be looked up."""
    checks: list[DeadlineCheck] = []
    unknown: set[str] = set()
    for lc in history.lifecycles:
        if not lc.template_id:
            continue
        try:
            if registry is None:
                raise TemplateError("no registry")
            deadlines = registry.get(lc.template_id, lc.template_version).deadlines
        except TemplateError:
            unknown.add(lc.template)
            continue
        dues: dict[str, int | None] = {}
        for d in deadlines:
            check = _check(lc, d, dues, now_ms)
            dues[d.name] = check.due_ms
            checks.append(check)
    notes = [f"template {t} is not in the template registry: its deadlines are unknown"
             for t in sorted(unknown)]
    return checks, notes


def _check(lc: Lifecycle, d: Deadline, dues: dict[str, int | None],
           now_ms: int) -> DeadlineCheck:
    start, why_not = _start(lc, d, dues)
    due = add_iso_duration(start, d.value) if start is not None else None
    if start is None:
        status = why_not
    elif due is None:
        status = f"the duration {d.value} is not an ISO 8601 duration"
    elif d.kind == "minimum":
        status = ("minimum period: runs at least until the due time; compliance is not "
                  "observable in the log")
    else:
        when = ("the due time has passed" if now_ms > due
                else f"due in {duration(due - now_ms)}")
        status = f"{NOT_IN_LOG} ({when})"
    if d.condition_text:
        status = (f"applies only if “{d.condition_text}” holds for the payload, which the "
                  f"log does not carry; {status}")
    if d.extends and d.starts == "expiry":
        status = f"only if the {d.extends} period is extended; {status}"
    return DeadlineCheck(lc.envelope_id, lc.recipient, lc.template, d.name, d.value, d.kind,
                         d.basis, d.verification, d.starts, start, due, status)


def _start(lc: Lifecycle, d: Deadline, dues: dict[str, int | None]
           ) -> tuple[int | None, str]:
    if d.starts == "receipt":
        return lc.received_ms, "not received yet: the clock has not started"
    if d.starts == "sending":
        return lc.sent_ms, "not sent yet: the clock has not started"
    if d.starts == "expiry" and d.extends:
        return dues.get(d.extends), f"the {d.extends} period has no known end"
    return None, (f"the clock starts at “{d.starts}”, an event the audit log does not "
                  "record yet")


def add_iso_duration(start_ms: int, value: str) -> int | None:
    """`start_ms` plus an ISO 8601 duration (years and months on the UTC calendar)."""
    m = _ISO_DURATION.match(value)
    if m is None:
        return None
    years, months, *fixed = (int(g) if g else 0 for g in m.groups())
    ms = start_ms + sum(n * unit for n, unit in zip(fixed, _FIXED_MS, strict=True))
    if years or months:
        try:
            at = datetime.fromtimestamp(ms / 1000, tz=UTC)
            total = at.year * 12 + at.month - 1 + years * 12 + months
            year, month = divmod(total, 12)
            day = min(at.day, calendar.monthrange(year, month + 1)[1])
            ms = int(at.replace(year=year, month=month + 1, day=day).timestamp() * 1000)
        except (OverflowError, OSError, ValueError):
            return None
    return ms

