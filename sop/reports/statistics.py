"""Statistics from the case records: families and children in СОП at a date and over a period, each figure beside
the same period of last year (АППГ).

Counting rules (stated once here; the pages, the XLSX and the PDF print what this module computes):

- A family (and its children) is **on the register** from the day of recognition (`Case.recognized_on`) to the day
  before removal (`Case.closed_on`): at a date D it is in СОП when ``recognized_on <= D < closed_on`` (removed on D
  means no longer counted at D). Cases never recognised (in check, rejected) are not counted.
- **Distinct people and families**: a family with two cases counts once; a child counts once however many cases
  or families it appears in. A child is identified by its folded name and birth date (the duplicate guard's key),
  or by its record when the birth date is unknown.
- A **child in СОП** at D is a child of a family on the register who is born by D and under 18 at D (an unknown
  birth date counts, in the band «не указан»). Recognised children are those under 18 on the day of recognition;
  removed children those who were on the register until the removal.
- **Recognised / removed in a period**: the day of recognition / removal falls within the period (both ends
  included). Removals by grounds take each family's (child's) last removal in the period, so the grounds add up to
  the total.
- **Age bands** are those of the «Подросток» reports (002, App. 6): 0–4, 5–6, 7–9, 10–13, 14–15, 16–17 full years
  at the date.
- **Emergencies**: completed inspections of the emergency path (`em_inspection`); the day is the removal act's date
  for a removal (art. 77 СК РФ), else the visit's date, else the completion day. Counted as distinct families.
- **Deadlines per step**: steps with a due date completed in the period (completion instant in the period, in the
  given time zone), on time when completed at or before the due instant; grouped by form.
- **Cases per curator and per agency** (the working group): cases on the register at the date.
- **АППГ**: the same dates one year earlier (29 February becomes 28 February); the change is
  (current − previous) × 100 / previous, and none when last year's figure is 0.

Everything is read with portable SQL (no date functions); the dates are compared in Python.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from engine.models import Agency, HumanTask, Municipality, User

from ..documents import labels
from ..models import Case, CaseAgency, InstanceScope, Person

ADULT_AGE = 18
# (label, from age, to age) in full years, both inclusive (002, App. 6: bands A–F)
AGE_BANDS: tuple[tuple[str, int, int], ...] = (("0–4 года", 0, 4), ("5–6 лет", 5, 6), ("7–9 лет", 7, 9),
                                                ("10–13 лет", 10, 13), ("14–15 лет", 14, 15),
                                                ("16–17 лет", 16, 17))
UNKNOWN_AGE = "дата рождения не указана"
NO_GROUNDS = "основание не указано"
NO_CURATOR = "куратор не назначен"
EMERGENCY_FORM = "em_inspection"
MONTHS_CHARTED = 24  # the monthly series covers at most the last 24 months of the period
MONTH_NAMES = ("январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь", "октябрь",
               "ноябрь", "декабрь")
FAR_FUTURE = date.max


# -- dates ---------------------------------------------------------------------------------------------------------

def year_earlier(day: date) -> date:
    """The same day one year earlier; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def age_on(birth: date, day: date) -> int:
    """Full years of age on `day` (a birthday counts from its own day)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def adult_from(birth: date) -> date:
    """The 18th birthday (29 February: 1 March of a year without it)."""
    try:
        return birth.replace(year=birth.year + ADULT_AGE)
    except ValueError:
        return date(birth.year + ADULT_AGE, 3, 1)


def age_band(birth: date | None, day: date) -> str | None:
    """The band of a child's age on `day`; UNKNOWN_AGE without a birth date; None for an adult or the unborn."""
    if birth is None:
        return UNKNOWN_AGE
    if birth > day:
        return None
    age = age_on(birth, day)
    for label, low, high in AGE_BANDS:
        if low <= age <= high:
            return label
    return None


