"""Migration of running instances between versions: the dry run's verdicts and reasons, batches, reverts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine import Conflict, InvalidInput, NotFound
from engine.cli import Context, main
from engine.models import HumanTask, InstanceMigration, ProcessInstance

from .support import DIAGRAMS, another_transaction_waits_for_a_lock, in_another_thread, new_engine, postgres_url

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
KEY = "migration_demo"


@pytest.fixture
def mig(engine):
    """Version 1 deployed (intake → check → decide) and users to work the tasks."""
    engine.identity.add_agency("КДН", "Йошкар-Ола", kind="commission")
    engine.identity.add_user("secretary", ["commission_secretary"], agency="КДН")
    engine.identity.add_user("chair", ["commission"], agency="КДН")
    engine.repository.deploy([DIAGRAMS / "migration_v1.bpmn"], deployed_by="method")
    return engine


def deploy_v2(engine):
    engine.repository.deploy([DIAGRAMS / "migration_v2.bpmn"], deployed_by="method", comment="без проверки")


def open_tasks(engine, instance_id) -> list[dict]:
    return engine.tasks.query(instance_id=instance_id)


def work(engine, instance_id, steps: int) -> None:
    """Complete the instance's open task `steps` times."""
    for _ in range(steps):
        task = open_tasks(engine, instance_id)[0]
        user = "chair" if "commission" in task["candidate_roles"] else "secretary"
        engine.tasks.complete(task["id"], user, {})


def version_of(engine, instance_id) -> int:
    return engine.runtime.instance(instance_id)["version"]


def test_plan_reports_each_instance_with_reasons(mig):
    at_intake = mig.runtime.start(KEY, {}, business_key="A")
    at_check = mig.runtime.start(KEY, {}, business_key="B")
    work(mig, at_check, 1)
    at_decide = mig.runtime.start(KEY, {}, business_key="C")
    work(mig, at_decide, 2)
    deploy_v2(mig)

    plan = mig.migration.plan(KEY)
    by_id = {i.instance_id: i for i in plan.instances}
    assert plan.target_version == 2 and len(plan.instances) == 3
    assert by_id[at_intake].movable and by_id[at_intake].reasons == []
    assert "предстоящий шаг «Проверка» (check) удален" in by_id[at_intake].changes
    assert "новый шаг «Уведомление семьи» (notify)" in by_id[at_intake].changes
    assert not by_id[at_check].movable
    assert by_id[at_check].reasons == ["текущий шаг «Проверка» (check) удален в версии 2"]
    assert not by_id[at_decide].movable
    assert by_id[at_decide].reasons == ["выполненный шаг «Проверка» (check) удален в версии 2"]
    assert by_id[at_intake].stage == [{"element": "intake", "name": "Прием"}]
    assert by_id[at_check].business_key == "B" and by_id[at_check].version == 1
    # the dry run stores nothing
    assert version_of(mig, at_intake) == 1
    with mig.db.session() as s:
        assert s.scalar(select(func.count()).select_from(InstanceMigration)) == 0

    # filters: by stage, by explicit ids, by source version
    assert [i.instance_id for i in mig.migration.plan(KEY, stages=["check"]).instances] == [at_check]
    assert [i.instance_id for i in mig.migration.plan(KEY, instance_ids=[at_decide]).instances] == [at_decide]
    assert mig.migration.plan(KEY, 2, from_versions=[2]).instances == []
    data = plan.to_dict()
    assert (data["total"], data["movable"], data["blocked"]) == (3, 1, 2)


def test_plan_of_unknown_version_is_a_clear_error(mig):
    with pytest.raises(NotFound, match="версия 7"):
        mig.migration.plan(KEY, 7)


