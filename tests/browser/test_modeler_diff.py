"""The visual diff of two deployed versions in a real browser: markers on both diagrams, the list of changes and
the details of a changed element, zoom and scroll kept in step."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.models import ProcessDefinition

from .conftest import screenshot

NEW_DUE = "${working_days(10, received)}"


def latest_sop_case(engine) -> tuple[int, str]:
    with engine.db.session() as db:
        row = db.scalars(select(ProcessDefinition).where(ProcessDefinition.key == "sop_case")
                         .order_by(ProcessDefinition.version.desc()).limit(1)).one()
        return row.version, row.resource.content


def marked(page, side: str, element_id: str, marker: str) -> bool:
    return page.evaluate(
        """([side, id, marker]) => !!document.querySelector(
            `.diff-canvas[data-side="${side}"] .djs-element[data-element-id="${id}"].${marker}`)""",
        [side, element_id, marker])


def test_diff_of_a_new_sop_case_version(live, login):
    engine = live["engine"]
    before, xml = latest_sop_case(engine)
    # version N+1: a longer check, and the end event «Не признаны…» replaced by a new one (a removed and an added
    # element, the flow into it rerouted)
    changed, count = re.subn(r'(<bpmn:userTask id="sop_check"[^>]*camunda:dueDate=")[^"]*(")',
                             lambda m: m.group(1) + NEW_DUE + m.group(2), xml)
    assert count == 1
    changed = re.sub(r"\bcase_not_recognized\b", "case_rejected_end", changed)
    changed = changed.replace('name="Не признаны находящимися в СОП"', 'name="Отказ в признании СОП"')
    result = engine.repository.deploy([("sop_case.bpmn", changed)], deployed_by="methodologist",
                                      comment="Срок проверки 10 рабочих дней; новый исход при отказе")
    after = result.items[0].version
    assert after == before + 1

    page = login("methodologist")
    page.goto(f"{live['base']}/modeler")
    link = page.locator(f'a[href="/modeler/diff?key=sop_case&from={before}&to={after}"]')
    assert link.count() == 1 and link.inner_text() == "сравнить с предыдущей"
    link.click()
    page.wait_for_selector("#diagram-diff.diff-ready", timeout=30_000)

    assert marked(page, "new", "case_rejected_end", "diff-added")
    assert marked(page, "old", "case_not_recognized", "diff-removed")
    assert not marked(page, "new", "case_not_recognized", "diff-removed")
    for side in ("old", "new"):
        assert marked(page, side, "sop_check", "diff-changed")
        assert marked(page, side, "case_f_rejected", "diff-changed")  # the rerouted sequence flow
        assert not marked(page, side, "sop_recognition", "diff-changed")
    # the markers are drawn: the changed task's outline is amber, the removed event's red, the added one's green
    stroke = """([side, id]) => getComputedStyle(document.querySelector(
        `.diff-canvas[data-side="${side}"] [data-element-id="${id}"] .djs-visual > :first-child`)).stroke"""
    assert page.evaluate(stroke, ["new", "sop_check"]) == "rgb(181, 71, 8)"
    assert page.evaluate(stroke, ["old", "case_not_recognized"]) == "rgb(180, 35, 24)"
    assert page.evaluate(stroke, ["new", "case_rejected_end"]) == "rgb(6, 118, 71)"

    page.locator('.diff-item[data-id="sop_check"]').click()
    details = page.locator(".diff-details-body")
    details.locator("text=Срок (camunda:dueDate)").wait_for(timeout=10_000)
    assert NEW_DUE in details.inner_text()
    selected = page.evaluate("""() => ['old', 'new'].map(side => window.kuratorDiff[side].get('selection').get()
        .map(e => e.id).join(','))""")
    assert selected == ["sop_check", "sop_check"]

    # dragging the old diagram scrolls the new one by the same amount
    box = page.locator('.diff-canvas[data-side="old"]').bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 320, box["y"] + 260, steps=4)
    page.mouse.up()
    views = page.evaluate("""() => ['old', 'new'].map(side => {
        const v = window.kuratorDiff[side].get('canvas').viewbox();
        return [Math.round(v.x), Math.round(v.y), Math.round(v.scale * 1000)]; })""")
    assert views[0] == views[1]

    # clicking an element on a diagram selects its entry in the list
    page.get_by_role("button", name="Вписать").click()
    page.locator('.diff-canvas[data-side="new"] .djs-element[data-element-id="case_rejected_end"]').click()
    details.locator("text=Элемент появился в версии").wait_for(timeout=10_000)
    assert page.locator('.diff-item.selected').get_attribute("data-id") == "case_rejected_end"
    page.locator('.diff-item[data-id="sop_check"]').click()
    page.get_by_role("button", name="К изменениям").click()
    screenshot(page, "modeler-diff")
