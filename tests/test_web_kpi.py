"""«Показатели»: who sees which municipality's KPI plan vs actual, who changes the plan, bad input, the chart, the
audit. The municipality and figures are those of the reference cohort of `test_reports`: Йошкар-Ола has 3
families in СОП at 31.12.2025 (indicator 1.3; the plan of seed 003 for 2025-H2 is 97, a ceiling)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.models import AuditEvent
from sop.kpi.figures import seed_plans
from sop.kpi.models import KpiPlan

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
                                             ("regional", 200), ("school", 403), ("manager", 403), ("cur1", 403)])
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


@pytest.mark.parametrize("username,status", [("chair", 403), ("school", 403), ("manager", 403)])
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
