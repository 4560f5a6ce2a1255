"""«Показатели» in a real browser on the demo data: the secretary opens it from the menu, reads plan vs actual for
the last half-year (the demo ran its campaign) with the chart, and changes a planned value; the chair reads it
without the editor."""

from __future__ import annotations

from .conftest import screenshot
from .steps import follow_menu


def test_the_secretary_reads_and_changes_the_kpi_plan(live, login):
    secretary = login("secretary")
    errors = []
    secretary.on("pageerror", lambda exc: errors.append(str(exc)))
    follow_menu(secretary, "Показатели")
    secretary.wait_for_url("**/kpi")
    assert secretary.locator("h1").inner_text() == "Ключевые показатели: план и факт"
    assert "I полугодие 2026 года" in secretary.locator(".report-head").inner_text()
    table = secretary.locator("table.kpi")
    families = table.locator("tr", has_text="Семьи, находящиеся в социально опасном положении")
    cells = families.locator("td").all_inner_texts()
    assert cells[0] == "1.3" and int(cells[4]) > 0  # the actual from the demo's cases
    assert families.locator("input[name='plan_1.3']").input_value() == "95"  # seed 003's target for 2026-H1
    # the consolidated values of the demo's campaign: 1.2 at 80 % of its plan of 75 %
    share = table.locator("tr", has_text="Удельный вес детей").locator("td").all_inner_texts()
    assert share[4] == "60\u00a0%" and share[5] == "−15"
    chart = secretary.locator("svg.chart")
    assert chart.locator("rect.bar.good").count() > 0 and chart.locator("rect.bar.poor").count() > 0
    screenshot(secretary, "kpi")

    families.locator("input[name='plan_1.3']").fill("90")
    secretary.click("text=Сохранить план")
    secretary.wait_for_load_state()
    assert "План сохранен: изменено значений — 1." in secretary.content()
    families = secretary.locator("table.kpi tr", has_text="Семьи, находящиеся в социально опасном положении")
    assert families.locator("input[name='plan_1.3']").input_value() == "90"
    assert errors == []


def test_the_chair_reads_the_plan_without_the_editor(live, login):
    chair = login("chair")
    follow_menu(chair, "Показатели")
    chair.wait_for_url("**/kpi")
    assert chair.locator("table.kpi").count() == 1
    assert chair.locator("input[name^='plan_']").count() == 0
    assert chair.locator("text=Сохранить план").count() == 0


def test_the_regional_secretary_reads_the_region_and_downloads_it(live, login):
    """The region is the default for the regional secretary (the demo has one municipality: the region is its sum),
    read-only; the XLSX downloads from the page."""
    import io

    from openpyxl import load_workbook

    regional = login("regional")
    follow_menu(regional, "Показатели")
    regional.wait_for_url("**/kpi")
    assert "Регион (все муниципальные образования)" in regional.locator(".report-head").inner_text()
    assert regional.locator("input[name^='plan_']").count() == 0
    families = regional.locator("table.kpi tr", has_text="Семьи, находящиеся в социально опасном положении")
    cells = families.locator("td").all_inner_texts()
    with regional.expect_download() as download:
        regional.click("text=План и факт (XLSX)")
    ws = load_workbook(io.BytesIO(download.value.path().read_bytes())).active
    row = next(r for r in ws.iter_rows(values_only=True) if r[0] == "1.3")
    assert [str(int(v)) for v in row[3:5]] == [cells[3], cells[4]]  # plan and actual as on the page
