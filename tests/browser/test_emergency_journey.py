"""Issue 11's emergency journey in a real browser: a school registers a signal with a threat to life; at once the
guardianship specialist finds the visit in her inbox (addressed to her agency), opens the case file from the task,
records a removal from both parents and completes every guardianship step the removal opens; the police and social
protection each complete their own agency's step and see no other agency's; the secretary sees the red flag for
the case while the emergency is open, and after its last step the flag is gone and the case file's timeline shows
the emergency's steps."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.models import HumanTask
from sop.demo import AGENCIES
from sop.models import Case, InstanceScope

from .conftest import SCREENSHOTS, screenshot
from .steps import finish, inbox_rows, open_task

GUARDIANSHIP = AGENCIES["guardianship"][0]
POLICE = AGENCIES["police"][0]
SOCIAL = AGENCIES["social"][0]

INSPECTION = "Выезд и акт обследования условий жизни ребенка"
REMOVAL_ACT = "Акт об отобрании ребенка"
PROSECUTOR = "Уведомить прокурора об отобрании ребенка"
ORPHAN_JOURNAL = "Учет в журнале детей, оставшихся без попечения родителей"
COURT_CLAIM = "Иск в суд о лишении (ограничении) родительских прав"
INFORM = "Информировать КДНиЗП о принятых мерах"
POLICE_STEP = "Меры ОВД"
SOCIAL_STEP = "Обследование семьи"
GUARDIAN_STEPS = (INSPECTION, REMOVAL_ACT, PROSECUTOR, ORPHAN_JOURNAL, COURT_CLAIM, INFORM)


def emergency_task_ids(engine, number: str) -> dict[str, str]:
    """Name -> id of the case's emergency tasks (to try opening another agency's task by its address)."""
    with engine.db.session() as db:
        case_id = db.scalar(select(Case.id).where(Case.number == number))
        instances = select(InstanceScope.instance_id).where(InstanceScope.case_id == case_id)
        return {t.name: t.id for t in db.scalars(select(HumanTask).where(HumanTask.instance_id.in_(instances),
                                                                         HumanTask.element_id.like("em_%")))}


def flag_cases(page) -> str:
    banner = page.locator(".emergency-flag")
    return banner.inner_text() if banner.count() else ""


def test_threat_to_life_reaches_guardianship_police_and_social_and_the_flag_follows_it(live, login):
    base = live["base"]

    # 1. The school registers a signal with a threat to life for a new family.
    school = login("school")
    school.goto(f"{base}/intake/new")
    today = school.input_value("#f-received_on")
    school.fill("#f-source", "Социальный педагог МБОУ «Средняя школа № 5», тел. 45-12-09")
    school.fill("#f-problem", "Ученица пришла в школу с побоями, говорит, что отчим выгнал ее из дома ночью")
    school.fill("#f-address", "г. Йошкар-Ола, ул. Петрова, д. 23, кв. 14")
    school.check("#f-threat_to_life")
    school.fill("input[name='children.0.last_name']", "Воронцова")
    school.fill("input[name='children.0.first_name']", "Вероника")
    school.fill("input[name='children.0.birth_date']", "2014-02-11")
    school.fill("input[name='parents.0.last_name']", "Воронцова")
    school.fill("input[name='parents.0.first_name']", "Лариса")
    school.fill("input[name='parents.1.last_name']", "Шубин")
    school.fill("input[name='parents.1.first_name']", "Олег")
    school.locator("button.primary", has_text="Зарегистрировать").click()
    school.wait_for_load_state()
    flash = school.locator(".flash").first.inner_text()
    found = re.search(r"Сообщение зарегистрировано: дело № (\d+/\d{4})", flash)
    assert found, flash
    number = found.group(1)

    # 2. At once the guardianship specialist has the visit, addressed to her agency.
    guardian = login("guardian")
    row = guardian.locator("table.list tbody tr", has_text=INSPECTION).filter(has_text=f"№ {number}")
    assert row.count() == 1, "the visit of the new case is not on the first page of the guardian's inbox"
    assert GUARDIANSHIP in row.locator(".task-agency").inner_text()
    assert "Экстренные меры по обеспечению безопасности ребенка" in row.inner_text()
    screenshot(guardian, "emergency-guardian-inbox")
    others = inbox_rows(guardian, base, number, None).all_inner_texts()
    assert not any(POLICE_STEP in r or SOCIAL_STEP in r for r in others), others  # not the other agencies' steps

    open_task(guardian, base, number, INSPECTION)
    assert GUARDIANSHIP in guardian.locator(".task-agency").first.inner_text()
    task_url = guardian.url
    guardian.locator(".task-side a", has_text=f"№ {number}").click()
    guardian.wait_for_load_state()
    heading = guardian.locator("h1").inner_text()
    assert "Дело не найдено" not in guardian.content(), f"the guardian may not open case {number} from her task"
    assert heading.startswith("Личное дело"), heading
    assert "Воронцова" in guardian.content()
    guardian.go_back()
    guardian.wait_for_load_state()
    assert guardian.url == task_url

    # what she goes to: the threat as the journal has it, above the act
    threat = guardian.locator("[data-panel=signal]").inner_text()
    assert "отчим выгнал ее из дома ночью" in threat and "г. Йошкар-Ола, ул. Петрова, д. 23, кв. 14" in threat
    guardian.fill("#f-visit_date", today)
    guardian.fill("#f-inspection_act_number", "АО-118")
    guardian.fill("#f-inspection_findings", "Следы побоев, ребенок ночевал у соседей; мать и отчим в состоянии "
                                            "алкогольного опьянения, продуктов питания нет")
    guardian.check("#f-threat_confirmed")
    guardian.check("#f-removed")
    guardian.check("#f-removed_from_all_parents")
    guardian.fill("#f-removal_date", today)
    guardian.check("input[name=placement][value=institution]")
    guardian.check("#f-police_called")
    finish(guardian)

    # every step the removal opens is the guardian's and is in her inbox
    for name in (REMOVAL_ACT, PROSECUTOR, ORPHAN_JOURNAL, COURT_CLAIM):
        row = inbox_rows(guardian, base, number, name)
        assert row.count() == 1, f"{name!r} is not in the guardian's inbox"
        assert GUARDIANSHIP in row.inner_text()
    assert inbox_rows(guardian, base, number, INFORM).count() == 0  # only after the act and the notice

    open_task(guardian, base, number, REMOVAL_ACT)
    # the removal act shows the visit's act and starts from what it recorded
    visit = guardian.locator("[data-panel=visit]").inner_text()
    assert "АО-118" in visit and "Временно в организацию для детей-сирот" in visit
    assert guardian.input_value("#f-removal_act_date") == today
    assert guardian.input_value("#f-placement_details") == "Временно в организацию для детей-сирот"
    screenshot(guardian, "emergency-removal-act")
    guardian.fill("#f-removal_act_number", "15-о")
    guardian.fill("#f-removal_act_date", today)
    guardian.check("#f-removal_act_signed")
    guardian.fill("#f-removal_act_signed_by", "Глава городского округа")
    guardian.fill("#f-placement_details", "ГБУ РМЭ «Социальный приют для детей», временно")
    guardian.check("#f-social_protection_informed")
    finish(guardian)

    open_task(guardian, base, number, PROSECUTOR)
    guardian.fill("#f-prosecutor_office", "Прокуратура г. Йошкар-Олы")
    guardian.fill("#f-prosecutor_notice_date", today)
    guardian.fill("#f-prosecutor_notice_number", "01-12/331")
    finish(guardian)

    open_task(guardian, base, number, ORPHAN_JOURNAL)
    guardian.fill("#f-orphan_journal_number", "47")
    guardian.fill("#f-orphan_journal_date", today)
    guardian.check("#f-questionnaire_section_1")
    finish(guardian)

    open_task(guardian, base, number, COURT_CLAIM)
    guardian.check("input[name=claim_kind][value=deprive]")
    guardian.fill("#f-court_name", "Йошкар-Олинский городской суд")
    guardian.fill("#f-claim_date", today)
    finish(guardian)

    open_task(guardian, base, number, INFORM)
    assert "ГБУ РМЭ «Социальный приют для детей», временно" in guardian.locator("[data-panel=removal]").inner_text()
    started = guardian.input_value("#f-measures_taken")  # from the measures recorded
    assert started.startswith("Выезд и обследование условий жизни ребенка") and "№ 15-о" in started, started
    guardian.fill("#f-inform_date", today)
    guardian.fill("#f-measures_taken", "Ребенок отобран и помещен в социальный приют; иск о лишении "
                                       "родительских прав подан")
    finish(guardian)
    for name in GUARDIAN_STEPS:
        assert inbox_rows(guardian, base, number, name).count() == 0, f"{name!r} is still open"

    tasks = emergency_task_ids(live["engine"], number)
    police_task = next(i for n, i in tasks.items() if n.startswith(POLICE_STEP))
    social_task = next(i for n, i in tasks.items() if n.startswith(SOCIAL_STEP))

    # 3. Police and social protection: each sees its own step only.
    police = login("police")
    police_rows = inbox_rows(police, base, number, None).all_inner_texts()
    assert any(POLICE_STEP in r and POLICE in r for r in police_rows), police_rows
    assert not any(SOCIAL_STEP in r or INSPECTION in r for r in police_rows), police_rows
    assert police.goto(f"{base}/tasks/{social_task}").status == 404  # another agency's task is not there

    social = login("social")
    social_rows = inbox_rows(social, base, number, None).all_inner_texts()
    assert any(SOCIAL_STEP in r and SOCIAL in r for r in social_rows), social_rows
    assert not any(POLICE_STEP in r or INSPECTION in r for r in social_rows), social_rows
    assert social.goto(f"{base}/tasks/{police_task}").status == 404

    open_task(police, base, number, POLICE_STEP)
    police.check("#f-guardianship_informed")
    police.fill("#f-police_measures", "Выезд наряда вместе с органом опеки; в отношении отчима составлен протокол")
    police.fill("#f-police_report_date", today)
    finish(police)

    # 4. While the social step is still open, the secretary sees the flag for the case.
    secretary = login("secretary")
    assert f"дело № {number}" in flag_cases(secretary), "no emergency flag for the open case in the inbox"
    secretary.goto(f"{base}/cases")
    assert f"дело № {number}" in flag_cases(secretary), "no emergency flag for the open case in the case list"
    secretary.goto(f"{base}/cases?q={number}")
    secretary.locator("a", has_text=number).first.click()
    secretary.wait_for_load_state()
    case_url = secretary.url
    this = secretary.locator(".emergency-flag .emergency-this")
    assert this.count() == 1 and "по этому делу экстренные меры не завершены" in this.inner_text()
    secretary.locator(".emergency-flag").screenshot(path=str(screenshot_path("emergency-journey-case-flag")))

    open_task(social, base, number, SOCIAL_STEP)
    social.fill("#f-social_inspection_date", today)
    social.fill("#f-social_findings", "Мать состоит на учете у нарколога; отчим не работает; ребенок в приюте")
    social.fill("#f-social_report_date", today)
    finish(social)

    # ... and after the last step the flag for the case is gone, the timeline shows the emergency.
    secretary.goto(f"{base}/inbox")
    assert f"дело № {number}" not in flag_cases(secretary)
    secretary.goto(f"{base}/cases")
    assert f"дело № {number}" not in flag_cases(secretary)
    secretary.goto(case_url)
    secretary.wait_for_load_state()
    assert secretary.locator(".emergency-flag .emergency-this").count() == 0
    timeline = secretary.locator("#timeline").inner_text()
    for name in GUARDIAN_STEPS + (POLICE_STEP, SOCIAL_STEP):
        assert name in timeline, f"{name!r} is not in the case's timeline"
    completed = secretary.locator("#timeline tr", has_text="Процесс завершен").filter(
        has_text="Экстренные меры по обеспечению безопасности ребенка")
    assert completed.count() >= 1, "the emergency's end is not in the timeline"
    secretary.locator("#timeline").screenshot(path=str(screenshot_path("emergency-journey-timeline")))
    # what each step recorded is in the case file, for the commission
    measures = secretary.locator("#emergency").inner_text()
    for text in ("АО-118", "15-о", "Прокуратура г. Йошкар-Олы", "в отношении отчима составлен протокол",
                 "Мать состоит на учете у нарколога", "иск о лишении родительских прав подан"):
        assert text in measures, f"{text!r} is not in the case file's emergency measures"
    secretary.locator("#emergency").screenshot(path=str(screenshot_path("emergency-case-file")))


def screenshot_path(name: str):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
