"""Official documents print what the system holds: a case driven through the real processes, and the text of every
generated PDF checked for the data entered — names in the case the sentence needs, terms, the working group, votes,
who signs — with no blank line where the data exists. And the case file in one PDF («Личное дело»)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from engine.models import Agency, AuditEvent
from sop import casefile
from sop.bundle import case_bundle
from sop.documents import BLANK
from sop.documents.names import inflect_name
from sop.documents.render import render_pdf
from sop.meetings.models import Commission, CommissionMember
from sop.models import Case, Document, IntakeEntry

from .test_sop_diagrams import (
    APPROVE,
    CARD,
    CHECK,
    CLOSURE,
    DISPATCH,
    DRAFT,
    PROPOSAL,
    RECOGNITION,
    REVIEW_CLOSE,
    SUMMARY,
    at,
    complete,
    tasks,
)
from .test_sop_service import SIGNAL, agency_user, report_all, world  # noqa: F401 - the fixture
from .test_web_cases import case_in_programme, client_of, web  # noqa: F401 - the fixture

COMMISSION = "Комиссия по делам несовершеннолетних и защите их прав городского округа «Город Йошкар-Ола»"
CURATOR = "Смирнова Ольга Викторовна"
INCOME = {"family_income": "заработная плата 15 000; пособия 8000, помощь родственников",
          "income_per_capita": 7500, "social_support": "ежемесячная выплата на ребенка"}


def text_of(pdf: bytes) -> str:
    """The PDF's text with line breaks, hyphenation and repeated spaces folded, so that wrapped values match."""
    raw = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return " ".join(raw.replace("\u2010\n", "").replace("-\n", "-").split())


def pages_of(pdf: bytes) -> list[str]:
    return [" ".join(page.extract_text().replace("\u2010\n", "").split()) for page in PdfReader(io.BytesIO(pdf)).pages]


# -- declension ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "case", "expected"), [
    ("Смирнова Ольга Викторовна", "datv", "Смирновой Ольге Викторовне"),
    ("Смирнова Ольга Викторовна", "ablt", "Смирновой Ольгой Викторовной"),
    ("Смирнова Ольга Викторовна", "accs", "Смирнову Ольгу Викторовну"),
    ("Иванов Петр Андреевич", "datv", "Иванову Петру Андреевичу"),
    ("Иванов Петр Андреевич", "ablt", "Ивановым Петром Андреевичем"),
    ("Кузнецов Илья Сергеевич", "gent", "Кузнецова Ильи Сергеевича"),
    ("Шевчук Анна Игоревна", "datv", "Шевчук Анне Игоревне"),      # a woman's surname in a consonant stays
    ("Шевчук Павел Олегович", "datv", "Шевчуку Павлу Олеговичу"),  # a man's declines
    ("Белых Мария Ивановна", "ablt", "Белых Марией Ивановной"),     # -ых never declines
    ("Петрова-Водкина Анна Ивановна", "datv", "Петровой-Водкиной Анне Ивановне"),
    ("Ковальская Любовь Петровна", "ablt", "Ковальской Любовью Петровной"),
])
def test_names_take_the_case_the_sentence_needs(name, case, expected):
    assert inflect_name(name, case) == expected


def test_what_is_not_a_full_name_is_left_as_it_is():
    assert inflect_name("curator1", "datv") == "curator1"
    assert inflect_name("КЦСОН г. Йошкар-Олы", "ablt") == "КЦСОН г. Йошкар-Олы"
    with pytest.raises(ValueError, match="grammatical case"):
        inflect_name(CURATOR, "dative")


# -- a case through the real processes -------------------------------------------------------------------------------

