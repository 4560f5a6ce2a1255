"""The meetings API (/api/v1/meetings, /api/v1/commission): the next meeting with the agenda built from the cases,
attendance and quorum, decisions completing the cases' tasks, postponement, closing with the minutes; access by
municipality and role, items of another meeting, bad input answered with the field and nothing saved."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.models import HumanTask, Municipality
from sop.meetings.models import Meeting, MeetingItem
from sop.models import Resolution

from .test_api import actions, build_app, engine_of, token_headers
from .test_sop_diagrams import CHECK, at
from .test_sop_service import SIGNAL, pdf_text

MEMBERS = [("Кузнецов Андрей Петрович", "chair", "chair"), ("Смирнова Ольга Викторовна", "secretary", "secretary"),
           ("Орлов Дмитрий Сергеевич", "member", None), ("Попова Наталья Ивановна", "member", None),
           ("Лебедева Ирина Владимировна", "member", "school"), ("Соколов Игорь Михайлович", "member", None)]
RECOGNITION = {"decision": "recognize", "curator": "curator1", "working_group": ["police", "education"],
               "ipr_term_months": 6, "consent_obtained": True, "recognition_notes": "Систематические пропуски"}


@pytest.fixture
def app(engine):
    """The API test app, plus a curator, a regional secretary and the commission of Йошкар-Ола: six members (the
    chair, the secretary and the school's specialist have accounts), meeting on the 1st and 3rd Tuesday at 10:00."""
    app = build_app(engine)
    identity = engine.identity
    identity.add_agency("КЦСОН", "Йошкар-Ола", kind="social_protection")
    identity.add_user("curator1", ["curator"], agency="КЦСОН")
    from argon2 import PasswordHasher

    from .test_api import PASSWORD
    identity.add_user("regional", ["regional_secretary"], password_hash=PasswordHasher().hash(PASSWORD))
    meetings = engine.sop.meetings
    mid = yola(engine)
    meetings.set_up(mid, "Комиссия по делам несовершеннолетних и защите их прав городского округа «Город "
                         "Йошкар-Ола»", "г. Йошкар-Ола, Ленинский пр., 27", 1, [1, 3], "10:00")
    app.config["MEMBER_IDS"] = [meetings.add_member(mid, name, position, username=user)
                                for name, position, user in MEMBERS]
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def yola(engine) -> int:
    with engine.db.session() as session:
        return session.scalar(select(Municipality.id).where(Municipality.name == "Йошкар-Ола"))


def as_(client, username: str) -> dict[str, str]:
    """A fresh token (the clock moves in these tests, tokens would expire)."""
    return token_headers(client, username)


def new_case(client, last_name: str) -> dict:
    """A signal from the school whose check the secretary completes: the case waits for recognition."""
    signal = {**SIGNAL, "new_family": True,
              "children": [{**SIGNAL["children"][0], "last_name": last_name}],
              "parents": [{**SIGNAL["parents"][0], "last_name": last_name + "а"}],
              "address": f"г. Йошкар-Ола, ул. {last_name}а, д. 1"}
    intake = client.post("/api/v1/intake", json=signal, headers=as_(client, "school"))
    assert intake.status_code == 201, intake.get_json()
    engine = engine_of(client.application)
    instance_id = intake.get_json()["instance_ids"][0]
    check = next(t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == "sop_check")
    done = client.post(f"/api/v1/tasks/{check['id']}/complete", json={"data": CHECK},
                       headers=as_(client, "secretary"))
    assert done.status_code == 200, done.get_json()
    task = next(t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == "sop_recognition")
    return {"case_id": intake.get_json()["case_id"], "task_id": task["id"]}


def counts(app) -> tuple[int, int, int]:
    with engine_of(app).db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (Meeting, MeetingItem, Resolution))


