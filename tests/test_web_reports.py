"""«Статистика»: who sees which municipality's figures, bad parameters, the XLSX and PDF exports and the audit.

The figures are those of the reference cohort of `test_reports` (worked out in its docstring): Йошкар-Ола has 3
families and 4 children in СОП at 31.12.2025 (АППГ 3 and 3), Волжск 1 family and 1 child (АППГ 0)."""

from __future__ import annotations

import io
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from pypdf.generic import ContentStream
from sqlalchemy import select
from werkzeug.exceptions import Forbidden, NotFound

import sop
from engine.models import AuditEvent, User
from sop.models import Family, Person
from sop.reports import Period, build_report
from webapp import create_app
from webapp.access import REGION, CurrentUser, report_scope

from .test_reports import cohort_of_the_year
from .test_web_auth import HASH, login

YEAR = {"on": "2025-12-31", "from": "2025-01-01", "to": "2025-12-31"}
FAMILIES_AT = "Семей в СОП на дату"


@pytest.fixture
def web(engine):
    sop.install(engine)
    cohort = cohort_of_the_year(engine)
    engine.identity.add_agency("КДНиЗП Республики", "Республика", kind="regional_commission")
    for username, roles, agency, full_name in (
            ("secretary", ["commission_secretary"], "КДН Йошкар-Олы", "Смирнова Ольга"),
            ("chair", ["commission"], "КДН Йошкар-Олы", "Кузнецов Андрей"),
            ("manager", ["manager"], "КДН Йошкар-Олы", "Федоров Павел"),
            ("amanager", ["manager"], "ОМВД", "Начальник ОМВД"),  # an agency's manager
            ("vsecretary", ["commission_secretary"], "КДН Волжска", "Секретарь Волжска"),
            ("school", ["education", "agency_specialist"], "Школа № 1", "Лебедева Ирина"),
            ("regional", ["regional_secretary"], "КДНиЗП Республики", "Михайлова Светлана"),
            # the curator of K1 and K4, named like a formula: it must stay text in the XLSX
            ("cur1", ["curator"], "Школа № 1", "=HYPERLINK(\"http://x\",\"y\")")):
        engine.identity.add_user(username, roles, agency=agency, password_hash=HASH, full_name=full_name)
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)
    app.cohort = cohort
    return app


def client_of(app, username):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def main_rows(page: str) -> str:
    return page.split("Основные показатели", 1)[1]


def row_text(label: str, *values) -> str:
    return f"<td>{label}</td>" + "".join(f'<td class="num">{v}</td>' for v in values)


@pytest.mark.parametrize("username,status", [("secretary", 200), ("chair", 200), ("vsecretary", 200),
                                             ("regional", 200), ("school", 403), ("manager", 200),
                                             ("amanager", 200), ("cur1", 403)])
def test_who_may_open_the_statistics(web, username, status):
    client = client_of(web, username)
    for path in ("/reports", "/reports/statistics.xlsx", "/reports/statistics.pdf"):
        assert client.get(path, query_string=YEAR).status_code == status, path
    menu = client.get("/inbox").get_data(as_text=True)
    assert ('href="/reports"' in menu) == (status == 200)


def test_a_municipal_user_sees_only_its_municipality(web):
    municipalities = web.cohort.municipalities
    secretary = client_of(web, "secretary")
    page = secretary.get("/reports", query_string=YEAR).get_data(as_text=True)
    assert row_text(FAMILIES_AT, 3, 3, "0,0") in page
    assert row_text("Детей в семьях в СОП на дату", 4, 3, "+33,3") in page
    assert "Волжск" not in page and "По муниципальным образованиям" not in page
    own = secretary.get("/reports", query_string={**YEAR, "municipality": municipalities["Йошкар-Ола"]})
    assert own.status_code == 200
    for path in ("/reports", "/reports/statistics.xlsx", "/reports/statistics.pdf"):
        other = secretary.get(path, query_string={**YEAR, "municipality": municipalities["Волжск"]})
        assert other.status_code == 404, path
        assert "Волжск" not in other.get_data(as_text=True)
    assert secretary.get("/reports", query_string={**YEAR, "municipality": "x1"}).status_code == 404
    assert secretary.get("/reports", query_string={**YEAR, "municipality": "99999999999"}).status_code == 404
    volzhsk = client_of(web, "vsecretary").get("/reports", query_string=YEAR).get_data(as_text=True)
    assert row_text(FAMILIES_AT, 1, 0, "—") in volzhsk and "Йошкар-Ола" not in volzhsk


