"""«Личные дела»: the case list and the case file, their access matrix and data minimisation, documents, audit,
deadlines, the timeline and the diagram endpoints."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

import sop
from engine.models import AuditEvent, ProcessInstance
from sop.models import Document
from sop.roles import ROLES
from webapp import create_app

from .test_sop_diagrams import (
    APPROVE,
    CARD,
    CHECK,
    DISPATCH,
    DRAFT,
    FORMS,
    PROPOSAL,
    RECOGNITION,
    REPORT,
    WORKFLOWS,
    at,
    complete,
    tasks,
)
from .test_sop_service import SIGNAL
from .test_web_auth import HASH, csrf, login

OTHER_FAMILY = dict(SIGNAL, children=[{"last_name": "Петров", "first_name": "Олег", "birth_date": "2013-04-01"}],
                    parents=[{"last_name": "Петрова", "first_name": "Мария"}], address="г. Йошкар-Ола, ул. Мира, 3")


@pytest.fixture
def web(engine):
    """Two municipalities with their agencies and users, the SOP diagrams deployed, and the web app."""
    sop.install(engine)
    identity = engine.identity
    for name, kind in (("КДНиЗП", "commission"), ("Школа № 5", "education"), ("ОМВД", "police"),
                       ("КЦСОН", "social_protection"), ("Опека", "guardianship")):
        identity.add_agency(name, "Йошкар-Ола", kind=kind)
    identity.add_agency("КДНиЗП Волжска", "Волжск", kind="commission")
    identity.add_agency("Школа № 1", "Волжск", kind="education")
    identity.add_agency("КДНиЗП Республики", "Республика Марий Эл", kind="regional_commission")
    for username, roles, agency in (("secretary", ["commission_secretary"], "КДНиЗП"),
                                    ("chair", ["commission"], "КДНиЗП"),
                                    ("school", ["education", "agency_specialist"], "Школа № 5"),
                                    ("police", ["police", "agency_specialist"], "ОМВД"),
                                    ("specialist", ["agency_specialist"], "КЦСОН"),
                                    ("curator1", ["curator"], "КЦСОН"),
                                    ("guardian", ["guardianship", "agency_specialist"], "Опека"),
                                    ("vsecretary", ["commission_secretary"], "КДНиЗП Волжска"),
                                    ("other", ["education", "agency_specialist"], "Школа № 1"),
                                    ("regional", ["regional_secretary"], "КДНиЗП Республики"),
                                    ("admin", ["admin"], "КДНиЗП")):
        identity.add_user(username, roles, agency=agency, password_hash=HASH, full_name=f"Пользователь {username}")
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    return create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)


def client_of(app, username):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def case_in_programme(engine) -> tuple[int, int]:
    """A case signalled by the school and taken to an approved programme with a police report."""
    result = engine.sop.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", CHECK)
    at(engine, "2025-12-23 10:00")
    complete(engine, iid, "sop_recognition", RECOGNITION)
    complete(engine, iid, "sop_registration_card", CARD)
    # each addressed to its agency; the school first, so that the newest proposals are the police's
    for proposal in sorted(tasks(engine, iid)["sop_proposals"], key=lambda p: p["agency_name"] != "Школа № 5"):
        engine.tasks.complete(proposal["id"], {"Школа № 5": "school"}.get(proposal["agency_name"], "police"), PROPOSAL)
    complete(engine, iid, "sop_programme_draft", DRAFT)
    at(engine, "2026-01-15 10:00")
    complete(engine, iid, "sop_programme_approval", APPROVE)
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    for report in tasks(engine, iid)["sop_execution_report"]:  # each agency reports from its own task
        if report["agency_name"] == "Школа № 5":
            engine.tasks.complete(report["id"], "school", dict(REPORT, activities_done="Классный час проведен"))
        else:
            engine.tasks.complete(report["id"], "police", REPORT)
    return result.case_id, iid


def test_a_report_the_process_went_on_without_stays_a_missed_deadline(web):
    """The school never reports: after the grace period the curator goes on without it and its task is withdrawn;
    the case's deadlines still show the report as not done, its deadline missed."""
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", CHECK)
    at(engine, "2025-12-23 10:00")
    complete(engine, iid, "sop_recognition", RECOGNITION)
    complete(engine, iid, "sop_registration_card", CARD)
    for proposal in tasks(engine, iid)["sop_proposals"]:
        engine.tasks.complete(proposal["id"], {"Школа № 5": "school"}.get(proposal["agency_name"], "police"), PROPOSAL)
    complete(engine, iid, "sop_programme_draft", DRAFT)
    at(engine, "2026-01-15 10:00")
    complete(engine, iid, "sop_programme_approval", APPROVE)
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    [school_report] = [r for r in tasks(engine, iid)["sop_execution_report"] if r["agency_name"] == "Школа № 5"]
    for report in tasks(engine, iid)["sop_execution_report"]:
        if report["id"] != school_report["id"]:
            engine.tasks.complete(report["id"], "police", REPORT)
    at(engine, "2026-03-02 09:00")
    engine.management.sweep()
    assert engine.tasks.get(school_report["id"])["status"] == "cancelled"
    page = client_of(web, "secretary").get(f"/cases/{result.case_id}").get_data(as_text=True)
    deadlines = page.split('id="deadlines-h"')[1].split("</table>")[0]
    row = next(r for r in deadlines.split("<tr") if school_report["name"] in r)
    assert "не выполнено, срок нарушен" in row


