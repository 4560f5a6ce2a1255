"""Operation «Подросток» (seed 002) as a reporting campaign: starting it per municipality and year, what its tasks
store (the agencies' App. 2 entries, returns for correction, the municipal App. 3/4/5 reports), and the figures read
back from the records for the forms (`sop.reports.podrostok` counts them).

Which child is in which column of App. 3/4: every child of a family on the register is a child «проживающий в семье
СОП»; a child is also a minor «в отношении которого проводится ИПР» when the family's registration card names the
minor's own conduct among the kinds of the situation (`IPR_KINDS`). A child is identified across cases as the
statistics do (folded name and birth date).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.errors import InvalidInput, NotFound
from engine.models import Agency, HumanTask, Municipality

from .models import Case, InstanceScope, Person, PodrostokCampaign, PodrostokEntry
from .reports import podrostok as rules
from .reports.podrostok_app5 import APP5_ROWS
from .reports.statistics import MONTH_NAMES, child_key, load_cohort
from .reports.statistics import Period as StatPeriod

if TYPE_CHECKING:
    from .handlers import Context
    from .service import SopService

log = logging.getLogger(__name__)

PROCESS = "podrostok_campaign"
IPR_KINDS = frozenset({"involvement", "minor_alcohol", "minor_drugs"})
NOT_REPORTING = ("commission", "regional_commission")
SUMMER_MONTHS = (6, 7, 8)
# App. 5 rows the records hold; the others are entered in the final report's task
COMPUTED_APP5 = frozenset({"3.1.1", "3.2.1", "3.3", "3.4.1", "8.1", "8.2", "8.3", "8.4", "8.4.1",
                           *(f"8.1.{i}" for i in range(1, 7)), *(f"8.2.{i}" for i in range(1, 7)),
                           *(f"8.3.{i}" for i in range(1, 15))})
ENTERED_APP5 = tuple(key for key, _number, _label in APP5_ROWS if key and key not in COMPUTED_APP5)
DATE_VARIABLES = ("prep_start", "prep_end", "main_start", "main_end", "final_start", "final_end", "summary_due",
                  "final_due", "regional_due")
DAY_VARIABLES = ("agency_report_day", "municipal_report_day")


# -- the campaign's variables -------------------------------------------------------------------------------------

def default_dates(year: int) -> dict[str, Any]:
    """The terms of the Order (002 §5) for a year. The final report is due by 25 September (§5.3.3); the resolution
    that approves the Order says 26 September (its item 11) — `final_due` may be set either way."""
    return {"prep_start": f"{year}-05-01", "prep_end": f"{year}-05-31", "main_start": f"{year}-06-01",
            "main_end": f"{year}-09-01", "final_start": f"{year}-09-01", "final_end": f"{year}-10-01",
            "agency_report_day": 3, "municipal_report_day": 5, "summary_due": f"{year}-09-10",
            "final_due": f"{year}-09-25", "regional_due": f"{year}-10-01"}


def campaign_variables(year: int, municipality: str, agencies: list[dict[str, Any]], campaign_id: int,
                       overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The start variables: the defaults of `default_dates`, with `overrides` checked and applied."""
    values = default_dates(year)
    for name, value in (overrides or {}).items():
        if name in DATE_VARIABLES:
            try:
                values[name] = date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise InvalidInput(f"{name}: '{value}' is not a date (YYYY-MM-DD)", {name: "дата ГГГГ-ММ-ДД"}) \
                    from None
        elif name in DAY_VARIABLES:
            try:
                day = int(value)
            except (TypeError, ValueError):
                day = 0
            if not 1 <= day <= 28:
                raise InvalidInput(f"{name}: '{value}' is not a day of the month from 1 to 28",
                                   {name: "число от 1 до 28"})
            values[name] = day
        else:
            raise InvalidInput(f"{name}: not a setting of the campaign; use one of "
                               f"{', '.join(DATE_VARIABLES + DAY_VARIABLES)}", {name: "неизвестный параметр"})
    months = []
    for number in SUMMER_MONTHS:
        following = date(year, number + 1, 1)
        months.append({"month": f"{year}-{number:02d}", "opens": f"{following.isoformat()}T00:00:00",
                       "agency_due": following.replace(day=values["agency_report_day"]).isoformat(),
                       "municipal_due": following.replace(day=values["municipal_report_day"]).isoformat()})
    return {**values, "year": year, "municipality": municipality, "agencies": agencies, "campaign_id": campaign_id,
            "report_months": months, "months_count": len(months), "month_index": 0}


