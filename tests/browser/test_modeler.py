"""The methodologist's modeler in a real browser: the diagram and the Camunda properties panel."""

from __future__ import annotations

from .conftest import screenshot


def test_modeler_opens_sop_case_with_the_properties_panel(live, login):
    page = login("methodologist")
    page.goto(f"{live['base']}/modeler")
    assert "sop_case" in page.content()
    page.goto(f"{live['base']}/modeler/edit?key=sop_case")
    page.wait_for_selector(".djs-container svg", timeout=30_000)
    page.wait_for_selector(".bio-properties-panel", timeout=30_000)
    page.evaluate("""() => { const m = window.kuratorModeler;
        m.get('selection').select(m.get('elementRegistry').get('sop_check')); }""")
    page.wait_for_selector(".bio-properties-panel-header >> text=Проверка информации", timeout=15_000)
    group = page.locator(".bio-properties-panel-group-header", has_text="Исполнители").first
    group.click()
    fields = ".bio-properties-panel input, .bio-properties-panel textarea, .bio-properties-panel [contenteditable]"
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{fields}')]"
        ".some(e => (e.value || e.textContent || '').includes('working_days(5, received)'))", timeout=15_000)
    screenshot(page, "modeler")

    due = page.get_by_label("Срок выполнения")
    due.fill("${working_days(}")
    page.get_by_role("button", name="Проверить").click()
    page.wait_for_selector("text=camunda:dueDate", timeout=15_000)
    screenshot(page, "modeler-validation")
    due.fill("${working_days(7, received)}")
    page.fill("input[placeholder='что изменено и почему']", "Срок проверки 7 рабочих дней (региональное решение)")
    page.get_by_role("button", name="Развернуть").click()
    page.wait_for_selector("h1 >> text=версия 2", timeout=20_000)
    page.goto(f"{live['base']}/modeler")
    assert "Срок проверки 7 рабочих дней" in page.content()