def next_meeting(client) -> dict:
    response = client.post("/api/v1/meetings", json={"next": True}, headers=as_(client, "secretary"))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def test_a_meeting_from_the_agenda_to_the_minutes(app, client):
    engine = engine_of(app)
    cases = [new_case(client, name) for name in ("Петров", "Сидоров", "Кравцов")]
    secretary = as_(client, "secretary")

    refused = client.post("/api/v1/meetings", json={"next": True}, headers=as_(client, "chair"))
    assert refused.status_code == 403 and counts(app) == (0, 0, 0)  # only the secretary plans meetings

    created = client.post("/api/v1/meetings", json={"next": True}, headers=secretary)
    assert created.status_code == 201, created.get_json()
    meeting = created.get_json()
    path = f"/api/v1/meetings/{meeting['id']}"
    assert meeting["held_on"] == "2025-11-05" and meeting["status"] == "planned"  # Tue 4.11 is a holiday
    assert meeting["starts_at"] == "10:00" and meeting["commission"]["schedule_time"] == "10:00"
    assert [i["case_id"] for i in meeting["items"]] == [c["case_id"] for c in cases]
    assert {i["form_key"] for i in meeting["items"]} == {"sop_recognition"}
    assert [i["task_id"] for i in meeting["items"]] == [c["task_id"] for c in cases]
    again = client.post("/api/v1/meetings", json={"next": True}, headers=secretary)
    assert again.status_code == 200 and again.get_json()["id"] == meeting["id"]  # the planned one, not a new one

    listed = client.get("/api/v1/meetings?year=2025", headers=as_(client, "chair"))
    assert listed.status_code == 200 and [m["id"] for m in listed.get_json()] == [meeting["id"]]
    assert listed.get_json()[0]["items_count"] == 3
    assert client.get("/api/v1/meetings?year=2024", headers=secretary).get_json() == []
    shown = client.get(path, headers=as_(client, "chair"))
    assert shown.status_code == 200 and shown.get_json()["quorum"] == {"members": 6, "present": 0, "needed": 3,
                                                                       "reached": False}
    assert "meeting_viewed" in actions(app, "meeting", meeting["id"])
    agenda = client.get(f"{path}/agenda.pdf", headers=as_(client, "chair"))
    assert agenda.status_code == 200 and agenda.mimetype == "application/pdf"
    assert "Петров" in pdf_text(agenda.data) and "Кравцов" in pdf_text(agenda.data)

    free = client.post(f"{path}/items", json={"title": "Об административных материалах", "speaker": "Секретарь"},
                       headers=secretary)
    assert free.status_code == 201, free.get_json()
    assert free.get_json()["kind"] == "free" and free.get_json()["position"] == 4

    early = client.post(f"{path}/attendance", json={"present_member_ids": app.config["MEMBER_IDS"]},
                        headers=secretary)
    assert early.status_code == 409  # 30.10: the meeting is on 5.11

    at(engine, "2025-11-05 10:00:00")
    secretary = as_(client, "secretary")
    members = app.config["MEMBER_IDS"]
    few = client.post(f"{path}/attendance", json={"present_member_ids": members[:2]}, headers=secretary)
    assert few.status_code == 200 and few.get_json()["quorum"]["reached"] is False
    assert few.get_json()["status"] == "open" and few.get_json()["number"] == 1
    items = [i["id"] for i in few.get_json()["items"]]

    # no quorum: refused, nothing saved
    no_quorum = client.post(f"{path}/items/{items[0]}/decision", json={"data": RECOGNITION, "votes_for": 2},
                            headers=secretary)
    assert no_quorum.status_code == 422 and "quorum" in no_quorum.get_json()["errors"]
    with engine.db.session() as session:
        assert session.get(HumanTask, cases[0]["task_id"]).status == "open"
        assert session.scalar(select(func.count()).select_from(Resolution)) == 0
        assert session.get(MeetingItem, items[0]).status == "planned"

    enough = client.post(f"{path}/attendance", headers=secretary, json={
        "present_member_ids": members[:4], "invited": [{"name": "Иванова А. С.", "position": "мать"}]})
    assert enough.status_code == 200 and enough.get_json()["quorum"]["reached"] is True
    assert enough.get_json()["invited"] == [{"name": "Иванова А. С.", "position": "мать"}]

    decided = client.post(f"{path}/items/{items[0]}/decision", headers=secretary, json={
        "data": RECOGNITION, "votes_for": 3, "votes_abstained": 1, "family_appeared": True})
    assert decided.status_code == 200, decided.get_json()
    item = decided.get_json()
    assert item["status"] == "decided" and item["resolution_number"] == "1/1" and item["resolution_id"]
    assert item["votes_for"] == 3 and item["votes_abstained"] == 1 and item["family_appeared"] is True
    task = client.get(f"/api/v1/tasks/{cases[0]['task_id']}", headers=secretary).get_json()
    assert task["status"] == "completed" and task["completed_by"] == "secretary"
    case = client.get(f"/api/v1/cases/{cases[0]['case_id']}", headers=secretary).get_json()
    assert case["status"] == "recognized" and case["curator"] == "curator1"
    with engine.db.session() as session:
        resolution = session.get(Resolution, item["resolution_id"])
        assert resolution.number == "1/1" and resolution.meeting_id == meeting["id"]
        assert resolution.data["votes_for"] == 3 and resolution.data["meeting_date"] == "2025-11-05"

    postponed = client.post(f"{path}/items/{items[1]}/postpone", json={"reason": "Семья не уведомлена"},
                            headers=secretary)
    assert postponed.status_code == 200 and postponed.get_json()["status"] == "postponed"
    free_decided = client.post(f"{path}/items/{items[3]}/decision", headers=secretary,
                               json={"decision_text": "Направить материалы в ОМВД", "votes_for": 4})
    assert free_decided.status_code == 200 and free_decided.get_json()["resolution_number"] == "1/4"

    early_close = client.post(f"{path}/close", headers=secretary)
    assert early_close.status_code == 409 and "3" in early_close.get_json()["message"]
    assert client.get(f"{path}/minutes.pdf", headers=secretary).status_code == 404  # not closed yet
    rejected = client.post(f"{path}/items/{items[2]}/decision", headers=secretary,
                           json={"data": {**RECOGNITION, "decision": "reject"}, "votes_for": 4})
    assert rejected.status_code == 200, rejected.get_json()
    closed = client.post(f"{path}/close", headers=secretary)
    assert closed.status_code == 200, closed.get_json()
    assert closed.get_json()["status"] == "closed" and closed.get_json()["minutes_document_id"]

    minutes = client.get(f"{path}/minutes.pdf", headers=as_(client, "chair"))
    assert minutes.status_code == 200 and minutes.mimetype == "application/pdf"
    assert "attachment" in minutes.headers["Content-Disposition"]
    text = pdf_text(minutes.data)
    for expected in ("ПРОТОКОЛ № 1", "Кузнецов Андрей Петрович", "Иванова А. С.", "«за» — 3",
                     "Семья не уведомлена", "Направить материалы в ОМВД", "Постановление № 1/1"):
        assert expected in text, expected
    done = actions(app, "meeting", meeting["id"])
    for action in ("meeting_planned", "meeting_viewed", "meeting_attendance", "meeting_item_decided",
                   "meeting_item_postponed", "meeting_closed", "meeting_minutes_read"):
        assert action in done, action
    with engine.db.session() as session:
        assert session.get(HumanTask, cases[1]["task_id"]).status == "open"  # postponed: waits for the next


