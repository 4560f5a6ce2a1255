"""The issue's whole modeler journey in a real browser: as the methodologist open sop_case, change a due date in
the properties panel, validate, simulate, deploy the next version, migrate the open cases; then the secretary's
case file shows the new version, and the case's open check task carries the new deadline."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.models import HumanTask, ProcessDefinition, ProcessInstance
from sop.models import InstanceScope

from .conftest import screenshot

DUE_FIELD = "Срок выполнения"


def _latest_version(engine) -> int:
    with engine.db.session() as db:
        return db.scalar(select(ProcessDefinition.version).where(ProcessDefinition.key == "sop_case")
                         .order_by(ProcessDefinition.version.desc()).limit(1))


def _case_at_check(engine) -> tuple[int, int, str]:
    """A demo case whose sop_case instance waits for the check: (case id, instance id, task id)."""
    with engine.db.session() as db:
        row = db.execute(select(InstanceScope.case_id, ProcessInstance.id, HumanTask.id)
                         .join(ProcessInstance, ProcessInstance.id == InstanceScope.instance_id)
                         .join(HumanTask, HumanTask.instance_id == ProcessInstance.id)
                         .where(ProcessInstance.process_key == "sop_case", ProcessInstance.status == "running",
                                HumanTask.element_id == "sop_check", HumanTask.status == "open")
                         .order_by(ProcessInstance.id).limit(1)).first()
    assert row is not None, "the demo data has a case waiting for its check"
    return row


def test_change_validate_simulate_deploy_migrate_and_see_the_case_on_the_new_version(live, login):
    engine, base = live["engine"], live["base"]
    before = _latest_version(engine)
    case_id, instance_id, task_id = _case_at_check(engine)

    page = login("methodologist")
    page.goto(f"{base}/modeler/edit?key=sop_case")
    page.wait_for_function("() => window.kuratorModeler && window.kuratorModeler.get('elementRegistry')"
                           ".get('sop_check')", timeout=30_000)
    # 1. the due date of the check, in the properties panel (not in XML)
    page.evaluate("""() => { const m = window.kuratorModeler;
        m.get('selection').select(m.get('elementRegistry').get('sop_check')); }""")
    page.locator(".bio-properties-panel-group-header", has_text="Исполнители").first.click()
    due = page.get_by_label(DUE_FIELD)
    current = due.input_value()
    days = 8 if "working_days(8," not in current else 9
    due.fill(f"${{working_days({days}, received)}}")

    # 2. validation: the engine's checks and the lint rules, no errors
    page.get_by_role("button", name="Проверить").click()
    page.wait_for_selector(".modeler-status.ok >> text=Ошибок нет", timeout=20_000)

    # 3. simulation of the edited diagram across the New Year holidays
    panel = page.locator("#simulation")
    panel.locator("input[name=sim-start]").fill("2026-12-28T09:00")
    panel.locator("textarea[name=sim-variables]").fill('{"received": "2026-12-28", "family_name": "Петровы"}')
    panel.get_by_role("button", name="Начать заново").click()
    panel.locator(".sim-step-list >> text=Старт 28.12.2026 09:00").wait_for(timeout=30_000)
    # working days after 28.12.2026: 29, 30 December, then 11-15 and 18-19 January 2027 (31.12 and 1-10.01 off)
    expected = {8: "до пн 18.01.2027 23:59", 9: "до вт 19.01.2027 23:59"}[days]
    page.wait_for_selector(f".djs-overlay .sim-due >> text={expected}", timeout=15_000)

    # 4. deploy the next version with a comment
    page.fill("input[placeholder='что изменено и почему']", f"Проверка сигнала: {days} рабочих дней")
    page.get_by_role("button", name="Развернуть").click()
    page.wait_for_selector(f"h1 >> text=версия {before + 1}", timeout=20_000)
    assert _latest_version(engine) == before + 1

    # 5. migrate the open cases: dry run, then the batch with its progress
    page.goto(f"{base}/modeler")
    page.locator("a[href='/modeler/migrations?key=sop_case']").click()
    page.wait_for_selector("#migration")
    page.get_by_role("button", name="Проверить (пробный прогон)").click()
    page.wait_for_selector(".migration-report:not([hidden]) tbody tr", timeout=60_000)
    screenshot(page, "modeler-migration-plan")
    start = page.locator("button[data-action=start]")
    assert re.match(r"Перенести \d+ экземпляр", start.inner_text())
    start.click()
    page.wait_for_selector(".migration-results:not([hidden])", timeout=120_000)
    page.wait_for_selector("text=Перенос завершен.", timeout=10_000)
    screenshot(page, "modeler-migration")
    assert page.locator(".migration-results tbody tr").count() >= 1

    with engine.db.session() as db:
        instance = db.get(ProcessInstance, instance_id)
        version = db.get(ProcessDefinition, instance.definition_id).version
        task = db.get(HumanTask, task_id)
        due_after = task.due
    assert version == before + 1
    assert task.status == "open"  # the same task, kept across the migration

    # 6. the secretary's case file shows the process on the new version, and the migration in its timeline
    secretary = login("secretary")
    secretary.goto(f"{base}/cases/{case_id}")
    secretary.wait_for_selector(f"figcaption >> text=версия {before + 1}", timeout=15_000)
    assert "Процесс перенесен на новую версию схемы" in secretary.content()
    assert due_after is not None
