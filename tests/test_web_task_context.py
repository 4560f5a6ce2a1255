"""The task page and the REST API with the task context: what is decided above the form, the curator chosen by
name, forms started from the case records, the overdue visit passed to a specialist."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from webapp import create_app
from webapp.views.tasks import build_widgets, initial_values

from .modeler_support import post_json
from .test_sop_diagrams import RECOGNITION, at
from .test_sop_service import SIGNAL
from .test_task_context import HASH, PASSWORD, SOCIAL, escalated, one, to_recognition, world  # noqa: F401 - fixture
from .test_web_tasks import block, post, signed_in


@pytest.fixture
def app(world):  # noqa: F811 - the fixture imported above
    engine, _ = world
    engine.identity.add_user("method", ["methodologist"], agency="КДНиЗП г. Йошкар-Олы", password_hash=HASH)
    return create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)


def recognition_form(**changes) -> dict:
    form = {"decision": "recognize", "meeting_date": "2025-10-30", "resolution_number": "45/3", "curator": "curator1",
            "ipr_term_months": "6", "working_group": ["police", "education"], "consent_obtained": "true"}
    return {**form, **changes}


def test_the_recognition_page_shows_the_conclusion_and_the_curators_by_name(app):
    engine = app.extensions["kurator"]
    case_id, iid = to_recognition(engine, engine.sop)
    task_id = one(engine, iid, "sop_recognition")["id"]
    client = signed_in(app, "chair")
    page = unescape(client.get(f"/tasks/{task_id}").get_data(as_text=True))
    # what is decided, above the form
    assert page.index('data-panel="conclusion"') < page.index('<form class="card task-form"')
    conclusion = re.search(r'<section class="side-card context-panel" data-panel="conclusion".*?</section>', page,
                           re.S).group(0)
    assert "Заключение по результатам проверки (приложение 2)" in conclusion
    assert "<dt>Уровень опасности</dt><dd class=\"pre\">высокий</dd>" in conclusion
    assert "Семья находится в СОП" in conclusion and "Отдельного места для занятий нет" in conclusion
    assert "Родители (законные представители) уклоняются от воспитания" in conclusion
    family = re.search(r'data-panel="family".*?</section>', page, re.S).group(0)
    assert "<td class=\"pre\">Иванов Петр Андреевич</td>" in family
    # the curator: a list of people, not a login to type
    curator = block(page, "curator")
    assert re.search(r'<select id="f-curator" name="curator"', curator)
    assert f'<option value="curator1">Васильева Елена Николаевна ({SOCIAL})</option>' in curator
    assert '<option value="retired">' not in curator and '<option value="vcurator">' not in curator
    # a wrong choice is refused under the field, the right one recognises the family with that curator
    response = post(client, f"/tasks/{task_id}", recognition_form(curator="secretary"), f"/tasks/{task_id}")
    assert response.status_code == 422
    assert '<div class="field-error" id="f-curator-error">укажите пользователя с ролью куратора</div>' in \
        unescape(response.get_data(as_text=True))
    response = post(client, f"/tasks/{task_id}", recognition_form(), f"/tasks/{task_id}")
    assert response.status_code == 302
    assert engine.sop.case(case_id)["curator"] == "curator1"
    assert engine.sop.case(case_id)["status"] == "recognized"


def test_the_recognition_api_keeps_the_username_and_gives_the_context(app):
    engine = app.extensions["kurator"]
    case_id, iid = to_recognition(engine, engine.sop)
    task_id = one(engine, iid, "sop_recognition")["id"]
    client = app.test_client()

    def headers(username):
        token = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}).get_json()
        return {"Authorization": f"Bearer {token['token']}"}

    detail = client.get(f"/api/v1/tasks/{task_id}", headers=headers("chair")).get_json()
    context = detail["context"]
    assert [p["key"] for p in context["panels"]] == ["conclusion", "family"]
    assert {"label": "Уровень опасности", "value": "высокий"} in context["panels"][0]["rows"]
    assert {"value": "curator1", "label": f"Васильева Елена Николаевна ({SOCIAL})"} in \
        context["options"]["curator_options"]
    assert next(c for c in detail["form"]["components"] if c.get("key") == "curator")["valuesKey"] == \
        "curator_options"
    # the school sees the case (it sent the signal) but does not decide: no context for it
    school = client.get(f"/api/v1/tasks/{task_id}", headers=headers("school"))
    assert school.status_code == 200 and school.get_json()["context"] is None
    done = client.post(f"/api/v1/tasks/{task_id}/complete", headers=headers("chair"),
                       json={"data": dict(RECOGNITION, meeting_date="2025-10-30", curator="curator1")})
    assert done.status_code == 200 and engine.sop.case(case_id)["curator"] == "curator1"


def test_the_check_page_starts_from_the_signal_and_a_draft_comes_first(app):
    engine = app.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    task_id = one(engine, result.instance_ids[0], "sop_check")["id"]
    client = signed_in(app, "secretary")
    page = unescape(client.get(f"/tasks/{task_id}").get_data(as_text=True))
    assert 'value="Иванов Петр Андреевич, 12.03.2012"' in block(page, "minor_name")
    assert 'value="Иванова Анна Сергеевна"' in block(page, "parents_names")
    assert f'value="{SIGNAL["address"]}"' in block(page, "address_registered")
    assert "Классный руководитель МБОУ СОШ № 5" in re.search(r'data-panel="signal".*?</section>', page, re.S).group(0)
    post(client, f"/tasks/{task_id}/draft", {"minor_name": "Иванов П. А.", "parents_names": ""}, f"/tasks/{task_id}")
    page = unescape(client.get(f"/tasks/{task_id}").get_data(as_text=True))
    assert 'value="Иванов П. А."' in block(page, "minor_name")  # draft > defaults
    assert 'value=""' in block(page, "parents_names")  # emptied in the draft: stays empty


def test_the_card_page_starts_from_what_the_case_knows_and_a_draft_comes_first(app):
    engine = app.extensions["kurator"]
    _case_id, iid = to_recognition(engine, engine.sop)
    at(engine, "2025-12-23 10:00")
    engine.tasks.complete(one(engine, iid, "sop_recognition")["id"], "chair", RECOGNITION)
    task_id = one(engine, iid, "sop_registration_card")["id"]
    client = signed_in(app, "curator1")
    page = unescape(client.get(f"/tasks/{task_id}").get_data(as_text=True))
    kinds = block(page, "sop_kind")
    assert re.findall(r'value="(\w+)" checked', kinds) == ["evasion", "evasion_addiction"]
    assert f'value="{SIGNAL["address"]}"' in block(page, "address_actual")
    assert "КДН: 23.12.2025, протокол № 45/3, признание находящимися" in block(page, "agency_registrations")
    post(client, f"/tasks/{task_id}/draft", {"sop_kind": ["violence"], "address_actual": "",
                                             "agency_registrations": "ПДН: 12.09.2025, протокол № 7"},
         f"/tasks/{task_id}")
    page = unescape(client.get(f"/tasks/{task_id}").get_data(as_text=True))  # draft > defaults
    assert re.findall(r'value="(\w+)" checked', block(page, "sop_kind")) == ["violence"]
    assert 'value=""' in block(page, "address_actual")
    registrations = block(page, "agency_registrations")
    assert "ПДН: 12.09.2025, протокол № 7" in registrations and "КДН: 23.12.2025" not in registrations


def test_the_escalation_page_passes_the_visit_to_a_guardianship_specialist(app):
    engine = app.extensions["kurator"]
    _, _, escalation, inspection = escalated(engine, engine.sop)
    client = signed_in(app, "secretary")
    page = unescape(client.get(f"/tasks/{escalation['id']}").get_data(as_text=True))
    assert "Отдел опеки и попечительства" in re.search(r'data-panel="guardianship".*?</section>', page, re.S).group(0)
    field = block(page, "reassign_to")
    assert "Передать выезд сотруднику органа опеки" in field
    assert re.findall(r'<option value="([^"]*)"', field) == ["", "guardian2", "guardian"]
    # a user of another agency: refused under the field, nothing changes
    response = post(client, f"/tasks/{escalation['id']}", {"escalation_measures": "Позвонили", "reassign_to": "police"},
                    f"/tasks/{escalation['id']}")
    assert response.status_code == 422
    assert re.search(r'<div class="field-error" id="f-reassign_to-error">выезд можно передать только сотруднику '
                     r'органа опеки', unescape(response.get_data(as_text=True)))
    assert engine.tasks.get(inspection["id"])["assignee"] is None
    assert engine.tasks.get(escalation["id"])["status"] == "open"
    response = post(client, f"/tasks/{escalation['id']}", {"escalation_measures": "Позвонили",
                                                           "reassign_to": "guardian2"}, f"/tasks/{escalation['id']}")
    assert response.status_code == 302
    assert engine.tasks.get(inspection["id"])["assignee"] == "guardian2"
    assert engine.tasks.get(escalation["id"])["status"] == "completed"


def test_a_valueskey_field_without_options_is_an_empty_select():
    schema = {"components": [{"type": "select", "key": "curator", "label": "Куратор", "valuesKey": "curator_options"},
                             {"type": "radio", "key": "agency", "label": "Орган", "valuesKey": "agency_options"}]}
    empty = build_widgets(schema["components"], initial_values(schema, {}, {}), {})
    assert [w["options"] for w in empty] == [[], []]
    widgets = build_widgets(schema["components"], initial_values(schema, {}, {}, {"curator": "c1"}), {},
                            {"curator_options": [{"value": "c1", "label": "Иванова"}],
                             "agency_options": [{"value": "3", "label": "ОМВД"}]})
    assert [w["options"] for w in widgets] == [[("c1", "Иванова")], [("3", "ОМВД")]]
    assert widgets[0]["value"] == "c1"


def test_the_modeler_preview_draws_a_valueskey_select_empty(app):
    client = signed_in(app, "method")
    form = {"components": [{"type": "select", "key": "curator", "label": "Куратор", "valuesKey": "curator_options"}]}
    preview = post_json(client, "/modeler/forms/preview", {"schema": json.dumps(form)}, token_page="/modeler/forms")
    body = preview.get_json()
    assert preview.status_code == 200 and body["problems"] == [] and body["fields"] == ["curator"]
    assert re.findall(r"<option[^>]*>", body["html"]) == ['<option value="">']