def test_batch_of_a_thousand_moves_the_movable_and_reports_the_rest(mig):
    began = time.perf_counter()
    ids = [mig.runtime.start(KEY, {}, business_key=f"case-{n}") for n in range(1000)]
    blocked = set(ids[::10])  # every tenth instance has completed "check", which version 2 removes
    for instance_id in blocked:
        work(mig, instance_id, 2)
    created = time.perf_counter() - began
    deploy_v2(mig)

    began = time.perf_counter()
    plan = mig.migration.plan(KEY)
    planned = time.perf_counter() - began
    assert {i.instance_id for i in plan.blocked} == blocked
    assert all(i.reasons == ["выполненный шаг «Проверка» (check) удален в версии 2"] for i in plan.blocked)

    began = time.perf_counter()
    batch_id = mig.migration.start_batch(plan, actor="method", comment="переход на версию 2")
    progress = mig.migration.run_batch(batch_id, limit=250)
    assert (progress["done"], progress["moved"], progress["status"]) == (250, 250, "running")
    while progress["status"] == "running":
        progress = mig.migration.run_batch(batch_id, limit=250)
    migrated = time.perf_counter() - began
    print(f"\n1,000 instances: created in {created:.1f} s, planned in {planned:.1f} s, migrated in {migrated:.1f} s")
    assert (progress["total"], progress["done"], progress["moved"], progress["failed"]) == (900, 900, 900, 0)

    with mig.db.session() as s:
        versions = dict(s.execute(select(ProcessInstance.id, ProcessInstance.definition_id)).all())
        v1, v2 = mig.repository.definition(KEY, 1).id, mig.repository.definition(KEY, 2).id
        assert {i for i, d in versions.items() if d == v1} == blocked
        assert {i for i, d in versions.items() if d == v2} == set(ids) - blocked
        assert s.scalar(select(func.count()).select_from(InstanceMigration)
                        .where(InstanceMigration.status == "moved")) == 900
    # a moved instance: same inbox task, history names the batch, and it runs on version 2 afterwards
    moved = ids[1]
    events = mig.history.for_instance(moved)
    migrated_event = [e for e in events if e["type"] == "instance_migrated"][0]
    assert migrated_event["data"]["from"] == {"key": KEY, "version": 1}
    assert migrated_event["data"]["to"] == {"key": KEY, "version": 2}
    assert migrated_event["data"]["batch_id"] == batch_id and migrated_event["actor"] == "method"
    assert [t["name"] for t in open_tasks(mig, moved)] == ["Прием"]
    work(mig, moved, 1)
    assert [t["name"] for t in open_tasks(mig, moved)] == ["Решение"]  # "check" is gone in version 2
    work(mig, moved, 1)
    assert [t["name"] for t in open_tasks(mig, moved)] == ["Уведомление семьи"]  # new in version 2
    # the blocked ones were never put in the batch and are untouched
    assert version_of(mig, ids[0]) == 1
    assert mig.migration.batch(batch_id)["items"][0]["status"] == "moved"


def test_instance_changed_after_the_dry_run_is_planned_again(mig):
    first = mig.runtime.start(KEY, {})
    second = mig.runtime.start(KEY, {})
    deploy_v2(mig)
    plan = mig.migration.plan(KEY)
    assert len(plan.movable) == 2
    work(mig, second, 1)  # now on "check", which version 2 removed
    batch_id = mig.migration.start_batch(plan, actor="method")
    result = mig.migration.run_batch(batch_id)
    assert (result["moved"], result["failed"], result["status"]) == (1, 1, "done")
    items = {i["instance_id"]: i for i in mig.migration.batch(batch_id)["items"]}
    assert items[first]["status"] == "moved" and items[first]["revertable"]
    assert items[second]["status"] == "failed"
    assert items[second]["reason"] == "текущий шаг «Проверка» (check) удален в версии 2"
    assert version_of(mig, second) == 1
    # running the finished batch again changes nothing
    assert mig.migration.run_batch(batch_id)["done"] == 2


