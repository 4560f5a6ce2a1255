"""The commission's regular meeting days: «the n-th <weekday> of the month», moved off days off.

A scheduled day that is not a working day of the production calendar moves to the next working day (a meeting on
the 2nd Wednesday that falls on a holiday is held on the next working day).
"""

from __future__ import annotations

import calendar as monthly
from collections.abc import Iterator, Sequence
from datetime import date

from engine.calendar import ProductionCalendar
from engine.errors import InvalidInput

WEEKDAYS = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье")
ORDINALS = {1: "1-й", 2: "2-й", 3: "3-й", 4: "4-й", 5: "5-й", -1: "последний"}
# the ordinals agreeing with the weekday's gender: «2-й вторник», «2-я среда», «2-е воскресенье»
_ENDINGS = ("й", "й", "я", "й", "я", "я", "е")
_LAST = {"й": "последний", "я": "последняя", "е": "последнее"}


def check_schedule(weekday: object, weeks: object, starts_at: object = None) -> tuple[int, list[int], str | None]:
    """The schedule as stored, or `InvalidInput` naming the wrong field."""
    if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise InvalidInput("schedule_weekday: a day of the week 0 (Monday) … 6 (Sunday)",
                           {"schedule_weekday": "день недели от 0 (понедельник) до 6 (воскресенье)"})
    if not isinstance(weeks, (list, tuple)) or not weeks or any(
            isinstance(w, bool) or w not in ORDINALS for w in weeks):
        raise InvalidInput("schedule_weeks: a list of week numbers 1…5 or -1 (the last)",
                           {"schedule_weeks": "номера недель месяца 1–5 или -1 (последняя)"})
    if starts_at is not None and starts_at != "":
        text = str(starts_at)
        if len(text) != 5 or text[2] != ":" or not (text[:2].isdigit() and text[3:].isdigit()) \
                or int(text[:2]) > 23 or int(text[3:]) > 59:
            raise InvalidInput("schedule_time: time as HH:MM", {"schedule_time": "время в формате ЧЧ:ММ"})
        return weekday, sorted(set(weeks), key=lambda w: (w < 0, w)), text
    return weekday, sorted(set(weeks), key=lambda w: (w < 0, w)), None


def describe(weekday: int | None, weeks: Sequence[int] | None) -> str:
    """«2-я и 4-я среда месяца» style description for pages."""
    if weekday is None or not weeks:
        return "не установлен"
    ending = _ENDINGS[weekday]
    ordinals = [_LAST[ending] if w == -1 else f"{w}-{ending}" for w in weeks]
    joined = ordinals[0] if len(ordinals) == 1 else ", ".join(ordinals[:-1]) + " и " + ordinals[-1]
    return f"{joined} {WEEKDAYS[weekday]} месяца"


def month_days(year: int, month: int, weekday: int, weeks: Sequence[int]) -> list[date]:
    """The scheduled days of one month before moving off days off."""
    days = [week[weekday] for week in monthly.Calendar().monthdatescalendar(year, month)
            if week[weekday].month == month]
    result = []
    for n in weeks:
        if n == -1:
            result.append(days[-1])
        elif n <= len(days):
            result.append(days[n - 1])
    return sorted(set(result))


def meeting_days(calendar: ProductionCalendar, weekday: int, weeks: Sequence[int], after: date,
                 months: int = 24) -> Iterator[tuple[date, date]]:
    """(scheduled day, day held) for the scheduled meetings held after `after`, in order, within `months`."""
    year, month = after.year, after.month
    for _ in range(months):
        for scheduled in month_days(year, month, weekday, weeks):
            held = calendar.roll_forward(scheduled)
            if held > after:
                yield scheduled, held
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