def document_ids(engine, case_id) -> dict[str, int]:
    with engine.db.session() as db:
        return {d.kind: d.id for d in db.scalars(select(Document).where(Document.case_id == case_id)
                                                 .order_by(Document.id))}


def audit(engine, action) -> list[AuditEvent]:
    with engine.db.session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# -- the access matrix --------------------------------------------------------------------------------------------

def test_the_list_shows_the_cases_in_the_users_scope(web):
    engine = web.extensions["kurator"]
    first = engine.sop.register_intake("school", SIGNAL)
    second = engine.sop.register_intake("police", OTHER_FAMILY, new_family=True)
    secretary = client_of(web, "secretary").get("/cases").get_data(as_text=True)
    assert "№ 1/2025" in secretary and "№ 2/2025" in secretary and "Семья Иванова" in secretary
    school = client_of(web, "school").get("/cases").get_data(as_text=True)
    assert "№ 1/2025" in school and "№ 2/2025" not in school  # the school takes part in the first case only
    assert "Доступных вам дел нет" in client_of(web, "vsecretary").get("/cases").get_data(as_text=True)
    assert second.case_id != first.case_id


def test_list_filters_search_and_paging(web):
    engine = web.extensions["kurator"]
    engine.sop.register_intake("school", SIGNAL)
    engine.sop.register_intake("police", OTHER_FAMILY, new_family=True)
    client = client_of(web, "secretary")
    for query, shown, hidden in (("петров", "№ 2/2025", "№ 1/2025"), ("Иванов", "№ 1/2025", "№ 2/2025"),
                                 ("2/2025", "№ 2/2025", "№ 1/2025"), ("№ 1", "№ 1/2025", "№ 2/2025")):
        page = client.get("/cases", query_string={"q": query}).get_data(as_text=True)
        assert shown in page and hidden not in page, query
    assert "Дел с такими условиями нет" in client.get("/cases?status=closed").get_data(as_text=True)
    assert "№ 1/2025" in client.get("/cases?status=check&danger=").get_data(as_text=True)
    newest_first = client.get("/cases?order=desc").get_data(as_text=True)
    assert newest_first.index("№ 2/2025") < newest_first.index("№ 1/2025")
    oldest_first = client.get("/cases").get_data(as_text=True)
    assert oldest_first.index("№ 1/2025") < oldest_first.index("№ 2/2025")
    assert client.get("/cases?page=5").status_code == 200