def test_revert_restores_version_state_and_tasks(mig):
    instance_id = mig.runtime.start(KEY, {})
    task_before = open_tasks(mig, instance_id)[0]
    mig.tasks.claim(task_before["id"], "secretary")
    with mig.db.session() as s:
        state_before = s.get(ProcessInstance, instance_id).state
    deploy_v2(mig)
    batch = mig.migration.migrate(KEY, actor="method")
    assert (batch["moved"], batch["failed"]) == (1, 0)
    migration = mig.migration.migrations(instance_id)[0]
    assert (migration["from_version"], migration["to_version"], migration["revertable"]) == (1, 2, True)
    assert open_tasks(mig, instance_id)[0]["id"] == task_before["id"]
    assert open_tasks(mig, instance_id)[0]["assignee"] == "secretary"  # the claim is kept

    result = mig.migration.revert(migration["id"], actor="method")
    assert result == {"migration_id": migration["id"], "instance_id": instance_id, "version": 1,
                      "status": "reverted"}
    assert version_of(mig, instance_id) == 1
    with mig.db.session() as s:
        assert s.get(ProcessInstance, instance_id).state == state_before
    after = open_tasks(mig, instance_id)
    assert [(t["id"], t["assignee"], t["due"]) for t in after] == [(task_before["id"], "secretary",
                                                                    task_before["due"])]
    types = [e["type"] for e in mig.history.for_instance(instance_id)]
    assert types.count("instance_migrated") == 1 and types[-1] == "migration_reverted"
    # version 1 goes on: "check" is back
    work(mig, instance_id, 1)
    assert [t["name"] for t in open_tasks(mig, instance_id)] == ["Проверка"]
    # a second revert is refused
    with pytest.raises(Conflict, match="уже отменен"):
        mig.migration.revert(migration["id"], actor="method")
    assert mig.migration.migrations(instance_id)[0]["status"] == "reverted"


def test_revert_refused_after_a_further_change(mig):
    instance_id = mig.runtime.start(KEY, {})
    deploy_v2(mig)
    mig.migration.migrate(KEY, actor="method")
    migration = mig.migration.migrations(instance_id)[0]
    work(mig, instance_id, 1)  # "intake" done on version 2
    assert mig.migration.migrations(instance_id)[0]["revertable"] is False
    with pytest.raises(Conflict, match="уже что-то произошло"):
        mig.migration.revert(migration["id"], actor="method")
    assert version_of(mig, instance_id) == 2
    with pytest.raises(NotFound, match="не найден"):
        mig.migration.revert(99999)


def test_revert_of_a_failed_attempt_is_refused(mig):
    instance_id = mig.runtime.start(KEY, {})
    deploy_v2(mig)
    plan = mig.migration.plan(KEY)
    work(mig, instance_id, 1)
    batch_id = mig.migration.start_batch(plan, actor="method")
    mig.migration.run_batch(batch_id)
    failed = mig.migration.migrations(instance_id)[0]
    assert failed["status"] == "failed" and failed["revertable"] is False
    with pytest.raises(InvalidInput, match="не был перенесен"):
        mig.migration.revert(failed["id"])


def test_nothing_movable_is_refused(mig):
    instance_id = mig.runtime.start(KEY, {})
    work(mig, instance_id, 1)
    deploy_v2(mig)
    with pytest.raises(InvalidInput, match="Нет экземпляров"):
        mig.migration.start_batch(KEY, actor="method")


def _a_batch_of_one(engine) -> tuple[int, int]:
    """An instance of version 1 at "intake", version 2 deployed and a batch started to move it: their ids."""
    instance_id = engine.runtime.start(KEY, {})
    deploy_v2(engine)
    return instance_id, engine.migration.start_batch(KEY, actor="method")


