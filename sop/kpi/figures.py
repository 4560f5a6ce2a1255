"""KPI plan vs actual: the half-year figure of each indicator by its aggregation type, beside its plan.

Aggregation types (`KpiIndicator.aggregation`):

- **stock** («на дату»): the figure at the end of the half-year. From the records, the stock at that day (e.g.
  families in СОП at 30 June, counted as `sop/reports/statistics.py` counts); entered, the value reported for that
  half-year (never summed over half-years).
- **period** («за полугодие»): what happened within the half-year, both ends included; entered, that half-year's
  value.
- **cumulative** («с нарастающим итогом»): from `counted_from` (the programme's start) to the end of the half-year.
  Entered values are what was done in each half-year, so the figure is their sum over the half-years from the one
  containing `counted_from` up to this one; a half-year without a value adds nothing.

Entered values: the coordinator's consolidated value of the half-year when there is one; before it, the sum of the
executing agencies' values (marked preliminary; none for a percentage, which does not add up).
Deviation = actual − plan; «% плана» = actual × 100 / plan (none when the plan is 0). An indicator where lower is
better (the plan is a ceiling) is met when actual ≤ plan, any other when actual ≥ plan.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..meetings.models import Meeting
from ..reports.statistics import load_cohort
from . import catalogue
from .models import AGGREGATIONS, CUMULATIVE, PERIOD, STOCK, KpiActual, KpiIndicator, KpiPlan

HALF_PATTERN = re.compile(r"^(\d{4})-H([12])$")
ROMAN = {1: "I", 2: "II"}


@dataclass(frozen=True, order=True)
class Half:
    """A half-year: «2026-H1» is 1 January – 30 June 2026, «2026-H2» 1 July – 31 December."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Half:
        match = HALF_PATTERN.match((text or "").strip())
        if not match or not 1990 <= int(match.group(1)) <= 2100:
            raise ValueError(f"полугодие «{(text or '')[:20]}» — укажите его в виде ГГГГ-H1 или ГГГГ-H2 "
                             f"(например, 2026-H1), год от 1990 до 2100")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> Half:
        return cls(day.year, 1 if day.month <= 6 else 2)

    @property
    def key(self) -> str:
        return f"{self.year}-H{self.number}"

    @property
    def start(self) -> date:
        return date(self.year, 1 if self.number == 1 else 7, 1)

    @property
    def end(self) -> date:
        return date(self.year, 6, 30) if self.number == 1 else date(self.year, 12, 31)

    @property
    def label(self) -> str:
        return f"{ROMAN[self.number]} полугодие {self.year} года"

    def previous(self) -> Half:
        return Half(self.year, 1) if self.number == 2 else Half(self.year - 1, 2)

    def following(self) -> Half:
        return Half(self.year, 2) if self.number == 1 else Half(self.year + 1, 1)

    def __str__(self) -> str:
        return self.key


def halves(first: Half, last: Half) -> list[Half]:
    result, current = [], first
    while current <= last:
        result.append(current)
        current = current.following()
    return result


# -- the aggregation types, on plain data ---------------------------------------------------------------------------

def entered_figure(aggregation: str, half: Half, counted_from: date,
                   by_half: dict[str, float | None]) -> float | None:
    """The half-year's figure from values entered per half-year (`by_half`: «2026-H1» → value)."""
    if aggregation in (STOCK, PERIOD):
        return by_half.get(half.key)
    if aggregation == CUMULATIVE:
        present = [by_half[h.key] for h in halves(Half.of(counted_from), half) if by_half.get(h.key) is not None]
        return float(sum(present)) if present else None
    raise ValueError(f"unknown aggregation {aggregation!r}")


def records_figure(aggregation: str, half: Half, counted_from: date, *,
                   stock_at: Callable[[date], int] | None = None, event_days: Iterable[date] = ()) -> int:
    """The half-year's figure from the records: a stock at the half-year's last day, or the events (their days) in
    the half-year or from `counted_from` to the half-year's end."""
    if aggregation == STOCK:
        if stock_at is None:
            raise ValueError("this records figure has no stock at a date")
        return stock_at(half.end)
    if aggregation == PERIOD:
        first = half.start
    elif aggregation == CUMULATIVE:
        first = counted_from
    else:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    return sum(1 for day in event_days if first <= day <= half.end)


# -- from the database ------------------------------------------------------------------------------------------