def test_a_case_outside_the_scope_does_not_exist(web):
    engine = web.extensions["kurator"]
    case_id, iid = case_in_programme(engine)
    docs = document_ids(engine, case_id)
    urls = [f"/cases/{case_id}", f"/cases/{case_id}/documents/{docs['conclusion']}",
            f"/cases/{case_id}/diagram/{iid}.bpmn", f"/cases/{case_id}/diagram/{iid}/state.json"]
    for username in ("vsecretary", "other"):  # another municipality
        client = client_of(web, username)
        for url in urls:
            assert client.get(url).status_code == 404, (username, url)
    missing = client_of(web, "secretary").get("/cases/999999")
    assert missing.status_code == 404  # the same answer as for a case that exists elsewhere
    police_case = engine.sop.register_intake("police", OTHER_FAMILY, new_family=True)
    school = client_of(web, "school")
    assert school.get(f"/cases/{police_case.case_id}").status_code == 404  # the school takes no part
    assert school.get(f"/cases/{police_case.case_id}/diagram/{police_case.instance_ids[0]}.bpmn").status_code == 404
    # an instance of another case, or a document of another case, through a case the user may open
    secretary = client_of(web, "secretary")
    assert secretary.get(f"/cases/{case_id}/diagram/{police_case.instance_ids[0]}.bpmn").status_code == 404
    other_doc = document_ids(engine, case_id)["conclusion"]
    assert secretary.get(f"/cases/{police_case.case_id}/documents/{other_doc}").status_code == 404


def test_regional_secretary_and_admin_see_no_case_files(web):
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    for username in ("regional", "admin"):
        client = client_of(web, username)
        assert client.get("/cases").status_code == 403
        assert client.get(f"/cases/{result.case_id}").status_code in (403, 404)
        assert client.get(f"/cases/{result.case_id}/diagram/{result.instance_ids[0]}.bpmn").status_code in (403, 404)


def test_pages_need_a_login(web):
    response = web.test_client().get("/cases")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- the case file ------------------------------------------------------------------------------------------------

def test_case_file_shows_the_family_programme_deadlines_and_timeline(web):
    engine = web.extensions["kurator"]
    case_id, _iid = case_in_programme(engine)
    page = client_of(web, "secretary").get(f"/cases/{case_id}").get_data(as_text=True)
    for text in ("Личное дело № 1/2025", "Иванов Петр Андреевич", "12.03.2012", "13 лет", "Иванова Анна Сергеевна",
                 "ул. Пушкина", "высокий", "Пользователь curator1", "ОМВД", "Школа № 5", "Беседа инспектора ПДН",
                 "Проведены 2 беседы", "45/3", "О признании находящимися в СОП", "Проверка информации",
                 "выполнено в срок", "Задача создана", "Задача выполнена", "Процесс запущен",
                 "Учетная карта", "Сформировать заново", "case-diagram.js", "bpmn-viewer.production.min.js"):
        assert text in page, text


def test_missed_deadlines_and_timer_events_appear(web):
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    at(engine, "2025-11-07 00:00:01")
    assert engine.management.sweep().overdue_marked == 1
    page = client_of(web, "secretary").get(f"/cases/{result.case_id}").get_data(as_text=True)
    assert "Срок нарушен" in page and "срок нарушен" in page
    complete(engine, result.instance_ids[0], "sop_check", CHECK)
    page = client_of(web, "secretary").get(f"/cases/{result.case_id}").get_data(as_text=True)
    assert "выполнено с нарушением срока" in page


def test_viewing_and_downloading_are_audited(web):
    engine = web.extensions["kurator"]
    case_id, _iid = case_in_programme(engine)
    client = client_of(web, "school")
    assert client.get(f"/cases/{case_id}").status_code == 200
    viewed = audit(engine, "case_viewed")
    assert [(e.actor, e.object_type, e.object_id) for e in viewed] == [("school", "case", str(case_id))]
    assert viewed[0].ip
    conclusion = document_ids(engine, case_id)["conclusion"]
    response = client.get(f"/cases/{case_id}/documents/{conclusion}")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.mimetype == "application/pdf"
    downloaded = audit(engine, "document_downloaded")
    assert [(e.actor, e.object_id, e.details["case_id"]) for e in downloaded] == [("school", str(conclusion), case_id)]


