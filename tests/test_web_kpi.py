"""«Показатели»: who sees which municipality's KPI plan vs actual, who changes the plan, bad input, the chart, the
audit. The municipality and figures are those of the reference cohort of `test_reports`: Йошкар-Ола has 3
families in СОП at 31.12.2025 (indicator 1.3; the plan of seed 003 for 2025-H2 is 97, a ceiling)."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from engine.models import AuditEvent
from sop.kpi.figures import seed_plans
from sop.kpi.models import KpiIndicator, KpiPlan

from .test_web_auth import csrf
from .test_web_reports import client_of, web  # noqa: F401 - the fixture

H2 = {"half": "2025-H2"}


@pytest.fixture
def kpi_web(web):  # noqa: F811
    engine = web.extensions["kurator"]
    with engine.db.session() as db:
        for municipality_id in web.cohort.municipalities.values():
            seed_plans(db, municipality_id, "admin", engine.clock.now())
    return web


def plan_of(app, municipality: str, code: str, half: str = "2025-H2"):
    engine = app.extensions["kurator"]
    from sop.kpi.models import KpiIndicator

    with engine.db.session() as db:
        return db.scalar(select(KpiPlan.value).join(KpiIndicator, KpiIndicator.id == KpiPlan.indicator_id).where(
            KpiPlan.municipality_id == app.cohort.municipalities[municipality], KpiPlan.half == half,
            KpiIndicator.code == code))


def row_of(page: str, code: str) -> str:
    match = re.search(rf"<td>{re.escape(code)}</td>(.*?)</tr>", page, re.S)
    assert match, code
    return re.sub(r">\s+<", "><", match.group(1))


@pytest.mark.parametrize("username,status", [("secretary", 200), ("chair", 200), ("vsecretary", 200),
                                             ("regional", 200), ("school", 403), ("manager", 200),
                                             ("amanager", 200), ("cur1", 403)])
def test_who_may_open_the_kpi_page(kpi_web, username, status):
    client = client_of(kpi_web, username)
    assert client.get("/kpi", query_string=H2).status_code == status
    menu = client.get("/inbox").get_data(as_text=True)
    assert ('href="/kpi"' in menu) == (status == 200)


def test_the_commission_sees_plan_vs_actual_of_its_municipality(kpi_web):
    municipalities = kpi_web.cohort.municipalities
    page = client_of(kpi_web, "chair").get("/kpi", query_string=H2).get_data(as_text=True)
    assert "II полугодие 2025 года" in page and "Йошкар-Ола" in page and "Волжск" not in page
    # 1.3 families in СОП: plan 97 (a ceiling), actual 3 from the records, deviation −94, 3,1 % of the plan
    row = row_of(page, "1.3")
    assert '<td class="num">97</td><td class="num">3</td><td class="num">−94</td><td class="num">3,1</td>' in row
    assert "учетные данные" in row
    # the chart: a green bar for 1.3 with its text; no plan input for the chair
    assert 'class="chart"' in page and "3 из 97 (3,1\u00a0%)" in page and 'class="bar good"' in page
    assert 'name="plan_1.3"' not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # no inline script (CSP)
    # another municipality is not there for the commission (404), whatever is asked
    other = client_of(kpi_web, "secretary").get("/kpi", query_string={**H2, "municipality":
                                                                       municipalities["Волжск"]})
    assert other.status_code == 404
    assert client_of(kpi_web, "secretary").get("/kpi", query_string={**H2, "municipality": "x"}).status_code == 404


def test_the_regional_secretary_chooses_a_municipality(kpi_web):
    municipalities = kpi_web.cohort.municipalities
    client = client_of(kpi_web, "regional")
    page = client.get("/kpi", query_string={**H2, "municipality": municipalities["Волжск"]}).get_data(as_text=True)
    # Волжск: one family in СОП at 31.12.2025 (K7)
    row = row_of(page, "1.3")
    assert 'name="plan_1.3"' in row and 'value="97"' in row  # the regional secretary may change the plan
    assert '<td class="num">1</td><td class="num">−96</td>' in row


def test_bad_half_year_is_a_clear_error(kpi_web):
    response = client_of(kpi_web, "secretary").get("/kpi", query_string={"half": "2025-3"})
    assert response.status_code == 400
    assert "ГГГГ-H1 или ГГГГ-H2" in response.get_data(as_text=True)


def test_the_secretary_changes_the_plan_and_it_is_audited(kpi_web):
    client = client_of(kpi_web, "secretary")
    token = csrf(client, "/kpi?half=2025-H2")
    response = client.post("/kpi/plan?half=2025-H2", data={"csrf_token": token, "plan_1.3": "90", "plan_2.2": "3,5",
                                                           "plan_4.2": "3"})
    assert response.status_code == 302
    assert plan_of(kpi_web, "Йошкар-Ола", "1.3") == 90 and plan_of(kpi_web, "Йошкар-Ола", "2.2") == 3.5
    assert plan_of(kpi_web, "Волжск", "1.3") == 97  # the other municipality's plan is untouched
    engine = kpi_web.extensions["kurator"]
    with engine.db.session() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.action.in_(("kpi_viewed", "kpi_plan_changed")))
                            .order_by(AuditEvent.id)).all()
        changed = [e for e in events if e.action == "kpi_plan_changed"]
        assert len(changed) == 1 and changed[0].actor == "secretary"
        assert sorted(changed[0].details["changed"]) == ["1.3", "2.2"]  # 4.2 was 3 already
        assert any(e.action == "kpi_viewed" for e in events)


def test_a_bad_value_changes_nothing(kpi_web):
    client = client_of(kpi_web, "secretary")
    token = csrf(client, "/kpi?half=2025-H2")
    response = client.post("/kpi/plan?half=2025-H2", data={"csrf_token": token, "plan_1.3": "90",
                                                           "plan_4.2": "три"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "«три» — не число" in page and 'value="три"' in page
    assert plan_of(kpi_web, "Йошкар-Ола", "1.3") == 97  # nothing of the refused save was stored


@pytest.mark.parametrize("username", ["manager", "amanager"])
def test_a_manager_reads_the_plan_and_cannot_edit_it(kpi_web, username):
    page = client_of(kpi_web, username).get("/kpi", query_string=H2).get_data(as_text=True)
    assert "<td>1.3</td>" in page and "Волжск" not in page
    assert 'name="plan_1.3"' not in page and "Сохранить план" not in page


@pytest.mark.parametrize("username,status", [("chair", 403), ("school", 403), ("manager", 403), ("amanager", 403)])
def test_only_the_secretaries_change_the_plan(kpi_web, username, status):
    client = client_of(kpi_web, username)
    token = csrf(client, "/inbox")
    response = client.post("/kpi/plan?half=2025-H2", data={"csrf_token": token, "plan_1.3": "1"})
    assert response.status_code == status
    assert plan_of(kpi_web, "Йошкар-Ола", "1.3") == 97


def test_the_secretary_cannot_change_another_municipality(kpi_web):
    client = client_of(kpi_web, "secretary")
    token = csrf(client, "/kpi?half=2025-H2")
    other = kpi_web.cohort.municipalities["Волжск"]
    response = client.post(f"/kpi/plan?half=2025-H2&municipality={other}", data={"csrf_token": token,
                                                                                "plan_1.3": "1"})
    assert response.status_code == 404
    assert plan_of(kpi_web, "Волжск", "1.3") == 97


def test_campaign_task_pages(kpi_web):
    """The executor's report and the consolidation render from their forms; the consolidation offers the
    executors to return a report to and is prefilled with their sums; another agency's report is not there."""
    from pathlib import Path

    from sop.kpi.campaign import start_campaign
    from sop.kpi.figures import Half

    engine = kpi_web.extensions["kurator"]
    root = Path(__file__).resolve().parents[1]
    engine.repository.deploy([root / "workflows" / "kpi_campaign.bpmn", *sorted((root / "forms").glob("kpi_*.json"))],
                             deployed_by="methodologist")
    engine.clock.set("2026-01-12T09:00:00+03:00")
    iid = start_campaign(engine, kpi_web.cohort.municipalities["Йошкар-Ола"], Half(2025, 2)).process_instance_id
    reports = {t["agency_name"]: t for t in engine.tasks.query(instance_id=iid)}
    assert set(reports) == {"Школа № 1", "ОМВД"}  # the executors; the commission is none
    school = client_of(kpi_web, "school")
    page = school.get(f"/tasks/{reports['Школа № 1']['id']}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'name="kpi_4_2"' in text and 'name="kpi_1_3"' not in text  # 1.3 comes from the records
    assert school.get(f"/tasks/{reports['ОМВД']['id']}").status_code == 404
    engine.tasks.complete(reports["Школа № 1"]["id"], "school", {"activities_report": "Семинары", "kpi_4_2": 2})
    engine.identity.add_user("police1", ["agency_specialist"], agency="ОМВД")
    engine.tasks.complete(reports["ОМВД"]["id"], "police1", {"activities_report": "Рейды", "kpi_4_2": 1})
    consolidate = engine.tasks.query(instance_id=iid)[0]
    # no social protection agency in this municipality: the commission secretary consolidates
    assert consolidate["element_id"] == "kpi_consolidate" and consolidate["agency_id"] is None
    text = client_of(kpi_web, "secretary").get(f"/tasks/{consolidate['id']}").get_data(as_text=True)
    assert ">ОМВД</option>" in text and ">Школа № 1</option>" in text
    assert re.search(r'name="kpi_4_2"[^>]*value="3"|value="3"[^>]*name="kpi_4_2"', text)  # 2 + 1


# -- the region ---------------------------------------------------------------------------------------------------

def test_the_regional_secretary_sees_the_region_summed(kpi_web):
    """Without a municipality the regional secretary reads the region: 1.3 is Йошкар-Ола's 3 and Волжск's 1 families
    against the two plans of 97; a percentage is not summed; the plan is changed per municipality only."""
    client = client_of(kpi_web, "regional")
    page = client.get("/kpi", query_string=H2).get_data(as_text=True)
    assert "Регион (все муниципальные образования)" in page.split("</h1>", 1)[1].split("</p>", 1)[0]
    row = row_of(page, "1.3")
    assert '<td class="num">194</td><td class="num">4</td><td class="num">−190</td><td class="num">2,1</td>' in row
    share = row_of(page, "1.2")
    assert '<td class="num">—</td><td class="num">—</td>' in share and "не суммируются" in share
    assert 'name="plan_' not in page and "Сохранить план" not in page
    assert '<option value="" selected>Регион (все муниципальные образования)</option>' in page
    token = csrf(client, "/kpi?half=2025-H2")
    refused = client.post("/kpi/plan?half=2025-H2", data={"csrf_token": token, "plan_1.3": "1"})
    assert refused.status_code == 400 and "выберите его" in refused.get_data(as_text=True)
    assert plan_of(kpi_web, "Йошкар-Ола", "1.3") == 97 and plan_of(kpi_web, "Волжск", "1.3") == 97
    with kpi_web.extensions["kurator"].db.session() as db:
        viewed = db.scalars(select(AuditEvent).where(AuditEvent.action == "kpi_viewed")).all()
    assert viewed[-1].object_id == "region"
    assert sorted(viewed[-1].details["municipalities"]) == sorted(kpi_web.cohort.municipalities[m]
                                                                  for m in ("Йошкар-Ола", "Волжск"))
    # the commission has no region to choose
    assert "Регион (все" not in client_of(kpi_web, "secretary").get("/kpi", query_string=H2).get_data(as_text=True)


# -- XLSX and PDF -------------------------------------------------------------------------------------------------

def xlsx_rows(response) -> dict[str, list]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ws = load_workbook(io.BytesIO(response.data)).active
    return {str(r[0].value): r for r in ws.iter_rows() if r and r[0].value}


def test_plan_vs_actual_as_xlsx(kpi_web):
    engine = kpi_web.extensions["kurator"]
    with engine.db.session() as db:  # an indicator named like a formula must stay text
        db.scalar(select(KpiIndicator).where(KpiIndicator.code == "1.4")).name = '=HYPERLINK("http://x","y")'
    response = client_of(kpi_web, "chair").get("/kpi/report.xlsx", query_string=H2)
    assert 'filename="kpi-2025-H2-' in response.headers["Content-Disposition"]
    rows = xlsx_rows(response)
    # №, name, aggregation, plan, actual, deviation, % of the plan, met, source
    assert [c.value for c in rows["1.3"][1:9]] == [
        "Семьи, находящиеся в социально опасном положении (не более)", "на дату (конец полугодия)", 97, 3, -94,
        3.1, "да", "учетные данные: семьи в СОП на конец полугодия"]
    formula = rows["1.4"][1]
    assert formula.value == '=HYPERLINK("http://x","y")' and formula.data_type == "s"
    assert rows["1.2"][3].value == 74 and rows["1.2"][4].value is None and rows["1.2"][7].value == "—"
    region = xlsx_rows(client_of(kpi_web, "regional").get("/kpi/report.xlsx", query_string=H2))
    assert [c.value for c in region["1.3"][3:7]] == [194, 4, -190, 2.1]
    assert region["1.2"][3].value is None and "не суммируются" in region["1.2"][8].value


def pdf_text(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages).split())


