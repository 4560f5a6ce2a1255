"""Operation «Подросток» as a process: two municipalities through the summer of 2026 on a moving clock.

Dates of 2026 used below: 31 May is a Sunday (the plan is due Monday 1 June); 3 July is a Friday; 5 July a Sunday
(the municipal report is due Monday 6 July); 4 July a Saturday (the round closes at the end of Monday 6 July).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import sop
import sop.cli  # noqa: F401 - the `kurator` commands of the domain
from engine import InvalidInput
from engine.cli import main
from engine.models import Agency, HumanTask
from sop import podrostok
from sop.models import Case, Family, Person, PodrostokCampaign, PodrostokEntry
from sop.reports.podrostok import IPR, SOP

MSK = ZoneInfo("Europe/Moscow")
ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "workflows" / "podrostok_campaign.bpmn", *sorted((ROOT / "forms").glob("pod_*.json"))]
PLAN = {"reconciliation_done": True, "plan_date": "2026-05-20", "plan_number": "5/2"}


def at(engine, moment: str) -> None:
    engine.clock.set(datetime.fromisoformat(moment).replace(tzinfo=MSK))


def end_of_day(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=23, minute=59, second=59, tzinfo=MSK)


def open_tasks(engine, instance_id, element) -> list[dict]:
    return [t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == element]


def one(engine, instance_id, element) -> dict:
    found = open_tasks(engine, instance_id, element)
    assert len(found) == 1, (element, [t["element_id"] for t in engine.tasks.query(instance_id=instance_id)])
    return found[0]


def add_case(session, municipality_id: int, number: str, children: list[tuple[str, str]], recognized: str,
             kinds: list[str]) -> dict[str, int]:
    family = Family(municipality_id=municipality_id, name=f"Семья {number}", created_at=datetime.now(MSK))
    family.persons = [Person(kind="child", last_name=last, first_name="Ребенок", name_key=f"{last.lower()} ребенок",
                             birth_date=date.fromisoformat(born)) for last, born in children]
    session.add(family)
    session.flush()
    session.add(Case(number=number, municipality_id=municipality_id, family_id=family.id, status="recognized",
                     received_on=date.fromisoformat(recognized), recognized_on=date.fromisoformat(recognized),
                     card={"sop_kind": kinds}, created_at=datetime.now(MSK)))
    return {p.last_name: p.id for p in family.persons}


@pytest.fixture
def world(engine):
    sop.install(engine)
    result = engine.repository.deploy(FILES, deployed_by="methodologist")
    assert "podrostok_campaign" in {i.key for i in result.items if i.kind == "process"}
    ids = {}
    for name, municipality, kind in (("КДНиЗП Йошкар-Олы", "Йошкар-Ола", "commission"),
                                     ("ОМВД Йошкар-Олы", "Йошкар-Ола", "police"),
                                     ("СОШ № 5", "Йошкар-Ола", "education"),
                                     ("КДНиЗП Волжска", "Волжск", "commission"),
                                     ("ОМВД Волжска", "Волжск", "police")):
        ids[name] = engine.identity.add_agency(name, municipality, kind=kind)
    for user, roles, agency in (("secretary", ["commission_secretary"], "КДНиЗП Йошкар-Олы"),
                                ("secretary_v", ["commission_secretary"], "КДНиЗП Волжска"),
                                ("police", ["agency_specialist"], "ОМВД Йошкар-Олы"),
                                ("school", ["agency_specialist"], "СОШ № 5"),
                                ("police_v", ["agency_specialist"], "ОМВД Волжска"),
                                ("regional", ["regional_secretary"], None)):
        engine.identity.add_user(user, roles, agency=agency)
    with engine.db.session() as session:
        yo = session.get(Agency, ids["ОМВД Йошкар-Олы"]).municipality_id
        vo = session.get(Agency, ids["ОМВД Волжска"]).municipality_id
        # Йошкар-Ола: Petrov (14) and Sidorov (7) of a family whose card names the minor's own conduct (ИПР too)
        people = add_case(session, yo, "1", [("Петров", "2012-03-15")], "2026-01-15", ["evasion"])
        people |= add_case(session, yo, "2", [("Сидоров", "2019-01-01")], "2026-02-10", ["involvement"])
        # Волжск: Кузнецов (10)
        people |= add_case(session, vo, "1", [("Кузнецов", "2016-01-01")], "2026-03-01", ["evasion"])
    return engine, ids, people, yo, vo


def campaign(engine, municipality_id) -> PodrostokCampaign:
    with engine.db.session() as session:
        row = session.scalar(select(PodrostokCampaign).where(PodrostokCampaign.municipality_id == municipality_id))
        session.expunge(row)
        return row


def submit(engine, task, user, employment=(), excused=()):
    return engine.tasks.complete(task["id"], user, {"employment": list(employment), "excused": list(excused)})


def job(child, form, provider, start, end):
    return {"child": str(child), "form": form, "provider": provider, "date_from": start, "date_to": end}


def test_the_campaign_through_the_summer(world):
    engine, ids, people, yo, vo = world
    # -- 1 May: the scheduler starts one campaign per municipality with a commission, once
    at(engine, "2026-04-30 23:00")
    engine.management.sweep()
    assert campaign_count(engine) == 0  # not before 1 May
    at(engine, "2026-05-01 00:05")
    engine.management.sweep()
    engine.management.sweep()
    assert campaign_count(engine) == 2
    c_yo, c_vo = campaign(engine, yo), campaign(engine, vo)
    iid, iid_v = c_yo.process_instance_id, c_vo.process_instance_id
    variables = engine.runtime.instance(iid)["variables"]
    assert variables["final_due"] == "2026-09-25" and variables["agency_report_day"] == 3
    assert [a["name"] for a in variables["agencies"]] == ["ОМВД Йошкар-Олы", "СОШ № 5"]  # not the commission
    plan = one(engine, iid, "pod_plan")
    assert plan["candidate_roles"] == ["commission_secretary"]
    assert datetime.fromisoformat(plan["due"]) == end_of_day("2026-06-01")  # 31 May is a Sunday
    with engine.db.session() as session:  # the tasks carry their municipality (the inbox's scope)
        assert session.get(HumanTask, plan["id"]).municipality_id == yo
    engine.tasks.complete(plan["id"], "secretary", PLAN)
    engine.tasks.complete(one(engine, iid_v, "pod_plan")["id"], "secretary_v", PLAN)
    assert open_tasks(engine, iid, "pod_agency_report") == []  # June is not over

    # -- 1 July: each agency's App. 2 for June, addressed to it, due by the 3rd
    at(engine, "2026-07-01 00:30")
    assert engine.management.sweep().timers_fired == 2
    rounds = open_tasks(engine, iid, "pod_agency_report")
    assert sorted(t["name"] for t in rounds) == [
        "Информация о фактической занятости детей (приложение 2) — ОМВД Йошкар-Олы",
        "Информация о фактической занятости детей (приложение 2) — СОШ № 5"]
    assert all(datetime.fromisoformat(t["due"]) == end_of_day("2026-07-03") for t in rounds)
    police_task = next(t for t in rounds if t["agency_id"] == ids["ОМВД Йошкар-Олы"])
    school_task = next(t for t in rounds if t["agency_id"] == ids["СОШ № 5"])
    assert [t["id"] for t in engine.tasks.query(user="school")] == [school_task["id"]]
    context = engine.sop.task_context(school_task["id"], "school")
    children = {o["label"].split(",")[0]: o["value"] for o in context.options["podrostok_children"]}
    assert set(children) == {"Петров Ребенок", "Сидоров Ребенок"}  # Волжск's child is not offered
    # bad input: a child of another municipality, a form off the list -> a clear error and nothing stored
    with pytest.raises(InvalidInput) as error:
        submit(engine, school_task, "school", [job(people["Кузнецов"], "3.8", "Лагерь", "2026-06-01", "2026-06-21")])
    assert "employment" in error.value.errors
    with pytest.raises(InvalidInput):
        submit(engine, school_task, "school", [job(people["Сидоров"], "3.99", "Лагерь", "2026-06-01", "2026-06-21")])
    with pytest.raises(InvalidInput):  # dates outside June
        submit(engine, school_task, "school", [job(people["Сидоров"], "3.8", "Лагерь", "2026-07-01", "2026-07-21")])
    assert entry_count(engine) == 0
    engine.tasks.complete(police_task["id"], "police", {
        "employment": [job(people["Петров"], "3.1", "ООО «Заря»", "2026-06-05", "2026-08-31")],
        "documents_note": "Справка ООО «Заря» исх. 15"})
    # the police's note, merged into the process, is not offered on the school's form
    assert engine.sop.task_context(school_task["id"], "school").defaults["documents_note"] == ""
    submit(engine, school_task, "school", [job(people["Сидоров"], "3.3", "Клуб «Юность»", "2026-06-01", "2026-06-30")])
    review = one(engine, iid, "pod_review")
    assert datetime.fromisoformat(review["due"]) == end_of_day("2026-07-06")
    panel = engine.sop.task_context(review["id"], "secretary").panel("podrostok_submissions")
    assert [row[1] for row in panel.table] == ["представлено", "представлено"]
    assert panel.title == "Информация органов за июнь 2026 г."  # the month in words, not «2026-06»
    # the secretary returns the school's information with a comment
    with pytest.raises(InvalidInput) as error:
        engine.tasks.complete(review["id"], "secretary", {"review_decision": "return",
                                                          "returned_agencies": [str(ids["СОШ № 5"])]})
    assert "return_comment" in error.value.errors
    engine.tasks.complete(review["id"], "secretary", {"review_decision": "return",
                                                      "returned_agencies": [str(ids["СОШ № 5"])],
                                                      "return_comment": "Сидоров был в лагере, приложите путевку"})
    again = one(engine, iid, "pod_agency_report")
    assert again["agency_id"] == ids["СОШ № 5"]
    context = engine.sop.task_context(again["id"], "school")
    assert context.panel("podrostok_return").rows[0][1] == "Сидоров был в лагере, приложите путевку"
    assert context.defaults["employment"][0]["form"] == "3.3"  # the previous lines to correct
    submit(engine, again, "school", [job(people["Сидоров"], "3.3", "Клуб «Юность»", "2026-06-01", "2026-06-30"),
                                     job(people["Сидоров"], "3.8", "Лагерь при СОШ № 5", "2026-06-01", "2026-06-21")])
    engine.tasks.complete(one(engine, iid, "pod_review")["id"], "secretary", {"review_decision": "accept"})
    monthly = one(engine, iid, "pod_monthly_report")
    context = engine.sop.task_context(monthly["id"], "secretary")
    assert context.defaults["report_sent_date"] == engine.clock.now().astimezone(MSK).date().isoformat()
    panel = context.panel("podrostok_form")
    rows = {r[0]: r for r in panel.table}
    assert panel.title == "Приложение 3 за июнь 2026 г. (по учетам и информации органов)"
    assert rows["1"][2:] == ["1", "", "2", ""] and rows["3"][2:] == ["1", "100,0", "2", "100,0"]
    engine.tasks.complete(monthly["id"], "secretary", {"report_sent_date": "2026-07-06"})
    june = campaign(engine, yo).reports["months"]["2026-06"]["rows"]
    # СОП column: Петров and Сидоров (row 1 = 2); both covered once (row 3 = 2); Сидоров in 3.3 and 3.8
    assert (june[SOP]["1"], june[SOP]["3"], june[SOP]["3.1"], june[SOP]["3.3"], june[SOP]["3.8"]) == (2, 2, 1, 1, 1)
    # ИПР column: only Сидоров (his family's card names «involvement»)
    assert (june[IPR]["1"], june[IPR]["1.3"], june[IPR]["3"]) == (1, 1, 1)

    # Волжск's police never submits: after the round's term the review opens with it listed as not submitted
    at(engine, "2026-07-04 09:00")
    engine.management.sweep()
    assert open_tasks(engine, iid_v, "pod_review") == []
    at(engine, "2026-07-07 00:10")
    engine.management.sweep()
    review_v = one(engine, iid_v, "pod_review")
    assert open_tasks(engine, iid_v, "pod_agency_report") == []
    panel = engine.sop.task_context(review_v["id"], "secretary_v").panel("podrostok_submissions")
    assert panel.note == "Не представили информацию: ОМВД Волжска"
    engine.tasks.complete(review_v["id"], "secretary_v", {"review_decision": "accept"})
    engine.tasks.complete(one(engine, iid_v, "pod_monthly_report")["id"], "secretary_v",
                          {"report_sent_date": "2026-07-07"})

    # -- July and August: every agency submits on time
    for opens, month in (("2026-08-01 00:30", "2026-07"), ("2026-09-01 00:30", "2026-08")):
        at(engine, opens)
        engine.management.sweep()
        for task in open_tasks(engine, iid, "pod_agency_report"):
            user = "police" if task["agency_id"] == ids["ОМВД Йошкар-Олы"] else "school"
            lines = [job(people["Петров"], "3.1", "ООО «Заря»", "2026-06-05", "2026-08-31")] if user == "police" else []
            submit(engine, task, user, lines)
        submit(engine, one(engine, iid_v, "pod_agency_report"), "police_v",
               [job(people["Кузнецов"], "3.4", "Площадка", f"{month}-01", f"{month}-20")])
        for instance, secretary in ((iid, "secretary"), (iid_v, "secretary_v")):
            engine.tasks.complete(one(engine, instance, "pod_review")["id"], secretary, {"review_decision": "accept"})
            engine.tasks.complete(one(engine, instance, "pod_monthly_report")["id"], secretary,
                                  {"report_sent_date": opens[:10]})
    reports = campaign(engine, yo).reports["months"]
    # not cumulative: in July only Петров's job counts (Сидоров's club and camp were in June)
    assert (reports["2026-07"]["rows"][SOP]["3"], reports["2026-07"]["rows"][SOP]["3.3"]) == (1, 0)

    # -- the final stage: the summer summary (each child once), the final report, the region
    summary = one(engine, iid, "pod_summer_summary")
    assert datetime.fromisoformat(summary["due"]) == end_of_day("2026-09-10")
    for instance, secretary in ((iid, "secretary"), (iid_v, "secretary_v")):
        engine.tasks.complete(one(engine, instance, "pod_summer_summary")["id"], secretary,
                              {"summary_sent_date": "2026-09-09"})
    summer = campaign(engine, yo).reports["summer"]["rows"][SOP]
    assert (summer["1"], summer["3"], summer["3.1"]) == (2, 2, 1)  # Петров's job in three months: once
    final = one(engine, iid, "pod_final_report")
    assert datetime.fromisoformat(final["due"]) == end_of_day("2026-09-25")
    with pytest.raises(InvalidInput):  # a computed row is not entered
        engine.tasks.complete(final["id"], "secretary", {"final_meeting_date": "2026-09-23",
                                                         "final_sent_date": "2026-09-24",
                                                         "final_rows": [{"row": "3.1.1", "value": "5/9"}]})
    for instance, secretary, raids in ((iid, "secretary", "12"), (iid_v, "secretary_v", "4")):
        engine.tasks.complete(one(engine, instance, "pod_final_report")["id"], secretary, {
            "final_meeting_date": "2026-09-23", "final_sent_date": "2026-09-24",
            "final_rows": [{"row": "1.1", "value": raids}, {"row": "3.1", "value": "10/18"}]})
    computed = campaign(engine, yo).reports["final"]["computed"]
    # two families with one child each on the register on 1 June and on 1 September; none newly registered
    assert (computed["3.1.1"], computed["3.2.1"], computed["3.4.1"], computed["8.1"], computed["8.3"]) == \
        ("2/2", "0/0", "2/2", 2, 2)
    regional = one(engine, iid, "pod_regional")
    assert regional["candidate_roles"] == ["regional_secretary"]
    assert datetime.fromisoformat(regional["due"]) == end_of_day("2026-10-01")
    final_panel = dict(engine.sop.task_context(regional["id"], "regional").panel("podrostok_final").rows)
    assert (final_panel["Рассмотрен на заседании"], final_panel["Направлен"]) == ("23.09.2026", "24.09.2026")
    with engine.db.session() as session:
        form, included, missing = podrostok.regional_form(session, [yo, vo], 2026, "summer")
        # Йошкар-Ола 2 + Волжск 1 (Кузнецов, on playgrounds in July and August)
        assert (form.value("1", SOP), form.value("3", SOP), form.value("3.4", SOP)) == (3, 3, 1)
        assert sorted(included) == ["Волжск", "Йошкар-Ола"] and missing == []
        june_region, _, _ = podrostok.regional_form(session, [yo, vo], 2026, "2026-06")
        assert (june_region.value("1", SOP), june_region.value("3", SOP)) == (3, 2)  # Кузнецов not covered in June
        total, _ = podrostok.regional_final(session, [yo, vo], 2026)
        assert (total["1.1"], total["3.1"], total["3.1.1"]) == (16, "20/36", "3/3")
    for instance in (iid, iid_v):
        engine.tasks.complete(one(engine, instance, "pod_regional")["id"], "regional",
                              {"regional_received_date": "2026-09-28"})
        assert engine.runtime.instance(instance)["status"] == "completed"


def campaign_count(engine) -> int:
    with engine.db.session() as session:
        return len(session.scalars(select(PodrostokCampaign)).all())


def entry_count(engine) -> int:
    with engine.db.session() as session:
        return len(session.scalars(select(PodrostokEntry)).all())


def test_terms_are_settings_with_the_orders_defaults():
    variables = podrostok.campaign_variables(2026, "Йошкар-Ола", [], 1, {"final_due": "2026-09-26",
                                                                        "agency_report_day": "4"})
    assert variables["final_due"] == "2026-09-26" and variables["summary_due"] == "2026-09-10"
    assert [m["agency_due"] for m in variables["report_months"]] == ["2026-07-04", "2026-08-04", "2026-09-04"]
    assert [m["municipal_due"] for m in variables["report_months"]] == ["2026-07-05", "2026-08-05", "2026-09-05"]
    with pytest.raises(InvalidInput) as error:
        podrostok.campaign_variables(2026, "Йошкар-Ола", [], 1, {"final_due": "26.09.2026"})
    assert "final_due" in error.value.errors
    with pytest.raises(InvalidInput):
        podrostok.campaign_variables(2026, "Йошкар-Ола", [], 1, {"agency_report_day": "31"})
    with pytest.raises(InvalidInput):
        podrostok.campaign_variables(2026, "Йошкар-Ола", [], 1, {"deadline": "2026-09-26"})


def test_started_from_the_command_line_and_driven_by_tick(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def run(*args, now="2026-05-01T09:00:00+03:00", ok=True):
        result = runner.invoke(main, ["--database-url", url, "--now", now, *args], catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result

    run("init-db")
    run("deploy", *map(str, FILES))
    run("agencies", "add", "КДНиЗП Йошкар-Олы", "--municipality", "Йошкар-Ола", "--kind", "commission")
    run("agencies", "add", "ОМВД Йошкар-Олы", "--municipality", "Йошкар-Ола", "--kind", "police")
    run("users", "add", "secretary", "--role", "commission_secretary", "--agency", "КДНиЗП Йошкар-Олы")
    run("podrostok", "start", "--year", "2026", "--set", "final_due=2026-09-26", "--set", "oops", ok=False)
    started = json.loads(run("podrostok", "start", "--year", "2026", "--set", "final_due=2026-09-26",
                             "--json").output)["started"]
    assert len(started) == 1
    assert json.loads(run("podrostok", "start", "--year", "2026", "--json").output)["started"] == []  # once
    info = json.loads(run("instance", str(started[0])).output)
    assert info["variables"]["final_due"] == "2026-09-26"
    plan = [t for t in json.loads(run("tasks", "--json").output) if t["form_key"] == "pod_plan"][0]
    run("complete", plan["id"], "--user", "secretary", "--data", json.dumps(PLAN))
    tick = json.loads(run("tick", "--at", "2026-07-01T00:30:00+03:00", "--json").output)
    assert tick["timers_fired"] == 1
    rounds = [t for t in json.loads(run("tasks", "--json", now="2026-07-01T00:31:00+03:00").output)
              if t["form_key"] == "pod_agency_report"]
    assert [t["agency_name"] for t in rounds] == ["ОМВД Йошкар-Олы"]


def test_a_report_month_is_named_in_words():
    assert podrostok.month_title("2026-06") == "июнь 2026 г."
    assert podrostok.month_title("2026-08") == "август 2026 г."
    assert podrostok.month_title("2026-13") == "2026-13" and podrostok.month_title("") == ""