def test_participants_see_less_than_the_commission_and_the_curator(web):
    """The minimisation rule: another agency of the working group sees the summary, the programme, the shared
    documents and its own reports and proposals — not the registration card or other agencies' papers."""
    engine = web.extensions["kurator"]
    case_id, _iid = case_in_programme(engine)
    docs = document_ids(engine, case_id)
    for username in ("secretary", "chair", "curator1"):
        page = client_of(web, username).get(f"/cases/{case_id}").get_data(as_text=True)
        assert "Проведены 2 беседы" in page, username
        assert all(f"/documents/{doc}" in page for doc in docs.values()), username
    school = client_of(web, "school")
    page = school.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Иванов Петр Андреевич" in page and "Беседа инспектора ПДН" in page and "45/3" in page
    shown = {kind for kind, doc in docs.items() if f"/documents/{doc}" in page}
    assert shown == {"conclusion", "resolution_recognition", "programme", "resolution_approval"}
    assert "Классный час проведен" in page  # its own report
    assert "Проведены 2 беседы" not in page  # the police report
    assert "как участник рабочей группы" in page and "Сформировать заново" not in page
    assert school.get(f"/cases/{case_id}/documents/{docs['registration_card']}").status_code == 404
    assert school.get(f"/cases/{case_id}/documents/{docs['proposals']}").status_code == 404
    assert school.get(f"/cases/{case_id}/documents/{docs['programme']}").status_code == 200
    police = client_of(web, "police")
    page = police.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Проведены 2 беседы" in page and f"/documents/{docs['proposals']}" in page  # its own report, proposals
    assert police.get(f"/cases/{case_id}/documents/{docs['proposals']}").status_code == 200
    assert police.get(f"/cases/{case_id}/documents/{docs['registration_card']}").status_code == 404


def test_removal_act_is_for_the_commission_and_guardianship(web):
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("police", dict(SIGNAL, threat_to_life=True))
    emergency = result.instance_ids[1]
    complete(engine, emergency, "em_inspection", {"visit_date": "2025-10-30", "inspection_findings": "Угроза",
                                                  "threat_confirmed": True, "removed": True,
                                                  "removed_from_all_parents": True, "removal_date": "2025-10-30",
                                                  "placement": "institution"}, user="guardian")
    complete(engine, emergency, "em_removal_act", {"removal_act_number": "7", "removal_act_date": "2025-10-30",
                                                   "placement_details": "СРЦН «Дружба»", "removal_act_signed": True},
             user="guardian")
    act = document_ids(engine, result.case_id)["removal_act"]
    url = f"/cases/{result.case_id}/documents/{act}"
    assert client_of(web, "secretary").get(url).status_code == 200
    assert client_of(web, "guardian").get(url).status_code == 200
    assert client_of(web, "police").get(url).status_code == 404
    page = client_of(web, "secretary").get(f"/cases/{result.case_id}").get_data(as_text=True)
    assert page.count('class="case-diagram"') == 2  # the case process and the emergency process
    assert "Экстренные меры" in page


def test_regenerating_a_document(web):
    engine = web.extensions["kurator"]
    case_id, _iid = case_in_programme(engine)
    conclusion = document_ids(engine, case_id)["conclusion"]
    url = f"/cases/{case_id}/documents/{conclusion}/regenerate"
    school = client_of(web, "school")
    assert school.post(url, data={"csrf_token": csrf(school, "/cases")}).status_code == 403
    secretary = client_of(web, "secretary")
    assert secretary.post(url).status_code == 400  # no CSRF token
    response = secretary.post(url, data={"csrf_token": csrf(secretary, "/cases")}, follow_redirects=True)
    assert response.status_code == 200 and "Документ сформирован заново" in response.get_data(as_text=True)
    assert "версий: 2" in response.get_data(as_text=True)
    with engine.db.session() as db:
        versions = db.scalars(select(Document.id).where(Document.case_id == case_id,
                                                        Document.kind == "conclusion")).all()
    assert len(versions) == 2
    assert [e.actor for e in audit(engine, "document_regenerated")] == ["secretary"]
    curator = client_of(web, "curator1")
    assert curator.post(url, data={"csrf_token": csrf(curator, "/cases")}).status_code == 302
    other = client_of(web, "vsecretary")
    assert other.post(url, data={"csrf_token": csrf(other, "/cases")}).status_code == 404


