"""The SOP diagrams of workflows/ with the forms of forms/, driven end to end with a moving clock.

Every due date asserted here is checked against the Russian production calendar by hand: the new-year holidays of
2026 (1-11 January, with 31.12.2025 and 9.01.2026 days off) and of 2027 (31.12.2026 and 1-10 January off).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from engine import InvalidInput, ValidationFailed, task_query
from engine.errors import PermissionDenied

MSK = ZoneInfo("Europe/Moscow")
ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
FORMS = ROOT / "forms"
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
BPMNDI = "{http://www.omg.org/spec/BPMN/20100524/DI}"
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"
ROLES = {"commission_secretary", "commission", "curator", "agency_specialist", "guardianship", "police",
         "social_protection", "regional_secretary"}

# -- valid form data -----------------------------------------------------------------------------------------

CHECK = {"minor_name": "Иванов Петр, 12.03.2012", "parents_names": "Иванова Анна Сергеевна",
         "living_conditions": "Отдельного места для занятий нет", "family_criteria": ["c1", "c2"],
         "danger_level": "high", "sop_confirmed": True, "conclusion": "Семья находится в СОП"}
RECOGNITION = {"decision": "recognize", "meeting_date": "2025-12-23", "resolution_number": "45/3",
               "curator": "curator1", "working_group": ["police", "education"], "consent_obtained": True}
CARD = {"detection_date": "2025-10-29", "detected_by": "МБОУ СОШ № 5", "minor_name": "Иванов Петр, 12.03.2012",
        "parents_names": "Иванова Анна Сергеевна", "parents_characteristic": "incompetent",
        "sop_kind": ["evasion"], "family_category": ["single_parent"], "school": "СОШ № 5, 7 «Б»"}
PROPOSAL = {"agency_name": "ОМВД", "proposal_situation": "Мать злоупотребляет алкоголем",
            "proposal_tasks": "Стабилизировать ситуацию", "proposal_activities": "Профилактическая беседа",
            "proposal_term": "до 01.03.2026"}
DRAFT = {"consilium_conclusion": "Реабилитационный потенциал средний", "goal": "Вывести семью из СОП",
         "programme_activities": "Беседа инспектора ПДН; ежемесячно; ОМВД\n\nПатронаж; еженедельно; КЦСОН\n",
         "patronage_kind": "periodic"}
APPROVE = {"decision": "approve", "protocol_number": "2", "approval_date": "2026-01-15"}
REWORK = {"decision": "rework", "protocol_number": "1", "approval_date": "2026-01-14",
          "comment": "Добавить мероприятия здравоохранения"}
DISPATCH = {"programme_sent": True, "programme_sent_date": "2026-01-15"}
REPORT = {"report_agency": "ОМВД", "activities_done": "Проведены 2 беседы", "report_date": "2026-01-15"}
SUMMARY = {"execution_summary": "Положительная динамика", "curator_proposal": "continue"}
REVIEW_CONTINUE = {"summary": "Программа исполняется", "decision": "continue"}
REVIEW_CLOSE = {"summary": "Обстановка в семье улучшилась", "decision": "close"}
CLOSURE = {"decision": "close", "grounds": "improved", "present": 7, "votes_for": 5, "votes_against": 1,
           "result": "full", "resolution_number": "112/4", "closure_date": "2026-12-28"}
CLOSURE_DISPATCH = {"copies_sent_date": "2027-01-11", "copies_recipients": "ОМВД, СОШ № 5",
                    "minor_notified": True, "parents_notified": True}
INSPECTION = {"visit_date": "2025-12-30", "inspection_findings": "Дети без присмотра, в доме холодно",
              "threat_confirmed": True, "removed": True, "removed_from_all_parents": True,
              "removal_date": "2025-12-30", "placement": "institution"}
FORM_DATA = {
    "em_escalation": {"escalation_measures": "Связались с начальником отдела опеки"},
    "em_removal_act": {"removal_act_number": "7", "removal_act_date": "2025-12-30", "removal_act_signed": True,
                       "placement_details": "СРЦН «Дружба»"},
    "em_prosecutor_notice": {"prosecutor_office": "Прокуратура г. Йошкар-Олы",
                             "prosecutor_notice_date": "2025-12-30"},
    "em_orphan_journal": {"orphan_journal_number": "31", "orphan_journal_date": "2026-01-12"},
    "em_court_claim": {"claim_kind": "deprive", "court_name": "Йошкар-Олинский городской суд",
                       "claim_date": "2026-01-12"},
    "em_inform_commission": {"inform_date": "2026-01-12", "measures_taken": "Ребенок устроен в СРЦН"},
    "em_police_report": {"guardianship_informed": True, "police_measures": "Опека проинформирована",
                         "police_report_date": "2025-12-30"},
    "em_social_inspection": {"social_inspection_date": "2025-12-30", "social_findings": "Семья обследована",
                             "social_report_date": "2025-12-30"},
    "sop_closure_proposal": {"closure_proposal": "Внести вопрос о снятии с учета в связи с совершеннолетием"},
    "rec_agency": {"differences": "", "confirmed": True},
    "rec_resolve": {"resolution_summary": "Расхождений нет", "families_count": 93, "minors_count": 150},
    "rec_send_databank": {"databank_sent_date": "2026-01-30"},
    "rec_regional_receive": {"databank_received_date": "2026-02-02", "databank_accepted": True},
}
AGENCIES = {"Отдел опеки г. Йошкар-Олы": "guardianship", "ОМВД г. Йошкар-Олы": "police",
            "КЦСОН г. Йошкар-Олы": "social_protection"}
USERS = {"commission_secretary": "secretary", "commission": "chair", "curator": "curator1",
         "agency_specialist": "specialist", "guardianship": "guardian", "police": "inspector",
         "social_protection": "social", "regional_secretary": "regional"}


# -- helpers -------------------------------------------------------------------------------------------------

def at(engine, moment: str) -> None:
    """Move the engine clock to a Moscow wall-clock time, e.g. '2026-01-13 00:00:01'."""
    engine.clock.set(datetime.fromisoformat(moment).replace(tzinfo=MSK))


def end_of_day(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=23, minute=59, second=59, tzinfo=MSK)


def due(task) -> datetime:
    return datetime.fromisoformat(task["due"])


def tasks(engine, instance_id) -> dict[str, list[dict]]:
    """Open tasks of an instance by element id."""
    result: dict[str, list[dict]] = {}
    for task in engine.tasks.query(instance_id=instance_id):
        result.setdefault(task["element_id"], []).append(task)
    return result


def task(engine, instance_id, element) -> dict:
    found = tasks(engine, instance_id).get(element, [])
    assert len(found) == 1, (element, sorted(tasks(engine, instance_id)))
    return found[0]


def complete(engine, instance_id, element, data=None, user=None) -> dict:
    """Complete the one open task of `element` as a user of its role (or its assignee)."""
    current = task(engine, instance_id, element)
    if user is None:
        user = current["assignee"] or USERS[current["candidate_roles"][0]]
    return engine.tasks.complete(current["id"], user, data if data is not None else FORM_DATA.get(element, {}))


def specialist_for(engine, task: dict) -> str:
    """A user who may do the task: one of the agency it is addressed to holding a candidate role, or the
    general specialist for a task addressed to no agency."""
    if task["agency_id"] is None:
        return "specialist"
    return next(u.username for u in engine.identity.users() if task_query.is_candidate(task, u))


def report_all(engine, instance_id, data=None) -> None:
    """Every agency of the working group reports on the round, each from its own task."""
    for report in tasks(engine, instance_id)["sop_execution_report"]:
        engine.tasks.complete(report["id"], specialist_for(engine, report), data or REPORT)


def status(engine, instance_id) -> str:
    return engine.runtime.instance(instance_id)["status"]


def start_case(engine, received="2025-10-30", case_id=7) -> int:
    return engine.runtime.start("sop_case", {"case_id": case_id, "intake_id": 100 + case_id, "received": received,
                                             "municipality": "Йошкар-Ола", "family_name": "Ивановы"},
                                business_key=f"case-{case_id}", started_by="secretary")


def to_registration_card(engine, instance_id) -> None:
    complete(engine, instance_id, "sop_check", CHECK)
    at(engine, "2025-12-23 10:00")
    complete(engine, instance_id, "sop_recognition", RECOGNITION)


def to_execution(engine, instance_id) -> None:
    """From the registration card through the approved programme to the first execution report."""
    complete(engine, instance_id, "sop_registration_card", CARD)
    for proposal in tasks(engine, instance_id)["sop_proposals"]:
        engine.tasks.complete(proposal["id"], specialist_for(engine, proposal), PROPOSAL)
    complete(engine, instance_id, "sop_programme_draft", DRAFT)
    complete(engine, instance_id, "sop_programme_approval", APPROVE)
    complete(engine, instance_id, "sop_programme_dispatch", DISPATCH)


def to_first_review(engine, instance_id) -> None:
    report_all(engine, instance_id)
    complete(engine, instance_id, "sop_curator_summary", SUMMARY)
    at(engine, "2026-06-24 09:00")
    assert engine.management.sweep().timers_fired == 1


@pytest.fixture
def sop(engine):
    """The engine with workflows/ and forms/ deployed and one user per role of the diagrams."""
    files = sorted(WORKFLOWS.glob("*.bpmn")) + sorted(FORMS.glob("*.json"))
    result = engine.repository.deploy(files, deployed_by="methodologist")
    assert result.warnings == []
    assert {i.key for i in result.items if i.kind == "process"} == {
        "sop_case", "sop_programme", "emergency_child_safety", "quarterly_reconciliation", "sop_materials",
        "kpi_campaign", "podrostok_campaign"}
    engine.identity.add_agency("КДНиЗП г. Йошкар-Олы", "Йошкар-Ола", kind="commission")
    for name, kind in AGENCIES.items():
        engine.identity.add_agency(name, "Йошкар-Ола", kind=kind)
    by_kind = {kind: name for name, kind in AGENCIES.items()}
    for role, user in USERS.items():
        engine.identity.add_user(user, [role], agency=by_kind.get(role, "КДНиЗП г. Йошкар-Олы"))
    engine.identity.add_user("police_specialist", ["agency_specialist"], agency="ОМВД г. Йошкар-Олы")
    return engine


def test_emergency_tasks_are_addressed_to_the_municipality_agencies_of_their_kind(sop):
    engine = sop
    iid = start_case(engine)
    complete(engine, iid, "sop_check", {**CHECK, "danger_level": "critical"})
    open_now = tasks(engine, iid)
    agencies = {a["name"]: a["id"] for a in engine.identity.agencies()}
    for element, name in (("em_inspection", "Отдел опеки г. Йошкар-Олы"), ("em_police_report", "ОМВД г. Йошкар-Олы"),
                          ("em_social_inspection", "КЦСОН г. Йошкар-Олы")):
        row = open_now[element][0]
        assert (row["agency_id"], row["agency_name"]) == (agencies[name], name), element
    # only that agency's staff are offered it; the role alone is not enough
    engine.identity.add_agency("Отдел опеки Медведевского района", "Медведево", kind="guardianship")
    engine.identity.add_user("guardian_elsewhere", ["guardianship"], agency="Отдел опеки Медведевского района")
    inspection = open_now["em_inspection"][0]["id"]
    assert inspection in [t["id"] for t in engine.tasks.query(user="guardian")]
    assert inspection not in [t["id"] for t in engine.tasks.query(user="guardian_elsewhere")]
    with pytest.raises(PermissionDenied):
        engine.tasks.claim(inspection, "guardian_elsewhere")
    with pytest.raises(PermissionDenied):
        engine.tasks.complete(inspection, "guardian_elsewhere", {"threat_confirmed": False, "removed": False})
    assert engine.tasks.get(inspection)["assignee"] is None


def test_an_emergency_where_the_municipality_has_no_such_agency_goes_to_the_secretary(engine):
    files = sorted(WORKFLOWS.glob("*.bpmn")) + sorted(FORMS.glob("*.json"))
    engine.repository.deploy(files, deployed_by="methodologist")
    engine.identity.add_agency("КДНиЗП г. Йошкар-Олы", "Йошкар-Ола", kind="commission")
    engine.identity.add_user("secretary", ["commission_secretary"], agency="КДНиЗП г. Йошкар-Олы")
    iid = start_case(engine)
    complete(engine, iid, "sop_check", {**CHECK, "danger_level": "critical"})
    inspection = tasks(engine, iid)["em_inspection"][0]
    assert inspection["agency_id"] is None and inspection["candidate_roles"] == ["commission_secretary"]
    created = [e for e in engine.history.for_instance(iid) if e["type"] == "task_created"
               and e["data"]["element"] == "em_inspection"]
    assert created and created[0]["data"]["agency_missing"] is True


# -- static checks of the diagrams and forms -----------------------------------------------------------------

def test_every_user_task_has_a_form_a_role_and_the_diagram_is_fully_drawn():
    forms = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in FORMS.glob("*.json")}
    used_forms = set()
    for path in WORKFLOWS.glob("*.bpmn"):
        tree = etree.parse(str(path))
        processes = tree.findall(f"{BPMN}process")
        assert processes and all(p.get("isExecutable") == "true" for p in processes), path.name
        lanes = tree.findall(f".//{BPMN}lane")
        assert lanes and {lane.get("name") for lane in lanes} <= ROLES, path.name
        drawn = {s.get("bpmnElement") for s in tree.iter(f"{BPMNDI}BPMNShape")}
        edges = {e.get("bpmnElement"): e for e in tree.iter(f"{BPMNDI}BPMNEdge")}
        for element in tree.iter():
            tag = etree.QName(element).localname if isinstance(element.tag, str) else ""
            if tag in ("participant", "lane", "startEvent", "endEvent", "userTask", "scriptTask", "callActivity",
                       "subProcess", "exclusiveGateway", "inclusiveGateway", "parallelGateway",
                       "intermediateCatchEvent", "boundaryEvent"):
                assert element.get("id") in drawn, (path.name, element.get("id"))
            if tag == "sequenceFlow":
                edge = edges[element.get("id")]
                assert len(edge.findall("{http://www.omg.org/spec/DD/20100524/DI}waypoint")) >= 2
            if tag == "userTask":
                # a task's id is its form key, unless that is the key of its process (`sop_materials`): an id is
                # unique in the file, and bpmn-js draws no flow to a task that has its process's id
                key = element.get(f"{CAMUNDA}formKey")
                process = next(p.get("id") for p in processes if element in p.iter())
                assert element.get("id") != process, (path.name, element.get("id"))
                assert key in forms and key in (element.get("id"), process), (path.name, key)
                used_forms.add(key)
                assert any("а" <= ch <= "я" for ch in element.get("name").lower()), element.get("name")
    assert used_forms == set(forms)
    for key, schema in forms.items():
        assert schema["id"] == key and schema["schemaVersion"] == 16 and schema["type"] == "default"
        rows = [c for c in schema["components"] if c["type"] == "dynamiclist"]
        for component in schema["components"] + [row for c in rows for row in c["components"]]:
            assert component["type"] in ("text", "textfield", "textarea", "number", "checkbox", "radio",
                                         "select", "checklist", "datetime", "dynamiclist", "filepicker"),\
                (key, component)
            if component["type"] == "datetime":
                assert component["subtype"] == "date"


# -- (a) a whole case ----------------------------------------------------------------------------------------

def test_full_case_from_check_to_closure(sop):
    engine = sop
    iid = start_case(engine)
    check = task(engine, iid, "sop_check")
    assert check["candidate_roles"] == ["commission_secretary"] and check["form_key"] == "sop_check"
    # 5 working days from 30.10.2025: 1.11 is a working Saturday, 3-4.11 are days off -> 7.11.2025
    assert due(check) == end_of_day("2025-11-07")
    with pytest.raises(InvalidInput) as err:
        engine.tasks.complete(check["id"], "secretary", {**CHECK, "danger_level": None})
    assert "danger_level" in err.value.errors
    complete(engine, iid, "sop_check", CHECK)

    recognition = task(engine, iid, "sop_recognition")
    assert recognition["candidate_roles"] == ["commission"]
    assert due(recognition) == end_of_day("2025-11-14")  # the next meeting: 15 calendar days
    at(engine, "2025-12-23 10:00")
    complete(engine, iid, "sop_recognition", RECOGNITION)

    card = task(engine, iid, "sop_registration_card")
    assert card["assignee"] == "curator1" and card["candidate_roles"] == ["curator"]
    # 5 working days from 23.12.2025 -> 30.12.2025 (31.12.2025 is a day off)
    assert due(card) == end_of_day("2025-12-30")
    complete(engine, iid, "sop_registration_card", CARD)

    # P2: one proposal task per agency of the working group, 7 calendar days from the meeting
    proposals = tasks(engine, iid)["sop_proposals"]
    assert len(proposals) == 2
    assert all(p["candidate_roles"] == ["agency_specialist"] and due(p) == end_of_day("2025-12-30")
               for p in proposals)
    # the police's proposal is addressed to the police (the municipality has no school: that one is not)
    police = next(p for p in proposals if p["agency_name"])
    assert police["name"] == "Предложения в индивидуальную программу — ОМВД г. Йошкар-Олы"
    assert [t["id"] for t in engine.tasks.query(user="police_specialist") if t["element_id"] == "sop_proposals"] \
        == [p["id"] for p in proposals]
    assert [t["id"] for t in engine.tasks.query(user="specialist") if t["element_id"] == "sop_proposals"] \
        == [p["id"] for p in proposals if not p["agency_name"]]
    for number, proposal in enumerate(proposals):
        engine.tasks.complete(proposal["id"], specialist_for(engine, proposal),
                              {**PROPOSAL, "agency_name": f"Орган {number}"})

    draft = task(engine, iid, "sop_programme_draft")
    assert draft["assignee"] == "curator1"
    # 14 calendar days from 23.12.2025 is 6.01.2026, a holiday: moved to 12.01.2026 (1-11.01 are days off)
    assert due(draft) == end_of_day("2026-01-12")
    at(engine, "2026-01-12 23:59")
    assert engine.management.sweep().overdue_marked == 0
    at(engine, "2026-01-13 00:00:01")
    assert engine.management.sweep().overdue_marked == 1
    assert [t["element_id"] for t in engine.tasks.query(overdue=True)] == ["sop_programme_draft"]
    complete(engine, iid, "sop_programme_draft", DRAFT)

    complete(engine, iid, "sop_programme_approval", REWORK)
    again = task(engine, iid, "sop_programme_draft")
    assert again["id"] != draft["id"] and again["assignee"] == "curator1" and again["overdue"] is False
    assert due(again) == end_of_day("2026-01-12")  # the deadline runs from recognition, not from the rework
    complete(engine, iid, "sop_programme_draft", DRAFT)
    approval = task(engine, iid, "sop_programme_approval")
    assert approval["candidate_roles"] == ["commission"]
    assert due(approval) == end_of_day("2026-01-28")  # 15 calendar days from 13.01.2026
    complete(engine, iid, "sop_programme_approval", APPROVE)

    dispatch = task(engine, iid, "sop_programme_dispatch")
    assert dispatch["candidate_roles"] == ["commission_secretary"]
    assert due(dispatch) == end_of_day("2026-01-20")  # 5 calendar days from 15.01.2026
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    variables = engine.runtime.instance(iid)["variables"]
    assert sorted(variables["proposals"]) == ["education", "police"]
    assert variables["programme_version"] == 1 and variables["programme_protocol"] == "2"
    assert variables["programme_activity_list"] == ["Беседа инспектора ПДН; ежемесячно; ОМВД",
                                                    "Патронаж; еженедельно; КЦСОН"]

    # P3: one execution round, then the six-month review (6 months from recognition: 23.06.2026)
    reports = tasks(engine, iid)["sop_execution_report"]  # one per agency of the working group
    assert len(reports) == 2 and all(r["candidate_roles"] == ["agency_specialist"] for r in reports)
    assert all(due(r) == end_of_day("2026-02-12") for r in reports)  # 30 calendar days from 13.01.2026
    assert "Отчет об исполнении мероприятий программы — ОМВД г. Йошкар-Олы" in [r["name"] for r in reports]
    report_all(engine, iid)
    assert task(engine, iid, "sop_curator_summary")["assignee"] == "curator1"
    complete(engine, iid, "sop_curator_summary", SUMMARY)
    assert tasks(engine, iid) == {}
    info = engine.runtime.instance(iid)
    assert datetime.fromisoformat(info["next_wakeup"]) == end_of_day("2026-06-23")
    at(engine, "2026-06-23 23:00")
    assert engine.management.sweep().timers_fired == 0
    at(engine, "2026-06-24 09:00")
    assert engine.management.sweep().timers_fired == 1
    review = task(engine, iid, "sop_review")
    assert review["candidate_roles"] == ["commission_secretary"]
    assert due(review) == end_of_day("2026-07-09")  # the next meeting: without a schedule 15 CD from 24.06.2026
    complete(engine, iid, "sop_review", REVIEW_CONTINUE)

    # continue: another execution round, the next review 6 months after this one (24.12.2026)
    report_all(engine, iid)
    complete(engine, iid, "sop_curator_summary", SUMMARY)
    assert datetime.fromisoformat(engine.runtime.instance(iid)["next_wakeup"]) == end_of_day("2026-12-24")
    at(engine, "2026-12-25 09:00")
    assert engine.management.sweep().timers_fired == 1
    complete(engine, iid, "sop_review", REVIEW_CLOSE)

    # P6: closure by a majority of those present
    closure = task(engine, iid, "sop_closure_decision")
    assert closure["candidate_roles"] == ["commission"]
    assert due(closure) == end_of_day("2027-01-11")  # 15 calendar days from 25.12.2026 is 9.01.2027, a day off
    complete(engine, iid, "sop_closure_decision", CLOSURE)
    closure_dispatch = task(engine, iid, "sop_closure_dispatch")
    # 10 working days from 28.12.2026: 29-30.12, then 31.12.2026 and 1-10.01.2027 are days off -> 20.01.2027
    assert due(closure_dispatch) == end_of_day("2027-01-20")
    at(engine, "2027-01-11 10:00")
    complete(engine, iid, "sop_closure_dispatch", CLOSURE_DISPATCH)

    info = engine.runtime.instance(iid)
    assert info["status"] == "completed" and info["open_tasks"] == []
    assert {"case_closed", "sop_closure_dispatch", "case_review_due"} <= set(info["completed_elements"])
    assert "case_not_confirmed" not in info["completed_elements"]
    assert info["variables"]["review_round"] == 2 and info["variables"]["last_review"] == "2026-12-25"


def test_closure_without_majority_and_a_corrected_programme(sop):
    engine = sop
    iid = start_case(engine)
    to_registration_card(engine, iid)
    to_execution(engine, iid)
    to_first_review(engine, iid)
    complete(engine, iid, "sop_review", {**REVIEW_CONTINUE, "correct_programme": True})
    # correction: no new proposals, the curator redrafts within 14 calendar days of the review (8.07.2026)
    assert "sop_proposals" not in tasks(engine, iid)
    draft = task(engine, iid, "sop_programme_draft")
    assert due(draft) == end_of_day("2026-07-08") and draft["assignee"] == "curator1"
    complete(engine, iid, "sop_programme_draft", DRAFT)
    complete(engine, iid, "sop_programme_approval", {**APPROVE, "approval_date": "2026-07-07"})
    complete(engine, iid, "sop_programme_dispatch", DISPATCH)
    assert engine.runtime.instance(iid)["variables"]["programme_version"] == 2
    report_all(engine, iid)
    complete(engine, iid, "sop_curator_summary", SUMMARY)
    at(engine, "2026-12-25 09:00")
    engine.management.sweep()
    complete(engine, iid, "sop_review", REVIEW_CLOSE)
    # 3 of 7 present is not a majority: the work goes on
    complete(engine, iid, "sop_closure_decision", {**CLOSURE, "votes_for": 3, "votes_against": 3})
    assert sorted(tasks(engine, iid)) == ["sop_execution_report"]
    assert status(engine, iid) == "running"


def test_an_agency_that_does_not_report_is_left_out_after_the_grace_period(sop):
    engine = sop
    iid = start_case(engine)
    to_registration_card(engine, iid)
    at(engine, "2026-01-13 10:00")
    to_execution(engine, iid)
    reports = tasks(engine, iid)["sop_execution_report"]
    police = next(r for r in reports if r["agency_name"] == "ОМВД г. Йошкар-Олы")
    engine.tasks.complete(police["id"], "police_specialist", REPORT)
    assert "sop_curator_summary" not in tasks(engine, iid)  # the school has not reported yet
    # the reports were due on 12.02.2026; 5 working days later (19.02.2026) the curator goes on without the school
    at(engine, "2026-02-19 23:00")
    assert engine.management.sweep().timers_fired == 0
    at(engine, "2026-02-20 09:00")
    assert engine.management.sweep().timers_fired == 1
    assert sorted(tasks(engine, iid)) == ["sop_curator_summary"]
    cancelled = [e for e in engine.history.for_instance(iid) if e["type"] == "task_cancelled"]
    assert [e["task_id"] for e in cancelled] == [next(r["id"] for r in reports if r["id"] != police["id"])]


# -- (b) a signal that is not confirmed, a case that is not recognised ---------------------------------------

def test_unconfirmed_signal_ends_the_case(sop):
    engine = sop
    iid = start_case(engine)
    complete(engine, iid, "sop_check", {**CHECK, "danger_level": "low", "sop_confirmed": False})
    info = engine.runtime.instance(iid)
    assert info["status"] == "completed" and tasks(engine, iid) == {}
    assert "case_not_confirmed" in info["completed_elements"]
    assert "sop_recognition" not in info["completed_elements"]


def test_commission_refuses_recognition(sop):
    engine = sop
    iid = start_case(engine)
    complete(engine, iid, "sop_check", CHECK)
    complete(engine, iid, "sop_recognition", {"decision": "reject", "meeting_date": "2025-11-06",
                                              "resolution_number": "40/1"})
    info = engine.runtime.instance(iid)
    assert info["status"] == "completed" and "case_not_recognized" in info["completed_elements"]


def test_card_goes_to_every_curator_when_none_is_named(sop):
    engine = sop
    iid = start_case(engine)
    complete(engine, iid, "sop_check", CHECK)
    complete(engine, iid, "sop_recognition", {k: v for k, v in RECOGNITION.items() if k != "curator"})
    card = task(engine, iid, "sop_registration_card")
    assert card["assignee"] is None and card["candidate_roles"] == ["curator"]
    assert [t["id"] for t in engine.tasks.query(user="curator1")] == [card["id"]]


# -- (c) a critical check opens the emergency path ------------------------------------------------------------

def test_critical_check_removal_from_both_parents(sop):
    engine = sop
    at(engine, "2025-12-29 09:00")
    iid = start_case(engine, received="2025-12-29")
    complete(engine, iid, "sop_check", {**CHECK, "danger_level": "critical"})
    open_now = tasks(engine, iid)
    assert sorted(open_now) == ["em_inspection", "em_police_report", "em_social_inspection", "sop_recognition"]
    inspection = open_now["em_inspection"][0]
    assert inspection["candidate_roles"] == ["guardianship"] and inspection["form_key"] == "em_inspection"
    assert due(inspection) == datetime(2025, 12, 29, 13, 0, tzinfo=MSK)  # immediately: now + 4 hours
    assert open_now["em_police_report"][0]["candidate_roles"] == ["police"]
    assert open_now["em_social_inspection"][0]["candidate_roles"] == ["social_protection"]
    # 3 working days from 29.12.2025: 30.12, then 31.12.2025-11.01.2026 are days off -> 13.01.2026
    assert due(open_now["em_police_report"][0]) == end_of_day("2026-01-13")

    # nobody went within 4 hours: the inspection is overdue and the secretary gets an escalation
    at(engine, "2025-12-29 13:00:01")
    result = engine.management.sweep()
    assert result.timers_fired == 1 and result.overdue_marked == 1
    escalation = task(engine, iid, "em_escalation")
    assert escalation["name"] == "Незамедлительный выезд просрочен"
    assert escalation["candidate_roles"] == ["commission_secretary"]
    assert task(engine, iid, "em_inspection")["overdue"] is True
    complete(engine, iid, "em_escalation")

    at(engine, "2025-12-30 10:00")
    complete(engine, iid, "em_inspection", INSPECTION)
    open_now = tasks(engine, iid)
    assert {"em_removal_act", "em_prosecutor_notice", "em_orphan_journal", "em_court_claim"} <= set(open_now)
    assert due(open_now["em_removal_act"][0]) == datetime(2025, 12, 30, 14, 0, tzinfo=MSK)
    assert due(open_now["em_prosecutor_notice"][0]) == datetime(2025, 12, 30, 14, 0, tzinfo=MSK)
    # removal on 30.12.2025: 3 working days -> 14.01.2026; 7 calendar days -> 6.01.2026, a holiday -> 12.01.2026
    assert due(open_now["em_orphan_journal"][0]) == end_of_day("2026-01-14")
    assert due(open_now["em_court_claim"][0]) == end_of_day("2026-01-12")
    assert "em_inform_commission" not in open_now  # after the measures

    complete(engine, iid, "em_removal_act")
    assert "em_inform_commission" not in tasks(engine, iid)
    complete(engine, iid, "em_prosecutor_notice")
    # the commission is informed after the immediate measures, without waiting for the journal and the claim
    inform = task(engine, iid, "em_inform_commission")
    assert inform["candidate_roles"] == ["guardianship"]
    assert due(inform) == end_of_day("2026-01-13")  # 3 working days from receipt (29.12.2025)
    assert {"em_orphan_journal", "em_court_claim"} <= set(tasks(engine, iid))
    for element in ("em_inform_commission", "em_orphan_journal", "em_court_claim", "em_police_report",
                    "em_social_inspection"):
        complete(engine, iid, element)
    # the emergency is over; the case itself waits for the commission's decision
    assert sorted(tasks(engine, iid)) == ["sop_recognition"]
    assert status(engine, iid) == "running"


def test_emergency_without_removal_started_on_its_own(sop):
    engine = sop
    iid = engine.runtime.start("emergency_child_safety", {"case_id": None, "intake_id": 5, "received": "2025-10-30",
                                                         "municipality": "Йошкар-Ола", "family_name": "Петровы"})
    inspection = task(engine, iid, "em_inspection")
    assert due(inspection) == datetime(2025, 10, 30, 13, 0, tzinfo=MSK)
    complete(engine, iid, "em_inspection", {"visit_date": "2025-10-30", "inspection_findings": "Угрозы нет",
                                            "other_violations": True})
    inform = task(engine, iid, "em_inform_commission")
    # 3 working days from 30.10.2025: 31.10, 1.11 (a working Saturday), 5.11 (3-4.11 are days off)
    assert due(inform) == end_of_day("2025-11-05")
    for element in ("em_inform_commission", "em_police_report", "em_social_inspection"):
        complete(engine, iid, element)
    info = engine.runtime.instance(iid)
    assert info["status"] == "completed"
    assert "em_removal_act" not in info["completed_elements"] and "em_escalation" not in info["completed_elements"]


# -- (d) a threat to life in the middle of an open case -------------------------------------------------------

def test_threat_signal_runs_beside_the_open_case(sop):
    engine = sop
    iid = start_case(engine)
    to_registration_card(engine, iid)
    card = task(engine, iid, "sop_registration_card")
    at(engine, "2025-12-24 15:30")
    receivers = engine.runtime.send_signal("threat_to_life", {"reported_by": "police"}, business_key="case-7",
                                           actor="inspector")
    assert receivers == [iid]
    open_now = tasks(engine, iid)
    assert sorted(open_now) == ["em_inspection", "em_police_report", "em_social_inspection",
                                "sop_registration_card"]
    assert open_now["sop_registration_card"][0]["id"] == card["id"]  # the case's own task stays open
    assert due(open_now["em_inspection"][0]) == datetime(2025, 12, 24, 19, 30, tzinfo=MSK)
    # deadlines of the emergency count from the day of the signal, not from the case's intake
    assert due(open_now["em_police_report"][0]) == end_of_day("2025-12-29")
    # the case goes on while the emergency is open
    complete(engine, iid, "sop_registration_card", CARD)
    assert len(tasks(engine, iid)["sop_proposals"]) == 2
    assert "em_inspection" in tasks(engine, iid)
    types = [e["type"] for e in engine.history.for_instance(iid)]
    assert "signal_received" in types and "task_cancelled" not in types


def test_threat_signal_while_the_programme_is_drafted(sop):
    engine = sop
    iid = start_case(engine)
    to_registration_card(engine, iid)
    complete(engine, iid, "sop_registration_card", CARD)
    for proposal in tasks(engine, iid)["sop_proposals"]:
        engine.tasks.complete(proposal["id"], specialist_for(engine, proposal), PROPOSAL)
    draft = task(engine, iid, "sop_programme_draft")  # inside the called process sop_programme
    assert engine.runtime.send_signal("threat_to_life", {}, instance_id=iid) == [iid]
    assert engine.runtime.send_signal("threat_to_life", {}, instance_id=iid) == [iid]  # a second report
    open_now = tasks(engine, iid)
    assert len(open_now["em_inspection"]) == 2 and open_now["sop_programme_draft"][0]["id"] == draft["id"]
    complete(engine, iid, "sop_programme_draft", DRAFT)
    assert "sop_programme_approval" in tasks(engine, iid)


# -- (e) the minor turns 18 --------------------------------------------------------------------------------

def test_minor_turning_18_opens_a_closure_proposal(sop):
    engine = sop
    iid = start_case(engine)
    to_registration_card(engine, iid)
    to_execution(engine, iid)
    at(engine, "2026-01-17 11:00")  # a Saturday
    assert engine.runtime.correlate_message("minor_turned_18", {"person_id": 3}, business_key="case-7") == [iid]
    proposal = task(engine, iid, "sop_closure_proposal")
    assert proposal["name"] == "Предложить снятие с учета (достижение 18 лет)"
    assert proposal["candidate_roles"] == ["commission_secretary"]
    assert due(proposal) == end_of_day("2026-01-19")  # "today" rolled forward to Monday
    assert "sop_execution_report" in tasks(engine, iid)  # non-interrupting
    complete(engine, iid, "sop_closure_proposal")
    assert sorted(tasks(engine, iid)) == ["sop_execution_report"]
    assert status(engine, iid) == "running"


# -- (f) quarterly reconciliation -----------------------------------------------------------------------------

def test_quarterly_reconciliation_with_two_agencies(sop):
    engine = sop
    at(engine, "2026-01-01 00:05")
    school_id = engine.identity.add_agency("МБОУ СОШ № 5", "Йошкар-Ола", kind="education")
    engine.identity.add_user("school_specialist", ["agency_specialist"], agency="МБОУ СОШ № 5")
    police_id = next(a["id"] for a in engine.identity.agencies() if a["name"] == "ОМВД г. Йошкар-Олы")
    agencies = [{"id": police_id, "name": "ОМВД г. Йошкар-Олы"}, {"id": school_id, "name": "МБОУ СОШ № 5"}]
    iid = engine.runtime.start("quarterly_reconciliation", {"quarter": "2026-Q1", "quarter_start": "2026-01-01",
                                                           "agencies": agencies, "municipality": "Йошкар-Ола"})
    rounds = tasks(engine, iid)["rec_agency"]
    assert len(rounds) == 2
    # 10 working days from 1.01.2026 (1-11.01 are days off): 12-16 and 19-23 January
    assert all(due(t) == end_of_day("2026-01-23") and t["candidate_roles"] == ["agency_specialist"]
               for t in rounds)
    # one task per agency, named for it and offered to its staff only
    assert sorted(t["name"] for t in rounds) == ["Сверка списков СОП с КДНиЗП — МБОУ СОШ № 5",
                                                 "Сверка списков СОП с КДНиЗП — ОМВД г. Йошкар-Олы"]
    police_round = next(t for t in rounds if t["agency_id"] == police_id)
    school_round = next(t for t in rounds if t["agency_id"] == school_id)
    assert [t["id"] for t in engine.tasks.query(user="police_specialist")] == [police_round["id"]]
    assert [t["id"] for t in engine.tasks.query(user="school_specialist")] == [school_round["id"]]
    assert engine.tasks.query(user="specialist") == []  # the commission's specialist is no agency of the round
    with pytest.raises(PermissionDenied):
        engine.tasks.complete(police_round["id"], "school_specialist", FORM_DATA["rec_agency"])
    engine.tasks.complete(police_round["id"], "police_specialist", {
        "differences": "Разные даты постановки", "missing_in_agency": "Сидоров И.", "confirmed": False})
    assert "rec_resolve" not in tasks(engine, iid)
    engine.tasks.complete(school_round["id"], "school_specialist", FORM_DATA["rec_agency"])
    resolve = task(engine, iid, "rec_resolve")
    assert due(resolve) == end_of_day("2026-01-30") and resolve["candidate_roles"] == ["commission_secretary"]
    complete(engine, iid, "rec_resolve")
    assert due(task(engine, iid, "rec_send_databank")) == end_of_day("2026-02-06")
    complete(engine, iid, "rec_send_databank")
    assert task(engine, iid, "rec_regional_receive")["candidate_roles"] == ["regional_secretary"]
    complete(engine, iid, "rec_regional_receive")
    info = engine.runtime.instance(iid)
    assert info["status"] == "completed"
    results = info["variables"]["reconciliation"]
    assert sorted(results) == sorted([str(police_id), str(school_id)])
    assert {r["confirmed"] for r in results.values()} == {True, False}
    assert {r["agency"] for r in results.values()} == {a["name"] for a in agencies}


def test_a_request_for_materials_started_when_its_task_had_the_process_id_still_runs(engine, monkeypatch):
    """Version 1 of `sop_materials` gave its task the id of the process (`sop_materials`: bpmn-js could not draw
    the diagram), which deploying now refuses. Its running requests stay on it and are answered there; the task
    has its own id (`materials_reply`) from the next version on."""
    from engine.bpmn import validation

    current = (WORKFLOWS / "sop_materials.bpmn").read_text(encoding="utf-8")
    assert 'id="materials_reply"' in current and 'userTask id="sop_materials"' not in current
    first = current.replace("materials_reply", "sop_materials")
    with pytest.raises(ValidationFailed):
        engine.repository.deploy([("sop_materials.bpmn", first), FORMS / "sop_materials.json"])
    with monkeypatch.context() as patched:  # deployed before the rule
        patched.setattr(validation, "check_specs", lambda *args, **kwargs: None)
        engine.repository.deploy([("sop_materials.bpmn", first), FORMS / "sop_materials.json"])
    engine.identity.add_agency("МБОУ СОШ № 5", "Йошкар-Ола", kind="education")
    engine.identity.add_user("school", ["agency_specialist"], agency="МБОУ СОШ № 5")
    agency = engine.identity.agencies()[0]["id"]
    variables = {"agency_id": agency, "due_on": "2026-03-05T23:59:59+03:00", "materials_question": "Характеристика"}
    old = [engine.runtime.start("sop_materials", variables) for _ in range(2)]
    assert engine.repository.deploy([("sop_materials.bpmn", current)]).items[0].version == 2
    [task] = engine.tasks.query(instance_id=old[0])
    assert task["element_id"] == "sop_materials"
    engine.tasks.complete(task["id"], "school", {"materials_answer": "Характеристика приложена",
                                                "materials_date": "2026-03-03", "materials_specialist": "Иванова"})
    assert engine.runtime.instance(old[0])["status"] == "completed"
    new = engine.runtime.start("sop_materials", variables)
    assert [t["element_id"] for t in engine.tasks.query(instance_id=new)] == ["materials_reply"]
    # the other one may be moved to the new version: its open task is the same step under its new id
    [moving] = engine.migration.plan("sop_materials").instances
    assert (moving.instance_id, moving.movable) == (old[1], True)
    engine.migration.migrate("sop_materials", actor="methodologist")
    [task] = engine.tasks.query(instance_id=old[1])
    assert (engine.runtime.instance(old[1])["version"], task["element_id"]) == (2, "materials_reply")
    engine.tasks.complete(task["id"], "school", {"materials_answer": "Сведений нет", "materials_date": "2026-03-03",
                                                 "materials_specialist": "Иванова"})
    assert engine.runtime.instance(old[1])["status"] == "completed"