@dataclass
class Row:
    code: str
    section: str | None
    name: str
    unit: str
    aggregation: str
    source: str
    plan: float | None
    actual: float | None
    preliminary: bool
    lower_is_better: bool

    @property
    def aggregation_label(self) -> str:
        return AGGREGATIONS.get(self.aggregation, self.aggregation)

    @property
    def deviation(self) -> float | None:
        if self.plan is None or self.actual is None:
            return None
        return round(self.actual - self.plan, 2)

    @property
    def percent_of_plan(self) -> float | None:
        if not self.plan or self.actual is None:
            return None
        return round(self.actual * 100.0 / self.plan, 1)

    @property
    def met(self) -> bool | None:
        if self.plan is None or self.actual is None:
            return None
        return self.actual <= self.plan if self.lower_is_better else self.actual >= self.plan


def _records_events(session: Session, source: str, municipality_id: int, first: date, last: date,
                    tz: ZoneInfo) -> list[date]:
    if source == catalogue.MEETINGS_HELD:
        return list(session.scalars(select(Meeting.held_on).where(
            Meeting.municipality_id == municipality_id, Meeting.status == "closed",
            Meeting.held_on >= first, Meeting.held_on <= last)))
    if source == catalogue.FAMILIES_IN_SOP:  # as events: the families recognised
        cohort = load_cohort(session, [municipality_id], first, last, tz)
        return [r.recognized_on for r in cohort.cases if first <= r.recognized_on <= last]
    raise ValueError(f"unknown records source {source!r}")


def records_actual(session: Session, indicator: KpiIndicator, municipality_id: int, half: Half,
                   tz: ZoneInfo) -> int:
    if indicator.aggregation == STOCK:
        if indicator.source != catalogue.FAMILIES_IN_SOP:
            raise ValueError(f"{indicator.source!r} has no stock at a date")
        cohort = load_cohort(session, [municipality_id], half.end, half.end, tz)
        return records_figure(STOCK, half, indicator.counted_from, stock_at=cohort.families_at)
    first = indicator.counted_from if indicator.aggregation == CUMULATIVE else half.start
    events = _records_events(session, indicator.source, municipality_id, first, half.end, tz)
    return records_figure(indicator.aggregation, half, indicator.counted_from, event_days=events)


def entered_by_half(session: Session, indicator: KpiIndicator, municipality_id: int,
                    last: Half) -> tuple[dict[str, float | None], dict[str, bool]]:
    """Each half-year's entered value up to `last`, and whether it is preliminary (executors' sum only)."""
    rows = session.scalars(select(KpiActual).where(
        KpiActual.indicator_id == indicator.id, KpiActual.municipality_id == municipality_id)
        .order_by(KpiActual.entered_at, KpiActual.id)).all()
    consolidated: dict[str, float] = {}
    by_agency: dict[str, dict[int, float]] = {}
    for row in rows:
        if row.agency_id is None:
            consolidated[row.half] = row.value  # the latest wins
        else:
            by_agency.setdefault(row.half, {})[row.agency_id] = row.value
    values: dict[str, float | None] = {}
    preliminary: dict[str, bool] = {}
    for key in set(consolidated) | set(by_agency):
        if Half.parse(key) > last:
            continue
        if key in consolidated:
            values[key], preliminary[key] = consolidated[key], False
        elif indicator.unit != "%":
            values[key], preliminary[key] = float(sum(by_agency[key].values())), True
    return values, preliminary


def plan_vs_actual(session: Session, municipality_id: int, half: Half, tz: ZoneInfo) -> list[Row]:
    indicators = session.scalars(select(KpiIndicator).order_by(KpiIndicator.position, KpiIndicator.id)).all()
    plans = dict(session.execute(select(KpiPlan.indicator_id, KpiPlan.value).where(
        KpiPlan.municipality_id == municipality_id, KpiPlan.half == half.key)).all())
    rows = []
    for indicator in indicators:
        if indicator.source:
            actual: float | None = records_actual(session, indicator, municipality_id, half, tz)
            preliminary, source = False, catalogue.SOURCES.get(indicator.source, indicator.source)
        else:
            values, marks = entered_by_half(session, indicator, municipality_id, half)
            actual = entered_figure(indicator.aggregation, half, indicator.counted_from, values)
            preliminary = any(marks.get(h.key) for h in halves(Half.of(indicator.counted_from), half)
                              if indicator.aggregation == CUMULATIVE or h == half)
            source = "отчеты исполнителей (предварительно)" if preliminary else "сводный отчет"
            if actual is None:
                source = "нет данных"
        rows.append(Row(indicator.code, indicator.section, indicator.name, indicator.unit, indicator.aggregation,
                        source, plans.get(indicator.id), actual, preliminary, indicator.lower_is_better))
    return rows


PERCENT_NOT_SUMMED = "проценты муниципальных образований не суммируются"


