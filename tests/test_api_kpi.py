"""`GET /api/v1/kpi`: plan vs actual over the API with the page's access rules and audit. The data are those of
`test_web_kpi` (the reference cohort of `test_reports`, seed 003's plans): Йошкар-Ола has 3 families in СОП at
31.12.2025, Волжск 1; the plan of indicator 1.3 for 2025-H2 is 97 in each (a ceiling)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import AuditEvent

from .test_web_kpi import kpi_web  # noqa: F401 - the fixture
from .test_web_reports import web  # noqa: F401 - the fixture kpi_web builds on

H2 = {"half": "2025-H2"}


def bearer(app, username: str) -> dict[str, str]:
    response = app.test_client().post("/api/v1/auth/token", json={"username": username, "password": "demo-password"})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def get(app, username: str | None, **query):
    headers = bearer(app, username) if username else {}
    return app.test_client().get("/api/v1/kpi", query_string=query, headers=headers)


def rows(response) -> dict[str, dict]:
    assert response.status_code == 200, response.get_json()
    return {row["code"]: row for row in response.get_json()["rows"]}


def test_the_commission_reads_its_municipality(kpi_web):  # noqa: F811
    response = get(kpi_web, "chair", **H2)
    body = response.get_json()
    yo = kpi_web.cohort.municipalities["Йошкар-Ола"]
    assert body["half"] == "2025-H2" and body["label"] == "II полугодие 2025 года"
    assert (body["from"], body["to"]) == ("2025-07-01", "2025-12-31")
    assert body["region"] is False and body["municipality"] == {"id": yo, "name": "Йошкар-Ола"}
    assert body["municipalities"] == [{"id": yo, "name": "Йошкар-Ола"}]
    families = rows(response)["1.3"]
    assert {k: families[k] for k in ("plan", "actual", "deviation", "percent_of_plan", "met", "lower_is_better",
                                     "aggregation", "preliminary")} == {
        "plan": 97.0, "actual": 3.0, "deviation": -94.0, "percent_of_plan": 3.1, "met": True,
        "lower_is_better": True, "aggregation": "stock", "preliminary": False}
    entered = rows(response)["4.2"]  # entered in the campaign: nothing entered yet
    assert entered["plan"] == 3.0 and entered["actual"] is None and entered["met"] is None
    assert entered["source"] == "нет данных"


def test_the_default_half_year_is_the_last_one_over(kpi_web):  # noqa: F811
    kpi_web.extensions["kurator"].clock.set("2026-02-10T09:00:00+03:00")
    assert get(kpi_web, "secretary").get_json()["half"] == "2025-H2"


def test_the_regional_secretary_reads_the_region_and_each_municipality(kpi_web):  # noqa: F811
    region = get(kpi_web, "regional", **H2)
    body = region.get_json()
    assert body["region"] is True and body["municipality"] is None
    assert body["scope"] == "Регион (все муниципальные образования)"
    assert {m["name"] for m in body["municipalities"]} == {"Йошкар-Ола", "Волжск"}
    summed = rows(region)
    assert (summed["1.3"]["plan"], summed["1.3"]["actual"], summed["1.3"]["percent_of_plan"]) == (194.0, 4.0, 2.1)
    assert summed["1.2"]["plan"] is None and summed["1.2"]["actual"] is None  # a percentage is not summed
    volzhsk = rows(get(kpi_web, "regional", municipality=kpi_web.cohort.municipalities["Волжск"], **H2))
    assert (volzhsk["1.3"]["plan"], volzhsk["1.3"]["actual"]) == (97.0, 1.0)


@pytest.mark.parametrize("username", ["manager", "amanager"])
def test_a_manager_reads_their_municipality_as_on_the_page(kpi_web, username):  # noqa: F811
    assert get(kpi_web, username, **H2).get_json()["scope"] == "Йошкар-Ола"
    other = kpi_web.cohort.municipalities["Волжск"]
    assert get(kpi_web, username, municipality=other, **H2).status_code == 404


@pytest.mark.parametrize("username,status", [(None, 401), ("school", 403), ("cur1", 403)])
def test_who_may_not_read_it(kpi_web, username, status):  # noqa: F811
    response = get(kpi_web, username, **H2)
    assert response.status_code == status
    assert response.get_json()["message"]


def test_another_municipality_does_not_exist_for_the_commission(kpi_web):  # noqa: F811
    other = kpi_web.cohort.municipalities["Волжск"]
    assert get(kpi_web, "secretary", municipality=other, **H2).status_code == 404
    assert get(kpi_web, "secretary", municipality=2_000_000_000, **H2).status_code == 404


@pytest.mark.parametrize("query,field", [({"half": "2025-H3"}, "half"), ({"half": "1800-H1"}, "half"),
                                         ({"municipality": "0"}, "municipality"),
                                         ({"municipality": "x"}, "municipality")])
def test_bad_input_is_a_422_naming_the_field(kpi_web, query, field):  # noqa: F811
    response = get(kpi_web, "secretary", **query)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_reads_are_audited(kpi_web):  # noqa: F811
    get(kpi_web, "regional", **H2)
    get(kpi_web, "secretary", **H2)
    with kpi_web.extensions["kurator"].db.session() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "kpi_viewed").order_by(AuditEvent.id)).all()
    yo = kpi_web.cohort.municipalities["Йошкар-Ола"]
    assert [(e.actor, e.object_type, e.object_id, e.details["half"], e.details["api"]) for e in events] == [
        ("regional", "kpi", "region", "2025-H2", True), ("secretary", "kpi", str(yo), "2025-H2", True)]