def test_concurrent_change_during_a_move_is_retried_then_judged(mig, monkeypatch):
    """SQLite: a change that lands between the load and the save of a move: the revision check refuses the save,
    the instance is planned again on its new state. (PostgreSQL locks the instance for the move: the next test.)"""
    if mig.db.is_postgresql:
        pytest.skip("PostgreSQL locks the instance for a move: test_a_change_during_a_move_waits_for_it")
    instance_id, batch_id = _a_batch_of_one(mig)
    service = mig.migration
    original = service._assess
    calls = []

    def meddle(workflow, target):
        result = original(workflow, target)
        if not calls:
            calls.append(1)
            work(mig, instance_id, 1)  # someone completes "intake" meanwhile: the instance is now on "check"
        return result

    monkeypatch.setattr(service, "_assess", meddle)
    progress = service.run_batch(batch_id)
    assert (progress["moved"], progress["failed"]) == (0, 1)
    record = service.migrations(instance_id)[0]
    assert record["reason"] == "текущий шаг «Проверка» (check) удален в версии 2"
    assert version_of(mig, instance_id) == 1
    assert [t["name"] for t in open_tasks(mig, instance_id)] == ["Проверка"]
    assert "conflict_rejected" in [e["type"] for e in mig.history.for_instance(instance_id)]


def test_a_change_during_a_move_waits_for_it_and_goes_on_in_the_new_version(mig, monkeypatch):
    """PostgreSQL: a person's completion that comes while a move holds the instance waits for the move to commit,
    then completes the task in the version the instance was moved to; neither is refused."""
    if not mig.db.is_postgresql:
        pytest.skip("SQLite has no row locks: test_concurrent_change_during_a_move_is_retried_then_judged")
    instance_id, batch_id = _a_batch_of_one(mig)
    service = mig.migration
    original = service._assess
    meddling = {}

    def meddle(workflow, target):
        if not meddling:  # someone completes "intake" while the move has the instance loaded
            meddling["thread"], meddling["outcome"] = in_another_thread(lambda: work(mig, instance_id, 1))
            assert another_transaction_waits_for_a_lock(mig)
        return original(workflow, target)

    monkeypatch.setattr(service, "_assess", meddle)
    progress = service.run_batch(batch_id)
    meddling["thread"].join(30)
    assert not meddling["thread"].is_alive() and meddling["outcome"] == {"result": None}
    assert (progress["moved"], progress["failed"]) == (1, 0)
    assert version_of(mig, instance_id) == 2
    assert [t["name"] for t in open_tasks(mig, instance_id)] == ["Решение"]  # "check" is gone in version 2
    assert "conflict_rejected" not in [e["type"] for e in mig.history.for_instance(instance_id)]


def test_sop_case_v2_with_a_changed_deadline(engine):
    """sop_case (calling sop_programme) v2 changes the deadline of the check: an open check moves, its inbox row
    keeps its id and takes the new deadline counted from when the task appeared; a revert gives the old one."""
    from .test_sop_diagrams import FORMS

    engine.identity.add_agency("КДН", "Йошкар-Ола", kind="commission")
    engine.identity.add_user("secretary", ["commission_secretary"], agency="КДН")
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    instance_id = engine.runtime.start("sop_case", {"received": "2025-10-30", "curator": "secretary",
                                                    "family_id": 1}, business_key="case-1")
    before = open_tasks(engine, instance_id)
    assert [t["element_id"] for t in before] == ["sop_check"]
    source = (WORKFLOWS / "sop_case.bpmn").read_text(encoding="utf-8")
    assert 'camunda:dueDate="${working_days(5, received)}"' in source
    changed = source.replace('camunda:dueDate="${working_days(5, received)}"',
                             'camunda:dueDate="${working_days(10, received)}"', 1)
    engine.repository.deploy([("sop_case.bpmn", changed)], deployed_by="method", comment="срок проверки 10 дней")

    plan = engine.migration.plan("sop_case")
    assert [(i.instance_id, i.movable) for i in plan.instances] == [(instance_id, True)]
    assert "у текущего шага «Проверка информации и заключение» (sop_check) изменится: срок" in plan.instances[0].changes
    batch = engine.migration.migrate("sop_case", actor="method")
    assert (batch["moved"], batch["failed"]) == (1, 0)
    after = open_tasks(engine, instance_id)
    assert [t["id"] for t in after] == [before[0]["id"]]
    assert before[0]["due"].startswith("2025-11-07")  # 5 working days from 30.10 (1.11 worked, 3-4.11 off)
    assert after[0]["due"].startswith("2025-11-14")   # 10 working days from the same day
    assert engine.runtime.instance(instance_id)["version"] == 2

    engine.migration.revert(engine.migration.migrations(instance_id)[0]["id"], actor="method")
    assert engine.runtime.instance(instance_id)["version"] == 1
    assert open_tasks(engine, instance_id)[0]["due"] == before[0]["due"]