def _signing_commission(engine) -> None:
    """The municipality's commission with its full name, chair and secretary (who sign when no meeting says)."""
    with engine.db.session() as session:
        agency = session.scalar(select(Agency).where(Agency.kind == "commission"))
        commission = Commission(municipality_id=agency.municipality_id, agency_id=agency.id, full_name=COMMISSION,
                                place="г. Йошкар-Ола, Ленинский пр., 27")
        session.add(commission)
        session.flush()
        session.add_all([CommissionMember(commission_id=commission.id, full_name="Петров Игорь Николаевич",
                                          position="chair"),
                         CommissionMember(commission_id=commission.id, full_name="Егорова Анна Павловна",
                                          position="secretary")])


@dataclass
class Documents:
    case_id: int
    pdfs: dict[str, list[tuple[str, str, bytes]]]  # kind -> [(title, filename, pdf)], oldest first

    def text(self, kind: str, index: int = -1) -> str:
        return text_of(self.pdfs[kind][index][2])


@pytest.fixture
def whole_case(world):  # noqa: F811
    """Signal → check → recognition → card → proposals of two agencies → programme → approval → reports →
    six-month control → closure by vote; the commission recorded after the fact (no meeting)."""
    engine, service = world
    with engine.db.session() as session:  # the curator and a specialist of the working group have names
        from engine.models import User

        for username, full_name in (("curator1", CURATOR), ("police", "Орлов Никита Ильич")):
            session.scalar(select(User).where(User.username == username)).full_name = full_name
    _signing_commission(engine)
    at(engine, "2025-10-30 09:00")
    result = service.register_intake("school", dict(SIGNAL, received_on="2025-10-30"))
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", dict(CHECK, **INCOME, conclusion_date="2025-10-30"))
    at(engine, "2025-12-23 10:00")
    complete(engine, iid, "sop_recognition", dict(RECOGNITION, ipr_term_months=6,
                                                  recognition_notes="Мать не занимается воспитанием сына"))
    complete(engine, iid, "sop_registration_card", dict(
        CARD, agency_registrations="ПДН: 12.09.2025, протокол № 7, неисполнение родительских обязанностей"))
    for proposal in tasks(engine, iid)["sop_proposals"]:
        engine.tasks.complete(proposal["id"], agency_user(proposal, "specialist"), PROPOSAL)
    complete(engine, iid, "sop_programme_draft", DRAFT)
    at(engine, "2026-01-15 10:00")
    complete(engine, iid, "sop_programme_approval", APPROVE)
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    report_all(engine, iid)
    complete(engine, iid, "sop_curator_summary", SUMMARY)
    at(engine, "2026-06-24 09:00")
    assert engine.management.sweep().timers_fired == 1
    complete(engine, iid, "sop_review", REVIEW_CLOSE)
    at(engine, "2026-12-28 10:00")  # the commission's meeting that removes the family from the register
    complete(engine, iid, "sop_closure_decision", dict(CLOSURE, closure_initiator="agency"))
    pdfs: dict[str, list] = {}
    with engine.db.session() as session:
        for d in session.scalars(select(Document).where(Document.case_id == result.case_id).order_by(Document.id)):
            pdfs.setdefault(d.kind, []).append((d.title, d.filename, d.content))
    return engine, service, Documents(result.case_id, pdfs)


def test_every_case_document_prints_the_data_entered(whole_case):
    engine, _service, docs = whole_case
    assert {"conclusion", "resolution_recognition", "registration_card", "proposals", "programme",
            "resolution_approval", "resolution_closure"} <= set(docs.pdfs)
    for kind in ("conclusion", "resolution_recognition", "registration_card", "resolution_approval",
                 "resolution_closure"):
        assert str(BLANK) not in docs.text(kind), kind

    for kind in ("conclusion", "registration_card"):  # Appendices 2 and 3 §4–5: income and support as told
        text = docs.text(kind)
        assert "Заработная плата 15 000" in text and "Пособия 8 000" in text, kind
        assert "Другой источник помощь родственников" in text and "Среднедушевой доход 7 500" in text, kind
        assert "ежемесячная выплата на ребенка" in text, kind

    card = docs.text("registration_card")  # §9: the КДН row from the recognition, the others as the card says
    assert re.search(r"КДН 23\.12\.2025, протокол № 45/3 признание находящимися в социально опасном положении", card)
    assert re.search(r"ПДН 12\.09\.2025, протокол № 7 неисполнение родительских обязанностей", card)


