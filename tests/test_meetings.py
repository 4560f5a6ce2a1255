"""The commission's meetings: schedule and `next_meeting`, the agenda that builds itself, quorum and votes,
decisions completing the cases' tasks, resolution numbers and the minutes."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from engine import Conflict, InvalidInput
from engine.errors import PermissionDenied
from engine.models import HumanTask, Municipality
from sop import casefile
from sop.meetings.models import Meeting, MeetingItem, Notice
from sop.models import Case, Document, Resolution

from .test_sop_diagrams import CHECK, at
from .test_sop_service import SIGNAL, pdf_text
from .test_sop_service import world as sop_world  # noqa: F401 - the fixture this module's world extends


@pytest.fixture
def world(sop_world):  # noqa: F811
    return sop_world


MEMBERS = [("Кузнецов Андрей Петрович", "chair", "chair"), ("Смирнова Ольга Викторовна", "secretary", "secretary"),
           ("Орлов Дмитрий Сергеевич", "member", "police"), ("Попова Наталья Ивановна", "member", "guardian"),
           ("Лебедева Ирина Владимировна", "member", "school"), ("Соколов Игорь Михайлович", "member", None)]


def municipality_id(engine) -> int:
    with engine.db.session() as session:
        return session.scalar(select(Municipality.id).where(Municipality.name == "Йошкар-Ола"))


def set_up_commission(engine, service, weekday=1, weeks=(1, 3)) -> list[int]:
    """The 1st and 3rd Tuesday: in November 2025 the 1st Tuesday is 4 November, a holiday."""
    mid = municipality_id(engine)
    service.meetings.set_up(mid, "Комиссия по делам несовершеннолетних и защите их прав городского округа "
                                 "«Город Йошкар-Ола»", "г. Йошкар-Ола, Ленинский пр., 27, каб. 301",
                            weekday, list(weeks), "10:00")
    return [service.meetings.add_member(mid, name, position, username=user) for name, position, user in MEMBERS]


def new_case(engine, service, last_name: str) -> dict:
    """A signal whose check the secretary confirms: the case waits for the commission's recognition."""
    signal = {**SIGNAL, "children": [{**SIGNAL["children"][0], "last_name": last_name}],
              "parents": [{**SIGNAL["parents"][0], "last_name": last_name + "а"}],
              "address": f"г. Йошкар-Ола, ул. {last_name}а, д. 1"}
    result = service.register_intake("secretary", signal)
    check = next(t for t in engine.tasks.query(instance_id=result.instance_ids[0]) if t["element_id"] == "sop_check")
    engine.tasks.complete(check["id"], "secretary", CHECK)
    recognition = next(t for t in engine.tasks.query(instance_id=result.instance_ids[0])
                       if t["element_id"] == "sop_recognition")
    return {"case_id": result.case_id, "instance_id": result.instance_ids[0], "task": recognition}


def test_the_schedule_moves_a_meeting_off_a_holiday_and_next_meeting_follows_it(world):
    engine, service = world
    set_up_commission(engine, service)
    mid = municipality_id(engine)
    meetings = service.meetings
    assert meetings.next_meeting_date(mid, date(2025, 10, 30)) == date(2025, 11, 5)  # Tue 4.11 is a holiday
    assert meetings.next_meeting_date(mid, date(2025, 11, 5)) == date(2025, 11, 18)  # strictly after the start
    assert meetings.next_meeting_date(mid, date(2025, 12, 17)) == date(2026, 1, 12)  # 6.01 is in the New Year days
    # an extraordinary meeting on record comes first
    at(engine, "2025-11-06 09:00:00")
    meetings.create(mid, "2025-11-10", by="secretary")
    assert meetings.next_meeting_date(mid, date(2025, 11, 6)) == date(2025, 11, 10)


def test_the_recognition_is_due_at_the_next_meeting_or_in_15_days_without_a_schedule(world):
    engine, service = world
    first = new_case(engine, service, "Петров")  # 30.10.2025, no commission yet: the fallback
    assert first["task"]["due"].startswith("2025-11-14")  # 15 calendar days
    set_up_commission(engine, service)
    second = new_case(engine, service, "Сидоров")
    assert second["task"]["due"] == "2025-11-05T20:59:59+00:00"  # end of 5.11 in Moscow: the moved meeting