@dataclass(frozen=True)
class Period:
    """Days from `start` to `end`, both included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError("the period starts after it ends")

    def __contains__(self, day: date | None) -> bool:
        return day is not None and self.start <= day <= self.end

    def overlaps(self, start: date, end: date | None) -> bool:
        """Whether [start, end] (an open end when None) shares a day with the period."""
        return start <= self.end and (end is None or end >= self.start)

    def previous_year(self) -> Period:
        return Period(year_earlier(self.start), year_earlier(self.end))

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start 00:00, the day after end 00:00) in the time zone."""
        return (datetime.combine(self.start, time(0), tzinfo=tz),
                datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=tz))

    def months(self) -> list[Period]:
        """The calendar months of the period, clipped to it."""
        result, first = [], self.start
        while first <= self.end:
            following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            result.append(Period(first, min(following - timedelta(days=1), self.end)))
            first = following
        return result


def change_percent(current: int | float, previous: int | float) -> float | None:
    """The change against last year in per cent, one decimal; None when last year's figure is 0."""
    if not previous:
        return None
    return round((current - previous) * 100.0 / previous, 1)


def change_text(current: int | float, previous: int | float) -> str:
    """«+12,5», «−3,0», «0,0»; «—» when last year's figure is 0."""
    value = change_percent(current, previous)
    if value is None:
        return "—"
    sign = "+" if value > 0 else "−" if value < 0 else ""
    return f"{sign}{abs(value):.1f}".replace(".", ",")


# -- records -------------------------------------------------------------------------------------------------------

class CaseRecord(NamedTuple):  # a tuple: made by the hundred thousand in a regional report
    id: int
    municipality_id: int
    family_id: int
    recognized_on: date
    closed_on: date | None
    grounds: str | None
    curator: str | None

    def on_register(self, day: date) -> bool:
        return self.recognized_on <= day and (self.closed_on is None or self.closed_on > day)


class ChildRecord(NamedTuple):
    person_id: int
    family_id: int
    key: tuple
    birth_date: date | None


@dataclass(frozen=True)
class EmergencyRecord:
    family_id: int | None
    municipality_id: int
    day: date
    threat: bool
    removed: bool


def child_key(person_id: int, name_key: str | None, birth: date | None) -> tuple:
    """Who a child is, across families and cases: folded name and birth date, else the record itself."""
    if birth is not None and name_key:
        return ("name", name_key, birth)
    return ("person", person_id)


def _merge(intervals: Sequence[tuple[date, date]]) -> list[tuple[date, date]]:
    """Half-open [from, to) intervals merged where they overlap or touch."""
    if len(intervals) == 1:  # the usual case: one span, nothing to sort
        start, end = intervals[0]
        return [(start, end)] if start < end else []
    merged: list[list[date]] = []
    for start, end in sorted(intervals):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


class _Stock:
    """How many distinct subjects are on the register at a date: each subject's intervals merged, then counted with
    two sorted lists (starts ≤ D minus ends ≤ D)."""

    def __init__(self, intervals: dict[Any, list[tuple[date, date]]], merged: bool = False):
        if merged:
            self.intervals = intervals
        else:  # one span (the usual case) is kept as it is, unless empty
            self.intervals = {key: (spans if spans[0][0] < spans[0][1] else []) if len(spans) == 1 else _merge(spans)
                              for key, spans in intervals.items()}
        starts: list[date] = []
        ends: list[date] = []
        for spans in self.intervals.values():
            for start, end in spans:
                starts.append(start)
                ends.append(end)
        starts.sort()
        ends.sort()
        self._starts, self._ends = starts, ends

    @classmethod
    def union(cls, stocks: Iterable[_Stock]) -> _Stock:
        """The subjects of several stocks, each counted once: a subject in two of them gets its spans merged."""
        intervals: dict[Any, list[tuple[date, date]]] = {}
        for stock in stocks:
            for key, spans in stock.intervals.items():
                known = intervals.get(key)
                intervals[key] = spans if known is None else _merge(known + spans)
        return cls(intervals, merged=True)

    def count(self, day: date) -> int:
        return bisect.bisect_right(self._starts, day) - bisect.bisect_right(self._ends, day)

    def members(self, day: date) -> list[Any]:
        found = []
        for key, spans in self.intervals.items():
            for start, end in spans:
                if start <= day < end:
                    found.append(key)
                    break
        return found


