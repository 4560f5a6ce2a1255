"""«Статистика» in a real browser: the secretary opens it from the menu on the demo data, sees the figures beside
last year's and the monthly charts, and changes the date; the regional secretary sees the table by municipality."""

from __future__ import annotations

import re

from .conftest import screenshot
from .steps import follow_menu


def test_the_secretary_reads_the_statistics_with_charts(live, login):
    secretary = login("secretary")
    errors = []
    secretary.on("pageerror", lambda exc: errors.append(str(exc)))
    follow_menu(secretary, "Статистика")
    secretary.wait_for_url("**/reports")
    assert secretary.locator("h1").inner_text() == "Семьи и несовершеннолетние в СОП: статистика"
    main = secretary.locator("table.figures").first
    headings = main.locator("th").all_inner_texts()
    assert headings == ["Показатель", "Отчетный период", "АППГ", "Изменение, %"]
    families = main.locator("tr", has_text="Семей в СОП на дату").locator("td").all_inner_texts()
    assert int(families[1]) > 0 and re.fullmatch(r"\d+", families[2])
    # three monthly charts, one pair of bars per month of the period (1 January – today: 11 months)
    charts = secretary.locator(".grid3 svg.chart")
    assert charts.count() == 3
    assert charts.first.locator("g").count() == 11
    assert charts.first.locator("rect.bar.now").count() > 0
    assert "По муниципальным образованиям" not in secretary.content()
    screenshot(secretary, "reports")

    secretary.fill("input[name=on]", "2026-06-30")
    secretary.click("form.report-filters button[type=submit]")
    secretary.wait_for_load_state()
    assert "по состоянию на 30.06.2026" in secretary.locator(".report-head").inner_text()
    assert errors == []


def test_the_regional_secretary_sees_each_municipality(live, login):
    regional = login("regional")
    follow_menu(regional, "Статистика")
    regional.wait_for_url("**/reports")
    assert "Регион (все муниципальные образования)" in regional.locator(".report-head").inner_text()
    table = regional.locator("section.card", has_text="По муниципальным образованиям")
    assert "Йошкар-Ола" in table.inner_text()
