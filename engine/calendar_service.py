"""CalendarService: the production calendar with the database's overrides, and the diagram functions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from .calendar import DeadlineFunctions, ProductionCalendar
from .errors import InvalidInput
from .models import CalendarOverride, CalendarYear

if TYPE_CHECKING:
    from . import ProcessEngine


class CalendarService:
    """Builds the calendar from the override table; reloads it when the table changes."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine
        self._calendar: ProductionCalendar | None = None
        self._lock = threading.Lock()

    @property
    def calendar(self) -> ProductionCalendar:
        with self._lock:
            if self._calendar is None:
                with self._engine.db.session() as session:
                    overrides = {row.day: row.is_working for row in session.scalars(select(CalendarOverride))}
                    years = list(session.scalars(select(CalendarYear.year)))
                self._calendar = ProductionCalendar(overrides, covered_years=years)
            return self._calendar

    def reload(self) -> None:
        with self._lock:
            self._calendar = None

    def functions(self, tz: str) -> dict[str, Callable[..., Any]]:
        """The functions every diagram expression may call, bound to the engine clock and a time zone."""
        return DeadlineFunctions(self.calendar, self._engine.clock.now, tz).namespace()

    def set_override(self, day: date, is_working: bool, comment: str | None = None) -> None:
        with self._engine.db.session() as session:
            row = session.get(CalendarOverride, day)
            if row is None:
                session.add(CalendarOverride(day=day, is_working=is_working, comment=comment))
            else:
                row.is_working, row.comment = is_working, comment
        self.reload()

    def remove_override(self, day: date) -> None:
        with self._engine.db.session() as session:
            session.execute(delete(CalendarOverride).where(CalendarOverride.day == day))
        self.reload()

    def declare_year(self, year: int, comment: str | None = None) -> None:
        """Declare a year complete: its days off are all in the override table."""
        if not 1990 <= year <= 2200:
            raise InvalidInput(f"Year {year} is out of range", {"year": "out of range"})
        with self._engine.db.session() as session:
            if session.get(CalendarYear, year) is None:
                session.add(CalendarYear(year=year, comment=comment))
        self.reload()

    def overrides(self) -> list[dict]:
        with self._engine.db.session() as session:
            return [{"day": r.day.isoformat(), "is_working": r.is_working, "comment": r.comment}
                    for r in session.scalars(select(CalendarOverride).order_by(CalendarOverride.day))]