def test_the_commission_with_its_members_and_schedule(app, client):
    response = client.get("/api/v1/commission", headers=as_(client, "chair"))
    assert response.status_code == 200, response.get_json()
    commission = response.get_json()
    assert commission["full_name"].startswith("Комиссия по делам несовершеннолетних")
    assert commission["schedule_weekday"] == 1 and commission["schedule_weeks"] == [1, 3]
    assert "вторник" in commission["schedule"]
    assert [m["full_name"] for m in commission["members"]] == [name for name, _, _ in MEMBERS]
    assert commission["members"][0]["position"] == "chair"
    assert "commission_viewed" in actions(app, "commission", commission["id"])
    # a commission not set up yet, and a municipality that is not one's own
    assert client.get("/api/v1/commission", headers=as_(client, "vsecretary")).status_code == 404
    foreign = client.get(f"/api/v1/commission?municipality_id={yola(engine_of(app))}",
                         headers=as_(client, "vsecretary"))
    assert foreign.status_code == 404


def test_access_follows_the_municipality_and_the_role(app, client):
    engine = engine_of(app)
    new_case(client, "Петров")
    meeting = next_meeting(client)
    path = f"/api/v1/meetings/{meeting['id']}"
    item_id = meeting["items"][0]["id"]
    mid = yola(engine)
    before = counts(app)

    # another municipality's secretary: the meeting does not exist for them
    other = as_(client, "vsecretary")
    assert client.get(path, headers=other).status_code == 404
    assert client.get(f"{path}/agenda.pdf", headers=other).status_code == 404
    assert client.post(f"{path}/items", json={"title": "Вопрос"}, headers=other).status_code == 404
    assert client.post(f"{path}/items/{item_id}/postpone", json={"reason": "x"}, headers=other).status_code == 404
    assert client.get(f"/api/v1/meetings?municipality_id={mid}", headers=other).status_code == 404
    assert client.get("/api/v1/meetings", headers=other).get_json() == []  # their own: none yet

    # the chair reads but does not write
    chair = as_(client, "chair")
    assert client.get(path, headers=chair).status_code == 200
    for url, body in ((f"{path}/items", {"title": "Вопрос"}), (f"{path}/attendance", {"present_member_ids": []}),
                      (f"{path}/items/{item_id}/postpone", {"reason": "x"}), (f"{path}/close", None),
                      (f"{path}/items/{item_id}/decision", {"decision_text": "x", "votes_for": 1}),
                      ("/api/v1/meetings", {"held_on": "2025-11-10"})):
        response = client.post(url, json=body, headers=chair)
        assert response.status_code == 403, (url, response.get_json())

    # an agency specialist who is not a member sees nothing; a member with an account reads
    police = as_(client, "police")
    assert client.get(path, headers=police).status_code == 404
    assert client.get("/api/v1/meetings", headers=police).status_code == 403
    assert client.get("/api/v1/commission", headers=police).status_code == 403
    assert client.get(f"{path}/agenda.pdf", headers=police).status_code == 404
    assert client.get(path, headers=as_(client, "school")).status_code == 200

    # the regional secretary reads any municipality's meetings, named by id
    regional = as_(client, "regional")
    listed = client.get(f"/api/v1/meetings?municipality_id={mid}", headers=regional)
    assert listed.status_code == 200 and [m["id"] for m in listed.get_json()] == [meeting["id"]]
    missing = client.get("/api/v1/meetings", headers=regional)
    assert missing.status_code == 422 and "municipality_id" in missing.get_json()["errors"]
    assert client.get(path, headers=regional).status_code == 200
    assert client.post(f"{path}/items", json={"title": "Вопрос"}, headers=regional).status_code == 403

    # an item must belong to the meeting in the path
    secretary = as_(client, "secretary")
    extra = client.post("/api/v1/meetings", json={"held_on": "2025-11-10", "starts_at": "15:00"}, headers=secretary)
    assert extra.status_code == 201 and extra.get_json()["kind"] == "extraordinary"
    other_path = f"/api/v1/meetings/{extra.get_json()['id']}"
    wrong = client.post(f"{other_path}/items/{item_id}/postpone", json={"reason": "x"}, headers=secretary)
    assert wrong.status_code == 404
    assert client.post(f"{path}/items/999999/postpone", json={"reason": "x"}, headers=secretary).status_code == 404
    assert client.get("/api/v1/meetings/999999", headers=secretary).status_code == 404
    with engine.db.session() as session:
        assert session.get(MeetingItem, item_id).status == "planned"
    assert counts(app) == (before[0] + 1, before[1], before[2])  # only the extraordinary meeting was added

    for url in ("/api/v1/meetings", path, f"{path}/minutes.pdf", "/api/v1/commission"):
        assert client.get(url).status_code == 401