class Cohort:
    """The recognised cases of some municipalities and the children of their families, counted by the rules above."""

    def __init__(self, cases: Sequence[CaseRecord], children: Sequence[ChildRecord] | dict[int, list[ChildRecord]],
                 emergencies: Sequence[EmergencyRecord] = (), birth: dict[tuple, date | None] | None = None):
        """`children`: the children's records, or already grouped by family id; `birth`: child key -> birth date
        of (at least) those children. Both may be shared between cohorts and are never changed here."""
        self.cases = list(cases)
        self.emergencies = list(emergencies)
        if isinstance(children, dict):
            self.children_of = children
        else:
            self.children_of = defaultdict(list)
            for child in children:
                self.children_of[child.family_id].append(child)
        family_spans: dict[int, list[tuple[date, date]]] = defaultdict(list)
        child_spans: dict[tuple, list[tuple[date, date]]] = defaultdict(list)
        known = birth is not None
        self.birth: dict[tuple, date | None] = birth if known else {}
        no_children: list[ChildRecord] = []
        for record in self.cases:
            start, end = record.recognized_on, record.closed_on or FAR_FUTURE
            family_spans[record.family_id].append((start, end))
            for child in self.children_of.get(record.family_id, no_children):
                birth = child.birth_date
                if not known:
                    self.birth[child.key] = birth
                if birth is None:
                    child_spans[child.key].append((start, end))
                else:
                    adult = adult_from(birth)
                    child_spans[child.key].append((start if start > birth else birth, end if end < adult else adult))
        self.families = _Stock(family_spans)
        self.children = _Stock(child_spans)
        self._removed: dict[Period, tuple[dict[int, str | None], dict[tuple, str | None]]] = {}

    @classmethod
    def union(cls, parts: Sequence[Cohort]) -> Cohort:
        """The cohorts of several municipalities as one: their records together, and each family and child counted
        once across them (a child on the register in two municipalities is one child of the region)."""
        whole = cls.__new__(cls)
        whole.cases = [record for part in parts for record in part.cases]
        whole.emergencies = [event for part in parts for event in part.emergencies]
        shared = all(part.children_of is parts[0].children_of for part in parts) and parts
        whole.children_of = parts[0].children_of if shared else {}
        whole.birth = parts[0].birth if parts and all(part.birth is parts[0].birth for part in parts) else {}
        for part in parts:
            if not shared:
                whole.children_of.update(part.children_of)
            if whole.birth is not part.birth:
                whole.birth.update(part.birth)
        whole.families = _Stock.union(part.families for part in parts)
        whole.children = _Stock.union(part.children for part in parts)
        whole._removed = {}
        return whole

    # stock at a date
    def families_at(self, day: date) -> int:
        return self.families.count(day)

    def children_at(self, day: date) -> int:
        return self.children.count(day)

    def age_bands_at(self, day: date) -> Counter:
        bands: Counter = Counter()
        birth = self.birth
        for key, spans in self.children.intervals.items():
            for start, end in spans:
                if start <= day < end:
                    bands[age_band(birth[key], day)] += 1
                    break
        return bands

    def cases_at(self, day: date) -> list[CaseRecord]:
        return [record for record in self.cases if record.on_register(day)]

    # flows in a period
    def _minors(self, family_id: int, on: date) -> list[ChildRecord]:
        return [c for c in self.children_of.get(family_id, ())
                if c.birth_date is None or (c.birth_date <= on and age_on(c.birth_date, on) < ADULT_AGE)]

    def recognised(self, period: Period) -> tuple[set[int], set[tuple]]:
        families, children = set(), set()
        for record in self.cases:
            if record.recognized_on in period:
                families.add(record.family_id)
                children.update(c.key for c in self._minors(record.family_id, record.recognized_on))
        return families, children

    def removed(self, period: Period) -> tuple[dict[int, str | None], dict[tuple, str | None]]:
        """Family id -> grounds, child key -> grounds, of the last removal of each in the period (computed once per
        period; the dictionaries are shared, not to be changed)."""
        if period not in self._removed:
            self._removed[period] = self._removals(period)
        return self._removed[period]

    def _removals(self, period: Period) -> tuple[dict[int, str | None], dict[tuple, str | None]]:
        families: dict[int, tuple[date, int, str | None]] = {}
        children: dict[tuple, tuple[date, int, str | None]] = {}
        for record in self.cases:
            if record.closed_on not in period:
                continue
            stamp = (record.closed_on, record.id, record.grounds)
            if record.family_id not in families or stamp[:2] > families[record.family_id][:2]:
                families[record.family_id] = stamp
            for child in self.children_of.get(record.family_id, ()):
                if child.birth_date is not None and (child.birth_date > record.closed_on or age_on(
                        child.birth_date, max(record.recognized_on, child.birth_date)) >= ADULT_AGE):
                    continue  # born after the removal, or already an adult when the family was recognised
                if child.key not in children or stamp[:2] > children[child.key][:2]:
                    children[child.key] = stamp
        return ({k: v[2] for k, v in families.items()}, {k: v[2] for k, v in children.items()})

    def emergencies_in(self, period: Period) -> tuple[set, set, set]:
        """Distinct families visited, with a threat confirmed, with a child removed (art. 77) in the period."""
        visited, threat, removed = set(), set(), set()
        for event in self.emergencies:
            if event.day in period:
                who = event.family_id if event.family_id is not None else ("event", id(event))
                visited.add(who)
                if event.threat:
                    threat.add(who)
                if event.removed:
                    removed.add(who)
        return visited, threat, removed


