"""The demo's KPI plan and campaign: the targets of seed 003 as the demo municipality's plan, and the campaign of
the last half-year that is over run through (every executor reports, the coordinator returns one report for rework,
consolidates, the guardianship approves, the secretary sends it), so that «Показатели» shows plan vs actual."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine import ProcessEngine
from engine.errors import NotFound
from engine.models import Municipality

from . import catalogue
from .campaign import PROCESS, start_campaign
from .figures import Half, seed_plans


def _worker(engine: ProcessEngine, task: dict) -> str:
    from engine import task_query

    return next(u.username for u in engine.identity.users() if task_query.is_candidate(task, u))


def _values(plans: dict[str, float], share: float) -> dict[str, float]:
    """The consolidated values: every other indicator on plan, the rest at `share` of it."""
    return {catalogue.field_key(code): (value if i % 2 == 0 else round(value * share))
            for i, (code, value) in enumerate(plans.items())}


def run(engine: ProcessEngine, municipality: str, now: datetime) -> None:
    with engine.db.session() as session:
        municipality_id, tz = session.execute(select(Municipality.id, Municipality.timezone)
                                              .where(Municipality.name == municipality)).one()
        seed_plans(session, municipality_id, "secretary", now)
    half = Half.of(now.astimezone(ZoneInfo(tz)).date()).previous()
    if half.key not in catalogue.HALVES:
        return  # the programme of seed 003 has no targets for that half-year
    try:
        engine.repository.definition(PROCESS)
    except NotFound:
        return  # a demo on diagrams without the campaign (e.g. older versions): the plan only
    engine.clock.set(datetime.combine(half.end + timedelta(days=1), time(9), tzinfo=ZoneInfo(tz)))
    iid = start_campaign(engine, municipality_id, half, by="secretary").process_instance_id
    index = catalogue.HALVES.index(half.key)
    plans = {row[0]: float(row[7][index]) for row in catalogue.INDICATORS if row[5] is None}

    def open_task(element: str) -> list[dict]:
        return [t for t in engine.tasks.query(instance_id=iid) if t["element_id"] == element]

    for task in open_task("kpi_submit"):
        engine.tasks.complete(task["id"], _worker(engine, task), {
            "activities_report": "Мероприятия «дорожной карты» выполнены в срок",
            "documents": "Протоколы, акты, приказы"})
    consolidate = open_task("kpi_consolidate")[0]
    school = next((a for a in engine.identity.agencies() if a["kind"] == "education"
                   and a["municipality"] == municipality), None)
    if school is not None:
        engine.tasks.complete(consolidate["id"], _worker(engine, consolidate), {
            "decision": "return", "return_agency": str(school["id"]),
            "return_comment": "Не приложены подтверждающие документы по семинарам «Вызов»"})
        rework = open_task("kpi_rework")[0]
        engine.tasks.complete(rework["id"], _worker(engine, rework), {
            "rework_answer": "Приложены приказы и списки участников", "kpi_5_1": plans.get("5.1", 0)})
        consolidate = open_task("kpi_consolidate")[0]
    engine.tasks.complete(consolidate["id"], _worker(engine, consolidate), {
        "decision": "submit", **_values(plans, 0.8),
        "consolidated_summary": "Большинство показателей достигнуто"})
    approve = open_task("kpi_approve")[0]
    engine.tasks.complete(approve["id"], _worker(engine, approve), {"approval": "approve"})
    send = open_task("kpi_send")[0]
    # sent 12 days after the half-year, or today when that day has not come yet: a sending date is never ahead
    sent_at = min(datetime.combine(half.end + timedelta(days=12), time(10), tzinfo=ZoneInfo(tz)), now)
    engine.clock.set(max(sent_at, engine.clock.now()))
    engine.tasks.complete(send["id"], "secretary", {
        "sent_on": engine.clock.now().astimezone(ZoneInfo(tz)).date().isoformat(), "outgoing_number": "01-15/214"})
