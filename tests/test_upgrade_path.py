"""Running cases keep working after agency addressing: the demo, run on the diagrams as they were before
(`tests/diagrams/legacy/`), moves to the new versions with `kurator migrate`, and its open tasks reach their
agencies."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from sop.demo import seed
from sop.meetings.models import MeetingItem

from .support import DIAGRAMS, ROOT

LEGACY = DIAGRAMS / "legacy"
PROCESSES = ("sop_case", "emergency_child_safety", "quarterly_reconciliation")


def open_tasks(engine, element: str) -> list[dict]:
    return [t for t in engine.tasks.query() if t["element_id"] == element]


def test_the_demo_on_the_old_diagrams_moves_to_the_new_versions(engine):
    engine.clock.set("2026-11-26T09:00:00+03:00")
    seed(engine, workflows=LEGACY)
    # one case more stands at the old single execution report, offered to every agency specialist
    approval = open_tasks(engine, "sop_programme_approval")[0]
    # it is on the next meeting's agenda: taken off (postponed) to be recorded after the fact from the task
    with engine.db.session() as session:
        item_id = session.scalar(select(MeetingItem.id).where(MeetingItem.task_id == approval["id"],
                                                              MeetingItem.status == "planned"))
    if item_id is not None:
        engine.sop.meetings.postpone(item_id, "Решение принято вне заседания", "secretary")
    engine.tasks.complete(approval["id"], "chair", {"decision": "approve", "protocol_number": "9",
                                                    "approval_date": "2026-11-26"})
    dispatch = open_tasks(engine, "sop_programme_dispatch")[0]
    engine.tasks.complete(dispatch["id"], "secretary", {"programme_sent": True, "programme_sent_date": "2026-11-26"})
    [old_report] = open_tasks(engine, "sop_execution_report")
    assert old_report["agency_id"] is None
    assert all(t["agency_id"] is None for t in engine.tasks.query())

    engine.repository.deploy([*sorted((ROOT / "workflows").glob("*.bpmn")), *sorted((ROOT / "forms").glob("*.json"))],
                             deployed_by="methodologist")
    running = {key: [i["id"] for i in engine.runtime.instances(key, status="running")] for key in PROCESSES}
    for key in PROCESSES:
        plan = engine.migration.plan(key)
        assert sorted(i.instance_id for i in plan.instances) == sorted(running[key])
        blocked = {i.instance_id: i.reasons for i in plan.blocked}
        # only the case standing at the old report waits: its step gained the "reports late" timer
        assert blocked == ({old_report["instance_id"]: [
            "у текущего шага «Отчет об исполнении мероприятий программы» (sop_execution_report) в версии 2 "
            "появилось граничное событие: перенос возможен, когда шаг будет выполнен"]} if key == "sop_case" else {})

    # what `kurator migrate KEY --to 2` does
    for key in PROCESSES:
        result = engine.migration.migrate(key, 2, actor="methodologist", comment="Адресация задач органам")
        expected = len(running[key]) - (1 if key == "sop_case" else 0)
        assert (result["moved"], result["failed"]) == (expected, 0), result
    # the old report is done the old way; then that case moves too
    engine.tasks.complete(old_report["id"], "police", {"report_agency": "ОМВД", "activities_done": "Проведены беседы",
                                                       "report_date": "2026-11-26"})
    result = engine.migration.migrate("sop_case", 2, actor="methodologist", comment="Адресация задач органам")
    assert (result["moved"], result["failed"]) == (1, 0)
    for key in PROCESSES:
        assert {i["version"] for i in engine.runtime.instances(key, status="running")} == {2}

    agencies = {a["name"]: a for a in engine.identity.agencies()}
    guardianship = next(a for a in agencies.values() if a["kind"] == "guardianship")
    [inspection] = open_tasks(engine, "em_inspection")
    assert inspection["agency_id"] == guardianship["id"]
    assert inspection["id"] in [t["id"] for t in engine.tasks.query(user="guardian")]
    reconciliation = open_tasks(engine, "rec_agency")
    assert len(reconciliation) == len({t["agency_id"] for t in reconciliation}) and None not in {
        t["agency_id"] for t in reconciliation}
    assert all(t["name"].endswith(t["agency_name"]) for t in open_tasks(engine, "sop_proposals"))

    # the next round after the curator's summary: one report per agency of the working group
    [summary] = [t for t in open_tasks(engine, "sop_curator_summary") if t["instance_id"] == old_report["instance_id"]]
    assert summary["agency_id"] is None


def test_legacy_diagrams_are_the_previous_release():
    """The fixture is the released diagrams before agency addressing, unchanged: no agency properties."""
    for path in Path(LEGACY).glob("*.bpmn"):
        assert 'name="agency"' not in path.read_text(encoding="utf-8"), path.name