def test_the_agenda_holds_exactly_the_due_decisions_and_is_decided_with_quorum(world):
    engine, service = world
    member_ids = set_up_commission(engine, service)
    cases = [new_case(engine, service, name) for name in ("Петров", "Сидоров", "Кравцов")]
    mid = municipality_id(engine)
    meetings = service.meetings
    with pytest.raises(PermissionDenied):
        meetings.upcoming(mid, "chair")  # only the secretary prepares meetings
    meeting_id = meetings.upcoming(mid, "secretary")
    meetings.refresh_agenda(meeting_id, "secretary")
    agenda = meetings.get(meeting_id, "chair")
    assert agenda["held_on"] == date(2025, 11, 5) and agenda["status"] == "planned"
    assert [i["case_id"] for i in agenda["items"]] == [c["case_id"] for c in cases]
    assert {i["form_key"] for i in agenda["items"]} == {"sop_recognition"}
    free = meetings.add_item(meeting_id, "Об административных материалах в отношении родителей", "Секретарь",
                             "secretary")
    meetings.move_item(free, -1, "secretary")
    assert [i["kind"] for i in meetings.get(meeting_id, "chair")["items"]] == ["decision", "decision", "free",
                                                                              "decision"]
    # the signals came to the commission itself: no working-group agency to tell yet (the commission is not told
    # of its own meeting; an agency's notice: test_web_meetings)
    assert meetings.notify(meeting_id, "secretary") == 0
    _name, agenda_pdf = meetings.agenda_pdf(meeting_id, "chair")
    agenda_text = pdf_text(agenda_pdf)
    for expected in ("ПОВЕСТКА", "05 ноября 2025 г.", "Петров", "Сидоров", "Кравцов",
                     "Об административных материалах", "Смирнова Ольга Викторовна"):
        assert expected in agenda_text, expected
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Notice)) == 0

    # attendance on the day; two of six present is no quorum: a decision is refused and nothing is saved
    with pytest.raises(Conflict):
        meetings.set_attendance(meeting_id, member_ids, [], "secretary")  # 30.10: the meeting is on 5.11
    at(engine, "2025-11-05 10:00:00")
    quorum = meetings.set_attendance(meeting_id, member_ids[:2], [{"name": "Иванова А. С.", "position": "мать"}],
                                     "secretary")
    assert not quorum.reached
    item_ids = [i["id"] for i in meetings.get(meeting_id, "chair")["items"]]
    decision = {"decision": "recognize", "curator": "curator1", "working_group": ["police", "education"],
                "ipr_term_months": 6, "consent_obtained": True, "recognition_notes": "Систематические пропуски"}
    with pytest.raises(InvalidInput, match="quorum"):
        meetings.decide(item_ids[0], "secretary", decision, votes_for=2)
    with engine.db.session() as session:
        assert session.get(HumanTask, cases[0]["task"]["id"]).status == "open"
        assert session.scalar(select(func.count()).select_from(Resolution)) == 0

    quorum = meetings.set_attendance(meeting_id, member_ids[:4], [{"name": "Иванова А. С.", "position": "мать"}],
                                     "secretary")
    assert quorum.reached
    with pytest.raises(InvalidInput, match="tie"):
        meetings.decide(item_ids[0], "secretary", decision, votes_for=2, votes_against=2)
    with pytest.raises(InvalidInput):  # the form's own rules still hold: no curator for a recognition
        meetings.decide(item_ids[0], "secretary", {**decision, "curator": "nobody"}, votes_for=4)
    with engine.db.session() as session:
        assert session.get(HumanTask, cases[0]["task"]["id"]).status == "open"

    result = meetings.decide(item_ids[0], "secretary", decision, votes_for=3, votes_abstained=1,
                             family_appeared=True)
    assert result["resolution_number"] == "1/1"
    meetings.postpone(item_ids[1], "Семья не уведомлена о заседании", "secretary")
    meetings.decide(item_ids[2], "secretary", decision_text="Направить материалы в ОМВД.", votes_for=3)
    with pytest.raises(Conflict, match="4"):
        meetings.close(meeting_id, "secretary")  # question 4 is still open
    # a tie: the presiding member's vote decides, and a member's dissenting opinion goes into the minutes
    meetings.decide(item_ids[3], "secretary", {**decision, "decision": "reject"}, votes_for=2, votes_against=2,
                    casting_vote=True, dissent="Орлов Д. С.: семья нуждается в помощи")
    minutes_id = meetings.close(meeting_id, "secretary")

    with engine.db.session() as session:
        first = session.get(Case, cases[0]["case_id"])
        assert first.status == "recognized" and first.recognized_on == date(2025, 11, 5)
        resolution = session.scalar(select(Resolution).where(Resolution.case_id == first.id))
        assert resolution.number == "1/1" and resolution.meeting_id == meeting_id
        assert resolution.data["votes_for"] == 3 and resolution.data["votes_abstained"] == 1
        assert resolution.data["chair_name"] == "Кузнецов Андрей Петрович"
        assert (resolution.votes_for, resolution.votes_against, resolution.present) == (3, 0, 4)
        assert session.get(HumanTask, cases[0]["task"]["id"]).status == "completed"
        assert session.get(HumanTask, cases[1]["task"]["id"]).status == "open"  # postponed: still waiting
        assert session.get(Meeting, meeting_id).number == 1
        minutes = session.get(Document, minutes_id)
        text = pdf_text(minutes.content)
        # the refusal is a resolution too, printed «не признавать» for the agencies that sent the information
        refused = session.scalar(select(Document).where(Document.case_id == cases[2]["case_id"],
                                                        Document.kind == "resolution_recognition"))
        assert refused.title.startswith("Постановление об отказе в признании")
        refusal = " ".join(pdf_text(casefile.pdf_of(session, refused)).split())
        assert "Не признавать находящимися в социально опасном положении" in refusal
        assert "«за» — 2, «против» — 2" in refusal
    for expected in ("ПРОТОКОЛ № 1", "05 ноября 2025 г.", "Кузнецов Андрей Петрович", "Смирнова Ольга Викторовна",
                     "Иванова А. С.", "СЛУШАЛИ", "РЕШИЛИ", "ГОЛОСОВАЛИ", "«за» — 3", "«воздержались» — 1",
                     "Семья не уведомлена о заседании", "Направить материалы в ОМВД", "Постановление № 1/1",
                     "Сидоров", "явилась", "СЛУШАЛИ: ответственного секретаря комиссии Смирнову Ольгу Викторовну",
                     "Куратором случая назначить", "Срок реализации индивидуальной программы — 6 мес.",
                     "не голосовали — 1", "решающим является голос председательствующего",
                     "Особое мнение: Орлов Д. С.: семья нуждается в помощи"):
        assert expected in " ".join(text.split()), expected
    assert ".." not in text

    # the postponed question is on the next meeting's agenda, with where it came from
    next_id = meetings.upcoming(mid, "secretary")
    meetings.refresh_agenda(next_id, "secretary")
    following = meetings.get(next_id, "chair")
    assert following["held_on"] == date(2025, 11, 18)
    assert [i["case_id"] for i in following["items"]] == [cases[1]["case_id"]]
    assert following["items"][0]["postponed_from"]["reason"] == "Семья не уведомлена о заседании"