def test_plan_vs_actual_as_pdf_with_its_chart(kpi_web):
    text = pdf_text(client_of(kpi_web, "secretary").get("/kpi/report.pdf", query_string=H2))
    assert "Ключевые показатели: план и факт" in text and "Йошкар-Ола" in text
    assert "II полугодие 2025 года (01.07.2025 — 31.12.2025)" in text
    assert "Семьи, находящиеся в социально опасном положении" in text
    # the chart's text (drawn in the SVG, not in the table): the actual of the plan and its per cent
    assert "3 из 97 (3,1 %)" in text.replace("\u00a0", " ")
    region = pdf_text(client_of(kpi_web, "regional").get("/kpi/report.pdf", query_string=H2))
    assert "Регион (все муниципальные образования)" in region and "4 из 194 (2,1 %)" in region.replace("\u00a0", " ")


@pytest.mark.parametrize("username,status", [("secretary", 200), ("chair", 200), ("regional", 200),
                                             ("school", 403), ("manager", 200), ("amanager", 200), ("cur1", 403)])
def test_who_may_export_the_plan(kpi_web, username, status):
    client = client_of(kpi_web, username)
    for path in ("/kpi/report.xlsx", "/kpi/report.pdf"):
        assert client.get(path, query_string=H2).status_code == status, path