def start_campaigns(service: SopService, year: int | None = None, municipality: str | None = None,
                    overrides: dict[str, Any] | None = None, by: str = "scheduler") -> list[int]:
    """Start the year's campaign for every municipality with a commission (or the one named) that has none yet;
    the instance ids started. Without a year (the scheduler) each municipality's current year, from 1 May to
    1 October only."""
    engine = service.engine
    try:
        engine.repository.definition(PROCESS)
    except NotFound:
        if year is None:
            return []
        raise
    with engine.db.session() as session:
        query = select(Municipality).where(Municipality.id.in_(
            select(Agency.municipality_id).where(Agency.kind == "commission"))).order_by(Municipality.id)
        if municipality is not None:
            query = select(Municipality).where(Municipality.name == municipality)
        municipalities = session.scalars(query).all()
        if municipality is not None and not municipalities:
            raise NotFound(f"No municipality '{municipality}'")
        known = {(c.municipality_id, c.year) for c in session.scalars(select(PodrostokCampaign))}
    started = []
    for row in municipalities:
        today = engine.clock.now().astimezone(ZoneInfo(row.timezone)).date()
        the_year = year if year is not None else today.year
        if year is None and not date(the_year, 5, 1) <= today <= date(the_year, 10, 1):
            continue
        if (row.id, the_year) in known:
            continue
        try:
            with engine.db.session() as session:
                agencies = session.scalars(select(Agency).where(Agency.municipality_id == row.id,
                                                                Agency.kind.not_in(NOT_REPORTING))
                                           .order_by(Agency.id)).unique().all()
                if not agencies:
                    continue
                campaign = PodrostokCampaign(municipality_id=row.id, year=the_year, started_at=engine.clock.now(),
                                             reports={})
                session.add(campaign)
                session.flush()  # the unique (municipality, year) claims the start
                variables = campaign_variables(the_year, row.name, [{"id": a.id, "name": a.name} for a in agencies],
                                               campaign.id, overrides)
                campaign.reports = {"schedule": variables["report_months"]}
                campaign.process_instance_id = engine.runtime.start(
                    PROCESS, variables, business_key=f"podrostok-{row.id}-{the_year}", started_by=by,
                    timezone=row.timezone, session=session)
                session.add(InstanceScope(instance_id=campaign.process_instance_id, municipality_id=row.id))
                started.append(campaign.process_instance_id)
        except IntegrityError:
            continue  # another scheduler process started it first
    return started


# -- reading the records ------------------------------------------------------------------------------------------

def registrations(session: Session, municipality_ids: Sequence[int], period: rules.Period) -> tuple[
        list[rules.Registration], dict[int, tuple]]:
    """The children's registrations that may count in the period, and each child record's key."""
    rows = session.execute(
        select(Person.id, Person.name_key, Person.birth_date, Case.recognized_on, Case.closed_on, Case.card)
        .join(Case, Case.family_id == Person.family_id)
        .where(Person.kind == "child", Case.municipality_id.in_(list(municipality_ids)),
               Case.recognized_on.is_not(None), Case.recognized_on <= period.end)).all()
    result, keys = [], {}
    for person_id, name_key, birth, recognized, closed, card in rows:
        if closed is not None and closed < period.start:
            continue
        key = child_key(person_id, name_key, birth)
        keys[person_id] = key
        result.append(rules.Registration(key, rules.SOP, birth, recognized, closed))
        kinds = set((card or {}).get("sop_kind") or []) if isinstance(card, dict) else set()
        if kinds & IPR_KINDS:
            result.append(rules.Registration(key, rules.IPR, birth, recognized, closed))
    return result, keys