def test_only_the_municipality_sees_its_meetings(world):
    engine, service = world
    set_up_commission(engine, service)
    engine.identity.add_agency("КДН Волжска", "Волжск", kind="commission")
    engine.identity.add_user("volzhsk", ["commission_secretary"], agency="КДН Волжска")
    meeting_id = service.meetings.upcoming(municipality_id(engine), "secretary")
    from engine import NotFound

    with pytest.raises(NotFound):
        service.meetings.get(meeting_id, "volzhsk")
    with pytest.raises(NotFound):
        service.meetings.get(meeting_id, "curator1")  # an agency specialist who is not a member
    assert service.meetings.get(meeting_id, "chair")["id"] == meeting_id
    assert service.meetings.get(meeting_id, "school")["id"] == meeting_id  # a member of the commission


def test_resolution_numbers_follow_one_sequence_per_commission_and_year(world):
    engine, service = world
    member_ids = set_up_commission(engine, service)
    mid = municipality_id(engine)
    meetings = service.meetings
    numbers = []
    for day in ("2025-11-05", "2025-11-18"):
        meeting_id = meetings.upcoming(mid, "secretary")
        at(engine, f"{day} 10:00:00")
        meetings.set_attendance(meeting_id, member_ids, [], "secretary")
        item = meetings.add_item(meeting_id, "О профилактике безнадзорности", None, "secretary")
        numbers.append(meetings.decide(item, "secretary", decision_text="Информацию принять к сведению",
                                       votes_for=6)["resolution_number"])
        meetings.close(meeting_id, "secretary")
    assert numbers == ["1/1", "2/1"]
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(MeetingItem)) == 2