def test_cli_migrate_dry_run_json(mig, database):
    at_intake = mig.runtime.start(KEY, {})
    at_check = mig.runtime.start(KEY, {})
    work(mig, at_check, 1)
    deploy_v2(mig)
    runner = CliRunner()
    old_factory = Context.factory
    try:
        Context.factory = lambda db, clock: mig
        result = runner.invoke(main, ["migrate", KEY, "--to", "2", "--dry-run", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert (report["total"], report["movable"], report["blocked"]) == (2, 1, 1)
        assert {i["instance_id"]: i["movable"] for i in report["instances"]} == {at_intake: True, at_check: False}
        assert version_of(mig, at_intake) == 1

        result = runner.invoke(main, ["migrate", KEY, "--to", "2", "--by", "method", "--json"])
        assert result.exit_code == 0, result.output
        batch = json.loads(result.output)
        assert (batch["moved"], batch["failed"]) == (1, 0)
        migration_id = batch["items"][0]["id"]
        result = runner.invoke(main, ["migrate-revert", str(migration_id), "--by", "method", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["version"] == 1
        result = runner.invoke(main, ["migrate-revert", str(migration_id)])
        assert result.exit_code == 1 and "уже отменен" in result.output
    finally:
        Context.factory = old_factory


def test_human_task_rows_follow_the_move(mig):
    """Open rows stay (same id); the inbox never shows a task of an element the version does not have."""
    instance_id = mig.runtime.start(KEY, {})
    deploy_v2(mig)
    mig.migration.migrate(KEY, actor="method")
    with mig.db.session() as s:
        rows = s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)).all()
        assert [(r.element_id, r.status) for r in rows] == [("intake", "open")]


def test_call_activity_timer_and_subprocess_steps(deployed):
    """lifecycle calls plan_sub; version 2 gives "draft" a longer deadline and drops the script step "mark".
    A waiting boundary timer keeps its schedule; an open task inside the called process takes the new deadline;
    an instance that has run "mark" cannot move, and the report says so."""
    engine = deployed
    variables = {"received": "2025-10-30", "curator": "curator", "plan_items": []}
    at_check = engine.runtime.start("lifecycle", variables)
    at_draft = engine.runtime.start("lifecycle", variables)
    at_review = engine.runtime.start("lifecycle", variables)
    for instance_id in (at_draft, at_review):
        check = open_tasks(engine, instance_id)[0]
        engine.tasks.complete(check["id"], "secretary", {"sop_confirmed": True, "danger_level": "high"})
    draft = open_tasks(engine, at_review)[0]
    engine.tasks.complete(draft["id"], "curator", {})
    assert [t["element_id"] for t in open_tasks(engine, at_review)] == ["review"]
    wakeup_before = engine.runtime.instance(at_check)["next_wakeup"]
    draft_before = open_tasks(engine, at_draft)[0]
    assert wakeup_before and draft_before["element_id"] == "draft"

    engine.clock.advance(days=1)
    source = (DIAGRAMS / "lifecycle.bpmn").read_text(encoding="utf-8")
    changed = (source.replace('camunda:dueDate="${calendar_days(14)}"', 'camunda:dueDate="${calendar_days(21)}"')
               .replace('<bpmn:sequenceFlow id="pf2" sourceRef="draft" targetRef="mark" />',
                        '<bpmn:sequenceFlow id="pf2" sourceRef="draft" targetRef="ps_end" />'))
    start, end = changed.index('    <bpmn:scriptTask id="mark"'), changed.index('    <bpmn:endEvent id="ps_end" />')
    changed = changed[:start] + changed[end:]
    engine.repository.deploy([("lifecycle.bpmn", changed)], deployed_by="method")

    plan = {i.instance_id: i for i in engine.migration.plan("lifecycle").instances}
    assert plan[at_check].movable and plan[at_draft].movable
    assert "у текущего шага «Draft the programme» (draft) изменится: срок" in plan[at_draft].changes
    assert "предстоящий шаг «Mark drafted» (mark) удален" in plan[at_draft].changes
    assert plan[at_review].reasons == ["выполненный шаг «Mark drafted» (mark) удален в версии 2"]

    batch = engine.migration.migrate("lifecycle", actor="method")
    assert (batch["moved"], batch["failed"], batch["total"]) == (2, 0, 2)
    assert engine.runtime.instance(at_check)["next_wakeup"] == wakeup_before  # the timer kept its schedule
    draft_after = open_tasks(engine, at_draft)[0]
    assert draft_after["id"] == draft_before["id"]
    assert draft_before["due"].startswith("2025-11-13") and draft_after["due"].startswith("2025-11-20")
    # the moved instances run on: the called process goes straight to its end, review follows
    engine.tasks.complete(draft_after["id"], "curator", {})
    assert [t["element_id"] for t in open_tasks(engine, at_draft)] == ["review"]
    assert engine.runtime.instance(at_draft)["variables"].get("plan_done") is None  # "mark" did not run
    assert engine.runtime.instance(at_review)["version"] == 1
    # the kept timer fires on version 2 when due
    engine.clock.set("2025-11-08T09:00:00+03:00")
    engine.management.sweep()
    assert sorted(t["element_id"] for t in open_tasks(engine, at_check)) == ["check", "escalate"]


def test_unchanged_waiting_timer_keeps_its_schedule(mig):
    instance_id = mig.runtime.start(KEY, {})
    wakeup = mig.runtime.instance(instance_id)["next_wakeup"]
    assert wakeup.startswith("2025-11-09")  # P10D from the start
    mig.clock.advance(days=3)
    deploy_v2(mig)
    mig.migration.migrate(KEY, actor="method")
    assert mig.runtime.instance(instance_id)["version"] == 2
    assert mig.runtime.instance(instance_id)["next_wakeup"] == wakeup


@pytest.mark.skipif(not postgres_url(), reason="needs PostgreSQL (KURATOR_TEST_DATABASE_URL)")
def test_several_processes_step_one_batch(mig, database):
    """Three workers step the same batch at once (as several web processes would): each instance moves once."""
    ids = [mig.runtime.start(KEY, {}) for _ in range(60)]
    deploy_v2(mig)
    batch_id = mig.migration.start_batch(KEY, actor="method")
    errors = []

    def worker():
        engine = new_engine(database)
        try:
            progress = engine.migration.run_batch(batch_id, limit=10)
            while progress["status"] == "running":
                progress = engine.migration.run_batch(batch_id, limit=10)
        except Exception as exc:  # pragma: no cover - reported to the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    progress = mig.migration.progress(batch_id)
    assert (progress["status"], progress["moved"], progress["failed"], progress["done"]) == ("done", 60, 0, 60)
    with mig.db.session() as s:
        per_instance = dict(s.execute(select(InstanceMigration.instance_id, func.count())
                                      .group_by(InstanceMigration.instance_id)).all())
    assert per_instance == {i: 1 for i in ids}
    for instance_id in ids[:5]:
        assert [e["type"] for e in mig.history.for_instance(instance_id)].count("instance_migrated") == 1