def test_the_programme_prints_each_activity_in_its_columns_the_term_and_the_patronage(web):  # noqa: F811
    """Appendix 4 from the draft as the curator wrote it («мероприятие; содержание; исполнитель; срок»): the plan
    lists the activities and the programme's term, each activity its content and term in their columns, the
    patronage the curator chose heads its table; the case page shows the term in its column."""
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", CHECK)
    at(engine, "2025-12-23 10:00")
    complete(engine, iid, "sop_recognition", dict(RECOGNITION, ipr_term_months=6))
    complete(engine, iid, "sop_registration_card", CARD)
    for proposal in tasks(engine, iid)["sop_proposals"]:
        engine.tasks.complete(proposal["id"], {"Школа № 5": "school"}.get(proposal["agency_name"], "police"), PROPOSAL)
    complete(engine, iid, "sop_programme_draft", dict(DRAFT, programme_activities=(
        "Консультация педагога-психолога; 2 встречи; Школа № 5; до 31.12.2026\n"
        "Беседа инспектора ПДН; ежемесячно; ОМВД; 6 месяцев")))
    at(engine, "2026-01-15 10:00")
    complete(engine, iid, "sop_programme_approval", APPROVE)
    with engine.db.session() as session:
        document = session.scalar(select(Document).where(Document.case_id == result.case_id,
                                                         Document.kind == "programme").order_by(Document.id.desc()))
        text = text_of(casefile.pdf_of(session, document))
    plan = text[text.index("Перспективный план"):text.index("Проведение социально-реабилитационных")]
    assert "1. Консультация педагога-психолога 2. Беседа инспектора ПДН с 23.12.2025 по 23.06.2026" in plan
    assert "2 встречи;" not in plan and str(BLANK) not in plan
    activities = text[text.index("Проведение социально-реабилитационных"):text.index("Динамика")]
    assert "Консультация педагога-психолога Исполнитель: Образование, Школа № 5 2 встречи срок: 31.12.2026" \
        in activities
    assert "ежемесячно срок: 6 месяцев" in activities and "(срок:" not in activities
    patronage = text[text.index("Изменения вида патронажа"):text.index("Проведение заседаний")]
    assert "периодический установлен индивидуальной программой, 15.01.2026" in patronage
    assert "экстренный" not in patronage  # not the list of every kind to choose from
    page = client_of(web, "secretary").get(f"/cases/{result.case_id}").get_data(as_text=True)
    rows = re.findall(r"<tr class=\"[^\"]*\">\s*<td>\d+</td>.*?</tr>", page, re.S)
    assert len(rows) == 2
    assert '<td class="nowrap">31.12.2026</td>' in rows[0] and "2 встречи" in rows[0]
    assert '<td class="nowrap">6 месяцев</td>' in rows[1] and "срок:" not in rows[1]


def test_the_recognition_names_the_term_group_deadlines_and_who_signs(whole_case):
    _engine, _service, docs = whole_case
    text = docs.text("resolution_recognition")
    assert COMMISSION.upper() in text and f"{COMMISSION} (далее — комиссия)" in text
    assert "ПОСТАНОВЛЕНИЕ № 45/3" in text and "на заседании 23.12.2025" in text
    assert "установила: Мать не занимается воспитанием сына" in text
    assert "на срок 6 мес. с 23.12.2025 по 23.06.2026" in text
    assert "Назначить куратором случая Смирнову Ольгу Викторовну (КЦСОН г. Йошкар-Олы)" in text
    group = text[text.index("рабочей группы"):text.index("Органам и учреждениям")]
    assert "ОМВД России по г. Йошкар-Оле" in group and "КЦСОН г. Йошкар-Олы" in group and "МБОУ СОШ № 5" in group
    # the deadlines the programme's diagram sets: proposals in 7 days, the draft in 14 (12.01: after the holidays)
    assert "в срок до 30.12.2025 направить куратору случая предложения" in text
    assert "(до 12.01.2026) разработать индивидуальную программу" in text
    assert "Петров Игорь Николаевич" in text and "Егорова Анна Павловна" in text  # the chair and the secretary
    assert "г. Йошкар-Ола, Ленинский пр., 27" in text
    assert "Результаты голосования" not in text  # the form recorded no votes: none are made up