def regional_plan_vs_actual(session: Session, municipality_ids: Iterable[int], half: Half,
                            tz: ZoneInfo) -> list[Row]:
    """The region's plan vs actual: each indicator's plan and actual summed over the municipalities (each sum over
    those that have a value; none when none has). A percentage does not add up: its row has neither (the
    municipalities' own pages have them). The figure is preliminary when any municipality's is."""
    per_municipality = [plan_vs_actual(session, municipality_id, half, tz) for municipality_id in municipality_ids]
    if not per_municipality:
        return []

    def total(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(float(sum(present)), 2) if present else None

    rows = []
    for same in zip(*per_municipality, strict=True):
        first = same[0]
        if first.unit == "%":
            plan, actual, source, preliminary = None, None, PERCENT_NOT_SUMMED, False
        else:
            plan, actual = total([r.plan for r in same]), total([r.actual for r in same])
            preliminary = any(r.preliminary for r in same)
            sources = sorted({r.source for r in same if r.actual is not None})
            source = "; ".join(sources) if sources else "нет данных"
        rows.append(Row(first.code, first.section, first.name, first.unit, first.aggregation, source, plan, actual,
                        preliminary, first.lower_is_better))
    return rows


# -- the plan -----------------------------------------------------------------------------------------------------

def parse_value(raw: str) -> float:
    """A planned or entered value: a non-negative number, «,» or «.» as the decimal mark."""
    text = (raw or "").strip().replace(" ", "").replace("\u00a0", "").replace(",", ".")
    value = float(text)  # ValueError for anything else
    if value != value or value in (float("inf"), float("-inf")) or value < 0 or value > 1e9:
        raise ValueError(text)
    return value


def save_plan(session: Session, municipality_id: int, half: Half, raw: dict[str, str], username: str,
              now: datetime) -> tuple[dict[str, str], list[str]]:
    """Store the planned values of a half-year (`raw`: indicator code → text; empty removes the plan). Returns the
    errors by code (then nothing is stored) and the codes changed."""
    indicators = {i.code: i for i in session.scalars(select(KpiIndicator))}
    errors: dict[str, str] = {}
    parsed: dict[str, float | None] = {}
    for code, text in raw.items():
        if code not in indicators:
            errors[code] = "такого показателя нет"
            continue
        if not (text or "").strip():
            parsed[code] = None
            continue
        try:
            parsed[code] = parse_value(text)
        except ValueError:
            errors[code] = f"«{(text or '')[:20]}» — не число; укажите неотрицательное число, например 12 или 74,5"
    if errors:
        return errors, []
    existing = {p.indicator_id: p for p in session.scalars(select(KpiPlan).where(
        KpiPlan.municipality_id == municipality_id, KpiPlan.half == half.key))}
    changed = []
    for code, value in parsed.items():
        indicator = indicators[code]
        row = existing.get(indicator.id)
        if value is None:
            if row is not None:
                session.delete(row)
                changed.append(code)
        elif row is None:
            session.add(KpiPlan(indicator_id=indicator.id, municipality_id=municipality_id, half=half.key,
                                value=value, updated_by=username, updated_at=now))
            changed.append(code)
        elif row.value != value:
            row.value, row.updated_by, row.updated_at = value, username, now
            changed.append(code)
    session.flush()
    return {}, changed


def seed_catalogue(session: Session) -> int:
    """Load the default indicators (seed 003) that are not there yet; returns how many were added."""
    known = set(session.scalars(select(KpiIndicator.code)))
    added = 0
    for position, (code, section, name, unit, aggregation, source, lower, _plans) in enumerate(catalogue.INDICATORS):
        if code in known:
            continue
        session.add(KpiIndicator(code=code, section=section, name=name, unit=unit, aggregation=aggregation,
                                 source=source, counted_from=catalogue.PROGRAMME_START, lower_is_better=lower,
                                 position=position))
        added += 1
    session.flush()
    return added


def seed_plans(session: Session, municipality_id: int, username: str, now: datetime) -> int:
    """The programme's targets (seed 003) as the municipality's plan, where it has none yet."""
    seed_catalogue(session)
    ids = dict(session.execute(select(KpiIndicator.code, KpiIndicator.id)).all())
    have = {(i, h) for i, h in session.execute(select(KpiPlan.indicator_id, KpiPlan.half)
                                               .where(KpiPlan.municipality_id == municipality_id))}
    added = 0
    for code, *_rest, plans in catalogue.INDICATORS:
        for half, value in zip(catalogue.HALVES, plans, strict=True):
            if (ids[code], half) in have:
                continue
            session.add(KpiPlan(indicator_id=ids[code], municipality_id=municipality_id, half=half,
                                value=float(value), updated_by=username, updated_at=now))
            added += 1
    session.flush()
    return added


def plan_halves(session: Session, municipality_id: int) -> list[str]:
    return sorted(session.scalars(select(KpiPlan.half).where(KpiPlan.municipality_id == municipality_id)
                                  .group_by(KpiPlan.half)))


def indicator_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(KpiIndicator)) or 0