def entries(session: Session, campaign_ids: Sequence[int], keys: dict[int, tuple]) -> tuple[
        list[rules.Employment], list[rules.Excuse]]:
    employment, excuses = [], []
    for entry in session.scalars(select(PodrostokEntry).where(PodrostokEntry.campaign_id.in_(list(campaign_ids)))):
        key = keys.get(entry.person_id, ("person", entry.person_id))
        if entry.kind == "employment":
            employment.append(rules.Employment(key, entry.form, entry.date_from, entry.date_to))
        else:
            excuses.append(rules.Excuse(key, entry.reason, entry.date_from, entry.date_to or entry.date_from))
    return employment, excuses


def form_for(session: Session, campaign: PodrostokCampaign, period: rules.Period) -> rules.Form:
    regs, keys = registrations(session, [campaign.municipality_id], period)
    employment, excuses = entries(session, [campaign.id], keys)
    return rules.count(period, regs, employment, excuses)


def month_period(month: str) -> rules.Period:
    year, number = (int(part) for part in month.split("-"))
    return rules.month(year, number)


def final_computed(session: Session, campaign: PodrostokCampaign, tz: ZoneInfo) -> dict[str, Any]:
    """The App. 5 rows the records hold: section 3 (families/children in СОП at the start, newly registered,
    art. 77 removals, at 1 September) and section 8 (the summer's employment, each child once across registers).
    Row 3.3 counts the families with a removal under art. 77 in the summer: the records hold the removal act of a
    family's emergency, not how many of its children were removed."""
    year = campaign.year
    start, end = date(year, 6, 1), date(year, 9, 1)
    cohort = load_cohort(session, [campaign.municipality_id], start, end, tz)
    families, children = cohort.recognised(StatPeriod(start, end - timedelta(days=1)))
    _visited, _threat, removed = cohort.emergencies_in(StatPeriod(start, end - timedelta(days=1)))
    values: dict[str, Any] = {
        "3.1.1": f"{cohort.families_at(start)}/{cohort.children_at(start)}",
        "3.2.1": f"{len(families)}/{len(children)}",
        "3.3": len(removed),
        "3.4.1": f"{cohort.families_at(end)}/{cohort.children_at(end)}",
    }
    summer = rules.summer(year)
    regs, keys = registrations(session, [campaign.municipality_id], summer)
    employment, excuses = entries(session, [campaign.id], keys)
    both = rules.count_all(summer, regs, employment, excuses)
    for code in ("1", "2", "3", "4", "4.1", *(f"1.{i}" for i in range(1, 7)), *(f"2.{i}" for i in range(1, 7))):
        values[f"8.{code}"] = both.rows[code]
    for code in rules.FORMS:
        values[f"8.{code}"] = both.rows[code]
    return values


def campaign_of_instance(session: Session, instance_id: int) -> PodrostokCampaign | None:
    return session.scalar(select(PodrostokCampaign).where(PodrostokCampaign.process_instance_id == instance_id))


def month_of_task(campaign: PodrostokCampaign, task: HumanTask, tz: ZoneInfo) -> str:
    """The reported month of a round's task: the latest month whose round had opened when the task was created
    (the months run one after another)."""
    created = task.created_at
    schedule = (campaign.reports or {}).get("schedule") or []
    chosen = schedule[0]["month"] if schedule else f"{campaign.year}-06"
    for item in schedule:
        opens = datetime.fromisoformat(item["opens"]).replace(tzinfo=tz)
        if created is not None and created >= opens:
            chosen = item["month"]
    return chosen


def agency_ids(campaign: PodrostokCampaign, session: Session) -> dict[int, str]:
    return {a.id: a.name for a in session.scalars(select(Agency).where(
        Agency.municipality_id == campaign.municipality_id, Agency.kind.not_in(NOT_REPORTING))
        .order_by(Agency.id)).unique()}