def test_the_case_file_says_which_documents_wait_for_their_pdf_and_which_could_not_be_laid_out(web):
    engine = web.extensions["kurator"]
    case_id, _iid = case_in_programme(engine)
    ids = document_ids(engine, case_id)
    with engine.db.session() as db:  # as a worker that stopped, and a layout that failed, would leave them
        db.execute(update(Document).where(Document.id == ids["conclusion"])
                   .values(pending_html="<p>Заключение</p>", content=b"", size=0))
        db.execute(update(Document).where(Document.id == ids["registration_card"])
                   .values(pending_html="<p>Карта</p>", content=b"", size=0, render_failed_at=engine.clock.now()))
    secretary = client_of(web, "secretary")
    page = secretary.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "PDF, формируется" in page
    assert "PDF, не удалось сформировать — сформируйте заново" in page
    chair = client_of(web, "chair").get(f"/cases/{case_id}").get_data(as_text=True)  # sees it, may not regenerate
    assert "PDF, не удалось сформировать — его сформирует заново секретарь комиссии или куратор" in chair
    pdf = secretary.get(f"/cases/{case_id}/documents/{ids['conclusion']}")  # laid out for the one who asks
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert "PDF, формируется" not in secretary.get(f"/cases/{case_id}").get_data(as_text=True)


def test_the_secretary_sends_the_check_to_an_agency_from_the_case_file(web):
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    case_id, url = result.case_id, f"/cases/{result.case_id}/check"
    agencies = {a["name"]: a["id"] for a in engine.identity.agencies()}
    secretary = client_of(web, "secretary")
    page = secretary.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Проверка информации" in page and "комиссия (секретарь)" in page
    assert f'<option value="{agencies["ОМВД"]}"' in page and f'value="{agencies["Школа № 1"]}"' not in page
    school = client_of(web, "school")
    assert "Поручить проверку" not in school.get(f"/cases/{case_id}").get_data(as_text=True)
    assert school.post(url, data={"csrf_token": csrf(school, "/cases"), "agency": agencies["ОМВД"]}).status_code == 403
    assert secretary.post(url, data={"agency": agencies["ОМВД"]}).status_code == 400  # no CSRF token
    refused = secretary.post(url, data={"csrf_token": csrf(secretary, "/cases"), "agency": agencies["Школа № 1"]},
                             follow_redirects=True).get_data(as_text=True)
    assert "Проверка не передана: выберите орган своего муниципалитета" in refused
    [check] = [t for t in engine.tasks.query() if t["element_id"] == "sop_check"]
    assert check["agency_id"] is None
    sent = secretary.post(url, data={"csrf_token": csrf(secretary, "/cases"), "agency": agencies["ОМВД"]},
                          follow_redirects=True).get_data(as_text=True)
    assert "Проверка передана: ОМВД." in sent
    assert engine.tasks.get(check["id"])["agency_name"] == "ОМВД"
    police = client_of(web, "police")
    assert check["id"] in police.get("/inbox").get_data(as_text=True)
    assert check["id"] not in school.get("/inbox").get_data(as_text=True)
    assert police.get(f"/tasks/{check['id']}").status_code == 200
    assert school.get(f"/tasks/{check['id']}").status_code == 404  # another agency's task does not exist for it


def test_the_secretary_requests_materials_from_the_case_file(web):
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    url = f"/cases/{result.case_id}/materials"
    agencies = {a["name"]: a["id"] for a in engine.identity.agencies()}
    secretary = client_of(web, "secretary")
    page = secretary.get(f"/cases/{result.case_id}").get_data(as_text=True)
    assert "Запрос материалов" in page and f'name="agencies" value="{agencies["ОМВД"]}"' in page
    school = client_of(web, "school")
    assert school.post(url, data={"csrf_token": csrf(school, "/cases"), "agencies": agencies["ОМВД"],
                                  "question": "Сведения"}).status_code == 403
    empty = secretary.post(url, data={"csrf_token": csrf(secretary, "/cases"), "question": "Сведения"},
                           follow_redirects=True).get_data(as_text=True)
    assert "Запрос не отправлен: выберите хотя бы один орган" in empty
    sent = secretary.post(url, data={"csrf_token": csrf(secretary, "/cases"), "question": "Сведения о семье",
                                     "agencies": [agencies["ОМВД"], agencies["Опека"]]},
                          follow_redirects=True).get_data(as_text=True)
    assert "Запрос материалов отправлен: органов — 2" in sent
    asked = {t["agency_name"]: t["id"] for t in engine.tasks.query() if t["element_id"] == "materials_reply"}
    assert sorted(asked) == ["ОМВД", "Опека"]
    police_inbox = client_of(web, "police").get("/inbox").get_data(as_text=True)
    assert asked["ОМВД"] in police_inbox and asked["Опека"] not in police_inbox
    assert not any(task_id in school.get("/inbox").get_data(as_text=True) for task_id in asked.values())