def test_exports_refuse_another_municipality_and_a_bad_half_year(kpi_web):
    client = client_of(kpi_web, "secretary")
    other = kpi_web.cohort.municipalities["Волжск"]
    for path in ("/kpi/report.xlsx", "/kpi/report.pdf"):
        assert client.get(path, query_string={**H2, "municipality": other}).status_code == 404
        bad = client.get(path, query_string={"half": "2025-H3"})
        assert bad.status_code == 400 and "ГГГГ-H1 или ГГГГ-H2" in bad.get_data(as_text=True)
    page = client.get("/kpi", query_string=H2).get_data(as_text=True)
    assert "/kpi/report.xlsx?half=2025-H2" in page and "/kpi/report.pdf?half=2025-H2" in page


def test_exports_are_audited(kpi_web):
    client = client_of(kpi_web, "secretary")
    client.get("/kpi/report.xlsx", query_string=H2)
    client.get("/kpi/report.pdf", query_string=H2)
    with kpi_web.extensions["kurator"].db.session() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "kpi_exported")
                            .order_by(AuditEvent.id)).all()
    assert [(e.actor, e.details["format"], e.details["half"]) for e in events] == [
        ("secretary", "xlsx", "2025-H2"), ("secretary", "pdf", "2025-H2")]
    assert events[0].object_id == str(kpi_web.cohort.municipalities["Йошкар-Ола"])