def test_only_an_administrator_or_the_secretary_keeps_the_commission(world):
    engine, service = world
    member_ids = set_up_commission(engine, service)
    mid = municipality_id(engine)
    engine.identity.add_user("admin", ["admin"])
    for outsider in ("chair", "school"):
        with pytest.raises(PermissionDenied):
            service.meetings.set_up(mid, "Другое наименование", by=outsider)
        with pytest.raises(PermissionDenied):
            service.meetings.add_member(mid, "Новиков Н. Н.", by=outsider)
        with pytest.raises(PermissionDenied):
            service.meetings.set_member_active(member_ids[-1], False, by=outsider)
    assert service.meetings.commission(mid)["full_name"].startswith("Комиссия по делам")
    service.meetings.add_member(mid, "Новиков Николай Николаевич", by="secretary")
    service.meetings.set_member_active(member_ids[-1], False, by="admin")
    members = service.meetings.commission(mid)["members"]
    assert [m["full_name"] for m in members if not m["active"]] == [MEMBERS[-1][0]]


def test_the_schedule_reads_in_russian_with_the_weekdays_gender():
    from sop.meetings.schedule import describe

    assert describe(2, [2, 4]) == "2-я и 4-я среда месяца"
    assert describe(1, [1, 3]) == "1-й и 3-й вторник месяца"
    assert describe(6, [-1]) == "последнее воскресенье месяца"
    assert describe(4, [1, -1]) == "1-я и последняя пятница месяца"
    assert describe(None, [1]) == "не установлен"


def test_a_programme_approved_at_a_meeting_takes_the_meetings_resolution_number_and_vote(world):
    """The approval's resolution is numbered «meeting/question» as the minutes cite it (not the protocol's
    number alone), and keeps the vote, as the recognition's does."""
    from .test_sop_diagrams import CARD, DRAFT, PROPOSAL, RECOGNITION, complete, tasks
    from .test_sop_service import agency_user

    engine, service = world
    at(engine, "2025-10-30 09:00:00")
    member_ids = set_up_commission(engine, service)
    case = new_case(engine, service, "Федоров")
    iid = case["instance_id"]
    at(engine, "2025-12-23 12:00:00")  # recognised at a meeting held outside the system (RECOGNITION's date)
    complete(engine, iid, "sop_recognition", RECOGNITION)
    complete(engine, iid, "sop_registration_card", CARD)
    for proposal in tasks(engine, iid)["sop_proposals"]:
        engine.tasks.complete(proposal["id"], agency_user(proposal, "specialist"), PROPOSAL)
    complete(engine, iid, "sop_programme_draft", DRAFT)
    meetings = service.meetings
    meeting_id = meetings.upcoming(municipality_id(engine), "secretary")
    meetings.refresh_agenda(meeting_id, "secretary")
    meeting = meetings.get(meeting_id, "secretary")
    item = next(i for i in meeting["items"] if i["form_key"] == "sop_programme_approval")
    at(engine, f"{meeting['held_on'].isoformat()} 10:00:00")
    meetings.set_attendance(meeting_id, member_ids[:5], [], "secretary")
    result = meetings.decide(item["id"], "secretary", {"decision": "approve"}, votes_for=4, votes_against=1)
    with engine.db.session() as session:
        resolution = session.scalar(select(Resolution).where(Resolution.case_id == case["case_id"],
                                                             Resolution.kind == "approval"))
        assert resolution.number == result["resolution_number"] == f"1/{item['position']}"
        assert (resolution.votes_for, resolution.votes_against, resolution.present) == (4, 1, 5)
        approval = session.scalar(select(Document).where(Document.case_id == case["case_id"],
                                                         Document.kind == "resolution_approval"))
        pdf = casefile.pdf_of(session, approval)
    text = " ".join(pdf_text(pdf).split())
    assert f"ПОСТАНОВЛЕНИЕ № 1/{item['position']}" in text
    assert "присутствовали 5 членов комиссии" in text and "«за» — 4, «против» — 1" in text


