"""Legal deadlines from template data: due times, business days, time zones, events."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import ConfigError, TemplateError
from broker.lifecycle import (
    Calendar,
    DayCount,
    DeadlineClock,
    DeadlineEvent,
    DeadlineStatus,
    Event,
    IsoDuration,
    Kind,
    Side,
    State,
    apply,
    due,
    started_by,
    stopped_by,
)
from broker.templating import Template, TemplateRegistry, load_registry
from broker.templating.model import Deadline

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
NO_HOLIDAYS = Calendar()
# Good Friday and Easter Monday 2026 (German federal holidays).
GERMANY_2026 = Calendar(holidays=frozenset({date(2026, 4, 3), date(2026, 4, 6)}))


@functools.cache
def registry() -> TemplateRegistry:
    return load_registry(Path(__file__).resolve().parents[2] / "templates")


def template(template_id: str) -> Template:
    return registry().latest(template_id)


def deadline(template_id: str, name: str) -> Deadline:
    return next(d for d in template(template_id).deadlines if d.name == name)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
           second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def elapsed_between(start: datetime, end: datetime) -> timedelta:
    """Elapsed time (Python subtracts datetimes sharing a tzinfo by wall time)."""
    return end.astimezone(UTC) - start.astimezone(UTC)


def plain(value: str, *, kind: str = "maximum") -> Deadline:
    return Deadline(name="test", value=value, basis="test", verification="U", kind=kind)


# ---------------------------------------------------------------- template deadlines


def test_epoc_emergency_8_hours_from_receipt() -> None:
    """Art. 10(4): 8 hours of elapsed time, even across the spring-forward night."""
    epoc = template("eu-epoc-annex-i")
    (emergency,) = epoc.deadlines_for({"deadline": "within_8_hours_emergency"})
    assert emergency.name == "production_emergency" and emergency.starts == "receipt"
    received = berlin(2026, 3, 28, 22, 0)  # CET; clocks jump 02:00 -> 03:00 at night
    due_at = due(received, emergency, NO_HOLIDAYS, BERLIN)
    assert elapsed_between(received, due_at) == timedelta(hours=8)
    assert due_at == berlin(2026, 3, 29, 7, 0)  # 06:00 CET is 07:00 CEST
    assert due_at.utcoffset() == timedelta(hours=2)
    clock = DeadlineClock.start(emergency, received, calendar=NO_HOLIDAYS, tz=BERLIN)
    assert clock.approaching_at == berlin(2026, 3, 29, 5, 24)  # 6 h 24 min elapsed
    assert clock.status(berlin(2026, 3, 29, 6, 59)) is DeadlineStatus.APPROACHING
    assert clock.status(berlin(2026, 3, 29, 7, 0, 1)) is DeadlineStatus.PASSED


def test_epoc_10_days() -> None:
    epoc = template("eu-epoc-annex-i")
    (ten_days,) = epoc.deadlines_for({"deadline": "within_10_days_no_notification"})
    assert ten_days.value == "P10D"
    received = berlin(2026, 2, 2, 14, 30)
    assert due(received, ten_days, NO_HOLIDAYS, BERLIN) == berlin(2026, 2, 12, 14, 30)


def test_epoc_pr_60_days_plus_30_days_extension() -> None:
    """Art. 11(1): preservation ends 60 days after receipt; an Annex VI extension adds
    30 days from that expiry. The lifecycle's extension step starts the extension and
    stops the 60-day clock."""
    epoc_pr = template("eu-epoc-pr-annex-ii")
    preservation, extension = epoc_pr.deadlines
    received = berlin(2026, 1, 10, 9, 0)
    clock = DeadlineClock.start(preservation, received, calendar=NO_HOLIDAYS, tz=BERLIN)
    assert clock.due_at == berlin(2026, 3, 11, 9, 0)
    extended = clock.extend(extension, calendar=NO_HOLIDAYS, tz=BERLIN)
    assert extended.started_at == clock.due_at
    assert extended.due_at == berlin(2026, 4, 10, 9, 0)  # CEST by then, same wall time
    step = apply(State.PRESERVED, Event.PRESERVATION_EXTENSION, side=Side.REQUESTING,
                 kind=Kind.EPOC_PR, at=berlin(2026, 3, 1, 12, 0))
    assert started_by(epoc_pr.deadlines, step) == (extension,)
    assert stopped_by(epoc_pr.deadlines, step) == (preservation,)
    with pytest.raises(ValueError, match="does not extend"):
        extended.extend(extension, calendar=NO_HOLIDAYS, tz=BERLIN)


def test_budapest_art_29_7_minimum_is_a_not_before() -> None:
    """At least 60 days: never 'missed', never approaching; it elapses, once."""
    minimum = deadline("coe-art29-preservation", "minimum_preservation")
    assert minimum.kind == "minimum"
    received = berlin(2026, 5, 4, 11, 0)
    clock = DeadlineClock.start(minimum, received, calendar=NO_HOLIDAYS, tz=BERLIN)
    assert clock.due_at == berlin(2026, 7, 3, 11, 0)
    raised: set[str] = set()
    for now, status in [(received, DeadlineStatus.RUNNING),
                        (berlin(2026, 6, 30, 11, 0), DeadlineStatus.RUNNING),
                        (clock.due_at, DeadlineStatus.ELAPSED),
                        (berlin(2027, 1, 1), DeadlineStatus.ELAPSED)]:
        assert clock.status(now) is status
        raised.update(clock.events(now, raised))
    assert raised == {DeadlineEvent.ELAPSED}


def test_eio_clocks_start_and_stop_with_the_lifecycle() -> None:
    eio = template("eio-annex-a").deadlines_for({})
    receipt = apply(State.NEW, Event.RECEIPT, side=Side.EXECUTING, kind=Kind.EIO,
                    at=berlin(2026, 3, 2, 9, 0))
    assert [d.name for d in started_by(eio, receipt)] == [
        "acknowledge_receipt", "recognition_decision"]
    ack = apply(State.DELIVERED, Event.ACKNOWLEDGEMENT, side=Side.EXECUTING, kind=Kind.EIO,
                at=berlin(2026, 3, 3, 9, 0))
    assert [d.name for d in stopped_by(eio, ack)] == ["acknowledge_receipt"]
    begin = apply(State.ACKNOWLEDGED, Event.BEGIN_EXECUTION, side=Side.EXECUTING,
                  kind=Kind.EIO, at=berlin(2026, 3, 20, 9, 0))
    assert [d.name for d in started_by(eio, begin)] == ["execution_after_decision"]
    assert [d.name for d in stopped_by(eio, begin)] == [
        "recognition_decision", "recognition_extension"]
    done = apply(State.IN_EXECUTION, Event.EXECUTION_RESPONSE, side=Side.EXECUTING,
                 kind=Kind.EIO, at=berlin(2026, 4, 2, 9, 0))
    assert stopped_by(eio, done) == eio


# ---------------------------------------------------------------- calendars and zones


def test_business_days_skip_weekend_and_holidays() -> None:
    """Thursday before Easter + 3 business days: Good Friday, the weekend and Easter
    Monday do not count."""
    three = plain("P3D")
    start = berlin(2026, 4, 2, 10, 0)
    assert due(start, three, GERMANY_2026, BERLIN) == berlin(2026, 4, 5, 10, 0)
    assert due(start, three, GERMANY_2026, BERLIN, count=DayCount.BUSINESS) == \
        berlin(2026, 4, 9, 10, 0)


def test_business_days_over_a_plain_weekend() -> None:
    friday = berlin(2026, 3, 6, 16, 0)
    assert due(friday, plain("P1D"), NO_HOLIDAYS, BERLIN, count=DayCount.BUSINESS) == \
        berlin(2026, 3, 9, 16, 0)
    saturday = berlin(2026, 3, 7, 16, 0)
    assert due(saturday, plain("P1D"), NO_HOLIDAYS, BERLIN, count=DayCount.BUSINESS) == \
        berlin(2026, 3, 9, 16, 0)
    # A Friday-Saturday weekend: Sunday is a business day.
    gulf = Calendar(weekend=(4, 5))
    assert due(friday - timedelta(days=1), plain("P1D"), gulf, BERLIN,
               count=DayCount.BUSINESS) == berlin(2026, 3, 8, 16, 0)


def test_hours_ignore_business_days() -> None:
    friday = berlin(2026, 3, 6, 20, 0)
    assert due(friday, plain("PT8H"), NO_HOLIDAYS, BERLIN, count=DayCount.BUSINESS) == \
        berlin(2026, 3, 7, 4, 0)


@pytest.mark.parametrize(("start", "end", "elapsed"), [
    # spring forward (29 March 2026): 10 local days are 239 hours
    (berlin(2026, 3, 25, 10, 0), berlin(2026, 4, 4, 10, 0), timedelta(hours=239)),
    # fall back (25 October 2026): 10 local days are 241 hours
    (berlin(2026, 10, 20, 10, 0), berlin(2026, 10, 30, 10, 0), timedelta(hours=241)),
])
def test_day_deadline_keeps_local_time_across_dst(start: datetime, end: datetime,
                                                  elapsed: timedelta) -> None:
    due_at = due(start, plain("P10D"), NO_HOLIDAYS, BERLIN)
    assert due_at == end and elapsed_between(start, due_at) == elapsed
    assert (due_at.hour, due_at.minute) == (10, 0)


def test_repeated_hour_is_told_apart() -> None:
    """25 October 2026: 02:00-03:00 happens twice in Berlin. One hour from the first
    02:30 ends at the second 02:30; the status compares instants, not wall times."""
    first = berlin(2026, 10, 25, 2, 30)
    clock = DeadlineClock.start(plain("PT1H"), first, calendar=NO_HOLIDAYS, tz=BERLIN)
    assert clock.due_at.fold == 1 and clock.due_at.utcoffset() == timedelta(hours=1)
    assert clock.status(first.replace(minute=45)) is DeadlineStatus.OK
    assert clock.status(first.replace(minute=45, fold=1)) is DeadlineStatus.PASSED
    assert clock.remaining(first) == timedelta(hours=1)


def test_skipped_wall_time_moves_forward() -> None:
    start = berlin(2026, 3, 28, 2, 30)  # 02:30 does not exist on 29 March
    assert due(start, plain("P1D"), NO_HOLIDAYS, BERLIN) == berlin(2026, 3, 29, 3, 30)


def test_start_in_another_zone_counts_on_the_executing_authoritys_calendar() -> None:
    """23:30 UTC on 2 March is already 3 March in Berlin: P1D ends on 4 March, 00:30."""
    start = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    due_at = due(start, plain("P1D"), NO_HOLIDAYS, BERLIN)
    assert due_at == berlin(2026, 3, 4, 0, 30) and due_at.tzinfo is BERLIN


def test_months_end_on_the_last_day_of_a_short_month() -> None:
    assert due(berlin(2026, 1, 31, 9, 0), plain("P1M"), NO_HOLIDAYS, BERLIN) == \
        berlin(2026, 2, 28, 9, 0)
    assert due(berlin(2027, 2, 28, 9, 0), plain("P1Y1M1W1DT1H"), NO_HOLIDAYS, BERLIN) == \
        berlin(2028, 4, 5, 10, 0)


def test_bad_inputs() -> None:
    with pytest.raises(TemplateError):
        IsoDuration.parse("10 days")
    with pytest.raises(TemplateError):
        IsoDuration.parse("P")
    with pytest.raises(TemplateError, match="out of range"):
        due(berlin(9999, 12, 1), plain("P1M"), NO_HOLIDAYS, BERLIN)
    with pytest.raises(ValueError, match="timezone-aware"):
        due(datetime(2026, 1, 1), plain("P1D"), NO_HOLIDAYS, BERLIN)
    with pytest.raises(ConfigError):
        Calendar(weekend=(0, 1, 2, 3, 4, 5, 6))
    with pytest.raises(ConfigError):
        Calendar(weekend=(7,))
    with pytest.raises(ConfigError):
        DeadlineClock.start(plain("P1D"), berlin(2026, 1, 1), calendar=NO_HOLIDAYS,
                            tz=BERLIN, threshold=1.0)


# ---------------------------------------------------------------- status and events


def test_approaching_and_passed_raised_once_each_with_time_travel() -> None:
    ten_days = plain("P10D")
    start = berlin(2026, 2, 2, 12, 0)
    clock = DeadlineClock.start(ten_days, start, calendar=NO_HOLIDAYS, tz=BERLIN)
    assert clock.approaching_at == berlin(2026, 2, 10, 12, 0)  # 80 % of 10 days
    raised: list[str] = []
    timeline = [
        (berlin(2026, 2, 7, 12, 0), DeadlineStatus.OK, ()),
        (berlin(2026, 2, 10, 11, 59), DeadlineStatus.OK, ()),
        (berlin(2026, 2, 10, 12, 0), DeadlineStatus.APPROACHING,
         (DeadlineEvent.APPROACHING,)),
        (berlin(2026, 2, 11, 0, 0), DeadlineStatus.APPROACHING, ()),
        (berlin(2026, 2, 12, 12, 0), DeadlineStatus.APPROACHING, ()),  # due, not yet past
        (berlin(2026, 2, 12, 12, 0, 1), DeadlineStatus.PASSED, (DeadlineEvent.PASSED,)),
        (berlin(2026, 3, 1), DeadlineStatus.PASSED, ()),
        (berlin(2026, 2, 11, 0, 0), DeadlineStatus.APPROACHING, ()),  # back in time
    ]
    for now, status, expected in timeline:
        assert clock.status(now) is status
        new = clock.events(now, frozenset(raised))
        assert new == expected
        raised.extend(new)
    assert raised == [DeadlineEvent.APPROACHING, DeadlineEvent.PASSED]
    assert clock.remaining(berlin(2026, 2, 12, 13, 0)) == timedelta(hours=-1)


def test_jump_past_due_raises_passed_only() -> None:
    clock = DeadlineClock.start(plain("PT8H"), berlin(2026, 2, 2, 12, 0),
                                calendar=NO_HOLIDAYS, tz=BERLIN)
    later = berlin(2026, 2, 3, 12, 0)
    assert clock.events(later, frozenset()) == (DeadlineEvent.PASSED,)
    assert clock.events(later, {"deadline.passed"}) == ()


def test_threshold_is_configurable() -> None:
    clock = DeadlineClock.start(plain("PT10H"), berlin(2026, 2, 2, 0, 0),
                                calendar=NO_HOLIDAYS, tz=BERLIN, threshold=0.5)
    assert clock.status(berlin(2026, 2, 2, 4, 59)) is DeadlineStatus.OK
    assert clock.status(berlin(2026, 2, 2, 5, 0)) is DeadlineStatus.APPROACHING


@settings(max_examples=200, deadline=None)
@given(start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                          timezones=st.just(UTC)),
       days=st.integers(min_value=0, max_value=400))
def test_business_days_never_end_before_calendar_days(start: datetime, days: int) -> None:
    value = plain(f"P{days}D")
    calendar_due = due(start, value, GERMANY_2026, BERLIN)
    business_due = due(start, value, GERMANY_2026, BERLIN, count=DayCount.BUSINESS)
    assert start <= calendar_due <= business_due
    local = start.astimezone(BERLIN)
    hours = elapsed_between(start, calendar_due) / timedelta(hours=1)
    assert abs(hours - 24 * days) <= 1  # one daylight saving change per half year
    if days:
        assert GERMANY_2026.is_business_day(business_due.date()) or \
            (business_due.hour, business_due.minute) != (local.hour, local.minute)
