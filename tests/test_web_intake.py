"""«Новое сообщение»: registering a signal from the web form, errors per field, the duplicate guard."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import func, select

from sop import repeated_signals
from sop.models import Case, IntakeEntry

from .test_sop_service import SIGNAL
from .test_web_tasks import build_app, csrf, signed_in

FORM = {"received_on": "2025-10-29", "source": "Классный руководитель МБОУ СОШ № 5",
        "problem": "Ребенок пропускает занятия, мать злоупотребляет алкоголем",
        "address": "г. Йошкар-Ола, ул. Пушкина, д. 1, кв. 2", "address_actual": "",
        "children.0.last_name": "Иванов", "children.0.first_name": "Петр", "children.0.patronymic": "Андреевич",
        "children.0.birth_date": "2012-03-12", "children.0.occupation": "СОШ № 5, 7 «Б»",
        "children.1.last_name": "", "children.1.first_name": "", "children.1.birth_date": "",
        "parents.0.last_name": "Иванова", "parents.0.first_name": "Анна", "parents.0.patronymic": "Сергеевна",
        "parents.0.birth_date": "1988-05-02", "parents.0.occupation": "не работает"}


@pytest.fixture
def app(engine):
    return build_app(engine)


def submit(client, data):
    return client.post("/intake/new", data={**data, "csrf_token": csrf(client, "/intake/new")})


def cases(engine) -> int:
    with engine.db.session() as session:
        return session.scalar(select(func.count()).select_from(Case))


def hidden_fields(page: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def flashes(client) -> list[str]:
    with client.session_transaction() as session:
        return [message for _category, message in session.get("_flashes", [])]


def landing(flask_app, case_id) -> str:
    if "cases.show" in flask_app.view_functions:
        with flask_app.test_request_context():
            from flask import url_for

            return url_for("cases.show", case_id=case_id)
    return "/inbox"


def test_the_form_has_the_journal_fields_and_two_rows_of_children_and_parents(app):
    page = signed_in(app, "school").get("/intake/new").get_data(as_text=True)
    assert "<h1>Новое сообщение</h1>" in page
    assert 'name="received_on" value="2025-10-30"' in page  # today in the user's time zone
    for name in ("source", "problem", "address", "address_actual", "threat_to_life"):
        assert f'name="{name}"' in page
    assert "Угроза жизни или здоровью ребенка" in page
    for group in ("children", "parents"):
        for index in (0, 1):
            for field in ("last_name", "first_name", "patronymic", "birth_date", "occupation"):
                assert f'name="{group}.{index}.{field}"' in page
        assert f'name="{group}.2.last_name"' not in page
    assert re.search(r'type="date" name="children.0.birth_date"', page)
    assert 'name="csrf_token"' in page and "forms.js" in page


def test_another_row_without_javascript(app):
    client = signed_in(app, "school")
    response = submit(client, {**FORM, "add_row": "children"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r'name="children.1.last_name" id="[^"]+" value=""', page)
    assert 'name="children.2.last_name"' not in page
    response = submit(client, {**FORM, "children.1.last_name": "Иванова", "add_row": "children"})
    page = response.get_data(as_text=True)
    assert re.search(r'name="children.1.last_name" id="[^"]+" value="Иванова"', page)
    assert 'name="children.2.last_name"' in page
    assert 'value="Классный руководитель МБОУ СОШ № 5"' in page
    assert cases(app.extensions["kurator"]) == 0


def test_a_signal_opens_a_case(app):
    engine = app.extensions["kurator"]
    client = signed_in(app, "school")
    response = submit(client, {**FORM, "children.1.last_name": "Иванова", "children.1.first_name": "Мария",
                               "children.1.birth_date": "2015-01-20", "threat_to_life": "true"})
    assert response.status_code == 302
    event = engine.audit.events()[0]
    assert event["action"] == "intake_registered" and event["actor"] == "school" and event["object_type"] == "case"
    case = engine.sop.case(int(event["object_id"]))
    assert response.headers["Location"].endswith(landing(app, case["id"]))
    assert flashes(client) == ["Сообщение зарегистрировано: дело № 1/2025."]
    assert case["number"] == "1/2025" and case["status"] == "check" and case["received_on"] == "2025-10-29"
    assert [c["name"] for c in case["family"]["children"]] == ["Иванов Петр Андреевич", "Иванова Мария"]
    assert [p["name"] for p in case["family"]["parents"]] == ["Иванова Анна Сергеевна"]
    assert case["family"]["address"] == FORM["address"]
    processes = {i["process_key"] for i in engine.runtime.instances()}
    assert processes == {"sop_case", "emergency_child_safety"}  # the threat to life started the emergency path


def test_errors_are_shown_per_field_and_nothing_is_saved(app):
    engine = app.extensions["kurator"]
    client = signed_in(app, "school")
    data = {**FORM, "source": "", "address": "д", "children.0.last_name": "", "children.0.first_name": "",
            "children.0.patronymic": "", "children.0.birth_date": "", "children.0.occupation": "",
            "children.1.last_name": "Петров", "children.1.first_name": "Илья", "children.1.birth_date": "2031-01-01",
            "parents.0.first_name": ""}
    response = submit(client, data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    # the empty first row was dropped: Петров is child 1 now, and the errors are under his inputs
    assert re.search(r'name="children.0.last_name" id="f-children.0.last_name" value="Петров"', page)
    assert re.search(r'id="f-children.0.birth_date-error">дата рождения не может быть в будущем<', page)
    assert re.search(r'id="f-parents.0.first_name-error">укажите имя<', page)
    assert re.search(r'id="f-source-error">укажите, от кого поступила информация<', page)
    assert re.search(r'id="f-address-error">от 3 до 500 символов<', page)  # marshmallow's message, in Russian
    assert "Ребенок 1, дата рождения" in page and "Родитель 1, имя" in page
    assert 'value="Иванова"' in page and 'value="2025-10-29"' in page and ">Ребенок пропускает занятия" in page
    assert cases(engine) == 0
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(IntakeEntry)) == 0
    # no child at all
    empty = {k: ("" if k.startswith("children.") else v) for k, v in FORM.items()}
    page = submit(client, empty).get_data(as_text=True)
    assert "укажите хотя бы одного ребенка" in page


@pytest.mark.parametrize("choice", ["attach", "new_family"])
def test_a_known_family_is_shown_and_the_user_decides(app, choice):
    engine = app.extensions["kurator"]
    first = engine.sop.register_intake("school", SIGNAL)
    client = signed_in(app, "school")  # the school reported the family: it takes part in the case
    response = submit(client, {**FORM, "source": "Участковый уполномоченный", "address": "другой адрес, д. 5"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Семья или ребенок уже известны комиссии" in page and "Семья Иванова" in page
    assert f'name="attach_to_case" value="{first.case_id}">Присоединить к делу № 1/2025</button>' in page
    assert 'name="new_family" value="1">Это другая семья</button>' in page
    carried = hidden_fields(page)
    assert carried["source"] == "Участковый уполномоченный" and carried["children.0.last_name"] == "Иванов"
    assert carried["parents.0.occupation"] == "не работает" and carried["address"] == "другой адрес, д. 5"
    assert cases(engine) == 1
    if choice == "attach":
        response = client.post("/intake/new", data={**carried, "attach_to_case": str(first.case_id)})
        assert response.status_code == 302
        assert flashes(client) == ["Сообщение зарегистрировано: дело № 1/2025 (присоединено к существующему делу)."]
        assert cases(engine) == 1
        with engine.db.session() as session:
            entries = session.scalars(select(IntakeEntry).where(IntakeEntry.case_id == first.case_id)).all()
            assert {e.source for e in entries} == {SIGNAL["source"], "Участковый уполномоченный"}
    else:
        response = client.post("/intake/new", data={**carried, "new_family": "1"})
        assert response.status_code == 302
        assert flashes(client) == ["Сообщение зарегистрировано: дело № 2/2025."]
        assert cases(engine) == 2
    assert engine.audit.events()[0]["action"] == "intake_registered"


def test_attaching_only_to_a_case_among_the_duplicates(app):
    engine = app.extensions["kurator"]
    engine.sop.register_intake("school", SIGNAL)
    other = engine.sop.register_intake("school", dict(
        SIGNAL, address="ул. Строителей, д. 3", children=[{"last_name": "Сидоров", "first_name": "Кирилл",
                                                           "birth_date": "2014-07-01"}]))
    client = signed_in(app, "police")
    response = submit(client, {**FORM, "attach_to_case": str(other.case_id)})
    assert response.status_code == 409 and "Выберите одно из дел" in response.get_data(as_text=True)
    assert "Передать сообщение в комиссию к этому делу" in response.get_data(as_text=True)
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(IntakeEntry)) == 4  # two signals, two journals


def test_only_agency_and_commission_staff_register_signals(app):
    assert signed_in(app, "chair").get("/intake/new").status_code == 403
    assert signed_in(app, "chair").post("/intake/new", data={}).status_code == 400  # CSRF first
    for username in ("secretary", "police", "curator1", "specialist"):
        assert signed_in(app, username).get("/intake/new").status_code == 200
    response = app.test_client().get("/intake/new")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_registering_needs_the_csrf_token(app):
    client = signed_in(app, "school")
    response = client.post("/intake/new", data=FORM)
    assert response.status_code == 400 and "Форма устарела" in response.get_data(as_text=True)
    assert cases(app.extensions["kurator"]) == 0


def test_an_agency_outside_the_case_passes_its_signal_to_the_commission_without_seeing_the_case(app):
    """The police report a family the school reported: they are told the commission knows it, not which case it
    is; attaching passes the signal to the commission without opening the case to them, and the secretary sees it
    in her inbox until she records what was done with it."""
    engine = app.extensions["kurator"]
    first = engine.sop.register_intake("school", SIGNAL)
    client = signed_in(app, "police")
    response = submit(client, {**FORM, "source": "Участковый уполномоченный", "address": "другой адрес, д. 5"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "Семья или ребенок уже известны комиссии" in page
    assert "1/2025" not in page and "Семья Иванова" not in page and "на проверке" not in page.lower()
    assert f'name="attach_to_case" value="{first.case_id}">Передать сообщение в комиссию к этому делу</button>' \
        in page
    response = client.post("/intake/new", data={**hidden_fields(page), "attach_to_case": str(first.case_id)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/inbox")
    assert flashes(client) == ["Сообщение зарегистрировано и передано в комиссию: оно присоединено к делу, "
                               "которое ведет комиссия."]
    assert client.get(f"/cases/{first.case_id}").status_code == 404

    secretary = signed_in(app, "secretary")
    inbox = secretary.get("/inbox").get_data(as_text=True)
    assert "Повторные сообщения по делам" in inbox and "Участковый уполномоченный" in inbox
    [waiting] = [signal["id"] for signal in repeated_signals.pending(engine, "secretary")]
    token = csrf(secretary, "/inbox")
    response = secretary.post(f"/signals/{waiting}/consider", data={"result": " ", "csrf_token": token})
    assert response.status_code == 302 and "Повторные сообщения по делам" in secretary.get("/inbox").get_data(
        as_text=True)
    response = secretary.post(f"/signals/{waiting}/consider", data={"result": "Приобщено, передано куратору",
                                                                    "csrf_token": token})
    assert response.status_code == 302
    assert "Повторные сообщения по делам" not in secretary.get("/inbox").get_data(as_text=True)
    with engine.db.session() as session:
        assert session.get(IntakeEntry, waiting).result == "Приобщено, передано куратору"
    police = signed_in(app, "police")
    assert police.post(f"/signals/{waiting}/consider",
                       data={"result": "x", "csrf_token": csrf(police, "/inbox")}).status_code == 403