def test_managers_read_their_municipalitys_figures_with_no_child_or_family_data(web):
    """A manager at the commission and an agency's manager read the municipality's statistics (`REPORT_ROLES`,
    `webapp.access.reads_reports`): counts, the names of agencies and curators — no child's or family's name."""
    municipalities = web.cohort.municipalities
    engine = web.extensions["kurator"]
    with engine.db.session() as db:
        names = {name for row in db.execute(select(Person.last_name, Person.first_name, Family.name)
                                            .join(Family, Family.id == Person.family_id)) for name in row if name}
    names -= {"Мать"}  # the parents' first name in the cohort, a common word
    assert names
    for username in ("manager", "amanager"):
        client = client_of(web, username)
        page = client.get("/reports", query_string=YEAR).get_data(as_text=True)
        assert row_text(FAMILIES_AT, 3, 3, "0,0") in page and "Волжск" not in page
        book = load_workbook(io.BytesIO(client.get("/reports/statistics.xlsx", query_string=YEAR).data))
        cells = " ".join(str(v) for sheet in book for row in sheet.iter_rows(values_only=True) for v in row if v)
        assert not [name for name in names if name in page or name in cells], username
        other = client.get("/reports", query_string={**YEAR, "municipality": municipalities["Волжск"]})
        assert other.status_code == 404


def test_the_regional_secretary_sees_the_region_and_each_municipality(web):
    municipalities = web.cohort.municipalities
    regional = client_of(web, "regional")
    page = regional.get("/reports", query_string=YEAR).get_data(as_text=True)
    assert row_text(FAMILIES_AT, 4, 3, "+33,3") in page  # 3 in Йошкар-Ола + 1 in Волжск
    table = page.split("По муниципальным образованиям", 1)[1]
    assert row_text("Волжск", 1, 0, "—", 1, 0, "—") in table and row_text("Йошкар-Ола", 3, 3, "0,0") in table
    assert "Республика" not in table  # the regional commission's own municipality has no commission
    one = regional.get("/reports", query_string={**YEAR, "municipality": municipalities["Волжск"]})
    assert row_text(FAMILIES_AT, 1, 0, "—") in one.get_data(as_text=True)
    assert regional.get("/reports", query_string={**YEAR, "municipality": 99999}).status_code == 404


@pytest.mark.parametrize("args,message", [
    ({"on": "31.12.2025"}, "Дата «по состоянию на»: «31.12.2025» — не дата; укажите ее в виде ГГГГ-ММ-ДД."),
    ({"from": "2025-13-01"}, "Начало периода: «2025-13-01» — не дата"),
    ({"from": "2025-12-01", "to": "2025-01-01"}, "Начало периода (01.12.2025) позже его конца (01.01.2025)."),
    ({"to": "0001-01-01", "from": "0001-01-01"}, "Начало периода: год 1 вне допустимого диапазона"),
])
def test_a_malformed_parameter_is_a_clear_400(web, args, message):
    client = client_of(web, "secretary")
    for path in ("/reports", "/reports/statistics.xlsx", "/reports/statistics.pdf"):
        response = client.get(path, query_string=args)
        assert response.status_code == 400, path
        assert message in response.get_data(as_text=True), path


