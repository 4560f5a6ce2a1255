"""The meeting pages: the list and calendar, the meeting page (agenda, attendance, decisions, minutes), the chair's
read-only view, the commission page, the notices in the inbox and the meeting beside each resolution in the case
file; access, CSRF, and bad input shown under its field with nothing saved."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from engine.models import AuditEvent, HumanTask, Municipality
from sop.meetings.models import CommissionMember, Meeting, MeetingItem
from sop.models import Document, Resolution

from .test_sop_diagrams import CHECK, at
from .test_sop_service import SIGNAL, pdf_text
from .test_web_tasks import build_app, csrf, post, signed_in

COMMISSION = "Комиссия по делам несовершеннолетних и защите их прав городского округа «Город Йошкар-Ола»"
MEMBERS = [("Кузнецов Андрей Петрович", "chair", "chair"), ("Смирнова Ольга Викторовна", "secretary", "secretary"),
           ("Орлов Дмитрий Сергеевич", "member", "police"), ("Попова Наталья Ивановна", "member", "guardian")]
DECISION = {"decision": "recognize", "curator": "curator1", "ipr_term_months": "6",
            "working_group": ["police", "education"], "consent_obtained": "true"}


@pytest.fixture
def app(engine):
    return build_app(engine)


def municipality_id(engine) -> int:
    with engine.db.session() as session:
        return session.scalar(select(Municipality.id).where(Municipality.name == "Йошкар-Ола"))


def set_up(engine) -> list[int]:
    """The 1st and 3rd Tuesday at 10:00 (4.11.2025 is a holiday: the first meeting is on 5.11)."""
    mid = municipality_id(engine)
    engine.sop.meetings.set_up(mid, COMMISSION, "г. Йошкар-Ола, Ленинский пр., 27, каб. 301", 1, [1, 3], "10:00")
    return [engine.sop.meetings.add_member(mid, name, position, username=user) for name, position, user in MEMBERS]


def new_case(engine, last_name: str) -> dict:
    """A school's signal whose check the secretary confirms: the case waits for the commission's recognition."""
    signal = {**SIGNAL, "children": [{**SIGNAL["children"][0], "last_name": last_name}],
              "parents": [{**SIGNAL["parents"][0], "last_name": last_name + "а"}],
              "address": f"г. Йошкар-Ола, ул. {last_name}а, д. 1"}
    result = engine.sop.register_intake("school", signal)
    check = next(t for t in engine.tasks.query(instance_id=result.instance_ids[0]) if t["element_id"] == "sop_check")
    engine.tasks.claim(check["id"], "secretary")
    engine.tasks.complete(check["id"], "secretary", CHECK)
    task = next(t for t in engine.tasks.query(instance_id=result.instance_ids[0])
                if t["element_id"] == "sop_recognition")
    return {"case_id": result.case_id, "task_id": task["id"]}


def page(response) -> str:
    return unescape(response.get_data(as_text=True))


def item_block(html: str, item_id: int) -> str:
    match = re.search(rf'<li class="card agenda-item[^"]*" id="item-{item_id}".*?</li>\s*(?=<li class="card|</ol>)',
                      html, re.S)
    assert match, item_id
    return match.group(0)


def items(engine, meeting_id: int) -> list[dict]:
    return engine.sop.meetings.get(meeting_id, "secretary")["items"]


def open_meeting(app) -> tuple[int, list[dict], object]:
    """Three cases on the agenda of the next meeting, opened by the secretary through the pages."""
    engine = app.extensions["kurator"]
    set_up(engine)
    cases = [new_case(engine, name) for name in ("Петров", "Сидоров", "Кравцов")]
    client = signed_in(app, "secretary")
    response = post(client, "/meetings/next", {}, "/meetings")
    assert response.status_code == 302
    meeting_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    assert client.get(f"/meetings/{meeting_id}").status_code == 200  # opening it builds the agenda
    return meeting_id, cases, client


def test_the_secretary_prepares_holds_and_closes_a_meeting_through_the_pages(app):
    engine = app.extensions["kurator"]
    meeting_id, cases, client = open_meeting(app)
    html = page(client.get(f"/meetings/{meeting_id}"))
    assert "Заседание комиссии от 05.11.2025" in html and "запланировано" in html
    agenda = items(engine, meeting_id)
    assert [i["case_id"] for i in agenda] == [c["case_id"] for c in cases]  # built when the page was opened
    for case in cases:
        assert f'href="/cases/{case["case_id"]}"' in html
    assert "Печать повестки" in html and "Уведомить органы" in html and "Обновить повестку" in html
    # each case's question carries what the commission decides on: its task's panels (here the check's conclusion)
    block = item_block(html, agenda[0]["id"])
    assert '<details class="item-materials">' in block and "Материалы к вопросу" in block
    assert "Заключение по результатам проверки (приложение 2)" in block

    # a free item, moved up; a free item without a title is refused under its field
    response = post(client, f"/meetings/{meeting_id}/items", {"title": " ", "speaker": ""}, f"/meetings/{meeting_id}")
    assert response.status_code == 422
    assert '<div class="field-error" id="f-title-error">сформулируйте вопрос повестки</div>' in page(response)
    assert len(items(engine, meeting_id)) == 3
    post(client, f"/meetings/{meeting_id}/items", {"title": "О профилактике безнадзорности", "speaker": "Секретарь"},
         f"/meetings/{meeting_id}")
    free = items(engine, meeting_id)[-1]
    assert free["kind"] == "free" and free["position"] == 4
    post(client, f"/meetings/{meeting_id}/items/{free['id']}/move", {"direction": "up"}, f"/meetings/{meeting_id}")
    assert [i["kind"] for i in items(engine, meeting_id)] == ["decision", "decision", "free", "decision"]

    # the agencies of the cases are told; the school sees it in its inbox
    post(client, f"/meetings/{meeting_id}/notify", {}, f"/meetings/{meeting_id}")
    inbox = page(signed_in(app, "school").get("/inbox"))
    assert "Ваши вопросы на заседаниях комиссии" in inbox
    # the meeting once, then each of the agency's cases with its question as the agenda has it
    meeting = engine.sop.meetings.get(meeting_id, "secretary")
    when = f"Заседание 05.11.2025 в {meeting['starts_at']} · {meeting['place']}"
    notices = re.search(r'<section class="card meeting-notices".*?</section>', inbox, re.S).group(0)
    assert notices.count('<p class="meeting-notices-when">') == 1 and when in notices
    told = [i for i in items(engine, meeting_id) if i["kind"] == "decision"]
    for item in told:
        assert f'<li>{item["title"]} · <a href="/cases/{item["case_id"]}">дело</a></li>' in notices
    # not the commission's own staff, who prepare the meeting: its agency is no working-group member to be told
    assert "Ваши вопросы на заседаниях комиссии" not in page(signed_in(app, "secretary").get("/inbox"))

    # attendance before the day is refused with the reason, not a 500
    members = engine.sop.meetings.commission(municipality_id(engine))["members"]
    ids = [m["id"] for m in members]
    response = post(client, f"/meetings/{meeting_id}/attendance", {"present": [str(i) for i in ids]},
                    f"/meetings/{meeting_id}")
    assert response.status_code == 409 and "присутствие отмечается в день заседания" in page(response)
    at(engine, "2025-11-05 10:00:00")
    response = post(client, f"/meetings/{meeting_id}/attendance",
                    {"present": [str(i) for i in ids[:3]], "invited": "Петрова А. С. — мать\nИнспектор ПДН"},
                    f"/meetings/{meeting_id}")
    assert response.status_code == 302
    meeting = engine.sop.meetings.get(meeting_id, "secretary")
    assert meeting["status"] == "open" and meeting["number"] == 1 and meeting["quorum"]["reached"]
    assert meeting["invited"] == [{"name": "Петрова А. С.", "position": "мать"},
                                  {"name": "Инспектор ПДН", "position": ""}]

    first, second, free, third = items(engine, meeting_id)
    html = page(client.get(f"/meetings/{meeting_id}"))
    block = item_block(html, first["id"])
    # the task form's decision fields, without those the meeting fills itself, with the curators by name
    assert f'name="q{first["id"]}_decision"' in block and f'name="q{first["id"]}_curator"' in block
    assert "meeting_date" not in block and "resolution_number" not in block
    assert "Васильева Елена Николаевна" in block
    assert 'name="votes_for"' in block and 'name="family_appeared"' in block
    assert "Закрыть заседание и сформировать протокол" in html

    # bad input: the field errors under the fields, nothing saved
    form = {f"q{first['id']}_{key}": value for key, value in DECISION.items()}
    response = post(client, f"/meetings/{meeting_id}/items/{first['id']}/decide",
                    {**form, f"q{first['id']}_curator": "", "votes_for": "3"}, f"/meetings/{meeting_id}")
    assert response.status_code == 422
    block = item_block(page(response), first["id"])
    assert re.search(rf'id="f-q{first["id"]}_curator-error">[^<]+</div>', block), block
    response = post(client, f"/meetings/{meeting_id}/items/{first['id']}/decide",
                    {**form, "votes_for": "много"}, f"/meetings/{meeting_id}")
    assert response.status_code == 422
    assert f'<div class="field-error" id="q{first["id"]}_votes_for-error">целое число</div>' in page(response)
    response = post(client, f"/meetings/{meeting_id}/items/{first['id']}/decide",
                    {**form, "votes_for": "1", "votes_against": "2"}, f"/meetings/{meeting_id}")
    assert response.status_code == 422 and "большинством голосов" in page(response)
    with engine.db.session() as session:
        assert session.get(HumanTask, cases[0]["task_id"]).status == "open"
        assert session.scalar(select(func.count()).select_from(Resolution)) == 0

    # the recognition with its votes; the second case postponed with a reason; the free item decided by text
    response = post(client, f"/meetings/{meeting_id}/items/{first['id']}/decide",
                    {**form, "votes_for": "2", "votes_against": "0", "votes_abstained": "1",
                     "family_appeared": "yes"}, f"/meetings/{meeting_id}")
    assert response.status_code == 302
    response = post(client, f"/meetings/{meeting_id}/items/{second['id']}/postpone", {"reason": ""},
                    f"/meetings/{meeting_id}")
    assert response.status_code == 422
    assert f'id="q{second["id"]}_reason-error">укажите причину переноса</div>' in page(response)
    post(client, f"/meetings/{meeting_id}/items/{second['id']}/postpone", {"reason": "Семья не уведомлена"},
         f"/meetings/{meeting_id}")
    # the agency's inbox says its question was postponed, while the meeting goes on
    assert f"{second['title']} (вопрос перенесен)" in page(signed_in(app, "school").get("/inbox"))
    response = post(client, f"/meetings/{meeting_id}/items/{free['id']}/decide", {"votes_for": "3"},
                    f"/meetings/{meeting_id}")
    assert response.status_code == 422
    assert f'id="q{free["id"]}_decision_text-error">запишите решение' in page(response)
    post(client, f"/meetings/{meeting_id}/items/{free['id']}/decide",
         {"decision_text": "Информацию принять к сведению", "votes_for": "3"}, f"/meetings/{meeting_id}")
    response = post(client, f"/meetings/{meeting_id}/close", {}, f"/meetings/{meeting_id}")
    assert response.status_code == 409 and "4" in page(response)  # question 4 is neither decided nor postponed
    post(client, f"/meetings/{meeting_id}/items/{third['id']}/postpone", {"reason": "Неявка куратора"},
         f"/meetings/{meeting_id}")
    assert post(client, f"/meetings/{meeting_id}/close", {}, f"/meetings/{meeting_id}").status_code == 302

    html = page(client.get(f"/meetings/{meeting_id}"))
    assert "закрыто" in html and f'href="/meetings/{meeting_id}/minutes.pdf"' in html
    assert "Постановление № 1/1" in html and "Семья не уведомлена" in html
    minutes = client.get(f"/meetings/{meeting_id}/minutes.pdf")
    assert minutes.status_code == 200 and minutes.mimetype == "application/pdf" and minutes.data[:4] == b"%PDF"
    with engine.db.session() as session:
        assert session.get(HumanTask, cases[0]["task_id"]).status == "completed"
        assert session.get(HumanTask, cases[1]["task_id"]).status == "open"
        resolution = session.scalar(select(Resolution).where(Resolution.case_id == cases[0]["case_id"]))
        assert resolution.number == "1/1" and resolution.meeting_id == meeting_id
        assert resolution.data["votes_abstained"] == 1
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "meeting_viewed", AuditEvent.object_id == str(meeting_id))) >= 3

    # the case file: the resolution with its meeting and the minutes
    case_page = page(client.get(f"/cases/{cases[0]['case_id']}"))
    assert "заседание № 1 от 05.11.2025" in case_page
    assert f'href="/meetings/{meeting_id}/minutes.pdf">протокол</a>' in case_page

    # the list: the meeting with its number, questions decided of all, the minutes; the calendar marks the day
    listing = page(client.get("/meetings?month=2025-11"))
    past = re.search(r'<table class="list meetings-list" id="past">.*?</table>', listing, re.S).group(0)
    assert "05.11.2025" in past and "2 из 4" in past and "Протокол № 1 (PDF)" in past
    assert 'data-date="2025-11-05"' in listing and "Ноябрь 2025" in listing


def test_who_sees_a_meeting_and_who_may_change_it(app):
    engine = app.extensions["kurator"]
    meeting_id, _cases, secretary = open_meeting(app)
    # not a member of the commission, another municipality: the meeting does not exist for them
    for username in ("school", "vsecretary", "curator1"):
        client = signed_in(app, username)
        assert client.get(f"/meetings/{meeting_id}").status_code == 404, username
        assert client.get(f"/meetings/{meeting_id}/agenda.pdf").status_code == 404, username
    assert signed_in(app, "school").get("/meetings").status_code == 404
    assert 'href="/meetings"' not in page(signed_in(app, "school").get("/inbox"))  # no menu link either
    assert post(signed_in(app, "vsecretary"), f"/meetings/{meeting_id}/notify", {},
                "/inbox").status_code == 404

    # the chair: the same page, read-only, with each case's short context
    chair = signed_in(app, "chair")
    html = page(chair.get(f"/meetings/{meeting_id}"))
    assert 'href="/meetings"' in html
    first = items(engine, meeting_id)[0]
    block = item_block(html, first["id"])
    assert "Семья" in block and "Уровень опасности" in block and "высокий" in block and "Куратор" in block
    assert "<form" not in html.split('<main>', 1)[1].split("</main>")[0].replace(
        '<form method="post" action="/logout"', "")
    for path, data in ((f"/meetings/{meeting_id}/items/{first['id']}/postpone", {"reason": "Хочу перенести"}),
                       (f"/meetings/{meeting_id}/notify", {}), ("/meetings/next", {})):
        assert post(chair, path, data, f"/meetings/{meeting_id}").status_code == 403, path
    assert engine.sop.meetings.get(meeting_id, "chair")["items"][0]["status"] == "planned"

    # a member of the commission by user name (the police inspector) sees it too, read-only
    police = page(signed_in(app, "police").get(f"/meetings/{meeting_id}"))
    assert "Повестка" in police and "Перенести" not in police

    # CSRF: a post without the token changes nothing
    before = len(items(engine, meeting_id))
    response = secretary.post(f"/meetings/{meeting_id}/items", data={"title": "Без токена"})
    assert response.status_code == 400 and len(items(engine, meeting_id)) == before
    response = secretary.post(f"/meetings/{meeting_id}/items", data={"title": "С токеном",
                                                                     "csrf_token": csrf(secretary, "/meetings")})
    assert response.status_code == 302 and len(items(engine, meeting_id)) == before + 1
    # an item of another meeting's address is not found
    assert post(secretary, f"/meetings/{meeting_id + 1}/items/{first['id']}/postpone", {"reason": "x"},
                "/meetings").status_code == 404


def test_an_extraordinary_meeting_and_the_list(app):
    engine = app.extensions["kurator"]
    set_up(engine)
    client = signed_in(app, "secretary")
    listing = page(client.get("/meetings"))
    assert "Следующее заседание" in listing and "Назначить внеочередное заседание" in listing
    assert "Октябрь 2025" in listing and "scheduled" in page(client.get("/meetings?month=2025-11"))
    # the month grid marks the days of the schedule of the month shown (the 1st and 3rd Tuesday): 4 November 2025
    # is a holiday, so the first meeting moves to Wednesday the 5th
    november = page(client.get("/meetings?month=2025-11"))
    for day in (5, 18):
        assert f'<span title="Заседание по графику">{day}</span>' in november, day
    response = post(client, "/meetings/new", {"held_on": "2025-10-01", "starts_at": "11:00", "place": ""},
                    "/meetings")
    assert response.status_code == 422
    assert '<div class="field-error" id="f-held_on-error">дата заседания не может быть в прошлом</div>' in \
        page(response)
    response = post(client, "/meetings/new", {"held_on": "2025-11-10", "starts_at": "25:00"}, "/meetings")
    assert response.status_code == 422 and 'id="f-starts_at-error">время в формате ЧЧ:ММ' in page(response)
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Meeting)) == 0
    response = post(client, "/meetings/new", {"held_on": "2025-11-10", "starts_at": "11:00", "place": "Зал"},
                    "/meetings")
    assert response.status_code == 302
    listing = page(client.get("/meetings"))
    upcoming = re.search(r'<table class="list meetings-list" id="upcoming">.*?</table>', listing, re.S).group(0)
    assert "10.11.2025" in upcoming and "внеочередное" in upcoming
    # the chair sees the list without the secretary's buttons
    chair = page(signed_in(app, "chair").get("/meetings"))
    assert "10.11.2025" in chair and "Следующее заседание" not in chair
    # a month outside the query's format is the current month, not an error
    assert signed_in(app, "chair").get("/meetings?month=2025-13").status_code == 200

    # a meeting planned by mistake is cancelled from its page, with a reason; the chair has no such form
    meeting_id = re.search(r'href="/meetings/(\d+)"[^>]*>10\.11\.2025', upcoming).group(1)
    assert "Отменить заседание" not in page(signed_in(app, "chair").get(f"/meetings/{meeting_id}"))
    shown = page(client.get(f"/meetings/{meeting_id}"))
    assert f'action="/meetings/{meeting_id}/cancel"' in shown and "Причина отмены" in shown
    response = post(client, f"/meetings/{meeting_id}/cancel", {"reason": " "}, f"/meetings/{meeting_id}")
    assert response.status_code == 422 and 'id="f-cancel-reason-error">укажите причину отмены' in page(response)
    response = post(client, f"/meetings/{meeting_id}/cancel", {"reason": "Назначено ошибочно"},
                    f"/meetings/{meeting_id}")
    assert response.status_code == 302
    with engine.db.session() as session:
        assert session.get(Meeting, int(meeting_id)).status == "cancelled"
    response = post(client, f"/meetings/{meeting_id}/cancel", {"reason": "еще раз"}, f"/meetings/{meeting_id}")
    assert response.status_code == 409 and "Отменить можно только запланированное заседание" in page(response)


def test_a_month_the_production_calendar_does_not_cover_says_so(app):
    engine = app.extensions["kurator"]
    set_up(engine)
    client = signed_in(app, "secretary")
    covered = page(client.get("/meetings?month=2025-11"))
    assert '<span title="Заседание по графику">5</span>' in covered and "Производственного календаря" not in covered
    response = client.get("/meetings?month=2150-06")
    assert response.status_code == 200
    later = page(response)
    assert "Июнь 2150" in later and 'title="Заседание по графику"' not in later
    assert ('<p class="notice warning small" role="status">Производственного календаря на 2150 год нет, поэтому дни '
            'заседаний по графику не отмечены. Администратор может заполнить этот год в разделе «Производственный '
            'календарь».</p>') in later


def test_an_error_of_the_schedule_other_than_the_calendar_coverage_is_not_hidden(app, monkeypatch):
    from webapp.views import meetings as views

    set_up(app.extensions["kurator"])

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the schedule")

    monkeypatch.setattr(views, "meeting_days", broken)
    # a bug is not passed off as a month without a calendar: it is the error page (and the log), not an empty grid
    assert signed_in(app, "secretary").get("/meetings?month=2025-11").status_code == 500


def test_the_commission_page(app):
    engine = app.extensions["kurator"]
    client = signed_in(app, "secretary")
    html = page(client.get("/commission"))
    assert "Полное наименование" in html and "Членов комиссии нет" in html
    # bad input under its field, nothing saved
    response = post(client, "/commission", {"full_name": "", "schedule_weekday": "2", "schedule_weeks": ["2", "4"]},
                    "/commission")
    assert response.status_code == 422
    assert '<div class="field-error" id="f-full_name-error">укажите полное наименование комиссии</div>' in \
        page(response)
    response = post(client, "/commission", {"full_name": COMMISSION, "schedule_weekday": "2",
                                            "schedule_weeks": ["2", "4"], "schedule_time": "9 утра"}, "/commission")
    assert response.status_code == 422 and 'id="f-schedule_time-error">время в формате ЧЧ:ММ' in page(response)
    assert engine.sop.meetings.commission(municipality_id(engine)) is None
    response = post(client, "/commission", {"full_name": COMMISSION, "place": "каб. 301", "schedule_weekday": "2",
                                            "schedule_weeks": ["2", "4"], "schedule_time": "10:00"}, "/commission")
    assert response.status_code == 302
    commission = engine.sop.meetings.commission(municipality_id(engine))
    assert commission["schedule_weekday"] == 2 and commission["schedule_weeks"] == [2, 4]
    assert "2-я и 4-я среда месяца" in page(client.get("/meetings"))

    response = post(client, "/commission/members", {"full_name": "", "position": "member"}, "/commission")
    assert response.status_code == 422 and 'id="f-member_name-error">укажите фамилию, имя, отчество' in \
        page(response)
    assert post(client, "/commission/members", {"full_name": "Кузнецов Андрей Петрович", "position": "chair",
                                                "username": "chair"}, "/commission").status_code == 302
    response = post(client, "/commission/members", {"full_name": "Другой Председатель", "position": "chair"},
                    "/commission")
    assert response.status_code == 422 and "в комиссии уже есть председатель комиссии" in page(response)
    member_id = engine.sop.meetings.commission(municipality_id(engine))["members"][0]["id"]

    # the chair reads, does not change
    chair = signed_in(app, "chair")
    html = page(chair.get("/commission"))
    assert "Кузнецов Андрей Петрович" in html and "Вывести из состава" not in html
    assert post(chair, "/commission", {"full_name": "Другое"}, "/commission").status_code == 403
    assert post(chair, f"/commission/members/{member_id}/active", {"active": "0"}, "/commission").status_code == 403
    # another municipality's secretary cannot touch this commission's members
    assert post(signed_in(app, "vsecretary"), f"/commission/members/{member_id}/active", {"active": "0"},
                "/inbox").status_code == 404
    assert signed_in(app, "school").get("/commission").status_code == 404

    assert post(client, f"/commission/members/{member_id}/active", {"active": "0"}, "/commission").status_code == 302
    with engine.db.session() as session:
        assert session.get(CommissionMember, member_id).active is False
        assert session.scalar(select(func.count()).select_from(MeetingItem)) == 0


def test_an_item_whose_step_is_past_its_term_says_so_on_the_page_and_in_the_api(app):
    engine = app.extensions["kurator"]
    meeting_id, cases, client = open_meeting(app)
    agenda = items(engine, meeting_id)
    assert all(i["due"] is not None and i["late"] is False for i in agenda)
    html = page(client.get(f"/meetings/{meeting_id}"))
    assert "просрочено" not in item_block(html, agenda[0]["id"])
    # the first case's step is past its term (the clock one day after it); the sweep has not marked it yet
    late_day = agenda[0]["due"].astimezone(engine.clock.now().tzinfo) + timedelta(days=1)
    engine.clock.set(late_day)
    with engine.db.session() as session:
        assert session.get(HumanTask, agenda[0]["task_id"]).overdue is False
    html = page(client.get(f"/meetings/{meeting_id}"))
    assert '<span class="badge red">просрочено</span>' in item_block(html, agenda[0]["id"])
    assert [i["late"] for i in items(engine, meeting_id)] == [i["due"] < late_day for i in agenda]
    api = app.test_client()
    issued = api.post("/api/v1/auth/token", json={"username": "secretary", "password": "demo-password"})
    found = api.get(f"/api/v1/meetings/{meeting_id}",
                    headers={"Authorization": f"Bearer {issued.get_json()['token']}"})
    assert found.status_code == 200 and found.get_json()["items"][0]["late"] is True


def test_an_emergency_report_on_the_agenda_shows_what_the_guardianship_reported(app):
    """The guardianship's information on the measures it took (п. 7) goes on the next meeting's agenda; the commission
    hears it there: the item shows what was reported, by whom and when, on the page and in the API."""
    engine = app.extensions["kurator"]
    set_up(engine)
    result = engine.sop.register_intake("police", {**SIGNAL, "threat_to_life": True})
    emergency = result.instance_ids[1]

    def do(element: str, user: str, data: dict) -> None:
        task = next(t for t in engine.tasks.query(instance_id=emergency) if t["element_id"] == element)
        engine.tasks.complete(task["id"], user, data)

    do("em_inspection", "guardian", {"visit_date": "2025-10-30", "inspection_act_number": "12",
                                     "inspection_findings": "Угроза не подтвердилась", "threat_confirmed": False})
    do("em_inform_commission", "guardian", {"inform_date": "2025-10-30", "measures_taken":
                                            "Проведена беседа с матерью\nСемья передана под патронаж КЦСОН"})
    client = signed_in(app, "secretary")
    response = post(client, "/meetings/next", {}, "/meetings")
    meeting_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    html = page(client.get(f"/meetings/{meeting_id}"))
    report = next(i for i in items(engine, meeting_id) if i["kind"] == "report")
    block = item_block(html, report["id"])
    assert "Информация органа опеки и попечительства о мерах" in block
    assert "Представлено: guardian, Отдел опеки и попечительства, 30.10.2025" in block
    assert "Принятые меры по защите прав и обеспечению безопасности ребенка" in block
    assert "Проведена беседа с матерью\nСемья передана под патронаж КЦСОН" in block
    api = app.test_client()
    issued = api.post("/api/v1/auth/token", json={"username": "chair", "password": "demo-password"})
    found = api.get(f"/api/v1/meetings/{meeting_id}",
                    headers={"Authorization": f"Bearer {issued.get_json()['token']}"}).get_json()
    reported = next(i for i in found["items"] if i["kind"] == "report")["report"]
    assert reported["agency"] == "Отдел опеки и попечительства" and reported["author"] == "guardian"
    assert {"label": "Дата направления информации", "value": "30.10.2025"} in reported["rows"]
    assert all(i["report"] is None for i in found["items"] if i["kind"] != "report")
    # and the minutes record what was heard
    at(engine, "2025-11-05 10:00")  # the meeting's day
    members = [m["id"] for m in engine.sop.meetings.commission(municipality_id(engine))["members"]]
    engine.sop.meetings.set_attendance(meeting_id, members, [], "secretary")
    for item in items(engine, meeting_id):
        if item["kind"] == "report":
            engine.sop.meetings.decide(item["id"], "secretary", decision_text="Информацию принять к сведению",
                                       votes_for=4)
        else:
            engine.sop.meetings.postpone(item["id"], "Не подготовлено", "secretary")
    minutes_id = engine.sop.meetings.close(meeting_id, "secretary")
    with engine.db.session() as session:
        text = pdf_text(session.get(Document, minutes_id).content)
    assert ("Представлено: guardian, Отдел опеки и попечительства. Дата направления информации: 30.10.2025; Принятые "
            "меры по защите прав и обеспечению безопасности ребенка, дальнейшая реабилитация: Проведена беседа с "
            "матерью Семья передана под патронаж КЦСОН") in text


def test_a_question_put_on_the_agenda_after_the_notice_says_its_agencies_are_not_told(app):
    engine = app.extensions["kurator"]
    meeting_id, _cases, client = open_meeting(app)
    client.get(f"/meetings/{meeting_id}")  # the agenda builds itself
    post(client, f"/meetings/{meeting_id}/notify", {}, f"/meetings/{meeting_id}")
    assert "повестка изменилась" not in page(client.get(f"/meetings/{meeting_id}"))
    late_case = new_case(engine, "Волков")
    html = page(client.get(f"/meetings/{meeting_id}"))
    assert late_case["case_id"] in [i["case_id"] for i in items(engine, meeting_id)]
    assert "повестка изменилась: органы по 1 делу не уведомлены" in html
    post(client, f"/meetings/{meeting_id}/notify", {}, f"/meetings/{meeting_id}")
    assert "повестка изменилась" not in page(client.get(f"/meetings/{meeting_id}"))