# -- loading from the database -------------------------------------------------------------------------------------

def _as_date(value: date | str | None) -> date | None:
    """A DATE column's value read without the type's conversion: a date (PostgreSQL), ISO text (SQLite) or None."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _records(session: Session, municipality_ids: Sequence[int], earliest: date, latest: date,
             tz: ZoneInfo) -> tuple[list[CaseRecord], dict[int, list[ChildRecord]], list[EmergencyRecord]]:
    """The cases of the municipalities that may count anywhere in [earliest, latest], their children by family and
    the emergencies that may fall in that span."""
    relevant = and_(Case.municipality_id.in_(list(municipality_ids)), Case.recognized_on.is_not(None),
                    Case.recognized_on <= latest, or_(Case.closed_on.is_(None), Case.closed_on >= earliest))
    # Core execution (no ORM row handling) and the dates as the driver gives them: SQLite's ISO text is parsed by
    # date.fromisoformat, much faster than the generic DATE conversion; PostgreSQL's driver gives dates already
    connection = session.connection()
    cases = [CaseRecord(case_id, municipality_id, family_id, _as_date(recognized), _as_date(closed), grounds, curator)
             for case_id, municipality_id, family_id, recognized, closed, grounds, curator in connection.execute(
                 select(Case.id, Case.municipality_id, Case.family_id, type_coerce(Case.recognized_on, String),
                        type_coerce(Case.closed_on, String), Case.closure_grounds, Case.curator).where(relevant)).all()]
    families = select(Case.family_id).where(relevant)
    children: dict[int, list[ChildRecord]] = defaultdict(list)
    for pid, fid, key, birth in connection.execute(
            select(Person.id, Person.family_id, Person.name_key, type_coerce(Person.birth_date, String))
            .where(Person.kind == "child", Person.family_id.in_(families))).all():
        birth = _as_date(birth)
        children[fid].append(ChildRecord(pid, fid, child_key(pid, key, birth), birth))
    return cases, children, load_emergencies(session, municipality_ids, earliest, latest, tz)


def load_cohort(session: Session, municipality_ids: Sequence[int], earliest: date, latest: date,
                tz: ZoneInfo) -> Cohort:
    """The cases of the municipalities that may count anywhere in [earliest, latest], their children and the
    emergencies that may fall in that span."""
    return Cohort(*_records(session, municipality_ids, earliest, latest, tz))


def load_cohorts(session: Session, municipality_ids: Sequence[int], earliest: date, latest: date,
                 tz: ZoneInfo) -> dict[int, Cohort]:
    """As `load_cohort`, one cohort per municipality (read in one go); `Cohort.union` of them is the region's."""
    cases, children, emergencies = _records(session, municipality_ids, earliest, latest, tz)
    own_cases: dict[int, list[CaseRecord]] = defaultdict(list)
    own_emergencies: dict[int, list[EmergencyRecord]] = defaultdict(list)
    for record in cases:
        own_cases[record.municipality_id].append(record)
    for event in emergencies:
        own_emergencies[event.municipality_id].append(event)
    birth = {child.key: child.birth_date for records in children.values() for child in records}
    return {m: Cohort(own_cases[m], children, own_emergencies[m], birth) for m in municipality_ids}


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def load_emergencies(session: Session, municipality_ids: Sequence[int], earliest: date, latest: date,
                     tz: ZoneInfo) -> list[EmergencyRecord]:
    """Completed emergency inspections whose day may fall in [earliest, latest]: an inspection is recorded on or
    after its visit and removal, so completions before `earliest` cannot count."""
    since = datetime.combine(earliest, time(0), tzinfo=tz)
    rows = session.execute(
        select(HumanTask.municipality_id, HumanTask.completed_at, HumanTask.data, Case.family_id)
        .outerjoin(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
        .outerjoin(Case, Case.id == InstanceScope.case_id)
        .where(HumanTask.form_key == EMERGENCY_FORM, HumanTask.status == "completed",
               HumanTask.municipality_id.in_(list(municipality_ids)), HumanTask.completed_at >= since))
    events = []
    for municipality_id, completed_at, data, family_id in rows:
        data = data if isinstance(data, dict) else {}
        removed = data.get("removed") is True
        day = ((_day(data.get("removal_date")) if removed else None) or _day(data.get("visit_date"))
               or completed_at.astimezone(tz).date())
        if earliest <= day <= latest:
            events.append(EmergencyRecord(family_id, municipality_id, day, data.get("threat_confirmed") is True,
                                          removed))
    return events


def step_label(name: str, agency: str | None) -> str:
    """A step's name without the agency a per-agency task is named for ("… — МБОУ …")."""
    suffix = f" — {agency}" if agency else None
    return name[:-len(suffix)] if suffix and name.endswith(suffix) else name


def deadline_rows(session: Session, municipality_ids: Sequence[int], period: Period,
                  tz: ZoneInfo) -> dict[str, dict[str, Any]]:
    """Per step (form key, else element): completed tasks with a due date completed in the period, on time or late."""
    start, end = period.bounds(tz)
    step = func.coalesce(HumanTask.form_key, HumanTask.element_id)
    # tasks without a due date are left out by counting, not by the WHERE clause: a `due IS NOT NULL` condition
    # there lets SQLite's planner read every completed task through ix_human_task_open_due (status, due) instead of
    # the period's rows of the municipalities through ix_human_task_completed_municipality
    with_due = func.sum(case((HumanTask.due.is_not(None), 1), else_=0))
    on_time = func.sum(case((HumanTask.completed_at <= HumanTask.due, 1), else_=0))
    rows = session.execute(
        select(step.label("step"), HumanTask.name, Agency.name.label("agency"), with_due.label("total"),
               on_time.label("on_time"))
        .outerjoin(Agency, Agency.id == HumanTask.agency_id)
        .where(HumanTask.status == "completed", HumanTask.municipality_id.in_(list(municipality_ids)),
               HumanTask.completed_at >= start, HumanTask.completed_at < end)
        .group_by(step, HumanTask.name, Agency.name))
    steps: dict[str, dict[str, Any]] = {}
    for r in rows:
        if not r.total:
            continue  # only tasks without a due date
        entry = steps.setdefault(r.step, {"name": step_label(r.name, r.agency), "on_time": 0, "late": 0})
        entry["name"] = min(entry["name"], step_label(r.name, r.agency))
        entry["on_time"] += int(r.on_time or 0)
        entry["late"] += int(r.total) - int(r.on_time or 0)
    return steps


def agency_rows(session: Session, municipality_ids: Sequence[int], day: date) -> dict[int, int]:
    """Agency id -> cases on the register at `day` in whose working group it is."""
    on_register = and_(Case.municipality_id.in_(list(municipality_ids)), Case.recognized_on.is_not(None),
                       Case.recognized_on <= day, or_(Case.closed_on.is_(None), Case.closed_on > day))
    return dict(session.execute(
        select(CaseAgency.agency_id, func.count(func.distinct(CaseAgency.case_id)))
        .join(Case, Case.id == CaseAgency.case_id).where(on_register).group_by(CaseAgency.agency_id)).all())


# -- the report ----------------------------------------------------------------------------------------------------

@dataclass
class Section:
    """A table of the report: its title, column headings and rows of plain values (str, int, float, None)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""


@dataclass
class Month:
    label: str
    families: int
    families_before: int
    recognised: int
    recognised_before: int
    removed: int
    removed_before: int


@dataclass
class Report:
    """The statistics of some municipalities (one, or a region) at a date and for a period, with АППГ."""

    scope: str
    municipality_ids: list[int]
    as_of: date
    period: Period
    figures: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (current, last year)
    sections: list[Section] = field(default_factory=list)
    months: list[Month] = field(default_factory=list)
    months_cut: int = 0  # months of a long period left out of the monthly series

    @property
    def as_of_before(self) -> date:
        return year_earlier(self.as_of)

    @property
    def period_before(self) -> Period:
        return self.period.previous_year()

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)


FIGURE_COLUMNS = ["Показатель", "Отчетный период", "АППГ", "Изменение, %"]

MAIN_FIGURES = (
    ("families_at", "Семей в СОП на дату"),
    ("children_at", "Детей в семьях в СОП на дату"),
    ("families_recognised", "Семей признано находящимися в СОП за период"),
    ("children_recognised", "Детей в признанных семьях за период"),
    ("families_removed", "Семей снято с учета за период"),
    ("children_removed", "Детей снято с учета за период"),
    ("emergency_visits", "Экстренных выездов (семей)"),
    ("emergency_threats", "Угроза жизни или здоровью подтверждена (семей)"),
    ("emergency_removals", "Отобраний детей по ст. 77 СК РФ (семей)"),
)


def _figure_row(label: str, current: int, previous: int) -> list[Any]:
    return [label, current, previous, change_text(current, previous)]


def _counts(cohort: Cohort, as_of: date, period: Period) -> dict[str, int]:
    recognised_families, recognised_children = cohort.recognised(period)
    removed_families, removed_children = cohort.removed(period)
    visited, threat, removed = cohort.emergencies_in(period)
    return {"families_at": cohort.families_at(as_of), "children_at": cohort.children_at(as_of),
            "families_recognised": len(recognised_families), "children_recognised": len(recognised_children),
            "families_removed": len(removed_families), "children_removed": len(removed_children),
            "emergency_visits": len(visited), "emergency_threats": len(threat), "emergency_removals": len(removed)}


def _grounds_label(code: str | None) -> str:
    if not code:
        return NO_GROUNDS
    return labels.CLOSURE_GROUNDS_SHORT.get(code, labels.CLOSURE_GROUNDS.get(code, code))


def build_report(session: Session, municipality_ids: Sequence[int], as_of: date, period: Period,
                 tz: ZoneInfo = ZoneInfo("Europe/Moscow"), scope: str = "",
                 by_municipality: bool = False) -> Report:
    """Every figure of the report for the municipalities, at `as_of` and for `period`, beside last year's.

    `by_municipality` adds the table of the main figures per municipality (the regional view)."""
    ids = list(municipality_ids)
    report = Report(scope=scope, municipality_ids=ids, as_of=as_of, period=period)
    before, as_of_before = period.previous_year(), year_earlier(as_of)
    earliest = min(before.start, as_of_before)
    latest = max(period.end, as_of)
    parts: dict[int, Cohort] = {}
    if by_municipality:  # each municipality's cohort once; the region's is their union, a person counted once
        parts = load_cohorts(session, ids, earliest, latest, tz)
        cohort = Cohort.union(list(parts.values()))
    else:
        cohort = load_cohort(session, ids, earliest, latest, tz) if ids else Cohort([], [])

    now, then = _counts(cohort, as_of, period), _counts(cohort, as_of_before, before)
    report.figures = {key: (now[key], then[key]) for key in now}
    report.sections.append(Section(
        "main", "Основные показатели", FIGURE_COLUMNS,
        [_figure_row(label, *report.figures[key]) for key, label in MAIN_FIGURES],
        note=f"На дату: {as_of:%d.%m.%Y} (АППГ — {as_of_before:%d.%m.%Y}); период: {period.start:%d.%m.%Y} — "
             f"{period.end:%d.%m.%Y} (АППГ — {before.start:%d.%m.%Y} — {before.end:%d.%m.%Y}). Семьи и дети "
             f"учтены по одному разу, сколько бы дел у них ни было."))

    # children by age band at the date
    bands_now, bands_then = cohort.age_bands_at(as_of), cohort.age_bands_at(as_of_before)
    band_labels = [label for label, _low, _high in AGE_BANDS] + [UNKNOWN_AGE]
    report.sections.append(Section(
        "age", "Дети в семьях в СОП по возрасту на дату", ["Возраст (полных лет)", "На дату", "АППГ",
                                                           "Изменение, %"],
        [_figure_row(label, bands_now.get(label, 0), bands_then.get(label, 0)) for label in band_labels]))

    # removals by grounds
    families_now, children_now = cohort.removed(period)
    families_then, children_then = cohort.removed(before)
    grounds = [*labels.CLOSURE_GROUNDS, None]
    counted = [(code, Counter(families_now.values())[code], Counter(families_then.values())[code],
                Counter(children_now.values())[code], Counter(children_then.values())[code]) for code in grounds]
    known = set(grounds)
    for code in sorted({*families_now.values(), *families_then.values()} - known):
        counted.append((code, Counter(families_now.values())[code], Counter(families_then.values())[code],
                        Counter(children_now.values())[code], Counter(children_then.values())[code]))
    report.sections.append(Section(
        "grounds", "Снято с учета по основаниям", ["Основание снятия с учета", "Семей", "Семей, АППГ",
                                                   "Изменение, %", "Детей", "Детей, АППГ", "Изменение, %"],
        [[_grounds_label(code), f, fb, change_text(f, fb), c, cb, change_text(c, cb)]
         for code, f, fb, c, cb in counted if code is not None or f or fb]))

    if by_municipality:
        report.sections.append(_municipality_section(session, parts, ids, as_of, period))

    report.sections.append(_deadline_section(session, ids, period, tz))
    report.sections.append(_curator_section(session, cohort, as_of))
    report.sections.append(_agency_section(session, ids, as_of, by_municipality))

    months = period.months()
    report.months_cut = max(0, len(months) - MONTHS_CHARTED)
    months = months[report.months_cut:]
    recognised, removed = _monthly_flows(cohort, months + [m.previous_year() for m in months])
    for month in months:
        last_year = month.previous_year()
        now_key, then_key = (month.start.year, month.start.month), (last_year.start.year, last_year.start.month)
        report.months.append(Month(f"{MONTH_NAMES[month.start.month - 1]} {month.start.year}",
                                   cohort.families_at(month.end), cohort.families_at(last_year.end),
                                   len(recognised[now_key]), len(recognised[then_key]),
                                   len(removed[now_key]), len(removed[then_key])))
    return report


def _monthly_flows(cohort: Cohort, months: list[Period]) -> tuple[dict, dict]:
    """(year, month) -> distinct families recognised, and removed, in that month (within the given months)."""
    wanted = {(m.start.year, m.start.month): m for m in months}
    recognised: dict[tuple[int, int], set[int]] = defaultdict(set)
    removed: dict[tuple[int, int], set[int]] = defaultdict(set)
    for record in cohort.cases:
        for day, bucket in ((record.recognized_on, recognised), (record.closed_on, removed)):
            month = wanted.get((day.year, day.month)) if day is not None else None
            if month is not None and day in month:
                bucket[(day.year, day.month)].add(record.family_id)
    return recognised, removed


def _municipality_section(session: Session, parts: dict[int, Cohort], ids: list[int], as_of: date,
                          period: Period) -> Section:
    names = dict(session.execute(select(Municipality.id, Municipality.name).where(Municipality.id.in_(ids))).all())
    before, as_of_before = period.previous_year(), year_earlier(as_of)
    rows = []
    for municipality_id in sorted(ids, key=lambda m: names.get(m, "")):
        part = parts[municipality_id]
        now, then = _counts(part, as_of, period), _counts(part, as_of_before, before)
        rows.append([names.get(municipality_id, str(municipality_id)),
                     now["families_at"], then["families_at"], change_text(now["families_at"], then["families_at"]),
                     now["children_at"], then["children_at"], change_text(now["children_at"], then["children_at"]),
                     now["families_recognised"], then["families_recognised"],
                     now["families_removed"], then["families_removed"],
                     now["emergency_removals"], then["emergency_removals"]])
    return Section("municipalities", "По муниципальным образованиям",
                   ["Муниципальное образование", "Семей в СОП", "АППГ", "Изменение, %", "Детей в СОП", "АППГ",
                    "Изменение, %", "Семей признано", "АППГ", "Семей снято", "АППГ", "Отобраний (ст. 77)", "АППГ"],
                   rows, note="Итог по региону учитывает семью или ребенка один раз, даже если они состоят на "
                              "учете в двух муниципальных образованиях.")


def _percent(part: int, whole: int) -> str:
    return f"{part * 100.0 / whole:.1f}".replace(".", ",") if whole else "—"


def _deadline_section(session: Session, ids: list[int], period: Period, tz: ZoneInfo) -> Section:
    now = deadline_rows(session, ids, period, tz) if ids else {}
    then = deadline_rows(session, ids, period.previous_year(), tz) if ids else {}
    rows = []
    for step in sorted(set(now) | set(then), key=lambda s: (now.get(s) or then.get(s))["name"]):
        a, b = now.get(step, {"on_time": 0, "late": 0}), then.get(step, {"on_time": 0, "late": 0})
        name = (now.get(step) or then.get(step))["name"]
        rows.append([name, a["on_time"], a["late"], _percent(a["on_time"], a["on_time"] + a["late"]),
                     b["on_time"], b["late"], _percent(b["on_time"], b["on_time"] + b["late"]),
                     change_text(a["on_time"], b["on_time"])])
    return Section("deadlines", "Соблюдение сроков по этапам",
                   ["Этап", "В срок", "С нарушением срока", "Доля в срок, %", "АППГ: в срок",
                    "АППГ: с нарушением", "АППГ: доля в срок, %", "Изменение (в срок), %"], rows,
                   note="Задачи со сроком, выполненные в периоде; в срок — выполнены не позже срока.")


def _curator_section(session: Session, cohort: Cohort, as_of: date) -> Section:
    now = Counter(c.curator for c in cohort.cases_at(as_of))
    then = Counter(c.curator for c in cohort.cases_at(year_earlier(as_of)))
    usernames = [u for u in set(now) | set(then) if u]
    names = dict(session.execute(select(User.username, User.full_name).where(User.username.in_(usernames))).all()) \
        if usernames else {}
    label = {u: (names.get(u) or u) if u else NO_CURATOR for u in set(now) | set(then)}
    return Section("curators", "Дела в работе по кураторам (на дату)", ["Куратор", "Дел", "АППГ", "Изменение, %"],
                   [_figure_row(label[u], now[u], then[u])
                    for u in sorted(set(now) | set(then), key=lambda u: (-now[u], label[u]))])


def _agency_section(session: Session, ids: list[int], as_of: date, with_municipality: bool) -> Section:
    now = agency_rows(session, ids, as_of) if ids else {}
    then = agency_rows(session, ids, year_earlier(as_of)) if ids else {}
    agencies = set(now) | set(then)
    names = {a_id: (name, municipality) for a_id, name, municipality in session.execute(
        select(Agency.id, Agency.name, Municipality.name).join(Municipality, Municipality.id == Agency.municipality_id)
        .where(Agency.id.in_(list(agencies))))} if agencies else {}

    def label(agency_id: int) -> str:
        name, municipality = names.get(agency_id, (str(agency_id), ""))
        return f"{name} ({municipality})" if with_municipality and municipality else name

    return Section("agencies", "Дела в работе по органам рабочих групп (на дату)",
                   ["Орган", "Дел", "АППГ", "Изменение, %"],
                   [_figure_row(label(a), now.get(a, 0), then.get(a, 0))
                    for a in sorted(agencies, key=lambda a: (-now.get(a, 0), label(a)))])

