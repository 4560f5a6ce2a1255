"""«Подросток» page: who sees which municipality's campaign, the overdue submitters, the XLSX forms (a municipality's
and the region's sum) and the audit.

Records as in test_podrostok_campaign: Йошкар-Ола has Петров (14, СОП) and Сидоров (7, СОП and ИПР), Волжск has
Кузнецов (10, СОП). In June the police of Йошкар-Ола reports Петров's job (3.1) and the police of Волжск Кузнецов's
playground (3.4); the school of Йошкар-Ола never reports.
"""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

import sop
from engine.models import AuditEvent, Municipality
from sop import podrostok
from sop.models import Person, PodrostokCampaign, PodrostokEntry
from webapp import create_app

from .test_podrostok_campaign import FILES, PLAN, add_case, at, campaign, job, one, open_tasks, submit
from .test_web_auth import HASH, csrf, login


@pytest.fixture
def web(engine):
    sop.install(engine)
    engine.repository.deploy(FILES, deployed_by="methodologist")
    for name, municipality, kind in (("КДНиЗП Йошкар-Олы", "Йошкар-Ола", "commission"),
                                     ("ОМВД Йошкар-Олы", "Йошкар-Ола", "police"),
                                     ("СОШ № 5", "Йошкар-Ола", "education"),
                                     ("КДНиЗП Волжска", "Волжск", "commission"),
                                     ("ОМВД Волжска", "Волжск", "police"),
                                     ("КДНиЗП Республики", "Республика", "regional_commission")):
        engine.identity.add_agency(name, municipality, kind=kind)
    for user, roles, agency in (("secretary", ["commission_secretary"], "КДНиЗП Йошкар-Олы"),
                                ("chair", ["commission"], "КДНиЗП Йошкар-Олы"),
                                ("vsecretary", ["commission_secretary"], "КДНиЗП Волжска"),
                                ("police", ["agency_specialist"], "ОМВД Йошкар-Олы"),
                                ("vpolice", ["agency_specialist"], "ОМВД Волжска"),
                                ("regional", ["regional_secretary"], "КДНиЗП Республики"),
                                ("manager", ["manager"], "КДНиЗП Йошкар-Олы"),  # a manager at the commission
                                ("pmanager", ["manager"], "ОМВД Йошкар-Олы")):  # an agency's manager
        engine.identity.add_user(user, roles, agency=agency, password_hash=HASH, full_name=user)
    with engine.db.session() as session:
        yo, vo = (session.scalar(select(Municipality.id).where(Municipality.name == name))
                  for name in ("Йошкар-Ола", "Волжск"))
        people = add_case(session, yo, "1", [("Петров", "2012-03-15")], "2026-01-15", ["evasion"])
        people |= add_case(session, yo, "2", [("Сидоров", "2019-01-01")], "2026-02-10", ["involvement"])
        people |= add_case(session, vo, "1", [("Кузнецов", "2016-01-01")], "2026-03-01", ["evasion"])
    at(engine, "2026-05-01 00:05")
    podrostok.start_campaigns(engine.sop)
    iid, iid_v = campaign(engine, yo).process_instance_id, campaign(engine, vo).process_instance_id
    engine.tasks.complete(one(engine, iid, "pod_plan")["id"], "secretary", PLAN)
    engine.tasks.complete(one(engine, iid_v, "pod_plan")["id"], "vsecretary", PLAN)
    at(engine, "2026-07-01 00:30")
    engine.management.sweep()
    police = next(t for t in open_tasks(engine, iid, "pod_agency_report") if t["agency_name"] == "ОМВД Йошкар-Олы")
    submit(engine, police, "police", [job(people["Петров"], "3.1", "ООО «Заря»", "2026-06-05", "2026-08-31")])
    submit(engine, one(engine, iid_v, "pod_agency_report"), "vpolice",
           [job(people["Кузнецов"], "3.4", "=Площадка", "2026-06-01", "2026-06-20")])
    engine.tasks.complete(one(engine, iid_v, "pod_review")["id"], "vsecretary", {"review_decision": "accept"})
    engine.tasks.complete(one(engine, iid_v, "pod_monthly_report")["id"], "vsecretary",
                          {"report_sent_date": "2026-07-03"})
    at(engine, "2026-07-04 10:00")  # the school's App. 2 was due on 3 July
    engine.management.sweep()
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)
    app.ids = {"yo": yo, "vo": vo}
    return app


