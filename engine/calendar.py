"""The Russian production calendar and the deadline functions that BPMN expressions call.

Deadlines follow the Civil Code of the Russian Federation: a period counted in days starts on the
day after the event (art. 191) and a period ending on a day off ends on the next working day
(art. 193). Day-based deadlines are due at the end of the due day, 23:59:59 local time.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = ["CalendarCoverageError", "DeadlineFunctions", "ProductionCalendar", "Start"]

_COUNTRY = "RU"
# Dictionaries of the RU class that carry the yearly government decrees.
_DECREE_ATTRIBUTES = ("special_public_holidays", "special_public_holidays_observed")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")

# What a deadline function accepts as its start (None means "now").
Start = date | datetime | str | None


class CalendarCoverageError(ValueError):
    """A working-day computation needs a year the production calendar has no data for."""

    def __init__(self, year: int):
        self.year = year
        super().__init__(
            f"The production calendar has no data for {year}: add the year's days off as calendar "
            f"overrides (and declare the year covered) or update the 'holidays' package"
        )


@lru_cache(maxsize=1)
def _package_decree_years() -> tuple[int, int] | None:
    """First and last year for which the package holds RU decree data, or None if it holds none."""
    ru = holidays.country_holidays(_COUNTRY, years=())
    years: set[int] = set()
    for attribute in _DECREE_ATTRIBUTES:
        data = getattr(ru, attribute, None)
        if isinstance(data, Mapping):
            years.update(year for year in data if isinstance(year, int))
    if not years:
        return None
    first = max(min(years), getattr(ru, "start_year", min(years)))
    last = min(max(years), getattr(ru, "end_year", max(years)))
    return (first, last) if first <= last else None


@lru_cache(maxsize=256)
def _package_days_off(year: int) -> frozenset[date]:
    """Every date of `year` that the package data says is not a working day."""
    ru = holidays.country_holidays(_COUNTRY, years=year)
    return frozenset(day for day in _days_of(year) if not ru.is_working_day(day))


def _check_date(value: object, name: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name} must be a date (not a datetime), got {value!r}")
    return value


def _check_count(value: object, name: str = "n") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


class ProductionCalendar:
    """The Russian production calendar: weekends, public holidays, transferred days off and
    working Saturdays/Sundays from the `holidays` package, corrected by local overrides.

    Coverage rule. The package's RU class applies no generic "a holiday on a weekend moves to
    Monday" rule: every transfer, in-lieu day off and working weekend day is listed per year in the
    decree dictionaries `special_public_holidays` (transfers; the weekend day a day off is taken
    from becomes a working day) and `special_public_holidays_observed` (in-lieu days off). For a
    year past the last decree the package silently returns fixed-date holidays only, which is
    wrong. So the package covers the years from the smallest to the largest key of those two
    dictionaries (holidays 0.109: 1991-2027). A year is covered if the package covers it or it is
    listed in `covered_years` (an administrator vouches for the overrides entered for it).
    """

    def __init__(self, overrides: Mapping[date, bool] | None = None, covered_years: Iterable[int] = ()):
        self._overrides: dict[date, bool] = {}
        for day, working in (overrides or {}).items():
            _check_date(day, "override date")
            if not isinstance(working, bool):
                raise TypeError(f"override for {day.isoformat()} must be True or False, got {working!r}")
            self._overrides[day] = working
        self._declared: frozenset[int] = frozenset(int(year) for year in covered_years)
        self._package_range = _package_decree_years()
        self._years: dict[int, tuple[frozenset[date], tuple[date, ...]]] = {}

    @property
    def first_year(self) -> int | None:
        """The first year covered by the package's decree data (None if it has none)."""
        return self._package_range[0] if self._package_range else None

    @property
    def last_year(self) -> int | None:
        """The last year covered by the package's decree data (None if it has none)."""
        return self._package_range[1] if self._package_range else None

    @property
    def declared_years(self) -> frozenset[int]:
        """Years declared covered by an administrator."""
        return self._declared

    @property
    def overrides(self) -> dict[date, bool]:
        """A copy of the overrides: date -> True (working day) / False (day off)."""
        return dict(self._overrides)

    def covered(self, year: int) -> bool:
        """Whether working days of `year` can be computed reliably."""
        if year in self._declared:
            return True
        return self._package_range is not None and self._package_range[0] <= year <= self._package_range[1]

    def _year(self, year: int) -> tuple[frozenset[date], tuple[date, ...]]:
        """Days off and the sorted working days of a covered year (cached)."""
        cached = self._years.get(year)
        if cached is not None:
            return cached
        if not self.covered(year):
            raise CalendarCoverageError(year)
        # For a declared year past the decree data: weekends plus fixed-date holidays only.
        off = set(_package_days_off(year))
        for day, working in self._overrides.items():
            if day.year == year:
                if working:
                    off.discard(day)
                else:
                    off.add(day)
        working_days = tuple(d for d in _days_of(year) if d not in off)
        result = (frozenset(off), working_days)
        self._years[year] = result
        return result

    def is_working_day(self, d: date) -> bool:
        """Whether `d` is a working day; overrides win, uncovered years raise CalendarCoverageError."""
        _check_date(d, "d")
        override = self._overrides.get(d)
        if override is not None:
            return override
        return d not in self._year(d.year)[0]

    def roll_forward(self, d: date) -> date:
        """`d` if it is a working day, otherwise the next working day (Civil Code art. 193)."""
        _check_date(d, "d")
        year = d.year
        while True:
            days = self._year(year)[1]
            i = bisect_left(days, d)
            if i < len(days):
                return days[i]
            year += 1

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day counted from the day after `start` (Civil Code art. 191).

        n == 0 means `start` itself rolled forward to a working day.
        """
        _check_date(start, "start")
        remaining = _check_count(n)
        if remaining == 0:
            return self.roll_forward(start)
        year = start.year
        while True:
            days = self._year(year)[1]
            i = bisect_right(days, start)
            if remaining <= len(days) - i:
                return days[i + remaining - 1]
            remaining -= len(days) - i
            year += 1

    def add_calendar_days(self, start: date, n: int) -> date:
        """`start` plus n calendar days, rolled forward to a working day."""
        _check_date(start, "start")
        n = _check_count(n)
        try:
            due = start + timedelta(days=n)
        except OverflowError:
            raise ValueError(f"n is too large: {n} days from {start.isoformat()}") from None
        return self.roll_forward(due)

    def add_months(self, start: date, n: int) -> date:
        """The same day n months later (clamped to the month's end), rolled forward to a working day."""
        _check_date(start, "start")
        n = _check_count(n)
        month_index = start.month - 1 + n
        year, month = start.year + month_index // 12, month_index % 12 + 1
        if year > date.max.year:
            raise ValueError(f"n is too large: {n} months from {start.isoformat()}")
        day = min(start.day, _month_length(year, month))
        return self.roll_forward(date(year, month, day))

    def working_days_between(self, a: date, b: date) -> int:
        """The number of working days in (a, b]; negative (minus the count in (b, a]) if b < a."""
        _check_date(a, "a")
        _check_date(b, "b")
        if b < a:
            return -self.working_days_between(b, a)
        if a == b:
            return 0
        count = 0
        for year in range((a + timedelta(days=1)).year, b.year + 1):
            days = self._year(year)[1]
            count += bisect_right(days, b) - bisect_right(days, a)
        return count


def _month_length(year: int, month: int) -> int:
    """The number of days in a month."""
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - timedelta(days=1)).day