def test_the_approval_names_who_dispatches_and_the_control_date(whole_case):
    _engine, _service, docs = whole_case
    text = docs.text("resolution_approval")
    assert "представленную куратором случая Смирновой Ольгой Викторовной" in text
    # sop_programme_dispatch is in the secretary's lane: 5 calendar days from the approval on 15.01.2026
    assert "Ответственному секретарю комиссии в течение 5 календарных дней (до 20.01.2026) направить" in text
    assert "Куратору случая Смирновой Ольге Викторовне (КЦСОН г. Йошкар-Олы) представить в комиссию" in text
    assert "контроль исполнения — 23.06.2026" in text
    assert "с учетом предложений: " in text and "ОМВД России по г. Йошкар-Оле" in text


def test_the_closure_states_its_findings_and_the_abstentions(whole_case):
    _engine, _service, docs = whole_case
    text = docs.text("resolution_closure")
    assert "ПОСТАНОВЛЕНИЕ № 112/4" in text and "присутствовали 7 членов комиссии" in text
    assert "установила: По итогам контроля исполнения индивидуальной программы (24.06.2026): Обстановка в семье " \
           "улучшилась." in text
    assert "По информации куратора случая об исполнении индивидуальной программы: Положительная динамика." in text
    assert "«за» — 5, «против» — 1, «воздержались» — 1" in text  # 7 present, 5 for, 1 against
    assert "органа (учреждения) системы профилактики" in text  # the initiator
    assert "«Достигнута полная реабилитация»" in text


def test_proposals_of_two_agencies_are_told_apart_by_title_and_file_name(whole_case):
    _engine, _service, docs = whole_case
    proposals = docs.pdfs["proposals"]
    assert len(proposals) == 2
    titles = {title for title, _name, _pdf in proposals}
    names = {name for _title, name, _pdf in proposals}
    assert len(titles) == 2 and len(names) == 2
    assert any(t.endswith("— ОМВД России по г. Йошкар-Оле") for t in titles)
    assert any(t.endswith("— МБОУ СОШ № 5") for t in titles)
    assert any("ОМВД-России-по-г-Йошкар-Оле" in n for n in names) and any("МБОУ-СОШ-5" in n for n in names)
    assert "Мать злоупотребляет алкоголем" in text_of(proposals[0][2])


def test_the_journal_prints_the_outcome_and_the_databank_the_family(whole_case):
    engine, _service, docs = whole_case
    with engine.db.session() as session:
        school = session.scalar(select(IntakeEntry.agency_id).order_by(IntakeEntry.id).limit(1))
        municipality = session.scalar(select(Case.municipality_id))
    journal = text_of(render_pdf("intake_journal", casefile.journal_context(engine, school, date(2025, 1, 1),
                                                                            date(2026, 12, 31))))
    assert "Признаны в СОП (постановление № 45/3 от 23.12.2025); сняты с учета 28.12.2026" in journal
    assert "(постановление № 112/4 от 28.12.2026)" in journal and str(BLANK) not in journal
    databank = render_pdf("databank", casefile.databank_context(engine, municipality, date(2026, 12, 31)))
    text = text_of(databank)
    assert "Иванов Петр Андреевич" in text and "23.12.2025" in text and "28.12.2026" in text
    assert "уклонение родителей от воспитания и содержания детей" in text  # a short reason: the row fits
    assert "Егорова Анна Павловна" in text and str(BLANK) not in text
    assert len(pages_of(databank)) == 1