def submissions(session: Session, campaign: PodrostokCampaign, month: str, now: datetime) -> list[dict[str, Any]]:
    """Each agency's App. 2 for the month: submitted (entries, when), returned, open, overdue or not submitted."""
    tz = ZoneInfo(campaign.municipality.timezone)
    rows = session.scalars(select(HumanTask).where(HumanTask.instance_id == campaign.process_instance_id,
                                                   HumanTask.element_id == "pod_agency_report")
                           .order_by(HumanTask.created_at)).all()
    latest: dict[int, HumanTask] = {}
    for row in rows:
        if row.agency_id is not None and month_of_task(campaign, row, tz) == month:
            latest[row.agency_id] = row
    counts: dict[int, int] = {}
    for agency_id in session.scalars(select(PodrostokEntry.agency_id).where(
            PodrostokEntry.campaign_id == campaign.id, PodrostokEntry.month == month)):
        counts[agency_id] = counts.get(agency_id, 0) + 1
    returned = {int(a) for r in (campaign.reports or {}).get("returns") or [] if r.get("month") == month
                for a in r.get("agencies") or []}
    result = []
    for agency_id, name in agency_ids(campaign, session).items():
        task = latest.get(agency_id)
        if task is None:
            state = "not_opened"
        elif task.status == "completed":
            state = "submitted"
        elif task.status == "open":
            state = "overdue" if task.due is not None and task.due < now else (
                "returned" if agency_id in returned else "open")
        else:
            state = "not_submitted"
        result.append({"agency_id": agency_id, "agency": name, "state": state, "entries": counts.get(agency_id, 0),
                       "due": task.due if task is not None else None,
                       "submitted_at": task.completed_at if task is not None else None,
                       "submitted_by": task.completed_by if task is not None else None,
                       "returned": agency_id in returned})
    return result


BLANK_ROWS_MIN, BLANK_ROWS_MAX = 3, 60
STATES = {"submitted": "представлено", "open": "ожидается", "returned": "возвращено на доработку",
          "overdue": "просрочено", "not_submitted": "не представлено", "not_opened": "срок не наступил"}


def overdue_submitters(session: Session, campaign: PodrostokCampaign, month: str, now: datetime) -> list[str]:
    return [s["agency"] for s in submissions(session, campaign, month, now)
            if s["state"] in ("overdue", "not_submitted")]


def children_options(session: Session, campaign: PodrostokCampaign, month: str) -> list[dict[str, str]]:
    period = month_period(month)
    rows = session.execute(
        select(Person.id, Person.last_name, Person.first_name, Person.birth_date, Case.number, Case.closed_on)
        .join(Case, Case.family_id == Person.family_id)
        .where(Person.kind == "child", Case.municipality_id == campaign.municipality_id,
               Case.recognized_on.is_not(None), Case.recognized_on <= period.end)
        .order_by(Person.last_name, Person.first_name, Person.id)).all()
    seen, options = set(), []
    for person_id, last, first, birth, number, closed in rows:
        if (closed is not None and closed <= period.start) or person_id in seen:
            continue
        seen.add(person_id)
        born = f", {birth:%d.%m.%Y}" if birth else ""
        options.append({"value": str(person_id), "label": f"{last} {first}{born} (дело № {number})"})
    return options


# -- what the tasks store -----------------------------------------------------------------------------------------

def _campaign(ctx: Context) -> PodrostokCampaign:
    campaign = campaign_of_instance(ctx.session, ctx.task.instance_id)
    if campaign is None:
        raise InvalidInput("This task belongs to no «Подросток» campaign on record",
                           {"campaign": "операция не найдена"})
    return campaign


def _tz(campaign: PodrostokCampaign) -> ZoneInfo:
    return ZoneInfo(campaign.municipality.timezone)


def _date(value: Any, field: str, row: int) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise InvalidInput(f"{field}: row {row}: '{value}' is not a date",
                           {field: f"строка {row}: дата ГГГГ-ММ-ДД"}) from None