def test_counted_nouns_agree_with_the_number():
    from sop.documents.names import plural

    forms = ("член", "члена", "членов")
    assert [plural(n, *forms) for n in (1, 3, 5, 11, 12, 21, 22, 25, 111)] == [
        "член", "члена", "членов", "членов", "членов", "член", "члена", "членов", "членов"]


def test_a_question_gone_without_the_meeting_leaves_the_agenda_numbered_without_a_gap(world):
    engine, service = world
    at(engine, "2025-10-30 09:00:00")
    set_up_commission(engine, service)
    cases = [new_case(engine, service, name) for name in ("Петров", "Сидоров", "Кравцов")]
    meetings = service.meetings
    meeting_id = meetings.upcoming(municipality_id(engine), "secretary")
    meetings.refresh_agenda(meeting_id, "secretary")
    assert [i["position"] for i in meetings.get(meeting_id, "secretary")["items"]] == [1, 2, 3]
    with engine.db.session() as session:  # the step went away without the meeting (e.g. a boundary event)
        session.get(HumanTask, cases[1]["task"]["id"]).status = "cancelled"
    meetings.refresh_agenda(meeting_id, "secretary")
    agenda = meetings.get(meeting_id, "secretary")["items"]
    assert [(i["position"], i["case_id"]) for i in agenda] == [(1, cases[0]["case_id"]), (2, cases[2]["case_id"])]


def test_a_decision_on_a_meetings_agenda_is_recorded_at_the_meeting_not_from_the_task(world):
    """While the question is on the agenda of a planned or open meeting, its task refuses a decision recorded
    directly (it would be decided twice); recorded after the fact, a decision may not be dated before the question
    came to the commission."""
    from .test_sop_diagrams import RECOGNITION

    engine, service = world
    at(engine, "2025-10-30 09:00:00")
    set_up_commission(engine, service)
    on_agenda, other = new_case(engine, service, "Петров"), new_case(engine, service, "Сидоров")
    meetings = service.meetings
    meeting_id = meetings.upcoming(municipality_id(engine), "secretary")
    meetings.refresh_agenda(meeting_id, "secretary")
    for item in meetings.get(meeting_id, "secretary")["items"]:
        if item["case_id"] == other["case_id"]:
            meetings.postpone(item["id"], "Материалы не готовы", "secretary")
    at(engine, "2025-11-06 09:00:00")
    with pytest.raises(InvalidInput) as refused:
        engine.tasks.complete(on_agenda["task"]["id"], "chair", {**RECOGNITION, "meeting_date": "2025-11-05"})
    assert "вопрос включен в повестку заседания 05.11.2025" in refused.value.errors["meeting_date"]
    with pytest.raises(InvalidInput) as refused:  # postponed: off the agenda, but dated before it came
        engine.tasks.complete(other["task"]["id"], "chair", {**RECOGNITION, "meeting_date": "2025-10-29"})
    assert "раньше, чем вопрос поступил в комиссию (30.10.2025)" in refused.value.errors["meeting_date"]
    with engine.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Resolution)) == 0
        assert {session.get(HumanTask, c["task"]["id"]).status for c in (on_agenda, other)} == {"open"}
    engine.tasks.complete(other["task"]["id"], "chair", {**RECOGNITION, "meeting_date": "2025-11-05"})
    with engine.db.session() as session:
        assert session.get(HumanTask, other["task"]["id"]).status == "completed"


def test_a_vote_recorded_after_the_fact_needs_the_commissions_quorum(world):
    from sop import handlers

    engine, service = world
    at(engine, "2025-10-30 09:00:00")
    set_up_commission(engine, service)  # six members: four make the quorum
    case = new_case(engine, service, "Петров")
    with engine.db.session() as session:
        task = session.get(HumanTask, case["task"]["id"])

        def check(present: int) -> None:
            context = handlers.Context(service, session, session.get(Case, case["case_id"]), task,
                                       {"present": present, "votes_for": present, "closure_date": "2025-10-30"},
                                       "chair", None)
            handlers._check_where_decided(context, "closure_date")

        with pytest.raises(InvalidInput) as refused:
            check(2)
        assert refused.value.errors["present"] == ("нет кворума: в комиссии 6 членов, на заседании должно "
                                                   "присутствовать не менее 3")
        check(3)