def test_the_databank_repeats_its_column_headings_on_every_page():
    rows = [{"minor_full_name": f"Иванов{'а' * (i % 2)} Ребенок {i}", "minor_birth_date": "2012-03-12",
             "parents": [{"full_name": f"Родитель {i}", "occupation": "не работает"}],
             "address_registered": f"г. Йошкар-Ола, ул. Пушкина, д. {i}", "minor_occupation": "СОШ № 5",
             "registration_reason": "уклонение родителей от воспитания и содержания детей",
             "registered_at": "2025-12-23"} for i in range(1, 41)]
    pdf = render_pdf("databank", {"commission": COMMISSION, "municipality": "Йошкар-Ола", "generated_at": "2026-01-01",
                                  "databank": {"rows": rows, "as_of": "2026-01-01"}})
    pages = pages_of(pdf)
    assert len(pages) > 2
    for page in pages:  # the headings and the column numbers on each page
        assert "Причина снятия с учета" in page and "ФИО несовершеннолетнего, дата рождения" in page, page[:300]
        assert re.search(r"\b1 2 3 4 5 6 7 8 9 10\b", page)
    text = " ".join(pages)
    assert all(f"Ребенок {i}," in text for i in range(1, 41))


def test_the_databank_pdf_holds_the_rows_of_the_xlsx(web):  # noqa: F811
    from openpyxl import load_workbook

    engine = web.extensions["kurator"]
    case_in_programme(engine)
    client = client_of(web, "secretary")
    period = {"from": "2025-01-01", "to": "2026-12-31"}
    sheet = load_workbook(io.BytesIO(client.get("/registers/databank.xlsx", query_string=period).data)).active
    rows = [row for row in sheet.iter_rows(min_row=5, values_only=True) if any(row)]
    pdf = client.get("/registers/databank.pdf", query_string=period).data
    text = text_of(pdf)
    assert rows and len(pages_of(pdf)) == 1
    for number, _municipality, minor, born, parents, registered, _actual, occupation, reason, since, _until, _why \
            in rows:
        assert f"{number} Йошкар-Ола {minor}, {born:%d.%m.%Y} г.р." in text
        for value in (parents, registered, occupation, reason, f"{since:%d.%m.%Y}"):
            assert str(value) in text, value


def test_meeting_data_carried_by_the_decision_is_printed(world):  # noqa: F811
    """A decision taken at a meeting carries the meeting's number, place, votes and signatories."""
    engine, service = world
    result = service.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", CHECK)
    at(engine, "2025-12-24 10:00")
    meeting = {"meeting_number": 45, "meeting_date": "2025-12-24", "resolution_number": "45/3", "votes_for": 6,
               "votes_against": 1, "votes_abstained": 2, "present": 9, "meeting_place": "каб. 301",
               "commission_name": COMMISSION, "chair_name": "Петров Игорь Николаевич",
               "secretary_name": "Егорова Анна Павловна"}
    complete(engine, iid, "sop_recognition", {**RECOGNITION, **meeting})
    with engine.db.session() as session:
        pdf = session.scalar(select(Document.content).where(Document.kind == "resolution_recognition"))
    text = text_of(pdf)
    assert "на заседании 24.12.2025 (протокол № 45; место проведения: каб. 301), на котором присутствовали 9 " \
           "членов комиссии" in text
    assert "«за» — 6, «против» — 1, «воздержались» — 2" in text
    assert COMMISSION.upper() in text and "Петров Игорь Николаевич" in text and "Егорова Анна Павловна" in text
    assert "с 24.12.2025 по 24.06.2026" in text
    assert "Назначить куратором случая curator1" in text  # a user without a full name keeps the login
    assert str(BLANK) not in text