def on_agency_report(ctx: Context) -> None:
    """An agency's App. 2 for the month: its lines replace the ones it gave before (a corrected submission)."""
    campaign = _campaign(ctx)
    month = month_of_task(campaign, ctx.task, _tz(campaign))
    period = month_period(month)
    allowed = {int(o["value"]) for o in children_options(ctx.session, campaign, month)}
    lines: list[PodrostokEntry] = []
    now = ctx.service.engine.clock.now()

    def child(value: Any, field: str, row: int) -> int:
        try:
            person_id = int(str(value))
        except ValueError:
            person_id = -1
        if person_id not in allowed:
            raise InvalidInput(f"{field}: row {row}: the child is not on the commission's register in {month}",
                               {field: f"строка {row}: выберите ребенка из списка состоящих на учете"})
        return person_id

    for row, item in enumerate(ctx.data.get("employment") or [], start=1):
        form = str(item.get("form") or "")
        if form not in rules.FORMS:
            raise InvalidInput(f"employment: row {row}: '{form}' is not a form 3.1–3.14",
                               {"employment": f"строка {row}: выберите форму занятости 3.1–3.14"})
        start = _date(item.get("date_from"), "employment", row)
        end = _date(item.get("date_to"), "employment", row)
        if start is None:
            raise InvalidInput(f"employment: row {row}: the start date is required",
                               {"employment": f"строка {row}: укажите дату начала"})
        if end is not None and end < start:
            raise InvalidInput(f"employment: row {row}: ends before it starts",
                               {"employment": f"строка {row}: дата окончания раньше даты начала"})
        if not period.overlaps(start, end):
            raise InvalidInput(f"employment: row {row}: the dates are outside {month}",
                               {"employment": f"строка {row}: даты не приходятся на отчетный месяц"})
        provider = str(item.get("provider") or "").strip()
        if not provider:
            raise InvalidInput(f"employment: row {row}: the organisation is required",
                               {"employment": f"строка {row}: укажите организацию (учреждение)"})
        lines.append(PodrostokEntry(person_id=child(item.get("child"), "employment", row), kind="employment",
                                    form=form, provider=provider[:300], date_from=start, date_to=end))
    for row, item in enumerate(ctx.data.get("excused") or [], start=1):
        reason = str(item.get("reason") or "")
        if reason not in rules.ENTERED_REASONS:
            raise InvalidInput(f"excused: row {row}: '{reason}' is not a reason of the closed list",
                               {"excused": f"строка {row}: выберите причину из списка"})
        lines.append(PodrostokEntry(person_id=child(item.get("excused_child"), "excused", row), kind="excuse",
                                    reason=reason, provider=str(item.get("comment") or "")[:300] or None,
                                    date_from=period.start, date_to=period.end))
    agency_id = ctx.task.agency_id
    ctx.session.execute(delete(PodrostokEntry).where(PodrostokEntry.campaign_id == campaign.id,
                                                     PodrostokEntry.month == month,
                                                     PodrostokEntry.agency_id == agency_id))
    for line in lines:
        line.campaign_id, line.agency_id, line.month = campaign.id, agency_id, month
        line.author, line.created_at = ctx.actor, now
        ctx.session.add(line)


def on_review(ctx: Context) -> None:
    campaign = _campaign(ctx)
    decision = ctx.data.get("review_decision")
    returned = [str(a) for a in ctx.data.get("returned_agencies") or []]
    comment = str(ctx.data.get("return_comment") or "").strip()
    if decision != "return":
        if returned:
            raise InvalidInput("returned_agencies: agencies are marked but the decision is to accept",
                               {"returned_agencies": "снимите отметки или выберите «вернуть на доработку»"})
        return
    known = {str(a) for a in agency_ids(campaign, ctx.session)}
    if not returned or not set(returned) <= known:
        raise InvalidInput("returned_agencies: name the agencies (of this municipality) to return to",
                           {"returned_agencies": "отметьте органы, которым информация возвращается"})
    if not comment:
        raise InvalidInput("return_comment: say what to correct", {"return_comment": "укажите, что исправить"})
    reports = dict(campaign.reports or {})
    month = month_of_task(campaign, ctx.task, _tz(campaign))
    reports["returns"] = [*(reports.get("returns") or []),
                          {"month": month, "agencies": [int(a) for a in returned], "comment": comment,
                           "by": ctx.actor, "at": ctx.service.engine.clock.now().isoformat()}]
    campaign.reports = reports


