"""Operation «Подросток» in a real browser, on the demo's municipality: the secretary reads the demo's campaign of
2026 (the summer's rounds done), then the summer of 2027 is lived through (the demo's own campaign is the one of
its year; this journey runs the next year's, so it leaves the demo's as it was).

The campaign starts on 1 May as `kurator podrostok start` starts it; the secretary opens «Подросток» and completes
the preparatory stage. On 1 July the June round opens: the school opens its App. 2 from its inbox and enters two
children's employment (form, organisation, dates); the police, the social protection centre and the guardianship
submit theirs, the children's hospital does not. After the round's deadline the secretary sees the hospital among
the agencies that did not submit, and returns the school's submission with a comment; the school sees the comment
beside its own rows, corrects a date and submits again; the secretary accepts the round and reads App. 3 as
computed: rows 1, 2, 3 and 3.x by age band and the coverage per cent.

The server's clock moves for the journey (the autouse fixture puts it back); the scheduler's work is done for the
campaign's instance only (`sop.demo.fire_due_timers`), so that no other demo process moves a year on.
"""

from __future__ import annotations

import re
import subprocess
import sys

from sqlalchemy import select

from sop.demo import AGENCIES, fire_due_timers
from sop.models import Person, PodrostokCampaign

from .conftest import screenshot
from .steps import claim_and_open, finish, follow_menu

YEAR = 2027
SCHOOL, HEALTH = AGENCIES["school"][0], AGENCIES["health"][0]
PLAN = "Подготовительный этап: сверка учетов и межведомственный план операции"
APP2 = "Информация о фактической занятости детей (приложение 2)"
REVIEW = "Проверка информации органов о занятости детей"
MONTHLY = "Ежемесячный отчет о занятости детей в краевую КДНиЗП (приложение 3)"
CAMP = "Лагерь дневного пребывания при МБОУ «Средняя школа № 5»"


def at(engine, moment: str) -> None:
    engine.clock.set(f"{YEAR}-{moment}+03:00")


def open_campaign_task(page, base: str, name: str) -> None:
    """From the inbox narrowed to the campaign's process: take the task (if nobody has) and open it."""
    page.goto(f"{base}/inbox?process=podrostok_campaign")
    row = page.locator("table.list tbody tr", has_text=name)
    assert row.count() == 1, f"{name!r} is not (once) in the inbox: {page.locator('table.list').inner_text()}"
    claim_and_open(page, row, name)


def child_value(page, row: int, name: str) -> str:
    """The option of a demo child (by «Фамилия Имя») in the child list of an App. 2 row."""
    option = page.locator(f"select[name='employment[{row}][child]'] option", has_text=name)
    assert option.count() == 1, name
    return option.get_attribute("value")


def fill_employment(page, row: int, child: str, form: str, provider: str, start: str, end: str) -> None:
    page.select_option(f"select[name='employment[{row}][child]']", child_value(page, row, child))
    page.select_option(f"select[name='employment[{row}][form]']", form)
    page.fill(f"input[name='employment[{row}][provider]']", provider)
    page.fill(f"input[name='employment[{row}][date_from]']", start)
    page.fill(f"input[name='employment[{row}][date_to]']", end)


def person_id(engine, last_name: str, first_name: str) -> int:
    with engine.db.session() as db:
        return db.scalar(select(Person.id).where(Person.last_name == last_name, Person.first_name == first_name))


def submit_by_engine(engine, agency: str, username: str, employment: list[dict]) -> None:
    task = next(t for t in engine.tasks.query(user=username) if t["form_key"] == "pod_agency_report"
                and t["agency_name"] == agency)
    engine.tasks.complete(task["id"], username, {"employment": employment, "excused": []})


def figures(page) -> dict[str, list[str]]:
    """The App. 3 table of the page by row code: the cells of June (ИПР, СОП), July, August and the summer."""
    table = page.locator("table.podrostok-form tbody tr")
    rows = {}
    for i in range(table.count()):
        cells = [" ".join(text.split()) for text in table.nth(i).locator("td").all_inner_texts()]
        rows[cells[0]] = cells[2:]
    return rows


def count(cell: str) -> int:
    return int(cell.split()[0])