def test_bad_input_names_the_field_and_changes_nothing(app, client):
    engine = engine_of(app)
    new_case(client, "Петров")
    meeting = next_meeting(client)
    path = f"/api/v1/meetings/{meeting['id']}"
    item_id = meeting["items"][0]["id"]
    secretary = as_(client, "secretary")
    before = counts(app)

    for body, field in (({}, "held_on"), ({"held_on": "2025-13-01"}, "held_on"),
                        ({"held_on": "2025-10-01"}, "held_on"),  # in the past
                        ({"held_on": "2025-11-05"}, "held_on"),  # the planned meeting's day
                        ({"next": True, "held_on": "2025-11-10"}, "held_on"),
                        ({"held_on": "2025-11-10", "starts_at": "25:00"}, "starts_at"),
                        ({"held_on": "2025-11-10", "kind": "secret"}, "kind"),
                        ({"held_on": "2025-11-10", "place": "\u0000"}, "place"),
                        ({"next": "maybe"}, "next")):
        response = client.post("/api/v1/meetings", json=body, headers=secretary)
        assert response.status_code == 422, (body, response.get_json())
        assert field in response.get_json()["errors"], (body, response.get_json())
    assert client.get("/api/v1/meetings?year=abc", headers=secretary).status_code == 422
    assert client.post("/api/v1/meetings", data="{not json", content_type="application/json",
                       headers=secretary).status_code == 400

    for body, field in (({"title": ""}, "title"), ({}, "title"), ({"title": "x" * 501}, "title")):
        response = client.post(f"{path}/items", json=body, headers=secretary)
        assert response.status_code == 422 and field in response.get_json()["errors"], body

    at(engine, "2025-11-05 10:00:00")
    secretary = as_(client, "secretary")
    for body, field in (({"present_member_ids": ["a"]}, "present_member_ids"), ({}, "present_member_ids"),
                        ({"present_member_ids": [999999]}, "present_member_ids"),
                        ({"present_member_ids": [], "invited": [{"position": "мать"}]}, "invited")):
        response = client.post(f"{path}/attendance", json=body, headers=secretary)
        assert response.status_code == 422, (body, response.get_json())
        assert field in response.get_json()["errors"], (body, response.get_json())
    assert client.get(path, headers=secretary).get_json()["status"] == "planned"  # not opened

    assert client.post(f"{path}/attendance", json={"present_member_ids": app.config["MEMBER_IDS"]},
                       headers=secretary).status_code == 200
    decision = f"{path}/items/{item_id}/decision"
    for body, field in (({"data": RECOGNITION, "votes_for": -1}, "votes_for"),
                        ({"data": RECOGNITION, "votes_for": "many"}, "votes_for"),
                        ({"data": {**RECOGNITION, "meeting_date": "2025-11-05"}, "votes_for": 6}, "data"),
                        ({"data": RECOGNITION, "votes_for": 7}, "votes_for"),  # more votes than present
                        ({"data": {**RECOGNITION, "curator": "nobody"}, "votes_for": 6}, "curator"),
                        ({"data": "recognize", "votes_for": 6}, "data")):
        response = client.post(decision, json=body, headers=secretary)
        assert response.status_code == 422, (body, response.get_json())
        assert field in response.get_json()["errors"], (body, response.get_json())
    postpone = client.post(f"{path}/items/{item_id}/postpone", json={"reason": ""}, headers=secretary)
    assert postpone.status_code == 422 and "reason" in postpone.get_json()["errors"]
    with engine.db.session() as session:
        assert session.get(MeetingItem, item_id).status == "planned"
        assert session.scalar(select(func.count()).select_from(Resolution)) == 0
    assert counts(app) == before

    # a decided question cannot be decided or postponed again
    assert client.post(decision, json={"data": RECOGNITION, "votes_for": 6}, headers=secretary).status_code == 200
    assert client.post(decision, json={"data": RECOGNITION, "votes_for": 6}, headers=secretary).status_code == 409
    assert client.post(f"{path}/items/{item_id}/postpone", json={"reason": "x"},
                       headers=secretary).status_code == 409