def on_monthly_report(ctx: Context) -> None:
    campaign = _campaign(ctx)
    month = month_of_task(campaign, ctx.task, _tz(campaign))
    form = form_for(ctx.session, campaign, month_period(month))
    reports = dict(campaign.reports or {})
    reports["months"] = {**(reports.get("months") or {}),
                         month: {**form.to_dict(), "sent_on": ctx.data.get("report_sent_date"), "by": ctx.actor}}
    campaign.reports = reports


def on_summer_summary(ctx: Context) -> None:
    campaign = _campaign(ctx)
    form = form_for(ctx.session, campaign, rules.summer(campaign.year))
    campaign.reports = {**(campaign.reports or {}),
                        "summer": {**form.to_dict(), "sent_on": ctx.data.get("summary_sent_date"), "by": ctx.actor}}


def on_final_report(ctx: Context) -> None:
    campaign = _campaign(ctx)
    entered: dict[str, str] = {}
    for row, item in enumerate(ctx.data.get("final_rows") or [], start=1):
        key = str(item.get("row") or "")
        if key not in ENTERED_APP5:
            raise InvalidInput(f"final_rows: row {row}: '{key}' is not an entered row of App. 5",
                               {"final_rows": f"строка {row}: выберите пункт приложения 5 (пункты разделов 3 и 8, "
                                              f"которые считаются по учетам, не вводятся)"})
        if key in entered:
            raise InvalidInput(f"final_rows: row {row}: item {key} is given twice",
                               {"final_rows": f"строка {row}: пункт {key} указан дважды"})
        entered[key] = str(item.get("value") or "").strip()[:100]
    computed = final_computed(ctx.session, campaign, _tz(campaign))
    campaign.reports = {**(campaign.reports or {}),
                        "final": {"entered": entered, "computed": computed, "summary": ctx.data.get("final_summary"),
                                  "meeting_date": ctx.data.get("final_meeting_date"),
                                  "sent_on": ctx.data.get("final_sent_date"), "by": ctx.actor}}


def on_regional(ctx: Context) -> None:
    campaign = _campaign(ctx)
    campaign.reports = {**(campaign.reports or {}),
                        "regional": {"received_on": ctx.data.get("regional_received_date"), "by": ctx.actor}}


HANDLERS = {"pod_agency_report": on_agency_report, "pod_review": on_review, "pod_monthly_report": on_monthly_report,
            "pod_summer_summary": on_summer_summary, "pod_final_report": on_final_report,
            "pod_regional": on_regional}


# -- the region ---------------------------------------------------------------------------------------------------

def campaigns(session: Session, municipality_ids: Sequence[int], year: int) -> list[PodrostokCampaign]:
    return list(session.scalars(select(PodrostokCampaign).where(
        PodrostokCampaign.municipality_id.in_(list(municipality_ids)), PodrostokCampaign.year == year)
        .order_by(PodrostokCampaign.municipality_id)))


def stored_form(campaign: PodrostokCampaign, which: str) -> rules.Form | None:
    """A municipality's submitted App. 3 (`which` = "2026-06"…) or App. 4 (`which` = "summer")."""
    reports = campaign.reports or {}
    data = reports.get("summer") if which == "summer" else (reports.get("months") or {}).get(which)
    return rules.form_from_dict(data) if data else None