def client_of(app, username):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


@pytest.mark.parametrize("username,status", [("secretary", 200), ("chair", 200), ("vsecretary", 200),
                                             ("regional", 200), ("police", 403), ("manager", 200),
                                             ("pmanager", 403)])
def test_who_may_see_the_campaign(web, username, status):
    client = client_of(web, username)
    assert client.get("/podrostok?year=2026").status_code == status
    assert client.get("/podrostok/form.xlsx?year=2026&form=2026-06").status_code == status
    assert ('href="/podrostok"' in client.get("/inbox").get_data(as_text=True)) == (status == 200)


def test_an_agencys_manager_is_kept_out_because_the_page_shows_the_commissions_free_text(web, engine):
    """The returns' comments (on an agency's lists of children) and the results of App. 5 are free text the
    commission writes: they may name a child, so the page is not the figures alone that an agency's manager reads
    (`webapp.access.reads_reports`); the manager at the commission reads it, and only reads it."""
    with engine.db.session() as db:  # a return as the secretary's review stores it (test_podrostok_campaign)
        row = db.scalar(select(PodrostokCampaign).where(PodrostokCampaign.municipality_id == web.ids["yo"]))
        row.reports = {**(row.reports or {}), "returns": [{
            "month": "2026-06", "agencies": [engine.identity.agency_id("ОМВД Йошкар-Олы")],
            "comment": "Петров: уточните даты"}]}
    page = client_of(web, "manager").get("/podrostok?year=2026").get_data(as_text=True)
    assert "Петров: уточните даты" in page  # what an agency's manager would read
    assert client_of(web, "pmanager").get("/podrostok?year=2026").status_code == 403
    # the pages only read: no endpoint of «Подросток» takes a POST
    assert not [rule for rule in web.url_map.iter_rules()
                if rule.endpoint.startswith("podrostok.") and "POST" in rule.methods]


def test_the_commission_sees_its_own_municipality_only(web):
    client = client_of(web, "secretary")
    page = client.get("/podrostok?year=2026").get_data(as_text=True)
    assert "<h2>Йошкар-Ола</h2>" in page and "Волжск" not in page
    assert client.get(f"/podrostok?year=2026&municipality={web.ids['vo']}").status_code == 404
    assert client.get("/podrostok?year=2026&municipality=x").status_code == 404
    assert client.get("/podrostok?year=20x6").status_code == 400
    assert "<script>" not in page  # CSP: no inline script


def test_the_overdue_submitters_are_listed(web):
    page = client_of(web, "secretary").get("/podrostok?year=2026").get_data(as_text=True)
    assert "Не представили в срок: СОШ № 5 (июнь 2026)" in page
    assert "представлено (1)" in page  # the police: one line
    assert "Информация о фактической занятости детей (приложение 2) — СОШ № 5" in page
    volzhsk = client_of(web, "vsecretary").get("/podrostok?year=2026").get_data(as_text=True)
    assert "Просроченных сведений нет." in volzhsk


def figure_row(page: str, code: str) -> list[str]:
    """The cells of a row of the page's App. 3 table: June, July, August, the summer; ИПР and СОП of each."""
    match = re.search(rf'<tr class="\w+" data-code="{re.escape(code)}">(.*?)</tr>', page, re.S)
    assert match, code
    cells = re.findall(r'<td class="num">(.*?)</td>', match.group(1), re.S)
    return [" ".join(re.sub(r"<[^>]+>|&nbsp;", " ", cell).split()) for cell in cells]