def test_the_case_file_warns_when_an_emergency_step_has_no_agency_to_go_to(web):
    engine = web.extensions["kurator"]
    # Волжск has a commission and a school, but no guardianship, police or social protection
    engine.identity.add_user("vschool", ["education", "agency_specialist"], agency="Школа № 1")
    result = engine.sop.register_intake("vschool", dict(SIGNAL, threat_to_life=True))
    inspection = next(t for t in engine.tasks.query() if t["element_id"] == "em_inspection")
    assert inspection["agency_id"] is None and inspection["candidate_roles"] == ["commission_secretary"]
    page = client_of(web, "vsecretary").get(f"/cases/{result.case_id}").get_data(as_text=True)
    assert "Нет органа-исполнителя" in page and "«Выезд и акт обследования условий жизни ребенка»" in page
    assert inspection["id"] in client_of(web, "vsecretary").get("/inbox").get_data(as_text=True)


def test_an_agency_answers_a_request_for_materials_with_pdf_files(web):
    import io

    from sop.materials import request_materials

    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    police_id = next(a["id"] for a in engine.identity.agencies() if a["name"] == "ОМВД")
    request_materials(engine, result.case_id, [police_id], "Сведения о семье", "secretary")
    task_id = next(t["id"] for t in engine.tasks.query() if t["element_id"] == "materials_reply")
    police = client_of(web, "police")
    page = police.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'type="file"' in page and "Сведения о семье" in page
    answer = {"materials_question": "Сведения о семье", "materials_answer": "На учете не состоит",
              "materials_date": "2025-10-30"}
    # a file that is not a PDF: refused under its field, nothing saved
    refused = police.post(f"/tasks/{task_id}", content_type="multipart/form-data", data={
        **answer, "csrf_token": csrf(police, f"/tasks/{task_id}"),
        "materials_files": (io.BytesIO(b"MZ\x90\x00 not a pdf"), "справка.exe")})
    assert refused.status_code == 422 and "не является PDF" in refused.get_data(as_text=True)
    assert engine.tasks.get(task_id)["status"] == "open"
    pdf = b"%PDF-1.4\n% a scanned certificate\n"
    done = police.post(f"/tasks/{task_id}", content_type="multipart/form-data", data={
        **answer, "csrf_token": csrf(police, f"/tasks/{task_id}"),
        "materials_files": [(io.BytesIO(pdf), "Справка ПДН.pdf"), (io.BytesIO(pdf), "Характеристика.pdf")]})
    assert done.status_code == 302
    with engine.db.session() as db:
        files = db.scalars(select(Document).where(Document.case_id == result.case_id,
                                                  Document.kind == "materials_file").order_by(Document.id)).all()
        assert [(f.filename, f.agency_id, bytes(f.content)) for f in files] == [
            ("Справка ПДН.pdf", police_id, pdf), ("Характеристика.pdf", police_id, pdf)]
        file_id = files[0].id
    secretary = client_of(web, "secretary")
    page = secretary.get(f"/cases/{result.case_id}").get_data(as_text=True)
    assert "Материалы органа — ОМВД: Справка ПДН.pdf" in page
    assert secretary.get(f"/cases/{result.case_id}/documents/{file_id}").data == pdf
    assert client_of(web, "school").get(f"/cases/{result.case_id}/documents/{file_id}").status_code == 404
    refused = secretary.post(f"/cases/{result.case_id}/documents/{file_id}/regenerate",
                             data={"csrf_token": csrf(secretary, "/cases")}, follow_redirects=True)
    assert refused.status_code in (200, 422) and "Сформировать заново" not in page.split("Справка ПДН.pdf")[1][:400]


# -- the diagram --------------------------------------------------------------------------------------------------

