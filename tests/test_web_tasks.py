"""The task page: a form-js form drawn on the server beside its case, access, drafts, completion, conflicts."""

from __future__ import annotations

import re
from html import unescape

import pytest
from argon2 import PasswordHasher
from sqlalchemy import update
from werkzeug.datastructures import MultiDict

import sop
from engine.models import Agency
from webapp import create_app
from webapp.views.tasks import for_engine, parse_submission

from .test_sop_diagrams import (
    FORMS,
    REVIEW_CLOSE,
    WORKFLOWS,
    at,
    complete,
    tasks,
    to_execution,
    to_first_review,
    to_registration_card,
)
from .test_sop_service import SIGNAL

HASH = PasswordHasher().hash("demo-password")
CHECK_FORM = {"minor_name": "Иванов Петр, 12.03.2012", "parents_names": "Иванова Анна Сергеевна",
              "family_composition": "Мать, сын", "address_registered": "ул. Пушкина, д. 1, кв. 2",
              "housing_type": "apartment", "housing_area": "42,5", "housing_amenities": "", "sanitary_state": "",
              "living_conditions": "Отдельного места для занятий нет", "income_per_capita": "12000",
              "family_criteria": ["c1", "c2"], "danger_level": "high", "sop_confirmed": "true",
              "conclusion": "Семья находится в СОП", "conclusion_date": "2025-10-30"}


@pytest.fixture
def app(engine):
    return build_app(engine)


def build_app(engine):
    """A municipality with its commission and agencies, users of each role (one in another municipality), the
    SOP diagrams and forms deployed, and the web app on that engine."""
    sop.install(engine)
    identity = engine.identity
    for name, kind in (("КДНиЗП г. Йошкар-Олы", "commission"), ("МБОУ СОШ № 5", "education"),
                       ("ОМВД России по г. Йошкар-Оле", "police"), ("Отдел опеки и попечительства", "guardianship"),
                       ("КЦСОН г. Йошкар-Олы", "social_protection")):
        identity.add_agency(name, "Йошкар-Ола", kind=kind)
    identity.add_agency("КДНиЗП Волжска", "Волжск", kind="commission")
    for username, full_name, roles, agency in (
            ("secretary", "Смирнова Ольга Викторовна", ["commission_secretary"], "КДНиЗП г. Йошкар-Олы"),
            ("secretary2", "Петрова Мария Ивановна", ["commission_secretary"], "КДНиЗП г. Йошкар-Олы"),
            ("deputy", "Зуева Нина Петровна", ["commission_secretary", "commission"], "КДНиЗП г. Йошкар-Олы"),
            ("chair", "Кузнецов Андрей Петрович", ["commission"], "КДНиЗП г. Йошкар-Олы"),
            ("school", None, ["education", "agency_specialist"], "МБОУ СОШ № 5"),
            ("police", None, ["police", "agency_specialist"], "ОМВД России по г. Йошкар-Оле"),
            ("guardian", None, ["guardianship", "agency_specialist"], "Отдел опеки и попечительства"),
            ("curator1", "Васильева Елена Николаевна", ["curator"], "КЦСОН г. Йошкар-Олы"),
            ("specialist", None, ["agency_specialist"], "КЦСОН г. Йошкар-Олы"),
            ("vsecretary", None, ["commission_secretary"], "КДНиЗП Волжска")):
        identity.add_user(username, roles, agency=agency, full_name=full_name, password_hash=HASH)
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    return create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)


def csrf(client, path="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def login(client, username, password="demo-password"):
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf(client)})
    assert response.status_code == 302
    return client


def signed_in(app, username):
    return login(app.test_client(), username)


def check_task(app) -> tuple[dict, str]:
    engine = app.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    task = [t for t in engine.tasks.query(instance_id=result.instance_ids[0]) if t["element_id"] == "sop_check"][0]
    return result, task["id"]


def post(client, path, data, token_from):
    form = MultiDict(data if isinstance(data, list) else [
        (k, v) for k, values in data.items() for v in (values if isinstance(values, list) else [values])])
    form.add("csrf_token", csrf(client, token_from))
    return client.post(path, data=form)


def block(page: str, key: str) -> str:
    """The HTML of one field (its wrapper div or fieldset)."""
    match = re.search(rf'<(div|fieldset) class="field[^"]*" data-field="{key}".*?</\1>', page, re.S)
    assert match, key
    return match.group(0)


