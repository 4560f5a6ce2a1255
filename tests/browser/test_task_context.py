"""The commission's decision on recognition in a real browser: the check's conclusion above the form, the curator
chosen from a list of people by name."""

from __future__ import annotations

from .conftest import screenshot

SIGNAL = {"received_on": "2026-11-20", "source": "Участковый уполномоченный полиции",
          "children": [{"last_name": "Николаев", "first_name": "Артем", "patronymic": "Игоревич",
                        "birth_date": "2014-02-03", "occupation": "МБОУ «Средняя школа № 5», 6 «А»"}],
          "parents": [{"last_name": "Николаева", "first_name": "Вера", "patronymic": "Павловна",
                       "birth_date": "1990-07-15", "occupation": "не работает"}],
          "address": "г. Йошкар-Ола, ул. Советская, д. 150, кв. 9",
          "problem": "Мать оставляет ребенка одного на несколько дней, в квартире нет продуктов"}
CHECK = {"minor_name": "Николаев Артем Игоревич, 03.02.2014", "parents_names": "Николаева Вера Павловна",
         "living_conditions": "Отдельного места для сна и занятий нет, в квартире холодно",
         "housing_type": "apartment", "housing_area": 31, "sanitary_state": "unsatisfactory",
         "family_criteria": ["c1", "c2"], "danger_level": "high", "sop_confirmed": True,
         "conclusion": "Семья находится в социально опасном положении: мать уклоняется от воспитания и содержания "
                       "ребенка, злоупотребляет алкоголем", "head_name": "Кузнецов А. П.",
         "conclusion_date": "2026-11-25"}


def test_the_recognition_shows_the_conclusion_and_the_curator_by_name(live, login):
    engine = live["engine"]
    result = engine.sop.register_intake("school", SIGNAL)
    iid = result.instance_ids[0]
    check = next(t for t in engine.tasks.query(instance_id=iid) if t["element_id"] == "sop_check")
    engine.tasks.complete(check["id"], "secretary", CHECK)
    recognition = next(t for t in engine.tasks.query(instance_id=iid) if t["element_id"] == "sop_recognition")

    chair = login("chair")
    chair.goto(f"{live['base']}/tasks/{recognition['id']}")
    panel = chair.locator("[data-panel=conclusion]")
    assert panel.is_visible()
    text = panel.inner_text()
    assert "Заключение по результатам проверки" in text and "высокий" in text
    assert "мать уклоняется от воспитания" in text
    assert chair.locator("[data-panel=family]").inner_text().count("Николаев") >= 2
    # the panel is above the form
    assert panel.bounding_box()["y"] < chair.locator("form.task-form").bounding_box()["y"]
    labels = chair.locator("#f-curator option").all_inner_texts()
    assert any(label.startswith("Васильева Елена Николаевна (") for label in labels), labels
    chair.check("input[name=decision][value=recognize]")
    chair.fill("#f-meeting_date", "2026-11-26")
    chair.fill("#f-resolution_number", "78/12")
    chair.select_option("#f-curator", "curator")
    chair.check("input[name=working_group][value=police]")
    chair.locator("[data-panel=conclusion]").scroll_into_view_if_needed()
    screenshot(chair, "task-context")
    chair.locator("button.primary").click()
    chair.wait_for_load_state()
    assert chair.locator(".field-error").count() == 0
    assert engine.sop.case(result.case_id)["curator"] == "curator"
