"""KPI plan vs actual (seed 003) and the half-year KPI campaign (workflows/kpi_campaign.bpmn).

The aggregation types are checked on synthetic data with the expected figures worked out in the comments; the
campaign is driven with the engine clock (submit, an overdue executor, a return for rework, a refused approval,
approval, the report sent) and from the command line with `kurator tick --at`."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import sop
from engine import InvalidInput
from engine.errors import Conflict, PermissionDenied
from engine.models import HumanTask, Municipality
from sop.cli import main
from sop.kpi import catalogue
from sop.kpi.campaign import start_campaign, start_due
from sop.kpi.figures import Half, entered_figure, plan_vs_actual, records_figure, save_plan, seed_plans
from sop.kpi.models import CUMULATIVE, PERIOD, STOCK, KpiActual, KpiCampaign
from sop.meetings.models import Commission, Meeting
from sop.task_context import task_context

from .test_reports import cohort_of_the_year

MSK = ZoneInfo("Europe/Moscow")
ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "workflows" / "kpi_campaign.bpmn", *sorted((ROOT / "forms").glob("kpi_*.json"))]
START = date(2025, 7, 1)  # the programme's start: cumulative figures count from here


# -- half-years ---------------------------------------------------------------------------------------------------

def test_half_years():
    h1 = Half.parse("2026-H1")
    assert (h1.start, h1.end, h1.label) == (date(2026, 1, 1), date(2026, 6, 30), "I полугодие 2026 года")
    assert Half.parse(" 2026-H2 ").end == date(2026, 12, 31)
    assert h1.previous() == Half(2025, 2) and Half(2025, 2).following() == h1
    assert Half.of(date(2026, 6, 30)) == h1 and Half.of(date(2026, 7, 1)) == Half(2026, 2)
    for bad in ("2026-H3", "2026H1", "", "26-H1", "1800-H1"):
        with pytest.raises(ValueError, match="ГГГГ-H1"):
            Half.parse(bad)


# -- the aggregation types on synthetic data ---------------------------------------------------------------------

def test_entered_values_by_aggregation_type():
    # an executor entered what was done in each half-year: 2025-H2 3, 2026-H1 4, 2026-H2 nothing yet, 2027-H1 5;
    # and 2025-H1 (before the programme's start on 1.07.2025) 100, which a cumulative figure must not count
    by_half = {"2025-H1": 100.0, "2025-H2": 3.0, "2026-H1": 4.0, "2027-H1": 5.0}
    # stock and period: the half-year's own value, never summed
    assert entered_figure(STOCK, Half(2026, 1), START, by_half) == 4.0
    assert entered_figure(PERIOD, Half(2026, 1), START, by_half) == 4.0
    assert entered_figure(PERIOD, Half(2026, 2), START, by_half) is None  # not reported: no figure, not 0
    # cumulative: 2025-H2 3 → 3; 2026-H1 3 + 4 = 7; 2026-H2 adds nothing = 7; 2027-H1 3 + 4 + 5 = 12
    assert [entered_figure(CUMULATIVE, h, START, by_half) for h in
            (Half(2025, 2), Half(2026, 1), Half(2026, 2), Half(2027, 1))] == [3.0, 7.0, 7.0, 12.0]
    assert entered_figure(CUMULATIVE, Half(2025, 2), START, {}) is None


def test_records_figures_by_aggregation_type():
    # events (e.g. meetings held): 15.05.2025 (before the start), 01.07.2025 (first day of the programme and of
    # 2025-H2), 31.12.2025 (last day of 2025-H2), 01.01.2026 and 30.06.2026 (first and last day of 2026-H1),
    # 01.07.2026 (2026-H2)
    days = [date(2025, 5, 15), date(2025, 7, 1), date(2025, 12, 31), date(2026, 1, 1), date(2026, 6, 30),
            date(2026, 7, 1)]
    # in the half-year, both ends included: 2025-H2 → 2; 2026-H1 → 2
    assert records_figure(PERIOD, Half(2025, 2), START, event_days=days) == 2
    assert records_figure(PERIOD, Half(2026, 1), START, event_days=days) == 2
    # cumulative from 1.07.2025 to the half-year's end: 2025-H2 → 2; 2026-H1 → 4; 2026-H2 → 5 (15.05.2025 never)
    assert [records_figure(CUMULATIVE, h, START, event_days=days)
            for h in (Half(2025, 2), Half(2026, 1), Half(2026, 2))] == [2, 4, 5]
    # a stock is read at the half-year's last day
    asked = []
    assert records_figure(STOCK, Half(2026, 1), START, stock_at=lambda d: asked.append(d) or 9) == 9
    assert asked == [date(2026, 6, 30)]
    with pytest.raises(ValueError):
        records_figure(STOCK, Half(2026, 1), START, event_days=days)


def test_plan_vs_actual_from_the_records_and_entered_values(engine):
    cohort = cohort_of_the_year(engine)
    town = cohort.municipalities["Йошкар-Ола"]
    with engine.db.session() as db:
        assert seed_plans(db, town, "secretary", engine.clock.now()) == len(catalogue.INDICATORS) * 3
        assert seed_plans(db, town, "secretary", engine.clock.now()) == 0  # idempotent
        commission = Commission(municipality_id=town, full_name="КДН Йошкар-Олы")
        db.add(commission)
        db.flush()
        # meetings: 10.06.2025 (before the programme), 09.07.2025 and 24.12.2025 held, 26.11.2025 cancelled
        for day, status in (("2025-06-10", "closed"), ("2025-07-09", "closed"), ("2025-11-26", "cancelled"),
                            ("2025-12-24", "closed")):
            db.add(Meeting(commission_id=commission.id, municipality_id=town, held_on=date.fromisoformat(day),
                           status=status, year=2025, created_at=engine.clock.now()))
        ids = {i.code: i.id for i in db.scalars(select(sop.kpi.models.KpiIndicator))}
        now = engine.clock.now()
        # 4.2 (cumulative): the police 2 and the school 1 in 2025-H2, consolidated 3; 2026-H1 police 4 (not yet
        # consolidated: preliminary)
        police, school = cohort.agencies["ОМВД"], cohort.agencies["Школа № 1"]
        for half, agency, value in (("2025-H2", police, 2), ("2025-H2", school, 1), ("2025-H2", None, 3),
                                    ("2026-H1", police, 4)):
            db.add(KpiActual(indicator_id=ids["4.2"], municipality_id=town, half=half, agency_id=agency,
                             value=value, entered_at=now))
        # 1.2 is a percentage: agencies' values are not summed
        db.add(KpiActual(indicator_id=ids["1.2"], municipality_id=town, half="2025-H2", agency_id=police,
                         value=50, entered_at=now))
    with engine.db.session() as db:
        rows = {r.code: r for r in plan_vs_actual(db, town, Half(2025, 2), MSK)}
        # 1.3 families in СОП at 31.12.2025 (test_reports: F1, F3, F4) = 3 against a ceiling of 97: met
        assert (rows["1.3"].plan, rows["1.3"].actual, rows["1.3"].deviation, rows["1.3"].met) == (97, 3, -94, True)
        # 3.1 meetings held from 1.07.2025 to 31.12.2025, cumulative: 09.07 and 24.12 = 2 against 1: 200 %
        assert (rows["3.1"].actual, rows["3.1"].percent_of_plan, rows["3.1"].met) == (2, 200.0, True)
        # 4.2 consolidated 3 against 3
        assert (rows["4.2"].actual, rows["4.2"].preliminary, rows["4.2"].met) == (3, False, True)
        assert rows["1.2"].actual is None and rows["1.2"].source == "нет данных"
        assert rows["2.2"].actual is None and rows["2.2"].met is None
        h1 = {r.code: r for r in plan_vs_actual(db, town, Half(2026, 1), MSK)}
        # 4.2 in 2026-H1: 3 (2025-H2) + 4 (the police, preliminary) = 7 against 6
        assert (h1["4.2"].actual, h1["4.2"].preliminary, h1["4.2"].deviation) == (7, True, 1)
        # 1.3 at 30.06.2026: F1, F3 (K4), F4 are still open = 3
        assert h1["1.3"].actual == 3
        h1_2025 = {r.code: r for r in plan_vs_actual(db, town, Half(2025, 1), MSK)}
        # at 30.06.2025 F2 (K2 until 31.12.2025) is also on the register: 4; no plan for 2025-H1 in seed 003
        assert (h1_2025["1.3"].actual, h1_2025["1.3"].plan, h1_2025["1.3"].met) == (4, None, None)


def test_saving_the_plan_checks_every_value_first(engine):
    cohort = cohort_of_the_year(engine)
    town = cohort.municipalities["Йошкар-Ола"]
    now = engine.clock.now()
    with engine.db.session() as db:
        seed_plans(db, town, "admin", now)
        errors, changed = save_plan(db, town, Half(2026, 1), {"1.3": "90", "4.2": "пять", "9.9": "1"}, "s", now)
        assert set(errors) == {"4.2", "9.9"} and "не число" in errors["4.2"] and changed == []
    with engine.db.session() as db:
        rows = {r.code: r for r in plan_vs_actual(db, town, Half(2026, 1), MSK)}
        assert rows["1.3"].plan == 95  # nothing of the refused save was stored
        errors, changed = save_plan(db, town, Half(2026, 1), {"1.3": "90,5", "4.2": "", "2.1": "1"}, "s", now)
        assert errors == {} and sorted(changed) == ["1.3", "4.2"]  # 2.1 unchanged
    with engine.db.session() as db:
        rows = {r.code: r for r in plan_vs_actual(db, town, Half(2026, 1), MSK)}
        assert rows["1.3"].plan == 90.5 and rows["4.2"].plan is None
        errors, _ = save_plan(db, town, Half(2026, 1), {"1.3": "-1"}, "s", now)
        assert "1.3" in errors


# -- the campaign ------------------------------------------------------------------------------------------------

AGENCIES = {"ОМВД": "police", "Отдел опеки": "guardianship", "ЦССУ": "social_protection", "Школа": "education"}
USERS = {"police1": "ОМВД", "guardian1": "Отдел опеки", "social1": "ЦССУ", "school1": "Школа"}


@pytest.fixture
def campaign(engine):
    sop.install(engine)
    result = engine.repository.deploy(FILES, deployed_by="methodologist")
    assert result.warnings == []
    engine.identity.add_agency("КДН", "Плесецк", kind="commission")
    ids = {name: engine.identity.add_agency(name, "Плесецк", kind=kind) for name, kind in AGENCIES.items()}
    engine.identity.add_user("secretary", ["commission_secretary"], agency="КДН")
    for user, agency in USERS.items():
        roles = ["agency_specialist"] + (["guardianship"] if agency == "Отдел опеки" else [])
        engine.identity.add_user(user, roles, agency=agency)
    with engine.db.session() as db:
        municipality = db.scalar(select(Municipality.id).where(Municipality.name == "Плесецк"))
        seed_plans(db, municipality, "secretary", engine.clock.now())
    engine.ids, engine.municipality = ids, municipality
    return engine


def rows_name(code: str) -> str:
    return next(row[2] for row in catalogue.INDICATORS if row[0] == code)


def at(engine, moment: str) -> None:
    engine.clock.set(datetime.fromisoformat(moment).replace(tzinfo=MSK))


def open_tasks(engine, instance_id, element=None) -> list[dict]:
    return [t for t in engine.tasks.query(instance_id=instance_id) if element in (None, t["element_id"])]


def due_day(task) -> str:
    return datetime.fromisoformat(task["due"]).astimezone(MSK).strftime("%Y-%m-%d %H:%M")


def test_half_year_campaign_with_returns_for_rework(campaign):
    engine = campaign
    ids = engine.ids
    at(engine, "2026-06-30 12:00")
    with pytest.raises(InvalidInput, match="not over"):
        start_campaign(engine, engine.municipality, Half(2026, 1))
    at(engine, "2026-07-01 09:00")
    assert start_due(engine.sop) == 1  # the scheduler's job: 2026-H1 has a plan and is over
    assert start_due(engine.sop) == 0
    with pytest.raises(Conflict):
        start_campaign(engine, engine.municipality, Half(2026, 1), by="secretary")
    with engine.db.session() as db:
        iid = db.scalar(select(KpiCampaign.process_instance_id).where(KpiCampaign.half == "2026-H1"))
    submits = open_tasks(engine, iid, "kpi_submit")
    # one report per executor (not the commission), each addressed to its agency; due the 3rd working day after
    # 30.06.2026: 1, 2, 3 July (Wed–Fri)
    assert sorted(t["agency_id"] for t in submits) == sorted(ids.values())
    assert {due_day(t) for t in submits} == {"2026-07-03 23:59"}
    by_agency = {t["agency_id"]: t for t in submits}
    with pytest.raises(PermissionDenied):
        engine.tasks.complete(by_agency[ids["ОМВД"]]["id"], "school1", {"activities_report": "x"})
    # a bad value refuses the completion and stores nothing
    with pytest.raises(InvalidInput):
        engine.tasks.complete(by_agency[ids["ОМВД"]]["id"], "police1", {"activities_report": "x", "kpi_4_2": -1})
    engine.tasks.complete(by_agency[ids["ОМВД"]]["id"], "police1",
                          {"activities_report": "Проведены рейды", "kpi_4_2": 2, "kpi_7_2": 1})
    engine.tasks.complete(by_agency[ids["ЦССУ"]]["id"], "social1",
                          {"activities_report": "Сопровождение семей", "kpi_4_2": 3, "kpi_7_7": 12})
    engine.tasks.complete(by_agency[ids["Отдел опеки"]]["id"], "guardian1",
                          {"activities_report": "Наставничество", "kpi_7_8": 2})
    # the school misses its deadline: the sweep after 3 July marks it overdue
    at(engine, "2026-07-04 09:00")
    engine.management.sweep()
    school = open_tasks(engine, iid, "kpi_submit")[0]
    assert school["agency_id"] == ids["Школа"] and school["overdue"] is True
    assert open_tasks(engine, iid, "kpi_consolidate") == []
    engine.tasks.complete(school["id"], "school1", {"activities_report": "Семинары", "kpi_5_1": 5})
    consolidate = open_tasks(engine, iid, "kpi_consolidate")[0]
    # the coordinator (the one social_protection agency) consolidates by the 6th working day: 8 July (Wed)
    assert consolidate["agency_id"] == ids["ЦССУ"] and due_day(consolidate) == "2026-07-08 23:59"
    with engine.db.session() as db:
        context = task_context(engine, db, db.get(HumanTask, consolidate["id"]), "social1")
    # the executors' sums as defaults: 4.2 = 2 + 3
    assert context.defaults["kpi_4_2"] == 5 and context.defaults["kpi_5_1"] == 5
    assert {o["label"] for o in context.options["executor_options"]} == set(AGENCIES)
    # a return needs the executor and a comment
    with pytest.raises(InvalidInput) as refused:
        engine.tasks.complete(consolidate["id"], "social1", {"decision": "return"})
    assert set(refused.value.errors) >= {"return_agency", "return_comment"}
    engine.tasks.complete(consolidate["id"], "social1", {"decision": "return", "return_agency": str(ids["ОМВД"]),
                                                         "return_comment": "Нет подтверждающих документов"})
    rework = open_tasks(engine, iid, "kpi_rework")[0]
    assert rework["agency_id"] == ids["ОМВД"] and due_day(rework) == "2026-07-07 23:59"  # 2 WD from 3 July (Sat)
    assert [t["id"] for t in engine.tasks.query(user="school1")] == []
    with engine.db.session() as db:
        context = task_context(engine, db, db.get(HumanTask, rework["id"]), "police1")
    assert context.panel("kpi_return").rows == [("Что доработать", "Нет подтверждающих документов")]
    engine.tasks.complete(rework["id"], "police1", {"rework_answer": "Приложены акты", "kpi_4_2": 4})
    consolidate = open_tasks(engine, iid, "kpi_consolidate")[0]
    assert due_day(consolidate) == "2026-07-08 23:59"  # the term does not move with a return
    engine.tasks.complete(consolidate["id"], "social1", {"decision": "submit", "kpi_4_2": 7, "kpi_5_1": 5,
                                                         "kpi_7_7": 12, "kpi_7_8": 2, "kpi_7_2": 1})
    approve = open_tasks(engine, iid, "kpi_approve")[0]
    assert approve["agency_id"] == ids["Отдел опеки"] and due_day(approve) == "2026-07-10 23:59"
    with engine.db.session() as db:
        context = task_context(engine, db, db.get(HumanTask, approve["id"]), "guardian1")
    # the approver sees the consolidated values beside the plan: 4.2 plan 6, consolidated 7
    assert ["4.2", rows_name("4.2"), "6", "7"] in context.panel("kpi_plan").table
    with pytest.raises(InvalidInput):
        engine.tasks.complete(approve["id"], "guardian1", {"approval": "rework"})
    engine.tasks.complete(approve["id"], "guardian1", {"approval": "rework", "approval_comment": "Уточнить 7.7"})
    consolidate = open_tasks(engine, iid, "kpi_consolidate")[0]
    engine.tasks.complete(consolidate["id"], "social1", {"decision": "submit", "kpi_7_7": 10})
    approve = open_tasks(engine, iid, "kpi_approve")[0]
    engine.tasks.complete(approve["id"], "guardian1", {"approval": "approve"})
    send = open_tasks(engine, iid, "kpi_send")[0]
    # from the administration by the 10th working day: 14 July (Tue); the commission secretary's lane
    assert send["candidate_roles"] == ["commission_secretary"] and due_day(send) == "2026-07-14 23:59"
    # the date it goes out starts at today (Moscow time)
    with engine.db.session() as db:
        today = engine.clock.now().astimezone(MSK).date().isoformat()
        assert task_context(engine, db, db.get(HumanTask, send["id"]), "secretary").defaults == {"sent_on": today}
    engine.tasks.complete(send["id"], "secretary", {"sent_on": "2026-07-04", "outgoing_number": "01-12/345"})
    assert engine.runtime.instance(iid)["status"] == "completed"
    with engine.db.session() as db:
        rows = {r.code: r for r in plan_vs_actual(db, engine.municipality, Half(2026, 1), MSK)}
    # consolidated values: 4.2 = 7 (cumulative; nothing in 2025-H2) against 6; 7.7 = 10 (the second consolidation
    # replaced 12; cumulative) against 20; 5.1 = 5 against 8
    assert (rows["4.2"].actual, rows["4.2"].met, rows["4.2"].preliminary) == (7, True, False)
    assert (rows["7.7"].actual, rows["7.7"].deviation, rows["7.7"].met) == (10, -10, False)
    assert (rows["5.1"].actual, rows["5.1"].percent_of_plan) == (5, 62.5)


def test_year_end_campaign_uses_the_fixed_dates(campaign):
    engine = campaign
    at(engine, "2027-01-11 09:00")
    row = start_campaign(engine, engine.municipality, Half(2026, 2), by="secretary")
    submits = open_tasks(engine, row.process_instance_id, "kpi_submit")
    # по итогам года: not later than 20 January (Wednesday, a working day)
    assert {due_day(t) for t in submits} == {"2027-01-20 23:59"}
    for task in submits:
        user = next(u for u, a in USERS.items() if engine.ids[a] == task["agency_id"])
        engine.tasks.complete(task["id"], user, {"activities_report": "Отчет"})
    consolidate = open_tasks(engine, row.process_instance_id, "kpi_consolidate")[0]
    assert due_day(consolidate) == "2027-02-01 23:59"  # 1 February (Monday)
    engine.tasks.complete(consolidate["id"], "social1", {"decision": "submit"})
    approve = open_tasks(engine, row.process_instance_id, "kpi_approve")[0]
    assert due_day(approve) == "2027-02-08 23:59"  # 6 February is a Saturday: the next working day
    engine.tasks.complete(approve["id"], "guardian1", {"approval": "approve"})
    assert due_day(open_tasks(engine, row.process_instance_id, "kpi_send")[0]) == "2027-02-10 23:59"


def test_campaign_without_a_coordinator_goes_to_the_secretary(engine):
    sop.install(engine)
    engine.repository.deploy(FILES, deployed_by="methodologist")
    engine.identity.add_agency("КДН", "Мирный", kind="commission")
    police = engine.identity.add_agency("ОМВД", "Мирный", kind="police")
    engine.identity.add_user("secretary", ["commission_secretary"], agency="КДН")
    engine.identity.add_user("police1", ["agency_specialist"], agency="ОМВД")
    with engine.db.session() as db:
        municipality = db.scalar(select(Municipality.id).where(Municipality.name == "Мирный"))
    at(engine, "2026-07-02 09:00")
    row = start_campaign(engine, municipality, Half(2026, 1))
    task = open_tasks(engine, row.process_instance_id, "kpi_submit")[0]
    assert task["agency_id"] == police
    engine.tasks.complete(task["id"], "police1", {"activities_report": "Отчет", "kpi_1_4": 1})
    consolidate = open_tasks(engine, row.process_instance_id, "kpi_consolidate")[0]
    assert consolidate["agency_id"] is None
    assert [t["id"] for t in engine.tasks.query(user="secretary")] == [consolidate["id"]]


def test_every_entered_indicator_has_a_field_in_the_campaign_forms():
    for key in ("kpi_submit", "kpi_rework", "kpi_consolidate"):
        form = json.loads((ROOT / "forms" / f"{key}.json").read_text(encoding="utf-8"))
        numbers = {c["key"] for c in form["components"] if c["type"] == "number"}
        assert numbers == {catalogue.field_key(code) for code in catalogue.entered_codes()}, key


# -- the command line ----------------------------------------------------------------------------------------------

def test_command_line_campaign_with_tick_at(tmp_path):
    url = f"sqlite:///{tmp_path / 'kpi.db'}"
    runner = CliRunner()

    def run(*args, now="2026-07-01T09:00:00+03:00", code=0):
        result = runner.invoke(main, ["--database-url", url, "--now", now, *args])
        assert result.exit_code == code, result.output
        return result.output

    run("init-db")
    for name, kind in (("КДН", "commission"), ("ОМВД", "police"), ("ЦССУ", "social_protection")):
        run("agencies", "add", name, "--municipality", "Плесецк", "--kind", kind)
    run("deploy", *map(str, FILES))
    # 33 indicators in the table of seed 003 (1.1–1.4, 2.1–2.2, 3.1–3.3, 4.1–4.3, 5.1–5.3, 6.1–6.6, 7.1–7.10, 8.1–8.2)
    # × 3 half-years with targets (2025-H2, 2026-H1, 2026-H2) = 99
    assert "99 planned values added" in run("kpi", "seed")
    assert "ГГГГ-H1" in run("kpi", "start", "--half", "2026-1", code=2)
    assert "not over yet" in run("kpi", "start", "--half", "2026-H2", code=1)
    started = json.loads(run("kpi", "start", "--half", "2026-H1", "--json"))
    assert [s["municipality"] for s in started] == ["Плесецк"]
    assert "already started" in run("kpi", "start", "--half", "2026-H1", code=1)
    tasks = json.loads(run("tasks", "--json"))
    assert sorted(t["agency_name"] for t in tasks) == ["ОМВД", "ЦССУ"]
    assert not any(t["overdue"] for t in tasks)
    run("tick", "--at", "2026-07-04T00:00:01+03:00")
    assert all(t["overdue"] for t in json.loads(run("tasks", "--json")))
    report = json.loads(run("kpi", "report", "--half", "2026-H1", "--municipality", "Плесецк", "--json"))
    assert {r["code"]: r["plan"] for r in report}["1.3"] == 95


def test_demo_has_a_plan_and_the_last_half_years_campaign(engine):
    from sop.demo import MUNICIPALITY, seed

    engine.clock.set("2026-11-26T09:00:00+03:00")
    seed(engine)
    with engine.db.session() as db:
        municipality = db.scalar(select(Municipality.id).where(Municipality.name == MUNICIPALITY))
        campaign_row = db.scalar(select(KpiCampaign).where(KpiCampaign.municipality_id == municipality))
        assert campaign_row.half == "2026-H1"  # the last half-year over on 26.11.2026
        rows = {r.code: r for r in plan_vs_actual(db, municipality, Half(2026, 1), MSK)}
    assert engine.runtime.instance(campaign_row.process_instance_id)["status"] == "completed"
    # the seed 003 targets for 2026-H1 are the plan; the consolidated values: 1.1 (first entered) on plan,
    # 1.2 (second) at 80 % of 75 = 60
    assert (rows["1.1"].plan, rows["1.1"].actual) == (31, 31)
    assert (rows["1.2"].plan, rows["1.2"].actual, rows["1.2"].met) == (75, 60, False)
    assert rows["1.3"].plan == 95 and rows["1.3"].actual is not None  # from the demo's cases
    # the scheduler's sweep at the end of the demo starts nothing more for 2026-H1
    assert start_due(engine.sop) == 0
