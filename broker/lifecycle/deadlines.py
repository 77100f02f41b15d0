"""Legal deadlines: due times from template data, and their status at a given time.

A template's :class:`~broker.templating.model.Deadline` carries an ISO 8601 duration;
this module turns it into a due time and tells, for any ``now``, whether it is ok,
approaching or passed, and which events (``deadline.approaching``,
``deadline.passed``) to raise, each once. Pure: time is a parameter.

Counting rules:

- The time part (``PT8H``, ``PT96H``) is elapsed time: 8 hours are 8 hours, whatever
  the clocks do.
- Years, months, weeks and days are counted on the executing authority's local
  calendar: ``P10D`` ends at the same local wall time 10 days later, across daylight
  saving changes. A wall time that the change skips moves forward (02:30 on the
  spring-forward night becomes 03:30); a repeated one takes its first occurrence.
- Months end on the same day of the month, or the month's last day (31 Jan + P1M is
  28/29 Feb).
- :attr:`DayCount.BUSINESS` counts days on business days only: weekends and the
  jurisdiction's holidays (a :class:`Calendar`) are skipped. Years, months and weeks
  stay calendar units.
- A ``minimum`` deadline is a not-before: it is never missed, it only ``elapses``.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum

from broker.errors import ConfigError, TemplateError
from broker.lifecycle.durations import IsoDuration
from broker.lifecycle.states import EXTENSION_CLOCK, Transition
from broker.templating.model import Deadline

APPROACHING_THRESHOLD = 0.8
"""Share of a deadline's period after which it is approaching, by default."""


class DayCount(StrEnum):
    """How days of a duration are counted."""

    CALENDAR = "calendar"
    BUSINESS = "business"


class DeadlineStatus(StrEnum):
    """Where a deadline stands; ``running``/``elapsed`` are for minimum periods."""

    OK = "ok"
    APPROACHING = "approaching"
    PASSED = "passed"
    RUNNING = "running"
    ELAPSED = "elapsed"


class DeadlineEvent(StrEnum):
    """Audit event types a deadline raises, each at most once."""

    APPROACHING = "deadline.approaching"
    PASSED = "deadline.passed"
    ELAPSED = "deadline.elapsed"


@dataclass(frozen=True)
class Calendar:
    """A jurisdiction's non-working days.

    Attributes:
        holidays: public holidays (local dates).
        weekend: weekday numbers (Monday 0 ... Sunday 6) that are not business days.
    """

    holidays: frozenset[date] = frozenset()
    weekend: tuple[int, ...] = (5, 6)

    def __post_init__(self) -> None:
        if not set(self.weekend) <= set(range(7)) or len(set(self.weekend)) == 7:
            raise ConfigError(
                f"calendar weekend {self.weekend!r}: weekday numbers 0 (Monday) to "
                "6 (Sunday), leaving at least one business day"
            )

    def is_business_day(self, day: date) -> bool:
        """Whether ``day`` is neither a weekend day nor a holiday."""
        return day.weekday() not in self.weekend and day not in self.holidays

    def add_business_days(self, day: date, count: int) -> date:
        """The ``count``-th business day after ``day`` (``day`` itself if 0)."""
        while count > 0:
            day += timedelta(days=1)
            count -= self.is_business_day(day)
        return day


def due(
    started_at: datetime,
    deadline: Deadline,
    calendar: Calendar,
    tz: tzinfo,
    *,
    count: DayCount = DayCount.CALENDAR,
) -> datetime:
    """When ``deadline``, started at ``started_at``, falls due, in ``tz``.

    Args:
        started_at: when its clock started (timezone-aware); for an extension, the
            due time of the deadline it extends.
        deadline: the template's deadline.
        calendar: the executing jurisdiction's holidays and weekend.
        tz: the executing authority's time zone (e.g. ``ZoneInfo("Europe/Berlin")``).
        count: calendar or business days.

    Returns:
        The due time in ``tz``. Compare or subtract it in UTC (``.astimezone(UTC)``):
        Python compares datetimes that share a tzinfo by wall time.

    Raises:
        TemplateError: the duration is not ISO 8601, or lands out of range.
        ValueError: ``started_at`` is naive.
    """
    _require_aware(started_at, "started_at")
    duration = IsoDuration.parse(deadline.value)
    try:
        end = started_at.astimezone(tz)
        if duration.day_based:
            end = _add_days(end, duration, calendar, count)
        return (end.astimezone(UTC) + duration.exact).astimezone(tz)
    except (OverflowError, ValueError) as e:
        raise TemplateError(
            f"deadline {deadline.name!r} ({deadline.value}) lands out of range",
            code="TEMPLATE_DEFINITION_INVALID",
        ) from e