def percent(cell: str) -> float:
    return float(re.search(r"([\d,]+)\s*%", cell).group(1).replace(",", "."))


def test_the_agencies_report_employment_and_the_secretary_reads_app_3(live, login):
    base, engine = live["base"], live["engine"]

    # the demo's own campaign (2026): the summer's rounds done, the hospital silent in August, the region's step open
    secretary = login("secretary")
    errors = []
    secretary.on("pageerror", lambda exc: errors.append(str(exc)))
    follow_menu(secretary, "Подросток")
    secretary.wait_for_url("**/podrostok")
    assert secretary.locator("h1").inner_text() == "Операция «Подросток» 2026"
    campaign = secretary.locator("section.podrostok-campaign")
    assert f"Не представили в срок: {HEALTH} (август 2026)" in campaign.inner_text()
    assert "Обобщение итогов операции «Подросток» в краевой КДНиЗП" in campaign.inner_text()
    demo = figures(secretary)
    # Ефимова Алина (ИПР too), Лазарев Тимофей, Никитин Степан
    assert [count(cell) for cell in demo["1"]] == [1, 3, 1, 3, 1, 3, 1, 3]
    assert count(demo["3"][7]) == 3 and percent(demo["3"][7]) == 100.0  # the summer: all three covered
    screenshot(secretary, "podrostok")

    # 1 May of the next year: its campaign starts (the scheduler does it; here the command does)
    done = subprocess.run([sys.executable, "-m", "webapp.cli", "--database-url", live["url"], "--now",
                           f"{YEAR}-05-01T00:05:00+03:00", "podrostok", "start", "--year", str(YEAR)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Started 1 campaign(s)" in done.stdout, done.stdout
    with engine.db.session() as db:
        iid = db.scalar(select(PodrostokCampaign.process_instance_id).where(PodrostokCampaign.year == YEAR))

    # 20 May: the secretary opens the operation's page and completes the preparatory stage
    at(engine, "05-20T10:00:00")
    follow_menu(secretary, "Подросток")
    secretary.wait_for_url("**/podrostok")
    assert secretary.locator("h1").inner_text() == f"Операция «Подросток» {YEAR}"
    campaign = secretary.locator("section.podrostok-campaign")
    assert "Подготовительный этап" in campaign.inner_text()
    assert PLAN in campaign.locator("table.list").first.inner_text()
    open_campaign_task(secretary, base, PLAN)
    secretary.check("#f-reconciliation_done")
    secretary.fill("#f-plan_date", f"{YEAR}-05-20")
    secretary.fill("#f-plan_number", "5/2")
    finish(secretary)

    # 1 July: the June round opens, one App. 2 task per agency of the municipality
    at(engine, "07-01T09:00:00")
    assert fire_due_timers(engine, iid) == ["pod_wait_month"]
    school = login("school")
    open_campaign_task(school, base, f"{APP2} — {SCHOOL}")
    assert school.input_value("#f-report_month") == f"{YEAR}-06"
    assert school.locator("[data-panel=podrostok_return]").count() == 0
    fill_employment(school, 0, "Белов Егор", "3.8", CAMP, f"{YEAR}-06-01", f"{YEAR}-06-21")
    fill_employment(school, 1, "Зайцева София", "3.4", "Дворовая площадка «Солнечный двор»", f"{YEAR}-06-01",
                    f"{YEAR}-06-30")
    finish(school)

    at(engine, "07-02T11:00:00")
    job = {"date_from": f"{YEAR}-06-07", "date_to": f"{YEAR}-06-30"}
    submit_by_engine(engine, AGENCIES["police"][0], "police", [
        {"child": str(person_id(engine, "Тихонов", "Илья")), "form": "3.2", "provider": "ООО «Марийский хлеб»",
         **job}])
    submit_by_engine(engine, AGENCIES["social"][0], "social", [
        {"child": str(person_id(engine, "Воронцов", "Даниил")), "form": "3.6",
         "provider": "Загородный лагерь «Ровесник»", **job}])
    submit_by_engine(engine, AGENCIES["guardianship"][0], "guardian", [])

    # 6 July: the round's deadline (Saturday 3 July, moved to Monday 5 July) is past; the hospital did not submit
    at(engine, "07-06T10:00:00")
    assert fire_due_timers(engine, iid) == ["pod_round_late"]
    secretary.goto(f"{base}/podrostok")
    campaign = secretary.locator("section.podrostok-campaign")
    assert f"Не представили в срок: {HEALTH} (июнь {YEAR})" in campaign.inner_text()
    submissions = campaign.locator("table.list", has_text="Орган")
    assert "представлено (2)" in submissions.locator("tr", has_text=SCHOOL).inner_text()
    assert "не представлено" in submissions.locator("tr", has_text=HEALTH).inner_text()

    open_campaign_task(secretary, base, REVIEW)
    panel = secretary.locator("[data-panel=podrostok_submissions]")
    assert f"Не представили информацию: {HEALTH}" in panel.inner_text()
    secretary.check("input[name=review_decision][value=return]")
    secretary.locator("#f-returned_agencies label.choice", has_text=SCHOOL).locator("input").check()
    comment = "Белов Егор посещал лагерь до 25 июня: исправьте дату окончания; приложите копию журнала"
    secretary.fill("#f-return_comment", comment)
    finish(secretary)

    # the school sees the comment beside its own rows, corrects the date and submits again
    open_campaign_task(school, base, f"{APP2} — {SCHOOL}")
    returned = school.locator("[data-panel=podrostok_return]")
    assert comment in returned.inner_text()
    assert school.input_value("input[name='employment[0][provider]']") == CAMP
    assert school.input_value("input[name='employment[0][date_to]']") == f"{YEAR}-06-21"
    school.fill("input[name='employment[0][date_to]']", f"{YEAR}-06-25")
    school.locator("input[name='employment[0][date_to]']").blur()
    screenshot(school, "podrostok-agency-task")
    finish(school)

    # the secretary accepts the corrected round; the monthly report's task is next
    at(engine, "07-06T15:00:00")
    open_campaign_task(secretary, base, REVIEW)
    secretary.check("input[name=review_decision][value=accept]")
    finish(secretary)
    open_campaign_task(secretary, base, MONTHLY)
    app3 = secretary.locator("[data-panel=podrostok_form]")
    assert f"Приложение 3 за июнь {YEAR} г." in app3.inner_text()

    # App. 3 on the operation's page: June as computed from the records and the agencies' App. 2
    secretary.goto(f"{base}/podrostok")
    rows = figures(secretary)
    june = {code: cells[:2] for code, cells in rows.items()}  # ИПР, СОП
    sop = {code: cells[1] for code, cells in june.items()}
    # covered: Белов (14, camp), Зайцева (11, playground), Тихонов (14, temporary job), Воронцов (13, camp)
    assert count(sop["3"]) == 4
    assert [count(sop[c]) for c in ("3.2", "3.4", "3.6", "3.8")] == [1, 1, 1, 1]
    assert count(sop["3.1"]) == 0 and count(sop["3.14"]) == 0
    # row 1 by age band; row 2 = row 1 − row 4.1; row 4 = row 1 − row 3
    total = count(sop["1"])
    assert total >= 4 and sum(count(sop[f"1.{b}"]) for b in range(1, 7)) == total
    assert count(sop["2"]) == total - count(sop["4.1"])
    assert count(sop["4"]) == total - 4
    assert count(sop["1.4"]) >= 2 and count(sop["1.5"]) >= 2  # 10–13: Зайцева, Воронцов; 14–15: Белов, Тихонов
    # coverage: row 3 of row 2; 3.2 of the 14–17 year olds of row 2; 3.4 of the 5–17 year olds
    assert percent(sop["3"]) == round(4 * 100 / count(sop["2"]), 1)
    assert percent(sop["3.2"]) == round(100 / (count(sop["2.5"]) + count(sop["2.6"])), 1)
    assert percent(sop["3.4"]) == round(100 / sum(count(sop[f"2.{b}"]) for b in range(2, 7)), 1)
    assert rows["3"][4:6] == ["—", "—"]  # August has not begun
    assert f"Не представили в срок: {HEALTH} (июнь {YEAR})" in secretary.locator(
        "section.podrostok-campaign").inner_text()
    assert "Белов Егор посещал лагерь до 25 июня" in secretary.locator("section.podrostok-campaign").inner_text()
    assert errors == []
