"""A commission meeting in a real browser: the secretary opens the next meeting of the demo schedule, sees the agenda
built from the cases waiting for the commission, marks attendance on the meeting day, records a recognition with
its votes, postpones the other questions, closes the meeting and opens the minutes; the case file shows the
resolution with its number and meeting, and the chair's inbox no longer holds that decision."""

from __future__ import annotations

import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

from .conftest import DEMO_NOW, SCREENSHOTS, screenshot
from .steps import inbox_rows

RECOGNITION_TASK = "Заседание КДНиЗП: признание"
RECOGNITION_ITEM = "О признании семьи"


def test_the_secretary_holds_a_meeting_from_the_agenda_to_the_minutes(live, login):
    engine, base = live["engine"], live["base"]
    secretary = login("secretary")

    # the list: upcoming and past meetings, the month calendar
    secretary.click("nav >> text=Заседания")
    secretary.wait_for_url("**/meetings")
    past = secretary.locator("#past tbody tr")
    assert past.count() >= 2 and "Протокол №" in past.first.inner_text()
    assert secretary.locator(".month-grid td.meeting, .month-grid td.scheduled").count() >= 1
    screenshot(secretary, "meetings-list")

    # the next meeting: its agenda builds itself from the cases waiting for the commission
    secretary.click("button:has-text('Следующее заседание')")
    secretary.wait_for_url(re.compile(r".*/meetings/\d+$"))
    meeting_url = secretary.url
    cases = secretary.locator("li.agenda-item[data-kind=decision]")
    assert cases.count() >= 3, secretary.locator("ol.agenda").inner_text()
    assert len(set(cases.evaluate_all("items => items.map(i => i.dataset.case)"))) >= 3
    held_on = datetime.strptime(re.search(r"от (\d\d\.\d\d\.\d{4})", secretary.locator("h1").inner_text()).group(1),
                                "%d.%m.%Y").date()
    recognition = cases.filter(has_text=RECOGNITION_ITEM).first
    number = recognition.get_attribute("data-case")
    item_id = recognition.get_attribute("id").split("-", 1)[1]
    case_href = recognition.locator("a", has_text="Дело №").get_attribute("href")
    screenshot(secretary, "meeting-agenda")

    chair = login("chair")
    assert inbox_rows(chair, base, number, RECOGNITION_TASK).count() == 1
    # the chair: the same page read-only, with the case's context
    chair.goto(meeting_url)
    assert chair.locator(f"#item-{item_id} .item-context").inner_text().count("Уровень опасности") == 1
    assert chair.locator("main form").count() == 0

    try:
        engine.clock.set(datetime.combine(held_on, time(10, 0), ZoneInfo("Europe/Moscow")))  # the meeting day
        secretary.reload()
        boxes = secretary.locator("#attendance input[name=present]")
        for index in range(boxes.count()):
            boxes.nth(index).check()
        present = boxes.count()
        secretary.fill("#f-invited", "Законный представитель — мать")
        secretary.click("button:has-text('Отметить явку и открыть заседание')")
        secretary.wait_for_load_state()
        assert "кворум есть" in secretary.locator(".meeting-head").inner_text()

        # the recognition with its votes; a wrong count is refused under the field first
        item = secretary.locator(f"#item-{item_id}")
        item.locator(f"input[name=q{item_id}_decision][value=recognize]").check()
        item.locator(f"#f-q{item_id}_curator").select_option(index=1)
        for agency in ("police", "education"):
            box = item.locator(f"input[name=q{item_id}_working_group][value={agency}]")
            if box.count():
                box.check()
        item.locator(f"#q{item_id}_votes_for").fill(str(present + 5))
        item.locator("button:has-text('Записать решение')").click()
        secretary.wait_for_load_state()
        error = secretary.locator(f"#q{item_id}_votes_for-error")
        assert error.is_visible() and "больше, чем присутствующих" in error.inner_text()
        secretary.goto(meeting_url)  # the form afresh: the case's defaults, no error left on the page
        item = secretary.locator(f"#item-{item_id}")
        item.locator(f"input[name=q{item_id}_decision][value=recognize]").check()
        item.locator(f"#f-q{item_id}_curator").select_option(index=1)
        for agency in ("police", "education"):
            box = item.locator(f"input[name=q{item_id}_working_group][value={agency}]")
            if box.count():
                box.check()
        item.locator(f"#q{item_id}_votes_for").fill(str(present - 1))
        item.locator(f"#q{item_id}_votes_abstained").fill("1")
        item.locator("input[name=family_appeared][value=yes]").check()
        item.scroll_into_view_if_needed()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        item.screenshot(path=str(SCREENSHOTS / "meeting-decision.png"))
        item.locator("button:has-text('Записать решение')").click()
        secretary.wait_for_load_state()
        flash = secretary.locator(".flash").first.inner_text()
        assert "постановление №" in flash, flash
        resolution = re.search(r"№ (\d+/\d+)", flash).group(1)
        assert secretary.locator(f"#item-{item_id} .resolution-number").inner_text() == f"Постановление № {resolution}"

        # every other question postponed with its reason
        while True:
            waiting = secretary.locator("li.agenda-item.item-planned")
            if waiting.count() == 0:
                break
            question = waiting.first
            question.locator("input[name=reason]").fill("Материалы не подготовлены к заседанию")
            question.locator("button:has-text('Перенести')").click()
            secretary.wait_for_load_state()
        assert secretary.locator("li.agenda-item.item-postponed").count() >= 2

        secretary.click("button:has-text('Закрыть заседание и сформировать протокол')")
        secretary.wait_for_load_state()
        link = secretary.locator("a.minutes-link")
        assert link.is_visible() and "закрыто" in secretary.locator("h1").inner_text()
        minutes = secretary.request.get(base + link.get_attribute("href"))
        assert minutes.ok and minutes.headers["content-type"] == "application/pdf"
        assert minutes.body()[:4] == b"%PDF"
    finally:
        engine.clock.set(datetime.fromisoformat(DEMO_NOW))

    # the case file: the resolution with its number, its meeting and the minutes
    secretary.goto(f"{base}{case_href}")
    resolutions = secretary.locator("#resolutions").inner_text()
    assert f"№ {resolution}" in resolutions and f"от {held_on:%d.%m.%Y}" in resolutions
    assert secretary.locator("#resolutions a", has_text="протокол").count() >= 1
    # the decision is no longer in the chair's inbox
    assert inbox_rows(chair, base, number, RECOGNITION_TASK).count() == 0

    secretary.goto(f"{base}/commission")
    assert secretary.locator("table.members tbody tr").count() >= 3
    screenshot(secretary, "commission")