def _add_days(
    local: datetime, duration: IsoDuration, calendar: Calendar, count: DayCount
) -> datetime:
    """Add the nominal parts on the local calendar, keeping the wall time."""
    months = local.year * 12 + local.month - 1 + duration.years * 12 + duration.months
    year, month = divmod(months, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    day = date(year, month + 1, min(local.day, last)) + timedelta(weeks=duration.weeks)
    if count is DayCount.BUSINESS:
        day = calendar.add_business_days(day, duration.days)
    else:
        day += timedelta(days=duration.days)
    wall = local.replace(tzinfo=None).replace(year=day.year, month=day.month, day=day.day)
    # Through UTC and back: a skipped wall time moves forward to a real one.
    return wall.replace(tzinfo=local.tzinfo).astimezone(UTC).astimezone(local.tzinfo)


@dataclass(frozen=True)
class DeadlineClock:
    """One running deadline of one request.

    Attributes:
        deadline: the template's deadline.
        started_at: when the clock started.
        due_at: when it falls due (in the executing authority's time zone).
        threshold: share of the period after which it is approaching (0 < t < 1).
    """

    deadline: Deadline
    started_at: datetime
    due_at: datetime
    threshold: float = APPROACHING_THRESHOLD

    def __post_init__(self) -> None:
        _require_aware(self.started_at, "started_at")
        _require_aware(self.due_at, "due_at")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"approaching threshold {self.threshold!r} must be in (0, 1)")
        if self.due_at.astimezone(UTC) < self.started_at.astimezone(UTC):
            raise ValueError("a deadline cannot fall due before it starts")

    @classmethod
    def start(
        cls,
        deadline: Deadline,
        started_at: datetime,
        *,
        calendar: Calendar,
        tz: tzinfo,
        count: DayCount = DayCount.CALENDAR,
        threshold: float = APPROACHING_THRESHOLD,
    ) -> DeadlineClock:
        """Start ``deadline`` at ``started_at`` (see :func:`due` for the arguments)."""
        return cls(deadline, started_at, due(started_at, deadline, calendar, tz, count=count),
                   threshold)

    def extend(
        self,
        extension: Deadline,
        *,
        calendar: Calendar,
        tz: tzinfo,
        count: DayCount = DayCount.CALENDAR,
    ) -> DeadlineClock:
        """The clock of ``extension`` (whose ``extends`` names this deadline): it starts
        when this one falls due, e.g. EPOC-PR 60 days, then 30 more.

        Raises:
            ValueError: ``extension`` does not extend this deadline.
        """
        if extension.extends != self.deadline.name:
            raise ValueError(
                f"deadline {extension.name!r} does not extend {self.deadline.name!r}"
            )
        return DeadlineClock.start(extension, self.due_at, calendar=calendar, tz=tz,
                                   count=count, threshold=self.threshold)

    @property
    def minimum(self) -> bool:
        """Whether the deadline is a minimum period (a not-before)."""
        return self.deadline.kind == "minimum"

    @property
    def approaching_at(self) -> datetime:
        """When ``threshold`` of the period has elapsed (in UTC)."""
        start = self.started_at.astimezone(UTC)
        return start + (self.due_at.astimezone(UTC) - start) * self.threshold

    def remaining(self, now: datetime) -> timedelta:
        """Elapsed time left until due (negative once past)."""
        return self.due_at.astimezone(UTC) - _utc(now, "now")

    def status(self, now: datetime) -> DeadlineStatus:
        """``ok``, ``approaching`` or ``passed`` at ``now``; for a minimum period,
        ``running`` until it is due, then ``elapsed`` (a minimum is never missed)."""
        now, due_at = _utc(now, "now"), self.due_at.astimezone(UTC)
        if self.minimum:
            return DeadlineStatus.ELAPSED if now >= due_at else DeadlineStatus.RUNNING
        if now > due_at:
            return DeadlineStatus.PASSED
        if now >= self.approaching_at:
            return DeadlineStatus.APPROACHING
        return DeadlineStatus.OK

    def events(self, now: datetime, raised: Set[str]) -> tuple[DeadlineEvent, ...]:
        """The events to raise at ``now``, given those ``raised`` already for this clock.

        Each event is raised at most once. ``deadline.approaching`` is not raised once
        the deadline has passed (a late warning is noise); a minimum period raises
        ``deadline.elapsed`` only.
        """
        status = self.status(now)
        event = {
            DeadlineStatus.PASSED: DeadlineEvent.PASSED,
            DeadlineStatus.APPROACHING: DeadlineEvent.APPROACHING,
            DeadlineStatus.ELAPSED: DeadlineEvent.ELAPSED,
        }.get(status)
        if event is None or event in raised:
            return ()
        if event is DeadlineEvent.APPROACHING and DeadlineEvent.PASSED in raised:
            return ()
        return (event,)


def started_by(deadlines: Iterable[Deadline], transition: Transition) -> tuple[Deadline, ...]:
    """The deadlines (of the request's template, for its payload) whose clocks
    ``transition`` starts: those whose ``starts`` it names, and, on an extension, those
    that ``extends`` another."""
    return tuple(
        d for d in deadlines
        if (EXTENSION_CLOCK in transition.starts if d.extends else d.starts in transition.starts)
    )


def stopped_by(deadlines: Iterable[Deadline], transition: Transition) -> tuple[Deadline, ...]:
    """The deadlines whose clocks ``transition`` stops: all once the request has left
    the open states; else those it meets, and those an extension it starts replaces."""
    deadlines = tuple(deadlines)
    if transition.ends_all:
        return deadlines
    extended = {d.extends for d in started_by(deadlines, transition) if d.extends}
    return tuple(d for d in deadlines if d.name in transition.ends or d.name in extended)


def _require_aware(at: datetime, name: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _utc(at: datetime, name: str) -> datetime:
    """``at`` in UTC. Python compares and subtracts two datetimes that share a tzinfo by
    their wall times, which is wrong across a daylight saving change: so, always UTC."""
    _require_aware(at, name)
    return at.astimezone(UTC)
