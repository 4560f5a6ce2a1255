"""The modeler's simulation panel in a real browser: sop_case run across the New Year holidays, step by step, with
the due dates on the diagram."""

from __future__ import annotations

from .conftest import screenshot


def test_simulation_panel_runs_sop_case_and_shows_due_dates_on_the_diagram(live, login):
    page = login("methodologist")
    page.goto(f"{live['base']}/modeler/edit?key=sop_case")
    page.wait_for_selector(".djs-container svg", timeout=30_000)
    page.wait_for_function("() => window.kuratorModeler && window.kuratorModeler.get('elementRegistry')"
                           ".get('sop_check')", timeout=30_000)
    panel = page.locator("#simulation")
    panel.locator("input[name=sim-start]").fill("2026-12-28T09:00")
    panel.locator("textarea[name=sim-variables]").fill('{"received": "2026-12-28", "family_name": "Петровы"}')

    panel.get_by_role("button", name="Начать заново").click()
    panel.locator(".sim-step-list >> text=Старт 28.12.2026 09:00").wait_for(timeout=30_000)
    # the open task is highlighted and carries its due date on the canvas
    page.wait_for_selector(".djs-element.sim-open[data-element-id=sop_check]", timeout=15_000)
    page.wait_for_selector(".djs-overlay .sim-due >> text=/^до .* 23:59$/", timeout=15_000)
    assert panel.locator(".sim-tasks td", has_text="Ответственный секретарь КДНиЗП").count() == 1

    # force the check to "confirmed" whatever the form says, then complete it with the prefilled data
    panel.locator("select[name=choice-case_check_result]").select_option("case_f_confirmed")
    page.wait_for_function("() => window.kuratorSimulation.state.choices.case_check_result === 'case_f_confirmed'"
                           " && !window.kuratorSimulation.state.busy", timeout=30_000)
    panel.locator("button.sim-complete-button[data-element=sop_check]").click()
    panel.locator(".sim-step-list >> text=Выполнена задача «Проверка информации и заключение»").wait_for(
        timeout=30_000)
    # 15 calendar days from 28.12.2026: 12.01.2027
    page.wait_for_selector(".djs-element.sim-open[data-element-id=sop_recognition]", timeout=15_000)
    page.wait_for_selector(".djs-overlay .sim-due >> text=до вт 12.01.2027 23:59", timeout=15_000)
    assert page.locator(".djs-element.sim-done[data-element-id=sop_check]").count() == 1
    assert page.locator(".djs-connection.sim-flow[data-element-id=case_f_confirmed]").count() == 1

    recognition = panel.locator(".sim-tasks tr", has_text="Заседание КДНиЗП: признание")
    recognition.locator("summary").click()
    recognition.locator("textarea.sim-data").fill(
        '{"decision": "recognize", "meeting_date": "2026-12-30", "resolution_number": "12/3",'
        ' "curator": "curator", "working_group": ["police"]}')
    recognition.get_by_role("button", name="Выполнить").click()
    panel.locator(".sim-step-list >> text=Выполнена задача «Заседание КДНиЗП: признание в СОП и организация ИПР»"
                  ).wait_for(timeout=30_000)
    # 5 working days from the meeting on 30.12.2026: 11–15.01.2027
    page.wait_for_selector(".djs-overlay .sim-due >> text=до пт 15.01.2027 23:59", timeout=15_000)

    panel.locator("input[name=sim-day]").fill("20")
    panel.get_by_role("button", name="Перевести часы").click()
    panel.locator(".sim-step-list >> text=Часы переведены на день 20 (17.01.2027 09:00)").wait_for(timeout=30_000)
    page.wait_for_selector(".sim-tasks tr.overdue >> text=Учетная карта семьи", timeout=15_000)
    page.wait_for_selector(".djs-overlay .sim-due.overdue", timeout=15_000)
    page.evaluate("""() => { const m = window.kuratorModeler, canvas = m.get('canvas');
        const card = m.get('elementRegistry').get('sop_registration_card');
        canvas.zoom(0.75); const box = canvas.viewbox();
        canvas.viewbox({x: card.x - box.width * 0.4, y: card.y - box.height * 0.55,
                        width: box.width, height: box.height}); }""")
    screenshot(page, "modeler-simulation")

    # an earlier step can be looked at again: the diagram follows the selection
    panel.locator(".sim-step-button", has_text="Старт").click()
    page.wait_for_selector(".djs-element.sim-open[data-element-id=sop_check]", timeout=15_000)
    assert page.locator(".djs-element.sim-open[data-element-id=sop_registration_card]").count() == 0

    # change a due date in the diagram and replay the same steps: the new date shows at once
    page.evaluate("""() => { const m = window.kuratorModeler;
        const card = m.get('elementRegistry').get('sop_registration_card');
        m.get('modeling').updateProperties(card, {'camunda:dueDate': '${working_days(10, meeting_date)}'}); }""")
    panel.get_by_role("button", name="Пересчитать").click()
    # 10 working days from 30.12.2026: 11–15.01 and 18–22.01.2027
    page.wait_for_selector(".djs-overlay .sim-due >> text=до пт 22.01.2027 23:59", timeout=30_000)
    assert panel.locator(".sim-tasks tr.overdue").count() == 0