def regional_form(session: Session, municipality_ids: Sequence[int], year: int, which: str) -> tuple[
        rules.Form, list[str], list[str]]:
    """The region's form: the submitted forms of the municipalities summed; which municipalities are in it and
    which have not submitted it."""
    period = rules.summer(year) if which == "summer" else month_period(which)
    forms, included, missing = [], [], []
    for campaign in campaigns(session, municipality_ids, year):
        form = stored_form(campaign, which)
        if form is None:
            missing.append(campaign.municipality.name)
        else:
            forms.append(form)
            included.append(campaign.municipality.name)
    return rules.consolidate(forms, period), included, missing


def regional_final(session: Session, municipality_ids: Sequence[int], year: int) -> tuple[dict[str, Any],
                                                                                          list[str]]:
    """App. 5 summed over the municipalities that sent it: numbers added, «семей/детей» pairs added pairwise."""
    total: dict[str, Any] = {}
    included = []
    for campaign in campaigns(session, municipality_ids, year):
        final = (campaign.reports or {}).get("final")
        if not final:
            continue
        included.append(campaign.municipality.name)
        for key, value in {**final.get("entered", {}), **final.get("computed", {})}.items():
            total[key] = add_values(total.get(key), value)
    return total, included


def add_values(a: Any, b: Any) -> Any:
    if a in (None, ""):
        return b
    parts_a, parts_b = str(a).split("/"), str(b).split("/")
    try:
        if len(parts_a) == len(parts_b):
            summed = [int(x) + int(y) for x, y in zip(parts_a, parts_b, strict=True)]
            return summed[0] if len(summed) == 1 else "/".join(str(s) for s in summed)
    except ValueError:
        pass
    return f"{a}; {b}"


# -- what the tasks' pages show -----------------------------------------------------------------------------------

def _context_campaign(scope: Any) -> tuple[PodrostokCampaign | None, str | None]:
    campaign = campaign_of_instance(scope.session, scope.task.instance_id)
    if campaign is None:
        return None, None
    return campaign, month_of_task(campaign, scope.task, _tz(campaign))


def _agency_report_context(scope: Any, context: Any) -> None:
    from .task_context import Panel

    campaign, month = _context_campaign(scope)
    if campaign is None:
        return
    context.options["podrostok_children"] = children_options(scope.session, campaign, month)
    context.defaults["report_month"] = month
    # the merged data of another agency's task must not prefill this one's
    context.defaults["documents_note"] = ""
    mine = scope.session.scalars(select(PodrostokEntry).where(
        PodrostokEntry.campaign_id == campaign.id, PodrostokEntry.month == month,
        PodrostokEntry.agency_id == scope.task.agency_id).order_by(PodrostokEntry.id)).all()
    context.defaults["employment"] = [
        {"child": str(e.person_id), "form": e.form, "provider": e.provider or "", "date_from": e.date_from.isoformat(),
         "date_to": e.date_to.isoformat() if e.date_to else ""} for e in mine if e.kind == "employment"]
    context.defaults["excused"] = [{"excused_child": str(e.person_id), "reason": e.reason, "comment": e.provider or ""}
                                   for e in mine if e.kind == "excuse"]
    # the task page draws a dynamic list's rows without adding any: blank rows to fill (blank ones are not sent)
    spare = min(len(context.options["podrostok_children"]), BLANK_ROWS_MAX) + BLANK_ROWS_MIN
    context.defaults["employment"] += [{"child": "", "form": "", "provider": "", "date_from": "", "date_to": ""}
                                       for _ in range(spare)]
    context.defaults["excused"] += [{"excused_child": "", "reason": "", "comment": ""} for _ in range(spare)]
    returns = [r for r in (campaign.reports or {}).get("returns") or []
               if r.get("month") == month and scope.task.agency_id in (r.get("agencies") or [])]
    if returns:
        panel = Panel("podrostok_return", "Информация возвращена на доработку")
        panel.row("Замечания секретаря комиссии", returns[-1].get("comment"))
        context.panels.append(panel)


def month_title(month: str) -> str:
    """A report month as the pages name it: «2026-06» -> «июнь 2026 г.»; anything else as it is."""
    year, _, number = (month or "").partition("-")
    if not (year.isdigit() and number.isdigit() and 1 <= int(number) <= 12):
        return month
    return f"{MONTH_NAMES[int(number) - 1]} {year} г."