def test_diagram_xml_and_state(web):
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    client = client_of(web, "school")
    xml = client.get(f"/cases/{result.case_id}/diagram/{iid}.bpmn")
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert b'id="sop_check"' in xml.data and b"bpmndi:BPMNDiagram" in xml.data
    state = client.get(f"/cases/{result.case_id}/diagram/{iid}/state.json").get_json()
    assert "sop_check" in state["active"] and state["status"] == "running"
    assert state["open_tasks"][0]["element_id"] == "sop_check"
    assert "sop_check" not in state["completed"] and state["completed"]  # the start event at least
    complete(engine, iid, "sop_check", CHECK)
    state = client.get(f"/cases/{result.case_id}/diagram/{iid}/state.json").get_json()
    assert "sop_check" in state["completed"] and "sop_recognition" in state["active"]


def test_the_diagram_shows_role_titles_and_russian_event_names_and_keeps_the_ids(web):
    """Lanes are named with role codes on purpose (the engine offers a lane's tasks to that role), so the served copy
    labels them with the roles' titles; the events of the signal and the message have Russian names."""
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    xml = client_of(web, "school").get(f"/cases/{result.case_id}/diagram/{iid}.bpmn").get_data(as_text=True)
    lanes = dict(re.findall(r'<bpmn:lane id="([^"]+)" name="([^"]*)"', xml))
    assert lanes and set(lanes.values()) <= set(ROLES.values()), lanes
    assert lanes["Lane_case_secretary"] == "Ответственный секретарь КДНиЗП"
    events = re.findall(r'<bpmn:startEvent id="[^"]+" name="([^"]*)"', xml)
    assert "Угроза жизни или здоровью ребенка" in events and "Исполнилось 18 лет" in events
    assert "threat_to_life" not in " ".join(events) and "minor_turned_18" not in " ".join(events)
    # the ids the state marks and the signal's and message's own names (what the engine correlates) stay
    assert 'id="sop_check"' in xml and 'name="threat_to_life"' in xml and 'bpmnElement="Lane_case_secretary"' in xml
    with engine.db.session() as db:  # the deployed version is not changed
        assert 'name="commission_secretary"' in db.get(ProcessInstance, iid).definition.resource.content


def test_a_version_that_named_the_events_with_the_raw_signal_shows_them_in_russian():
    from webapp.views import cases

    old = (WORKFLOWS / "sop_case.bpmn").read_text(encoding="utf-8").replace(
        'name="Угроза жизни или здоровью ребенка"', 'name="Сигнал threat_to_life"').replace(
        'name="Исполнилось 18 лет"', 'name="Сообщение minor_turned_18"')
    shown = cases._for_viewing("old", old, tuple(sorted(ROLES.items())))
    assert "Сигнал threat_to_life" not in shown and "Сообщение minor_turned_18" not in shown
    assert 'id="case_threat_start" name="Угроза жизни или здоровью ребенка"' in shown
    assert 'id="case_minor_adult_start" name="Исполнилось 18 лет"' in shown
    assert 'name="curator"' not in shown and 'name="Куратор случая"' in shown
    # a lane already named with a title, or with no role at all, is left as it is
    plain = old.replace('name="curator"', 'name="Куратор случая"').replace('name="commission"', 'name="Гости"')
    assert 'name="Гости"' in cases._for_viewing("plain", plain, tuple(sorted(ROLES.items())))


def test_diagram_state_marks_the_call_activity_of_a_called_process(web):
    engine = web.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    complete(engine, iid, "sop_check", CHECK)
    at(engine, "2025-12-23 10:00")
    complete(engine, iid, "sop_recognition", RECOGNITION)
    complete(engine, iid, "sop_registration_card", CARD)
    state = client_of(web, "secretary").get(f"/cases/{result.case_id}/diagram/{iid}/state.json").get_json()
    xml = client_of(web, "secretary").get(f"/cases/{result.case_id}/diagram/{iid}.bpmn").get_data(as_text=True)
    assert "case_programme" in state["active"]  # the proposals are asked inside the programme process
    assert {t["element_id"] for t in state["open_tasks"]} == {"sop_proposals"}
    assert all(re.search(f'id="{element}"', xml) for element in state["active"] + state["completed"])