# -- «Личное дело» in one PDF -------------------------------------------------------------------------------------

def bearer(client, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": "demo-password"})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


@dataclass(frozen=True)
class Someone:
    username: str
    roles: frozenset
    agency_id: int | None
    agency_kind: str | None
    municipality_wide: bool


def test_the_bundle_has_a_contents_page_and_every_document_in_order(whole_case):
    engine, _service, docs = whole_case
    secretary = Someone("secretary", frozenset({"commission_secretary"}), None, "commission", True)
    bundle = case_bundle(engine, docs.case_id, secretary)
    reader = PdfReader(io.BytesIO(bundle.pdf))
    latest = {(kind, i) for kind, versions in docs.pdfs.items() for i in range(len(versions))}
    # the programme was rendered twice (draft, approved): only its newest version goes in
    assert len(bundle.entries) == len(latest) - (len(docs.pdfs["programme"]) - 1)
    document_pages = sum(e["pages"] for e in bundle.entries)
    assert len(reader.pages) == bundle.pages == document_pages + 1
    contents = " ".join(reader.pages[0].extract_text().split())
    assert "Опись документов" in contents and "ЛИЧНОЕ ДЕЛО № 1/2025" in contents
    for entry in bundle.entries:
        words = " ".join(entry["title"].split()[:4])
        assert words in contents, entry["title"]
        first = reader.pages[entry["first_page"] - 1].extract_text()
        assert first.strip(), entry  # the page the contents names is the document's first page
    order = [e["created_at"] for e in bundle.entries]
    assert order == sorted(order)
    assert bundle.entries[0]["first_page"] == 2
    # the recognition's first page is where the contents says
    recognition = next(e for e in bundle.entries if e["title"].startswith("Постановление о признании"))
    assert "ПОСТАНОВЛЕНИЕ № 45/3" in reader.pages[recognition["first_page"] - 1].extract_text()

    with engine.db.session() as session:
        school = session.scalar(select(Agency).where(Agency.name == "МБОУ СОШ № 5"))
        participant = Someone("school", frozenset({"education"}), school.id, "education", False)
    partial = case_bundle(engine, docs.case_id, participant)  # a participant sees less (sop.access)
    titles = [e["title"] for e in partial.entries]
    assert not any(t.startswith("Учетная карта") for t in titles)
    assert not any("ОМВД" in t for t in titles) and any("МБОУ СОШ № 5" in t for t in titles)


def test_the_bundle_is_downloaded_from_the_case_file_and_the_api(web):  # noqa: F811
    engine = web.extensions["kurator"]
    case_id, _iid = case_in_programme(engine)
    secretary = client_of(web, "secretary")
    page = secretary.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f"/cases/{case_id}/bundle.pdf" in page
    response = secretary.get(f"/cases/{case_id}/bundle.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "Опись документов" in PdfReader(io.BytesIO(response.data)).pages[0].extract_text()
    # outside the scope the case does not exist
    assert client_of(web, "vsecretary").get(f"/cases/{case_id}/bundle.pdf").status_code == 404
    api = web.test_client()
    by_api = api.get(f"/api/v1/cases/{case_id}/bundle.pdf", headers=bearer(api, "curator1"))
    assert by_api.status_code == 200 and by_api.data.startswith(b"%PDF")
    assert api.get(f"/api/v1/cases/{case_id}/bundle.pdf", headers=bearer(api, "other")).status_code == 404
    assert api.get(f"/api/v1/cases/{case_id}/bundle.pdf").status_code == 401
    with engine.db.session() as session:
        reads = session.execute(select(AuditEvent.actor, AuditEvent.object_id)
                                .where(AuditEvent.action == "case_bundle_downloaded")
                                .order_by(AuditEvent.id)).all()
    assert [(actor, str(object_id)) for actor, object_id in reads] == [("secretary", str(case_id)),
                                                                       ("curator1", str(case_id))]