def _review_context(scope: Any, context: Any) -> None:
    from .task_context import Panel

    campaign, month = _context_campaign(scope)
    if campaign is None:
        return
    now = scope.engine.clock.now()
    context.options["round_agency_options"] = [{"value": str(a), "label": name}
                                               for a, name in agency_ids(campaign, scope.session).items()]
    context.defaults.update({"returned_agencies": [], "return_comment": ""})  # a new decision each round
    panel = Panel("podrostok_submissions", f"Информация органов за {month_title(month)}",
                  columns=["Орган", "Состояние", "Строк", "Представлено"])
    tz = _tz(campaign)
    for item in submissions(scope.session, campaign, month, now):
        at = item["submitted_at"].astimezone(tz).strftime("%d.%m.%Y %H:%M") if item["submitted_at"] else ""
        panel.table.append([item["agency"], STATES[item["state"]], str(item["entries"]), at])
    late = overdue_submitters(scope.session, campaign, month, now)
    panel.note = ("Не представили информацию: " + ", ".join(late)) if late else "Все органы представили информацию."
    context.panels.append(panel)


def _form_panel(form: rules.Form, title: str) -> Any:
    from .task_context import Panel

    panel = Panel("podrostok_form", title, columns=["№", "Наименование", "ИПР", "%", "СОП", "%"])
    for code in rules.row_codes():
        cells = [code, rules.ROW_LABELS[code]]
        for column, _label in rules.COLUMNS:
            percent = form.percent(code, column)
            cells += [str(form.value(code, column)), "" if percent is None else f"{percent:.1f}".replace(".", ",")]
        panel.table.append(cells)
    return panel


def _monthly_context(scope: Any, context: Any) -> None:
    campaign, month = _context_campaign(scope)
    if campaign is None:
        return
    form = form_for(scope.session, campaign, month_period(month))
    context.panels.append(_form_panel(form, f"Приложение 3 за {month_title(month)} (по учетам и информации органов)"))


def _summer_context(scope: Any, context: Any) -> None:
    campaign, _month = _context_campaign(scope)
    if campaign is None:
        return
    form = form_for(scope.session, campaign, rules.summer(campaign.year))
    context.panels.append(_form_panel(form, "Приложение 4: июнь, июль, август (каждый ребенок один раз)"))


def _final_context(scope: Any, context: Any) -> None:
    from .task_context import Panel

    campaign, _month = _context_campaign(scope)
    if campaign is None:
        return
    computed = final_computed(scope.session, campaign, _tz(campaign))
    panel = Panel("podrostok_final", "Пункты приложения 5, рассчитанные по учетам", columns=["№", "Наименование",
                                                                                               "Значение"])
    for key, number, label in APP5_ROWS:
        if key in computed:
            panel.table.append([number, label, str(computed[key])])
    context.panels.append(panel)


def _regional_context(scope: Any, context: Any) -> None:
    from .task_context import Panel, russian_date

    campaign, _month = _context_campaign(scope)
    if campaign is None:
        return
    summer = stored_form(campaign, "summer")
    if summer is not None:
        context.panels.append(_form_panel(summer, f"Приложение 4: {campaign.municipality.name}"))
    final = (campaign.reports or {}).get("final") or {}
    panel = Panel("podrostok_final", f"Отчет об итогах операции: {campaign.municipality.name}")
    panel.row("Рассмотрен на заседании", russian_date(final.get("meeting_date")))
    panel.row("Направлен", russian_date(final.get("sent_on")))
    panel.row("Краткая информация", final.get("summary"))
    context.panels.append(panel)


def context_builders() -> dict[str, Any]:
    return {"pod_agency_report": _agency_report_context, "pod_review": _review_context,
            "pod_monthly_report": _monthly_context, "pod_summer_summary": _summer_context,
            "pod_final_report": _final_context, "pod_regional": _regional_context}
