"""The issue's journey in a real browser: a school registers a signal; the secretary claims and completes the
check (a validation error first); the chair records the recognition; the case file shows the diagram with the
current step; after `kurator tick --at` moves past a deadline, the manager sees the task overdue."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import screenshot


def open_task(page, base: str, case_number: str, name: str) -> None:
    page.goto(f"{base}/inbox?case={case_number}")
    row = page.locator("tr", has_text=name).first
    if row.locator("button", has_text="Взять в работу").count():
        row.locator("button", has_text="Взять в работу").click()
        page.wait_for_load_state()
        row = page.locator("tr", has_text=name).first
    row.locator("a", has_text=name).click()
    page.wait_for_load_state()


def test_signal_check_recognition_case_file_and_overdue(live, login):
    base = live["base"]

    school = login("school")
    school.goto(f"{base}/intake/new")
    school.fill("#f-source", "Классный руководитель 7 «Б» класса")
    school.fill("#f-problem", "Ученик не посещает занятия две недели, дома не бывает мать")
    school.fill("#f-address", "г. Йошкар-Ола, ул. Карла Маркса, д. 101, кв. 7")
    school.fill("input[name='children.0.last_name']", "Григорьев")
    school.fill("input[name='children.0.first_name']", "Степан")
    school.fill("input[name='children.0.birth_date']", "2013-04-18")
    school.fill("input[name='parents.0.last_name']", "Григорьева")
    school.fill("input[name='parents.0.first_name']", "Алла")
    screenshot(school, "intake")
    school.locator("button.primary", has_text="Зарегистрировать").click()
    school.wait_for_load_state()
    flash = school.locator(".flash").first.inner_text()
    number = re.search(r"дело № (\d+/\d{4})", flash).group(1)

    secretary = login("secretary")
    open_task(secretary, base, number, "Проверка информации и заключение")
    secretary.fill("#f-minor_name", "Григорьев Степан, 18.04.2013")
    secretary.locator("button.primary").click()
    secretary.wait_for_load_state()
    assert secretary.locator(".field-error").count() >= 1
    screenshot(secretary, "task-validation")
    secretary.fill("#f-parents_names", "Григорьева Алла")
    secretary.fill("#f-living_conditions", "Квартира в удовлетворительном состоянии")
    secretary.check("input[name=danger_level][value=high]")
    secretary.check("input[name=family_criteria][value=c1]")  # a confirmed СОП names its criteria
    secretary.check("input[name=sop_confirmed]")
    secretary.fill("#f-conclusion", "Семья находится в социально опасном положении")
    secretary.locator("button.primary").click()
    secretary.wait_for_load_state()
    assert "/inbox" in secretary.url

    chair = login("chair")
    open_task(chair, base, number, "Заседание КДНиЗП: признание в СОП")
    chair.check("input[name=decision][value=recognize]")
    chair.fill("#f-meeting_date", "2026-11-26")
    chair.fill("#f-resolution_number", "77/12")
    chair.select_option("#f-curator", "curator")  # a list of the municipality's curators by name
    chair.check("input[name=working_group][value=education]")
    chair.locator("button.primary").click()
    chair.wait_for_load_state()
    assert chair.locator(".field-error").count() == 0

    secretary.goto(f"{base}/cases?q={number}")
    secretary.locator("a", has_text=number).first.click()
    secretary.wait_for_selector(".djs-container svg", timeout=20_000)
    secretary.wait_for_selector(".kurator-active", timeout=20_000)
    assert "Григорьев Степан" in secretary.content()
    # the act the check wrote is laid out as PDF once the secretary has the answer (in the moment before, the list
    # says so); a download does not wait for it, and the list then gives the act's size
    act = secretary.locator("#documents tbody tr", has_text="Заключение").first
    assert re.search(r"PDF, (\d+ КБ|формируется)", act.inner_text()), act.inner_text()
    pdf = secretary.request.get(base + act.locator("a").first.get_attribute("href"))
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf" and pdf.body()[:4] == b"%PDF"
    secretary.reload()
    assert re.search(r"PDF, \d+ КБ", act.inner_text()), act.inner_text()
    screenshot(secretary, "case-file")

    done = subprocess.run([sys.executable, "-m", "webapp.cli", "--database-url", live["url"], "tick", "--at",
                           "2026-12-10T09:00:00+03:00"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(re.search(r"(\d+) task\(s\) became overdue", done.stdout).group(1)) >= 1
    live["engine"].clock.set("2026-12-10T09:00:00+03:00")  # the server's clock moves on too
    manager = login("manager")
    manager.goto(f"{base}/manager/overdue")
    assert number in manager.content()
    screenshot(manager, "overdue")
