"""Tests for the production calendar and the BPMN deadline functions (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.calendar import CalendarCoverageError, DeadlineFunctions, ProductionCalendar

MSK = ZoneInfo("Europe/Moscow")
YEKT = ZoneInfo("Asia/Yekaterinburg")
NOW = datetime(2025, 10, 30, 7, 0, tzinfo=UTC)  # 30.10.2025 10:00 in Moscow


def make_functions(
    calendar: ProductionCalendar | None = None, tz: str = "Europe/Moscow"
) -> DeadlineFunctions:
    return DeadlineFunctions(calendar or ProductionCalendar(), lambda: NOW, tz)


def end_of_day(y: int, m: int, d: int, tz: ZoneInfo = MSK) -> datetime:
    return datetime(y, m, d, 23, 59, 59, tzinfo=tz)


# --- Real calendar data 2024-2026 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        # 2024: working Saturdays 27.04, 02.11, 28.12; transferred days off 29-30.04, 10.05, 30-31.12.
        (date(2024, 4, 27), True),
        (date(2024, 4, 29), False),
        (date(2024, 4, 30), False),
        (date(2024, 5, 10), False),
        (date(2024, 11, 2), True),
        (date(2024, 12, 28), True),
        (date(2024, 12, 30), False),
        (date(2024, 12, 31), False),
        # 2025: the only working Saturday is 01.11; days off 02.05, 08.05, 13.06, 03.11, 31.12.
        (date(2025, 1, 8), False),
        (date(2025, 1, 9), True),
        (date(2025, 5, 2), False),
        (date(2025, 5, 8), False),
        (date(2025, 6, 13), False),
        (date(2025, 11, 1), True),
        (date(2025, 11, 3), False),
        (date(2025, 11, 4), False),
        (date(2025, 11, 5), True),
        (date(2025, 12, 27), False),  # an ordinary Saturday
        (date(2025, 12, 31), False),
        # 2026: 09.01 and 31.12 are transferred days off; 09.03 and 11.05 are in-lieu days off.
        (date(2026, 1, 9), False),
        (date(2026, 1, 10), False),
        (date(2026, 1, 12), True),
        (date(2026, 3, 9), False),
        (date(2026, 5, 11), False),
        (date(2026, 5, 12), True),
        (date(2026, 12, 31), False),
        # Ordinary days.
        (date(2025, 10, 30), True),
        (date(2025, 11, 8), False),
    ],
)
def test_real_calendar_days(day: date, working: bool) -> None:
    assert ProductionCalendar().is_working_day(day) is working


@pytest.mark.parametrize(("year", "count"), [(2024, 248), (2025, 247), (2026, 247)])
def test_official_working_day_totals(year: int, count: int) -> None:
    calendar = ProductionCalendar()
    assert calendar.working_days_between(date(year - 1, 12, 31), date(year, 12, 31)) == count


def test_package_coverage_range() -> None:
    calendar = ProductionCalendar()
    assert calendar.first_year is not None and calendar.last_year is not None
    assert calendar.first_year <= 2024
    assert calendar.last_year >= 2026
    for year in (2024, 2025, 2026):
        assert calendar.covered(year)
    assert not calendar.covered(2035)


# --- ProductionCalendar arithmetic ------------------------------------------------------------


def test_add_working_days_over_november_holidays() -> None:
    assert ProductionCalendar().add_working_days(date(2025, 10, 30), 5) == date(2025, 11, 7)


def test_add_working_days_over_new_year_2026() -> None:
    # 30.12 is the 1st working day, then 31.12-11.01 are days off.
    assert ProductionCalendar().add_working_days(date(2025, 12, 29), 3) == date(2026, 1, 13)


def test_add_working_days_zero_rolls_forward() -> None:
    calendar = ProductionCalendar()
    assert calendar.add_working_days(date(2025, 10, 30), 0) == date(2025, 10, 30)
    assert calendar.add_working_days(date(2025, 11, 2), 0) == date(2025, 11, 5)


def test_add_working_days_from_a_day_off_counts_from_next_day() -> None:
    # Start on Sunday 02.11.2025: the first working day after it is 05.11.
    assert ProductionCalendar().add_working_days(date(2025, 11, 2), 1) == date(2025, 11, 5)


def test_add_working_days_negative_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        ProductionCalendar().add_working_days(date(2025, 10, 30), -1)


def test_roll_forward() -> None:
    calendar = ProductionCalendar()
    assert calendar.roll_forward(date(2025, 10, 31)) == date(2025, 10, 31)
    assert calendar.roll_forward(date(2025, 12, 31)) == date(2026, 1, 12)


def test_add_calendar_days_rolls_forward_over_new_year() -> None:
    assert ProductionCalendar().add_calendar_days(date(2025, 12, 25), 14) == date(2026, 1, 12)


def test_add_months_clamps_and_rolls_forward() -> None:
    calendar = ProductionCalendar()
    # 31.08.2025 + 6 months = 28.02.2026 (Saturday) -> Monday 02.03.2026.
    assert calendar.add_months(date(2025, 8, 31), 6) == date(2026, 3, 2)
    # 31.01.2024 + 1 month = 29.02.2024 (leap year, Thursday).
    assert calendar.add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    # 15.03.2025 + 12 months = 15.03.2026 (Sunday) -> 16.03.2026.
    assert calendar.add_months(date(2025, 3, 15), 12) == date(2026, 3, 16)


def test_working_days_between() -> None:
    calendar = ProductionCalendar()
    assert calendar.working_days_between(date(2025, 10, 30), date(2025, 11, 7)) == 5
    assert calendar.working_days_between(date(2025, 11, 7), date(2025, 10, 30)) == -5
    assert calendar.working_days_between(date(2025, 11, 7), date(2025, 11, 7)) == 0
    assert calendar.working_days_between(date(2025, 12, 29), date(2026, 1, 13)) == 3


def test_datetime_is_not_a_date() -> None:
    with pytest.raises(TypeError):
        ProductionCalendar().is_working_day(datetime(2025, 10, 30, 12, 0))


# --- Overrides ---------------------------------------------------------------------------------


def test_override_regional_day_off_shifts_deadline() -> None:
    # A regional holiday on Thursday 06.11.2025.
    calendar = ProductionCalendar(overrides={date(2025, 11, 6): False})
    assert not calendar.is_working_day(date(2025, 11, 6))
    assert calendar.add_working_days(date(2025, 10, 30), 5) == date(2025, 11, 10)
    assert ProductionCalendar().add_working_days(date(2025, 10, 30), 5) == date(2025, 11, 7)


def test_override_working_saturday() -> None:
    calendar = ProductionCalendar(overrides={date(2025, 11, 8): True})
    assert calendar.is_working_day(date(2025, 11, 8))
    assert calendar.add_working_days(date(2025, 10, 31), 5) == date(2025, 11, 8)
    assert ProductionCalendar().add_working_days(date(2025, 10, 31), 5) == date(2025, 11, 10)


def test_override_can_cancel_a_package_day_off() -> None:
    calendar = ProductionCalendar(overrides={date(2025, 11, 3): True})
    assert calendar.is_working_day(date(2025, 11, 3))
    assert calendar.add_working_days(date(2025, 10, 31), 2) == date(2025, 11, 3)


def test_overrides_are_copied() -> None:
    source = {date(2025, 11, 6): False}
    calendar = ProductionCalendar(overrides=source)
    source[date(2025, 11, 6)] = True
    assert not calendar.is_working_day(date(2025, 11, 6))


def test_bad_override_value_is_rejected() -> None:
    with pytest.raises(TypeError):
        ProductionCalendar(overrides={date(2025, 11, 6): "no"})  # type: ignore[dict-item]


# --- Coverage guard ----------------------------------------------------------------------------


def test_uncovered_year_raises_naming_the_year() -> None:
    calendar = ProductionCalendar()
    with pytest.raises(CalendarCoverageError, match="2035") as info:
        calendar.is_working_day(date(2035, 3, 1))
    assert info.value.year == 2035
    assert "production calendar" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(CalendarCoverageError, match="2035"):
        calendar.add_working_days(date(2035, 3, 1), 1)
    with pytest.raises(CalendarCoverageError, match="2035"):
        make_functions(calendar).working_days(3, "2035-03-01")


def test_deadline_running_into_uncovered_year_raises() -> None:
    calendar = ProductionCalendar()
    last = calendar.last_year
    assert last is not None
    with pytest.raises(CalendarCoverageError, match=str(last + 1)):
        calendar.add_working_days(date(last, 12, 20), 30)


def test_declared_year_is_covered() -> None:
    calendar = ProductionCalendar(covered_years=[2035], overrides={date(2035, 3, 5): False})
    assert calendar.covered(2035)
    # 01.03.2035 is Thursday; 02.03 Fri, 05.03 overridden off, 06.03 Tue.
    assert calendar.add_working_days(date(2035, 3, 1), 2) == date(2035, 3, 6)
    assert not calendar.is_working_day(date(2035, 3, 3))  # Saturday
    assert not calendar.is_working_day(date(2035, 1, 1))  # fixed-date holiday from the package


def test_override_answers_even_in_uncovered_year() -> None:
    calendar = ProductionCalendar(overrides={date(2035, 3, 5): False})
    assert calendar.is_working_day(date(2035, 3, 5)) is False
    with pytest.raises(CalendarCoverageError):
        calendar.is_working_day(date(2035, 3, 6))


# --- DeadlineFunctions -------------------------------------------------------------------------


def test_working_days_five_from_october_30() -> None:
    due = make_functions().working_days(5, date(2025, 10, 30))
    assert due == end_of_day(2025, 11, 7)
    assert due.tzinfo == MSK
    assert (due.hour, due.minute, due.second, due.microsecond) == (23, 59, 59, 0)


def test_working_days_default_start_is_now() -> None:
    assert make_functions().working_days(5) == end_of_day(2025, 11, 7)


def test_calendar_days_rolls_to_january_12() -> None:
    assert make_functions().calendar_days(14, "2025-12-25") == end_of_day(2026, 1, 12)


def test_working_days_across_new_year_2026() -> None:
    assert make_functions().working_days(3, "2025-12-29") == end_of_day(2026, 1, 13)


def test_months_six_from_august_31() -> None:
    assert make_functions().months(6, date(2025, 8, 31)) == end_of_day(2026, 3, 2)


def test_calendar_days_on_a_working_day_is_not_rolled() -> None:
    assert make_functions().calendar_days(10, "2025-10-30") == end_of_day(2025, 11, 10)
    assert make_functions().calendar_days(0, "2025-10-30") == end_of_day(2025, 10, 30)


@pytest.mark.parametrize(
    "start",
    [
        "2025-10-30",
        "2025-10-30T10:00:00",  # naive: Moscow time
        "2025-10-30T20:59:59Z",  # 23:59:59 in Moscow
        "2025-10-30T23:30:00+03:00",
        date(2025, 10, 30),
        datetime(2025, 10, 30, 0, 0),  # naive: Moscow time
        datetime(2025, 10, 30, 23, 59, tzinfo=MSK),
        datetime(2025, 10, 29, 21, 0, tzinfo=UTC),  # 00:00 of 30.10 in Moscow
    ],
)
def test_start_forms_on_october_30(start: object) -> None:
    assert make_functions().working_days(5, start) == end_of_day(2025, 11, 7)


@pytest.mark.parametrize(
    "start",
    [
        "2025-10-30T21:00:00Z",  # 00:00 of 31.10 in Moscow
        "2025-10-31T00:30:00",  # naive: Moscow time
        datetime(2025, 10, 30, 21, 30, tzinfo=UTC),
    ],
)
def test_start_forms_on_october_31(start: object) -> None:
    # From 31.10: 01.11 (working Saturday), 05.11, 06.11, 07.11, 10.11.
    assert make_functions().working_days(5, start) == end_of_day(2025, 11, 10)


def test_time_zone_changes_the_start_date() -> None:
    start = "2025-10-30T20:30:00Z"  # 23:30 on 30.10 in Moscow, 01:30 on 31.10 in Yekaterinburg
    moscow = make_functions(tz="Europe/Moscow").working_days(5, start)
    yekaterinburg = make_functions(tz="Asia/Yekaterinburg").working_days(5, start)
    assert moscow == end_of_day(2025, 11, 7, MSK)
    assert yekaterinburg == end_of_day(2025, 11, 10, YEKT)
    assert yekaterinburg.tzinfo == YEKT


def test_time_zone_applies_to_now() -> None:
    clock = datetime(2025, 10, 30, 20, 30, tzinfo=UTC)
    moscow = DeadlineFunctions(ProductionCalendar(), lambda: clock, "Europe/Moscow")
    yekaterinburg = DeadlineFunctions(ProductionCalendar(), lambda: clock, "Asia/Yekaterinburg")
    assert moscow.today() == date(2025, 10, 30)
    assert yekaterinburg.today() == date(2025, 10, 31)
    assert moscow.working_days(1) == end_of_day(2025, 10, 31, MSK)
    assert yekaterinburg.working_days(1) == end_of_day(2025, 11, 1, YEKT)


def test_hours_from_aware_datetime() -> None:
    start = datetime(2025, 11, 1, 22, 0, tzinfo=MSK)  # Saturday evening: hours are not rolled
    due = make_functions().hours(4, start)
    assert due == datetime(2025, 11, 2, 2, 0, tzinfo=MSK)
    assert due.tzinfo == MSK


def test_hours_default_and_string_start() -> None:
    functions = make_functions()
    assert functions.hours(4) == NOW + timedelta(hours=4)
    assert functions.hours(4, "2025-10-30T22:30:00Z") == datetime(2025, 10, 31, 5, 30, tzinfo=MSK)
    assert functions.hours(0, "2025-10-30") == datetime(2025, 10, 30, 0, 0, tzinfo=MSK)


def test_hours_count_elapsed_time_across_dst() -> None:
    # Berlin switched to summer time on 30.03.2025 at 02:00: 4 elapsed hours from 00:00 end at 05:00.
    functions = make_functions(tz="Europe/Berlin")
    due = functions.hours(4, "2025-03-30T00:00:00")
    assert due == datetime(2025, 3, 30, 5, 0, tzinfo=ZoneInfo("Europe/Berlin"))


def test_now_and_today_in_namespace() -> None:
    namespace = make_functions().namespace()
    assert set(namespace) == {"working_days", "calendar_days", "months", "hours", "now", "today", "next_meeting"}
    assert namespace["now"]() == NOW
    assert namespace["now"]().tzinfo == MSK
    assert namespace["today"]() == date(2025, 10, 30)
    assert namespace["working_days"](5) == end_of_day(2025, 11, 7)
    assert namespace["calendar_days"](14, "2025-12-25") == end_of_day(2026, 1, 12)
    assert namespace["months"](1, "2025-01-31") == end_of_day(2025, 2, 28)
    assert namespace["hours"](1) == NOW + timedelta(hours=1)


def test_naive_clock_is_utc() -> None:
    functions = DeadlineFunctions(ProductionCalendar(), lambda: datetime(2025, 10, 30, 21, 30))
    assert functions.today() == date(2025, 10, 31)


# --- Error messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("func", "args", "message"),
    [
        ("working_days", (5, "2025-13-01"), r"working_days\(\): start '2025-13-01' is not an ISO 8601 date"),
        ("calendar_days", (5, "tomorrow"), r"calendar_days\(\): start 'tomorrow' is not an ISO 8601 date"),
        ("hours", (4, ""), r"hours\(\): start '' is not an ISO 8601 date"),
        ("months", (1, 20251030), r"months\(\): start must be a date, a datetime or an ISO 8601 string"),
        ("working_days", (-1,), r"working_days\(\): n must not be negative, got -1"),
        ("hours", (-2,), r"hours\(\): n must not be negative, got -2"),
        ("calendar_days", (1.5,), r"calendar_days\(\): n must be a whole number, got 1.5"),
        ("months", ("3",), r"months\(\): n must be a whole number, got '3'"),
        ("working_days", (True,), r"working_days\(\): n must be a whole number, got True"),
        ("working_days", (None,), r"working_days\(\): n must be a whole number, got None"),
    ],
)
def test_bad_arguments(func: str, args: tuple[object, ...], message: str) -> None:
    function = make_functions().namespace()[func]
    with pytest.raises(ValueError, match=message):
        function(*args)


def test_huge_n_is_a_value_error() -> None:
    functions = make_functions()
    with pytest.raises(ValueError, match=r"calendar_days\(\)"):
        functions.calendar_days(10**9, "2025-10-30")
    with pytest.raises(ValueError, match=r"months\(\)"):
        functions.months(10**6, "2025-10-30")
    with pytest.raises(ValueError, match=r"hours\(\)"):
        functions.hours(10**12, "2025-10-30")


def test_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        DeadlineFunctions(ProductionCalendar(), lambda: NOW, "Mars/Olympus")


def test_next_meeting_without_a_schedule_is_15_calendar_days() -> None:
    """The engine knows no meeting schedules: a domain replaces the function; the fallback is 15 CD, rolled."""
    functions = make_functions()
    assert functions.next_meeting("2025-10-30") == functions.calendar_days(15, "2025-10-30")