def test_the_page_shows_app_3_as_computed_so_far(web):
    """On 4 July: June and July are counted (July so far), August has not begun. СОП: Петров (14) and Сидоров (7),
    Петров employed (3.1) from 5 June to 31 August; ИПР: Сидоров, not employed."""
    page = client_of(web, "secretary").get("/podrostok?year=2026").get_data(as_text=True)
    assert "Приложение 3: занятость детей по учетам и информации органов" in page
    assert figure_row(page, "1") == ["1", "2", "1", "2", "—", "—", "1", "2"]
    assert figure_row(page, "1.3") == ["1", "1", "1", "1", "—", "—", "1", "1"]  # Сидоров, 7 to 9 years
    assert figure_row(page, "1.5") == ["0", "1", "0", "1", "—", "—", "0", "1"]  # Петров, 14 to 15 years
    assert figure_row(page, "2") == ["1", "2", "1", "2", "—", "—", "1", "2"]
    # row 3: 1 of the 2 to be covered, 50 %; 3.1: Петров of the 14 to 17 years old (1), 100 %
    assert figure_row(page, "3")[:2] == ["0 0,0 %", "1 50,0 %"]
    assert figure_row(page, "3.1")[:4] == ["0", "1 100,0 %", "0", "1 100,0 %"]
    assert figure_row(page, "4.1") == ["0", "0", "0", "0", "—", "—", "0", "0"]
    volzhsk = client_of(web, "vsecretary").get("/podrostok?year=2026").get_data(as_text=True)
    assert figure_row(volzhsk, "3.4")[:2] == ["0", "1 100,0 %"]  # Кузнецов on a playground in June


def test_the_regional_secretary_sees_the_sum_of_the_reports_sent_on_the_page(web):
    """The region's App. 3 on the page is the sum of what the municipalities sent, as the regional XLSX: on 4 July
    only Волжск has sent June (Кузнецов, 10, СОП, on a playground); nobody has sent July, August or the summer."""
    page = client_of(web, "regional").get("/podrostok?year=2026").get_data(as_text=True)
    region = page[page.index('id="region"'):page.index("podrostok-campaign")]
    assert "июнь 2026: в сумме — Волжск; не представили — Йошкар-Ола" in " ".join(region.split())
    assert figure_row(region, "1") == ["0", "1", "—", "—", "—", "—", "—", "—"]
    assert figure_row(region, "3.4")[:2] == ["0", "1 100,0 %"]
    # a municipality's commission sees its own campaign, not the region's sum
    assert 'id="region"' not in client_of(web, "secretary").get("/podrostok?year=2026").get_data(as_text=True)
    one_municipality = client_of(web, "regional").get(f"/podrostok?year=2026&municipality={web.ids['vo']}")
    assert 'id="region"' not in one_municipality.get_data(as_text=True)


def sheet_rows(response) -> dict[str, list]:
    assert response.status_code == 200, response.get_data(as_text=True)
    ws = load_workbook(io.BytesIO(response.data)).active
    return {str(r[0]): list(r) for r in ws.iter_rows(values_only=True) if r and r[0]}


def test_the_municipal_form_and_the_regional_sum_as_xlsx(web):
    rows = sheet_rows(client_of(web, "secretary").get("/podrostok/form.xlsx?year=2026&form=2026-06"))
    # columns: №, name, ИПР, СОП, % ИПР, % СОП. СОП: Петров and Сидоров, Петров covered (3.1); ИПР: Сидоров
    assert rows["1"][2:4] == [1, 2] and rows["3"][2:4] == [0, 1] and rows["3.1"][2:4] == [0, 1]
    assert rows["3"][5] == 50.0  # 1 * 100 / row 2 (2)
    region = client_of(web, "regional")
    # the region sums what the municipalities sent: only Волжск has sent June (Йошкар-Ола's review is open)
    rows = sheet_rows(region.get("/podrostok/form.xlsx?year=2026&form=2026-06"))
    assert rows["1"][2:4] == [0, 1] and rows["3.4"][2:4] == [0, 1]
    ws = load_workbook(io.BytesIO(region.get("/podrostok/form.xlsx?year=2026&form=2026-06").data)).active
    notes = [r[1] for r in ws.iter_rows(values_only=True) if r and r[1] and "Сумма" in str(r[1])]
    assert notes == ["Сумма отчетов муниципальных образований: Волжск; не представили: Йошкар-Ола"]
    final = sheet_rows(client_of(web, "vsecretary").get("/podrostok/form.xlsx?year=2026&form=final"))
    assert final["3.1.1"][2] == "1/1" and final["8.3.4"][2] == 1  # Кузнецов on a playground in June
    assert client_of(web, "secretary").get("/podrostok/form.xlsx?year=2026&form=2026-13").status_code == 400
    assert client_of(web, "police").get("/podrostok/form.xlsx?year=2026&form=summer").status_code == 403


def test_reading_and_exporting_are_audited(web, engine):
    client = client_of(web, "secretary")
    client.get("/podrostok?year=2026")
    client.get("/podrostok/form.xlsx?year=2026&form=summer")
    with engine.db.session() as session:
        events = [(e.action, e.details.get("form")) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.object_id == "podrostok").order_by(AuditEvent.id))]
    assert events == [("report_viewed", None), ("report_exported", "summer")]