def test_the_check_form_is_drawn_with_every_kind_of_field_and_the_case_beside_it(app):
    result, task_id = check_task(app)
    client = signed_in(app, "secretary")
    response = client.get(f"/tasks/{task_id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1>Проверка информации и заключение</h1>" in page
    assert "<h2>Заключение об установлении обстоятельств" in page and "<h3>Жилищно-бытовые условия</h3>" in page
    assert re.search(r'<input type="text" id="f-minor_name" name="minor_name" aria-required="true"', page)
    assert 'Ф.И.О. несовершеннолетнего, дата рождения <span class="req"' in page
    assert re.search(r'<textarea id="f-family_composition" name="family_composition"', page)
    assert re.search(r'<select id="f-housing_type" name="housing_type">', page)
    assert '<option value="private_house">Частный дом</option>' in page
    assert re.search(r'<input type="number" class="short" id="f-housing_area" name="housing_area"', page)
    assert len(re.findall(r'type="radio" name="danger_level"', page)) == 4
    assert "Критический: требуется немедленное изъятие ребенка из семьи" in page
    assert len(re.findall(r'type="checkbox" name="family_criteria" value="c\d"', page)) == 8
    assert re.search(r'<input type="checkbox" value="true" id="f-sop_confirmed" name="sop_confirmed">', page)
    assert re.search(r'<input type="date" class="short" id="f-conclusion_date" name="conclusion_date"', page)
    assert 'name="csrf_token"' in page and "Сохранить черновик" in page and "Завершить" in page
    # beside the form: the case, the due date and who else may do the task
    assert "№ 1/2025" in page and "Семья Иванова" in page and "Проверка информации" in page
    assert "Иванов Петр Андреевич" in page and "13 лет" in page
    assert "до 06.11.2025" in page and "просрочено" not in page
    assert "Ответственный секретарь КДНиЗП" in page and "Петрова Мария Ивановна" in page
    assert "Смирнова Ольга Викторовна" not in page.split("Кроме вас:")[1].split("</p>")[0]
    assert "Взять в работу" in page
    events = app.extensions["kurator"].audit.events(object_type="task", object_id=task_id)
    assert [e["action"] for e in events] == ["task_viewed"]


def test_the_closure_decision_form_is_drawn(app):
    engine = app.extensions["kurator"]
    result, _ = check_task(app)
    iid = result.instance_ids[0]
    to_registration_card(engine, iid)
    at(engine, "2026-01-15 10:00")  # approved and sent on the day APPROVE and DISPATCH say
    to_execution(engine, iid)
    to_first_review(engine, iid)
    complete(engine, iid, "sop_review", REVIEW_CLOSE)
    task_id = tasks(engine, iid)["sop_closure_decision"][0]["id"]
    page = signed_in(app, "chair").get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "<h1>Заседание КДНиЗП: снятие с учета</h1>" in page
    assert re.search(r'<select id="f-grounds" name="grounds" aria-required="true">', page)
    assert re.search(r'<select id="f-closure_initiator" name="closure_initiator">', page)
    assert len(re.findall(r'type="radio" name="decision"', page)) == 2
    assert len(re.findall(r'type="radio" name="result"', page)) == 3
    for key in ("present", "votes_for", "votes_against"):
        assert re.search(rf'<input type="number" class="short" id="f-{key}" name="{key}" aria-required="true"', page)
    assert re.search(r'<input type="text" id="f-resolution_number" name="resolution_number"', page)
    assert re.search(r'<input type="date" class="short" id="f-closure_date" name="closure_date" aria-required', page)
    assert re.search(r'<textarea id="f-reasons" name="reasons"', page)
    # the case has moved on: recognised, with its danger level and curator
    assert "В СОП, идет работа по программе" in page and "высокий" in page
    assert "Васильева Елена Николаевна" in page


def test_only_those_who_may_work_on_the_task_in_their_scope_open_it(app):
    _, task_id = check_task(app)
    assert signed_in(app, "vsecretary").get(f"/tasks/{task_id}").status_code == 404  # another municipality
    assert signed_in(app, "vsecretary").post(f"/tasks/{task_id}", data={}).status_code in (400, 404)
    # in scope, not the role: the commission follows the task read-only, and may not do it
    chair = signed_in(app, "chair")
    watched = chair.get(f"/tasks/{task_id}")
    assert watched.status_code == 200 and "Вы можете только просматривать ее" in watched.get_data(as_text=True)
    assert 'name="danger_level"' not in watched.get_data(as_text=True)
    assert chair.post(f"/tasks/{task_id}", data={"csrf_token": csrf(chair, "/inbox")}).status_code == 403
    assert signed_in(app, "school").get(f"/tasks/{task_id}").status_code == 403  # the school's own case
    assert signed_in(app, "secretary").get("/tasks/no-such-task").status_code == 404
    response = app.test_client().get(f"/tasks/{task_id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    # claimed by a colleague: no longer theirs to do; the secretary still sees who has it, read-only
    app.extensions["kurator"].tasks.claim(task_id, "secretary2")
    taken = signed_in(app, "secretary").get(f"/tasks/{task_id}")
    assert taken.status_code == 200 and "Задача в работе у" in taken.get_data(as_text=True)
    assert 'name="danger_level"' not in taken.get_data(as_text=True)
    assert signed_in(app, "secretary2").get(f"/tasks/{task_id}").status_code == 200


def test_a_validation_error_is_shown_under_its_field_and_the_input_is_kept(app):
    engine = app.extensions["kurator"]
    _, task_id = check_task(app)
    client = signed_in(app, "secretary")
    response = post(client, f"/tasks/{task_id}", dict(CHECK_FORM, danger_level=""), f"/tasks/{task_id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "обязательное поле" in block(page, "danger_level") and 'aria-invalid="true"' in block(page, "danger_level")
    assert 'href="#f-danger_level">Уровень опасности для несовершеннолетнего (п. 3.3)</a>: обязательное поле' in page
    assert 'value="Иванов Петр, 12.03.2012"' in block(page, "minor_name")
    assert 'value="42.5"' in block(page, "housing_area")
    assert '<option value="apartment" selected>' in block(page, "housing_type")
    assert 'value="c1" checked' in block(page, "family_criteria") and 'value="c3" checked' not in page
    assert "checked" in block(page, "sop_confirmed")
    assert ">Семья находится в СОП</textarea>" in block(page, "conclusion")
    assert 'value="2025-10-30"' in block(page, "conclusion_date")
    assert "field-error" not in block(page, "minor_name")
    assert engine.tasks.get(task_id)["status"] == "open"
    # a number that is no number
    page = post(client, f"/tasks/{task_id}", dict(CHECK_FORM, housing_area="много"), f"/tasks/{task_id}")
    assert "должно быть числом" in block(page.get_data(as_text=True), "housing_area")


def test_a_saved_draft_comes_back_on_reload(app):
    engine = app.extensions["kurator"]
    _, task_id = check_task(app)
    client = signed_in(app, "secretary")
    draft = {"minor_name": "Иванов Петр", "housing_area": "38", "family_criteria": ["c7"], "danger_level": "medium",
             "sop_confirmed": "true", "conclusion": ""}
    response = post(client, f"/tasks/{task_id}/draft", draft, f"/tasks/{task_id}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/tasks/{task_id}")
    saved = engine.tasks.draft(task_id)
    assert saved["housing_area"] == 38 and saved["family_criteria"] == ["c7"] and saved["sop_confirmed"] is True
    assert saved["danger_level"] == "medium" and saved["conclusion"] == ""
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Черновик сохранен" in page and "Черновик сохранен 30.10.2025 09:00, Смирнова Ольга Викторовна" in page
    assert 'value="Иванов Петр"' in block(page, "minor_name") and 'value="38"' in block(page, "housing_area")
    assert 'value="c7" checked' in block(page, "family_criteria")
    assert 'value="medium" checked' in block(page, "danger_level")
    assert engine.tasks.get(task_id)["status"] == "open"
    actions = [e["action"] for e in engine.audit.events(object_type="task", object_id=task_id)]
    assert "draft_saved" in actions


def test_completing_advances_the_process_and_leads_to_the_inbox_when_the_next_task_is_someone_elses(app):
    engine = app.extensions["kurator"]
    result, task_id = check_task(app)
    client = signed_in(app, "secretary")
    response = post(client, f"/tasks/{task_id}", CHECK_FORM, f"/tasks/{task_id}")
    assert response.status_code == 302 and response.headers["Location"].endswith("/inbox")
    assert "Задача «Проверка информации и заключение» завершена." in client.get("/inbox").get_data(as_text=True)
    done = engine.tasks.get(task_id)
    assert done["status"] == "completed" and done["completed_by"] == "secretary"
    open_now = {t["element_id"]: t for t in engine.tasks.query(instance_id=result.instance_ids[0])}
    assert list(open_now) == ["sop_recognition"] and open_now["sop_recognition"]["candidate_roles"] == ["commission"]
    case = engine.sop.case(result.case_id)
    assert case["danger_level"] == "high" and case["sop_confirmed"] is True
    with engine.db.session() as session:
        from engine.models import HumanTask

        data = session.get(HumanTask, task_id).data
    assert data["housing_area"] == 42.5 and data["income_per_capita"] == 12000
    assert data["family_criteria"] == ["c1", "c2"] and data["sop_confirmed"] is True
    assert "housing_amenities" not in data  # empty: omitted
    assert "task_completed" in [e["action"] for e in engine.audit.events(object_type="task", object_id=task_id)]


def test_completing_leads_to_the_next_task_of_the_case_that_is_mine(app):
    engine = app.extensions["kurator"]
    result, task_id = check_task(app)
    client = signed_in(app, "deputy")  # secretary and commission member: the recognition is also theirs
    response = post(client, f"/tasks/{task_id}", CHECK_FORM, f"/tasks/{task_id}")
    following = [t for t in engine.tasks.query(instance_id=result.instance_ids[0])][0]
    assert following["element_id"] == "sop_recognition"
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/tasks/{following['id']}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Следующая задача по делу: «Заседание КДНиЗП: признание в СОП и организация ИПР»" in page
    assert re.search(r'<input type="checkbox" name="working_group"', page)
    assert 'id="f-ipr_term_months" name="ipr_term_months" value="6"' in page  # the form's default value


def test_a_task_completed_meanwhile_gives_a_clear_message(app):
    engine = app.extensions["kurator"]
    _, task_id = check_task(app)
    client = signed_in(app, "secretary")
    token = csrf(client, f"/tasks/{task_id}")  # the page is open...
    engine.tasks.complete(task_id, "secretary2", for_engine(parse_submission(engine.tasks.form(task_id),
                                                                             MultiDict(CHECK_FORM))))
    response = client.post(f"/tasks/{task_id}", data={**CHECK_FORM, "family_criteria": "c1", "csrf_token": token})
    page = unescape(response.get_data(as_text=True))
    assert response.status_code == 409
    assert "Эту задачу уже завершил(а) Петрова Мария Ивановна 30.10.2025 09:00. Ваши данные не сохранены." in page
    assert "Семья находится в СОП" in page and "30.10.2025" in page  # what was typed is shown, not lost
    assert engine.tasks.get(task_id)["completed_by"] == "secretary2"
    # the draft button too, and opening the page again
    response = client.post(f"/tasks/{task_id}/draft", data={"minor_name": "x", "csrf_token": token})
    assert response.status_code == 409 and "уже завершил(а)" in unescape(response.get_data(as_text=True))
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 200 and "уже завершил(а) Петрова" in unescape(response.get_data(as_text=True))


def test_a_task_claimed_meanwhile_by_a_colleague_gives_a_clear_message(app):
    engine = app.extensions["kurator"]
    _, task_id = check_task(app)
    client = signed_in(app, "secretary")
    token = csrf(client, f"/tasks/{task_id}")
    engine.tasks.claim(task_id, "secretary2")
    response = client.post(f"/tasks/{task_id}", data={**CHECK_FORM, "csrf_token": token})
    assert response.status_code == 409
    assert "Задачу уже взял(а) в работу Петрова Мария Ивановна." in unescape(response.get_data(as_text=True))
    assert engine.tasks.get(task_id)["status"] == "open"


def test_the_inbox_names_who_holds_a_task_by_full_name(app):
    """A task taken in «Мои задачи» names the person who holds it, not their login."""
    engine = app.extensions["kurator"]
    _, task_id = check_task(app)
    engine.tasks.claim(task_id, "secretary2")
    page = signed_in(app, "secretary2").get("/inbox").get_data(as_text=True)
    row = re.search(rf'href="/tasks/{task_id}".*?</tr>', page, re.S).group(0)
    assert "Петрова Мария Ивановна" in row and ">secretary2<" not in row.replace(" ", "").replace("\n", "")


def test_posting_needs_the_csrf_token_and_the_role(app):
    engine = app.extensions["kurator"]
    _, task_id = check_task(app)
    client = signed_in(app, "secretary")
    assert client.post(f"/tasks/{task_id}", data=CHECK_FORM).status_code == 400
    chair = signed_in(app, "chair")
    assert post(chair, f"/tasks/{task_id}", CHECK_FORM, "/inbox").status_code == 403
    assert engine.tasks.get(task_id)["status"] == "open"


def test_submitted_strings_become_the_types_of_the_form():
    schema = {"components": [
        {"type": "number", "key": "n"}, {"type": "number", "key": "f"}, {"type": "number", "key": "empty"},
        {"type": "checkbox", "key": "yes"}, {"type": "checkbox", "key": "no"},
        {"type": "checklist", "key": "many", "values": [{"label": "A", "value": "a"}, {"label": "B", "value": 2}]},
        {"type": "select", "key": "one", "values": [{"label": "Да", "value": True}, {"label": "Нет", "value": False}]},
        {"type": "textarea", "key": "text"}, {"type": "datetime", "subtype": "date", "key": "day"},
        {"type": "text", "text": "### Заголовок"}]}
    form = MultiDict([("n", " 7 "), ("f", "12,5"), ("empty", ""), ("yes", "true"), ("many", "a"), ("many", "2"),
                      ("one", "False"), ("text", "строка 1\r\nстрока 2 "), ("day", "2025-11-05")])
    data = parse_submission(schema, form)
    assert data == {"n": 7, "f": 12.5, "empty": "", "yes": True, "no": False, "many": ["a", 2], "one": False,
                    "text": "строка 1\nстрока 2", "day": "2025-11-05"}
    assert "empty" not in for_engine(data) and for_engine(data)["no"] is False


def test_an_agency_marks_its_activities_in_the_report_table(app):
    from sqlalchemy import select

    from sop.models import Activity

    engine = app.extensions["kurator"]
    result, _ = check_task(app)
    iid = result.instance_ids[0]
    to_registration_card(engine, iid)
    at(engine, "2026-01-15 10:00")  # approved and sent on the day APPROVE and DISPATCH say
    to_execution(engine, iid)
    reports = {t["agency_name"]: t for t in tasks(engine, iid)["sop_execution_report"]}
    police_task = reports["ОМВД России по г. Йошкар-Оле"]["id"]
    client = signed_in(app, "police")
    page = client.get(f"/tasks/{police_task}").get_data(as_text=True)
    # the police's own activity of the programme, as a row to mark; the social service's is not its to report
    assert "Беседа инспектора ПДН" in page and 'name="activity_reports[0][status]"' in page
    assert "Патронаж" not in page.split("Мероприятия программы, порученные органу")[1].split("</table>")[0]
    at(engine, "2026-02-10 10:00")  # the report's day
    token = csrf(client, f"/tasks/{police_task}")
    response = client.post(f"/tasks/{police_task}", data={
        "csrf_token": token, "report_agency": "ОМВД", "activities_done": "Проведены беседы",
        "report_date": "2026-02-10",
        "activity_reports[0][number]": "1", "activity_reports[0][title]": "Беседа инспектора ПДН",
        "activity_reports[0][status]": "partly", "activity_reports[0][status_date]": "2026-02-01",
        "activity_reports[0][comment]": "Одна беседа из двух", "activity_reports[99999][status]": "done"})
    assert response.status_code == 302, response.get_data(as_text=True)
    with engine.db.session() as db:
        statuses = {a.title: (a.status, a.done_on.isoformat() if a.done_on else None)
                    for a in db.scalars(select(Activity).where(Activity.case_id == result.case_id))}
    assert statuses == {"Беседа инспектора ПДН": ("partly", "2026-02-01"), "Патронаж": ("planned", None)}
    data = engine.tasks.get(police_task)
    assert data["status"] == "completed"


def test_the_agency_of_a_task_is_quoted_once(app):
    """«Задача органа: «МБОУ «Средняя школа № 5»»» doubled the closing quotes: a name with quotes of its own is shown
    as it is, any other in «»."""
    engine = app.extensions["kurator"]
    school_name = "МБОУ «Средняя школа № 5 г. Йошкар-Олы»"
    with engine.db.session() as db:
        db.execute(update(Agency).where(Agency.name == "МБОУ СОШ № 5").values(name=school_name))
    engine.clock.set("2025-11-13T10:00:00+03:00")
    engine.management.sweep()  # the quarter's reconciliation: a task for each agency
    own = {t["agency_name"]: t["id"] for t in engine.tasks.query() if t["element_id"] == "rec_agency"}
    page = signed_in(app, "school").get(f"/tasks/{own[school_name]}").get_data(as_text=True)
    assert f'<p class="task-agency">Задача органа: {school_name}</p>' in page and "»»" not in page
    police = own["ОМВД России по г. Йошкар-Оле"]
    page = signed_in(app, "police").get(f"/tasks/{police}").get_data(as_text=True)
    assert '<p class="task-agency">Задача органа: «ОМВД России по г. Йошкар-Оле»</p>' in page