def _days_of(year: int) -> list[date]:
    """All dates of `year` in order."""
    first = date(year, 1, 1).toordinal()
    return [date.fromordinal(o) for o in range(first, date(year, 12, 31).toordinal() + 1)]


MEETING_FALLBACK_DAYS = 15  # next_meeting() where no meeting schedule is known


class DeadlineFunctions:
    """Deadline functions for BPMN expressions, bound to a calendar, a clock and a time zone."""

    def __init__(self, calendar: ProductionCalendar, now: Callable[[], datetime], tz: str = "Europe/Moscow"):
        try:
            self._tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        self.calendar = calendar
        self._now = now
        self.tz_name = tz

    @property
    def tz(self) -> ZoneInfo:
        """The time zone deadlines are computed in."""
        return self._tz

    def now(self) -> datetime:
        """The engine clock's current time in the calendar's time zone (naive clock values are UTC)."""
        current = self._now()
        if current.tzinfo is None:
            current = current.replace(tzinfo=UTC)
        return current.astimezone(self._tz)

    def today(self) -> date:
        """The current date in the calendar's time zone."""
        return self.now().date()

    def _start(self, func: str, start: object) -> datetime:
        """The start as an aware datetime in the time zone; a bare date means its midnight."""
        if start is None:
            return self.now()
        if isinstance(start, str):
            text = start.strip()
            try:
                if _DATE_ONLY.fullmatch(text):
                    start = date.fromisoformat(text)
                else:
                    if text[-1:] in ("Z", "z"):
                        text = text[:-1] + "+00:00"
                    start = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"{func}(): start {start!r} is not an ISO 8601 date or date-time "
                    f"(e.g. 2025-10-30 or 2025-10-30T09:00:00+03:00)"
                ) from None
        if isinstance(start, datetime):
            if start.tzinfo is None:
                return start.replace(tzinfo=self._tz)
            return start.astimezone(self._tz)
        if isinstance(start, date):
            return datetime.combine(start, time(0, 0), tzinfo=self._tz)
        raise ValueError(f"{func}(): start must be a date, a datetime or an ISO 8601 string, got {start!r}")

    @staticmethod
    def _count(func: str, n: object) -> int:
        if isinstance(n, bool) or not isinstance(n, int):
            # ValueError on purpose: the expression evaluator reports ValueErrors to the methodologist.
            raise ValueError(f"{func}(): n must be a whole number, got {n!r}")  # noqa: TRY004
        if n < 0:
            raise ValueError(f"{func}(): n must not be negative, got {n}")
        return n

    def _end_of_day(self, due: date) -> datetime:
        return datetime.combine(due, time(23, 59, 59), tzinfo=self._tz)

    def _day_based(self, func: str, step: Callable[[date, int], date], n: object, start: object) -> datetime:
        count = self._count(func, n)
        first = self._start(func, start).date()
        try:
            due = step(first, count)
        except CalendarCoverageError:
            raise
        except (OverflowError, ValueError) as exc:
            raise ValueError(f"{func}(): n={count} is out of range ({exc})") from None
        return self._end_of_day(due)

    def working_days(self, n: int, start: Start = None) -> datetime:
        """End (23:59:59) of the n-th working day after the start date."""
        return self._day_based("working_days", self.calendar.add_working_days, n, start)

    def calendar_days(self, n: int, start: Start = None) -> datetime:
        """End of the day n calendar days after the start date, rolled forward to a working day."""
        return self._day_based("calendar_days", self.calendar.add_calendar_days, n, start)

    def months(self, n: int, start: Start = None) -> datetime:
        """End of the same day n months after the start date, rolled forward to a working day."""
        return self._day_based("months", self.calendar.add_months, n, start)

    def hours(self, n: int, start: Start = None) -> datetime:
        """The start plus n elapsed hours (no rolling), in the calendar's time zone."""
        count = self._count("hours", n)
        begin = self._start("hours", start)
        try:
            return (begin.astimezone(UTC) + timedelta(hours=count)).astimezone(self._tz)
        except OverflowError:
            raise ValueError(f"hours(): n={count} is out of range") from None

    def next_meeting(self, start: Start = None, municipality: object = None) -> datetime:
        """The day of a collegial body's next meeting. The engine knows no meeting schedules: this is the
        fallback, 15 calendar days after the start; a domain that keeps schedules (`ProcessEngine.add_functions`)
        replaces it with the real meeting day."""
        return self._day_based("next_meeting", self.calendar.add_calendar_days, MEETING_FALLBACK_DAYS, start)

    def namespace(self) -> dict[str, Callable]:
        """The functions to inject into the expression evaluator, by name."""
        return {
            "next_meeting": self.next_meeting,
            "working_days": self.working_days,
            "calendar_days": self.calendar_days,
            "months": self.months,
            "hours": self.hours,
            "now": self.now,
            "today": self.today,
        }
