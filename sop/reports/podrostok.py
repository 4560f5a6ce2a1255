"""Operation «Подросток» (seed 002): the summer employment forms of Appendices 3 and 4, counted by the rules of
Appendix 6. Pure code: the records are passed in, nothing is read from a database here.

The rules, as this module applies them (each one has a unit test in tests/test_podrostok_rules.py):

- **Two columns**, counted separately: minors with whom ИПР is conducted (`ipr`) and children living in families
  in СОП (`sop`). A child in both columns is counted in each; within a column a child counts once however many
  cases (registrations) it has.
- **Row 1** «всего»: the children on the register on the first day of the period plus every child registered
  during the period (App. 6, row 1). A registration runs from `registered_on` to the day before `removed_on`.
- **Age bands A–F** (rows x.1–x.6): 0–4, 5–6, 7–9, 10–13, 14–15, 16–17 full years, both ends inclusive, on the
  day the child entered the period (its first day, or the day of registration within it). A child of 18 or more
  on that day is no minor and is not counted; a child whose birth date is unknown counts in row 1 but in no band.
- **Row 3** «охвачены»: a child of row 1 with at least one employment entry (forms 3.1–3.14) whose dates overlap
  the period; counted once in row 3 however many forms. **Rows 3.1–3.14**: the child counts in each form it had;
  the sub-rows are not summed into row 3. Entries for children outside row 1 of the column do not count there.
- **Row 4** «не охвачены»: row 1 minus row 3. **Row 4.1** «по уважительной причине»: children of row 4 with a
  reason from the closed list `REASONS` entered for the period, or — derived, never entered — registered or
  deregistered within the period and on the register in it for no more than 7 calendar days.
- **Row 2** «подлежат охвату» = row 1 − row 4.1, band by band.
- **Coverage %**: row 3 × 100 / row 2; row 3.k × 100 / the sum of the bands of row 2 its age range covers
  (`FORMS`); row 4 × 100 / row 1. One decimal; none when the denominator is 0.
- **Monthly reports** (App. 3) are the calendar month alone, not cumulative; the **summer summary** (App. 4) is
  the period 1 June – 31 August counted once per child, so a child employed in June and July counts once.
- **Region**: the municipal forms summed row by row, percentages recomputed from the sums (`consolidate`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from .statistics import Period

IPR, SOP = "ipr", "sop"
COLUMNS: tuple[tuple[str, str], ...] = ((IPR, "Н/л, в отношении которых проводится ИПР"),
                                        (SOP, "Дети, проживающие в семьях СОП"))
ADULT_AGE = 18
SHORT_STAY_DAYS = 7
# (suffix, label, from, to): full years, both inclusive (App. 6 rows 1.1–1.6)
BANDS: tuple[tuple[str, str, int, int], ...] = (
    ("1", "от 0 до 4 лет", 0, 4), ("2", "от 5 до 6 лет", 5, 6), ("3", "от 7 до 9 лет", 7, 9),
    ("4", "от 10 до 13 лет", 10, 13), ("5", "от 14 до 15 лет", 14, 15), ("6", "от 16 до 17 лет", 16, 17))
# form code -> (label as in App. 3, the bands of row 2 that are its denominator, App. 6)
FORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "3.1": ("трудоустроены постоянно (от 14 до 17 лет)", ("5", "6")),
    "3.2": ("трудоустроены временно (от 14 до 17 лет)", ("5", "6")),
    "3.3": ("заняты в клубах (клубных формированиях) по месту жительства (от 5 до 17 лет)",
            ("2", "3", "4", "5", "6")),
    "3.4": ("заняты на дворовых (тематических) площадках (от 5 до 17 лет)", ("2", "3", "4", "5", "6")),
    "3.5": ("находились на санаторно-курортном лечении (от 0 до 17 лет)", ("1", "2", "3", "4", "5", "6")),
    "3.6": ("находились в организациях отдыха и оздоровления (от 7 до 15 лет)", ("3", "4", "5")),
    "3.7": ("находились в летних профильных сменах (от 7 до 17 лет)", ("3", "4", "5", "6")),
    "3.8": ("посещали лагеря дневного пребывания (от 7 до 17 лет)", ("3", "4", "5", "6")),
    "3.9": ("посещали палаточные лагеря (от 10 до 17 лет)", ("4", "5", "6")),
    "3.10": ("побывали в лагерях труда и отдыха (от 14 до 17 лет)", ("5", "6")),
    "3.11": ("участвовали в экспедициях, экскурсиях, поездках (от 7 до 17 лет)", ("3", "4", "5", "6")),
    "3.12": ("участвовали в турпоходах (от 7 до 17 лет)", ("3", "4", "5", "6")),
    "3.13": ("вовлечены в деятельность и мероприятия «Движения первых» (от 7 до 17 лет)", ("3", "4", "5", "6")),
    "3.14": ("заняты иными формами (от 0 до 17 лет)", ("1", "2", "3", "4", "5", "6")),
}
# the closed list of valid reasons of row 4.1 (App. 6); `short_stay` is derived from the records, never entered
SHORT_STAY = "short_stay"
REASONS: dict[str, str] = {
    "detention": "нахождение в ЦВСНП, СИЗО, в розыске",
    "hospital": "длительное нахождение в больнице, в т.ч. в наркологическом или психоневрологическом диспансере",
    "health": "состояние здоровья, не позволяющее осуществлять организованную занятость",
    "infant_home": "пребывание в доме малютки",
    "too_young": "малолетний возраст, не подлежит направлению в ДДУ",
    SHORT_STAY: "непродолжительный срок постановки на учет или снятия с учета в отчетном периоде (до 7 дней)",
    "away": "нахождение за пределами муниципалитета",
}
ENTERED_REASONS = tuple(code for code in REASONS if code != SHORT_STAY)


def month(year: int, number: int) -> Period:
    following = date(year + number // 12, number % 12 + 1, 1)
    return Period(date(year, number, 1), following - timedelta(days=1))


def summer(year: int) -> Period:
    return Period(date(year, 6, 1), date(year, 8, 31))


@dataclass(frozen=True)
class Registration:
    """A child on a register: in column `ipr` or `sop`, from `registered_on` to the day before `removed_on`."""

    child: Hashable
    column: str
    birth_date: date | None
    registered_on: date
    removed_on: date | None = None


@dataclass(frozen=True)
class Employment:
    """An organised form of rest or employment (3.1–3.14) a child had from `start` to `end` (inclusive)."""

    child: Hashable
    form: str
    start: date
    end: date | None = None


@dataclass(frozen=True)
class Excuse:
    """A valid reason (row 4.1) entered for a child for the days `start`–`end`."""

    child: Hashable
    reason: str
    start: date
    end: date


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def band_of(birth: date | None, day: date) -> str | None:
    """The band suffix ("1"…"6") of a minor on `day`; None for an unknown birth date or an adult."""
    if birth is None or birth > day:
        return None
    age = age_on(birth, day)
    return next((suffix for suffix, _label, low, high in BANDS if low <= age <= high), None)


def row_codes() -> list[str]:
    codes = ["1", *(f"1.{s}" for s, *_ in BANDS), "2", *(f"2.{s}" for s, *_ in BANDS), "3", *FORMS, "4", "4.1"]
    return codes


ROW_LABELS: dict[str, str] = {
    "1": "Количество несовершеннолетних всего, из них:",
    **{f"1.{s}": label for s, label, *_ in BANDS},
    "2": "Количество н/л, подлежащих охвату отдыхом, занятостью и оздоровлением",
    **{f"2.{s}": label for s, label, *_ in BANDS},
    "3": "Количество н/л охваченных организованными формами отдыха, оздоровления и занятости, в том числе:",
    **{code: label for code, (label, _bands) in FORMS.items()},
    "4": "Не были охвачены организованными формами занятости, из них:",
    "4.1": "по уважительной причине",
}


@dataclass
class Column:
    """The figures of one column: counts per row code, coverage % per row code, and who is in which row."""

    rows: dict[str, int] = field(default_factory=dict)
    percent: dict[str, float | None] = field(default_factory=dict)
    members: dict[str, set] = field(default_factory=dict)


@dataclass
class Form:
    """An App. 3 (month) or App. 4 (summer) form: one `Column` per column key."""

    period: Period
    columns: dict[str, Column]

    def value(self, code: str, column: str) -> int:
        return self.columns[column].rows.get(code, 0)

    def percent(self, code: str, column: str) -> float | None:
        return self.columns[column].percent.get(code)

    def to_dict(self) -> dict:
        return {"from": self.period.start.isoformat(), "to": self.period.end.isoformat(),
                "rows": {col: dict(c.rows) for col, c in self.columns.items()},
                "percent": {col: dict(c.percent) for col, c in self.columns.items()}}


def ratio(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def _percentages(rows: dict[str, int]) -> dict[str, float | None]:
    result: dict[str, float | None] = {"3": ratio(rows["3"], rows["2"]), "4": ratio(rows["4"], rows["1"])}
    for code, (_label, bands) in FORMS.items():
        result[code] = ratio(rows[code], sum(rows[f"2.{b}"] for b in bands))
    return result


def _days_on_register(spans: Iterable[tuple[date, date | None]], period: Period) -> int:
    """Calendar days of the period on which the child was on the register (overlapping registrations once)."""
    clipped = sorted((max(start, period.start), min(period.end, removed - timedelta(days=1)) if removed else period.end)
                     for start, removed in spans)
    days, reached = 0, None
    for first, last in clipped:
        if reached is not None and first <= reached:
            first = reached + timedelta(days=1)
        if first <= last:
            days += (last - first).days + 1
            reached = last
    return days


def count_column(period: Period, registrations: Sequence[Registration], employment: Sequence[Employment],
                 excuses: Sequence[Excuse]) -> Column:
    """One column of the form for the period (the registrations given are that column's)."""
    spans: dict[Hashable, list[tuple[date, date | None]]] = {}
    entered: dict[Hashable, date] = {}
    birth: dict[Hashable, date | None] = {}
    moved: set[Hashable] = set()  # registered or removed within the period
    for reg in registrations:
        on_first_day = reg.registered_on <= period.start and (reg.removed_on is None
                                                              or reg.removed_on > period.start)
        registered_in = period.start <= reg.registered_on <= period.end
        if not (on_first_day or registered_in):
            continue
        day = max(reg.registered_on, period.start)
        if reg.birth_date is not None and (reg.birth_date > period.end or age_on(reg.birth_date, day) >= ADULT_AGE):
            continue  # not yet born in the period, or no longer a minor when entering it
        spans.setdefault(reg.child, []).append((reg.registered_on, reg.removed_on))
        entered[reg.child] = min(entered.get(reg.child, day), day)
        birth[reg.child] = reg.birth_date
        if registered_in or (reg.removed_on is not None and period.start < reg.removed_on <= period.end + timedelta(
                days=1)):
            moved.add(reg.child)
    total = set(spans)
    bands = {child: band_of(birth[child], max(entered[child], birth[child] or entered[child])) for child in total}
    by_form: dict[str, set] = {code: set() for code in FORMS}
    for entry in employment:
        if entry.child in total and entry.form in by_form and period.overlaps(entry.start, entry.end):
            by_form[entry.form].add(entry.child)
    covered = set().union(*by_form.values())
    not_covered = total - covered
    short = {child for child in moved & total if _days_on_register(spans[child], period) <= SHORT_STAY_DAYS}
    excused_entered = {e.child for e in excuses if e.reason in REASONS and period.overlaps(e.start, e.end)}
    excused = not_covered & (short | excused_entered)
    subject = total - excused
    members: dict[str, set] = {"1": total, "2": subject, "3": covered, "4": not_covered, "4.1": excused}
    for suffix, *_ in BANDS:
        members[f"1.{suffix}"] = {c for c in total if bands[c] == suffix}
        members[f"2.{suffix}"] = {c for c in subject if bands[c] == suffix}
    members.update(by_form)
    rows = {code: len(members[code]) for code in row_codes()}
    return Column(rows, _percentages(rows), members)


def count(period: Period, registrations: Sequence[Registration], employment: Sequence[Employment] = (),
          excuses: Sequence[Excuse] = ()) -> Form:
    """The App. 3 / App. 4 form for the period: one column per register."""
    columns = {}
    for key, _label in COLUMNS:
        columns[key] = count_column(period, [r for r in registrations if r.column == key], employment, excuses)
    return Form(period, columns)


def count_all(period: Period, registrations: Sequence[Registration], employment: Sequence[Employment] = (),
              excuses: Sequence[Excuse] = ()) -> Column:
    """Both registers together, each child once (App. 5, section 8: «состоящий на нескольких различных видах
    учета, учитывается только один раз»)."""
    return count_column(period, list(registrations), employment, excuses)


def consolidate(forms: Sequence[Form], period: Period) -> Form:
    """The region's form: the municipalities' forms summed row by row, percentages from the sums."""
    columns = {}
    for key, _label in COLUMNS:
        rows = {code: sum(f.columns[key].rows.get(code, 0) for f in forms) for code in row_codes()}
        columns[key] = Column(rows, _percentages(rows), {})
    return Form(period, columns)


def form_from_dict(data: dict) -> Form:
    """A form stored as `Form.to_dict()` (a municipality's submitted report)."""
    period = Period(date.fromisoformat(data["from"]), date.fromisoformat(data["to"]))
    columns = {}
    for key, _label in COLUMNS:
        rows = {code: int((data.get("rows") or {}).get(key, {}).get(code, 0)) for code in row_codes()}
        columns[key] = Column(rows, _percentages(rows), {})
    return Form(period, columns)