def test_the_xlsx_holds_the_figures_and_keeps_formula_like_text_as_text(web):
    response = client_of(web, "secretary").get("/reports/statistics.xlsx", query_string=YEAR)
    assert response.status_code == 200 and response.headers["Content-Disposition"].startswith("attachment;")
    book = load_workbook(io.BytesIO(response.data))
    rows = [list(r) for r in book["Основные показатели"].iter_rows(values_only=True)]
    assert [FAMILIES_AT, 3, 3, "0,0"] in rows
    assert ["Семей снято с учета за период", 2, 1, "+100,0"] in rows
    ages = [list(r) for r in book["По возрасту"].iter_rows(values_only=True)]
    assert ["16–17 лет", 1, 1, "0,0"] in ages
    curators = book["По кураторам"]
    cells = [c for row in curators.iter_rows() for c in row if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert cells and all(c.data_type == "s" for c in cells)
    # end of January 2025: F1, F2, F3 on the register; a year earlier F3 (K3, removed on 01.02.2024); K1 recognised
    assert [list(r) for r in book["По месяцам"].iter_rows(values_only=True)][1][:4] == ["январь 2025", 3, 1, 1]


def test_the_pdf_prints_the_figures(web):
    response = client_of(web, "regional").get("/reports/statistics.pdf", query_string=YEAR)
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    text = " ".join(text.split())
    assert "Регион (все муниципальные образования)" in text
    assert f"{FAMILIES_AT} 4 3 +33,3" in text
    assert "Волжск 1 0 — 1 0 —" in text


# the colours the PDF's charts fill their bars with (sop/reports/templates/_charts.html), as PDF rgb operands
NOW, BEFORE = (0x1D, 0x4E, 0x89), (0x98, 0xA2, 0xB3)


def filled_bars(pdf: bytes) -> dict[tuple, list[float]]:
    """The widths of the rectangles the PDF fills, by fill colour, in drawing order (pages one after another)."""
    reader = PdfReader(io.BytesIO(pdf))
    bars: dict[tuple, list[float]] = {}
    for page in reader.pages:
        colour, pending = None, []
        for operands, operator in ContentStream(page.get_contents(), reader).operations:
            if operator == b"rg":
                colour = tuple(round(float(v) * 255) for v in operands)
            elif operator == b"re":
                pending.append(float(operands[2]))
            elif operator in (b"f", b"f*"):
                bars.setdefault(colour, []).extend(pending)
                pending = []
            elif operator == b"n":
                pending = []  # a clipping rectangle, not a drawn one
    return bars


def test_the_pdf_draws_the_monthly_charts(web):
    """The three charts of the web page are in the PDF too, as drawings: one bar per month with a figure, its length
    in proportion to the figure, and the same month a year earlier beside it."""
    response = client_of(web, "secretary").get("/reports/statistics.pdf", query_string=YEAR)
    assert response.status_code == 200
    reader = PdfReader(io.BytesIO(response.data))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    # the charts' titles and month labels are drawn inside the SVG (the table above says «Признано семей»)
    assert "Основные показатели по месяцам: диаграммы" in text
    assert "Признано семей за месяц" in text and "Снято семей за месяц" in text
    engine = web.extensions["kurator"]
    with engine.db.session() as db:
        report = build_report(db, [web.cohort.municipalities["Йошкар-Ола"]], date(2025, 12, 31),
                              Period(date(2025, 1, 1), date(2025, 12, 31)), ZoneInfo("Europe/Moscow"), "Йошкар-Ола")
    assert len(report.months) == 12
    now = [m.families for m in report.months] + [m.recognised for m in report.months] + \
        [m.removed for m in report.months]
    before = [m.families_before for m in report.months] + [m.recognised_before for m in report.months] + \
        [m.removed_before for m in report.months]
    bars = filled_bars(response.data)
    assert len(bars[NOW]) == sum(1 for v in now if v) and len(bars[BEFORE]) == sum(1 for v in before if v)
    # the first chart (families at each month's end): lengths in proportion to the figures, on one scale with
    # the year before
    families = [m.families for m in report.months if m.families]
    widest = max(max(m.families, m.families_before) for m in report.months)
    drawn = bars[NOW][:len(families)]
    unit = drawn[0] / (families[0] / widest)
    assert [round(w / unit * widest, 2) for w in drawn] == [float(v) for v in families]


def test_reading_and_exporting_are_audited(web):
    client = client_of(web, "secretary")
    client.get("/reports", query_string=YEAR)
    client.get("/reports/statistics.xlsx", query_string=YEAR)
    engine = web.extensions["kurator"]
    with engine.db.session() as db:
        events = [(e.actor, e.action, e.details) for e in db.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "report").order_by(AuditEvent.id))]
    yoshkar = web.cohort.municipalities["Йошкар-Ола"]
    assert [(actor, action) for actor, action, _ in events] == [("secretary", "report_viewed"),
                                                                ("secretary", "report_exported")]
    assert events[0][2] == {"municipalities": [yoshkar], "on": "2025-12-31", "from": "2025-01-01",
                            "to": "2025-12-31"}
    assert events[1][2]["format"] == "xlsx"


def test_one_scope_rule_for_every_report(web):
    """`webapp.access.report_scope`, used by the statistics, «Показатели» and «Подросток» pages and the KPI API: the
    region for the regional secretary when nothing is asked, the user's own municipality for the commission, 404 for
    a municipality outside the user's scope or not a number, 403 for a user who may read no report."""
    engine = web.extensions["kurator"]
    ola, volzhsk = web.cohort.municipalities["Йошкар-Ола"], web.cohort.municipalities["Волжск"]
    with engine.db.session() as db, web.test_request_context():
        user = {name: CurrentUser.from_row(db.scalar(select(User).where(User.username == name)))
                for name in ("regional", "secretary", "school")}
        region = report_scope(db, user["regional"], None)
        assert (region.region, region.name, sorted(region.ids), region.key) == (True, REGION, sorted([ola, volzhsk]),
                                                                                "region")
        one = report_scope(db, user["regional"], f" {volzhsk} ")
        assert (one.region, one.municipality_id, one.name, one.ids, one.key) == (False, volzhsk, "Волжск", [volzhsk],
                                                                                 str(volzhsk))
        own = report_scope(db, user["secretary"], "")
        assert (own.municipality_id, own.name, own.options) == (ola, "Йошкар-Ола", [(ola, "Йошкар-Ола")])
        assert report_scope(db, user["secretary"], ola) == own
        for raw in (volzhsk, "x", str(2**40)):
            with pytest.raises(NotFound):
                report_scope(db, user["secretary"], raw)
        with pytest.raises(Forbidden):
            report_scope(db, user["school"], ola)
    for path in ("/reports", "/kpi", "/podrostok"):  # the pages answer alike
        for username, asked, status in (("secretary", {}, 200), ("secretary", {"municipality": volzhsk}, 404),
                                        ("secretary", {"municipality": "x"}, 404), ("school", {}, 403),
                                        ("regional", {}, 200), ("regional", {"municipality": volzhsk}, 200)):
            assert client_of(web, username).get(path, query_string=asked).status_code == status, (path, username)