def test_an_agency_fills_its_app_2_on_the_task_page(web, engine):
    """The school's overdue June task: the form offers the municipality's children and blank rows; a posted row
    is stored, blank rows are not sent."""
    engine.identity.add_user("teacher", ["agency_specialist"], agency="СОШ № 5", password_hash=HASH,
                             full_name="teacher")
    task = next(t for t in engine.tasks.query(user="teacher") if t["form_key"] == "pod_agency_report")
    client = client_of(web, "teacher")
    page = client.get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert 'name="employment[0][child]"' in page and 'name="excused[0][excused_child]"' in page
    assert "Сидоров Ребенок, 01.01.2019 (дело № 2)" in page and "Кузнецов" not in page
    with engine.db.session() as session:
        sidorov = session.scalar(select(Person.id).where(Person.last_name == "Сидоров"))
    token = csrf(client, f"/tasks/{task['id']}")
    bad = client.post(f"/tasks/{task['id']}", data={
        "csrf_token": token, "employment[0][child]": str(sidorov), "employment[0][form]": "3.8",
        "employment[0][provider]": "Лагерь", "employment[0][date_from]": "2026-07-01"})
    assert bad.status_code == 422 and "не приходятся на отчетный месяц" in bad.get_data(as_text=True)
    response = client.post(f"/tasks/{task['id']}", data={
        "csrf_token": token, "employment[0][child]": str(sidorov), "employment[0][form]": "3.8",
        "employment[0][provider]": "Лагерь при СОШ № 5", "employment[0][date_from]": "2026-06-01",
        "employment[0][date_to]": "2026-06-21", "employment[1][child]": "", "excused[0][excused_child]": ""})
    assert response.status_code == 302, response.get_data(as_text=True)
    with engine.db.session() as session:
        lines = [(e.person_id, e.form, e.month) for e in session.scalars(
            select(PodrostokEntry).where(PodrostokEntry.agency_id == task["agency_id"]))]
    assert lines == [(sidorov, "3.8", "2026-06")]


def test_the_regional_secretary_consolidates_from_her_inbox(web, engine):
    """Волжск runs to the end of the summer; its regional step is in the regional secretary's inbox (she belongs to
    another municipality), not in the other municipality's commission's."""
    iid_v = campaign(engine, web.ids["vo"]).process_instance_id
    for opens in ("2026-08-01 00:30", "2026-09-01 00:30"):
        at(engine, opens)
        engine.management.sweep()
        submit(engine, one(engine, iid_v, "pod_agency_report"), "vpolice")
        engine.tasks.complete(one(engine, iid_v, "pod_review")["id"], "vsecretary", {"review_decision": "accept"})
        engine.tasks.complete(one(engine, iid_v, "pod_monthly_report")["id"], "vsecretary",
                              {"report_sent_date": opens[:10]})
    engine.tasks.complete(one(engine, iid_v, "pod_summer_summary")["id"], "vsecretary",
                          {"summary_sent_date": "2026-09-09"})
    engine.tasks.complete(one(engine, iid_v, "pod_final_report")["id"], "vsecretary",
                          {"final_meeting_date": "2026-09-23", "final_sent_date": "2026-09-24"})
    regional_task = one(engine, iid_v, "pod_regional")
    regional = client_of(web, "regional")
    assert "Обобщение итогов операции «Подросток»" in regional.get("/inbox").get_data(as_text=True)
    page = regional.get(f"/tasks/{regional_task['id']}").get_data(as_text=True)
    assert "Приложение 4: Волжск" in page
    assert client_of(web, "secretary").get(f"/tasks/{regional_task['id']}").status_code == 404
    assert "Обобщение итогов" not in client_of(web, "secretary").get("/inbox").get_data(as_text=True)
    token = csrf(regional, f"/tasks/{regional_task['id']}")
    response = regional.post(f"/tasks/{regional_task['id']}", data={"csrf_token": token,
                                                                   "regional_received_date": "2026-09-28"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert engine.runtime.instance(iid_v)["status"] == "completed"
    assert campaign(engine, web.ids["vo"]).reports["regional"]["received_on"] == "2026-09-28"
