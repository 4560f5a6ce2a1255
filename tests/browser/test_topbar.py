"""The top bar fits one line on a 1280 px screen for every demo user: the reports are under one menu («Отчеты»),
the user's name is short («Фамилия И. О.»). The commission's bar is drawn as docs/screenshots/topbar-*.png."""

from __future__ import annotations

from sop.demo import USERS

from .conftest import SCREENSHOTS
from .steps import follow_menu

LAYOUT = """() => {
  const box = e => e.getBoundingClientRect();
  const bar = document.querySelector('.topbar'), who = document.querySelector('.topbar .who');
  const items = [...document.querySelectorAll('.topbar nav > a, .topbar nav > details > summary')];
  const name = who.querySelector('.name') || who.querySelector('span');
  return {tops: [...new Set(items.map(e => Math.round(box(e).top)))],
          heights: items.map(e => Math.round(box(e).height)),
          navRight: Math.max(...items.map(e => box(e).right)), whoLeft: box(who).left, whoRight: box(who).right,
          barHeight: box(bar).height, overflow: bar.scrollWidth > bar.clientWidth,
          nameCut: name.scrollWidth > name.clientWidth, items: items.map(e => e.textContent.trim())};
}"""


def test_the_top_bar_fits_1280_px_for_every_demo_user(login):
    for username in USERS:
        page = login(username, width=1280)
        layout = page.evaluate(LAYOUT)
        assert len(layout["tops"]) == 1, (username, layout)  # one row of items
        assert max(layout["heights"]) == min(layout["heights"]) < 40, (username, layout)  # each on one line
        assert layout["navRight"] < layout["whoLeft"] and layout["whoRight"] <= 1280, (username, layout)
        assert layout["barHeight"] == 52 and not layout["overflow"] and not layout["nameCut"], (username, layout)
        if username in ("chair", "secretary"):
            assert layout["items"][-1] == "Отчеты", layout
            page.screenshot(path=str(SCREENSHOTS / f"topbar-{username}.png"),
                            clip={"x": 0, "y": 0, "width": 1280, "height": 60})
            follow_menu(page, "Показатели")  # the menu opens, its link leads to the page, the menu is marked
            assert page.url.endswith("/kpi")
            assert page.locator("header nav details.menu.active summary").inner_text().strip() == "Отчеты"
            assert page.locator("header nav a[aria-current=page]").text_content() == "Показатели"  # in the closed menu
        page.context.close()
