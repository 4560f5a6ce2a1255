"""The top bar: the report pages under one menu «Отчеты», marked when one of them is open; the user's short name."""

from __future__ import annotations

import re

from webapp.filters import initials
from webapp.views import menu

from .test_web_reports import client_of, web  # noqa: F401 - the fixture


def bar(page: str) -> str:
    return re.sub(r"\s+", " ", re.search(r"<nav>.*?</nav>", page, re.S).group(0))


def test_the_commission_finds_the_reports_under_one_menu(web):  # noqa: F811
    chair = client_of(web, "chair")
    inbox = bar(chair.get("/inbox").get_data(as_text=True))
    assert re.findall(r"<a href=\"([^\"]+)\"", inbox) == ["/inbox", "/cases", "/registers", "/manager/overdue",
                                                          "/meetings", "/reports", "/kpi", "/podrostok"]
    assert '<details class="menu"> <summary>Отчеты</summary>' in inbox
    kpi = bar(chair.get("/kpi").get_data(as_text=True))
    assert '<details class="menu active"> <summary>Отчеты</summary>' in kpi
    assert '<a href="/kpi" class="active" aria-current="page">Показатели</a>' in kpi
    page = chair.get("/inbox").get_data(as_text=True)
    assert '<span class="name" title="Кузнецов Андрей, КДН Йошкар-Олы">Кузнецов Андрей</span>' in page
    # a user with no report sees no menu
    assert "<details" not in bar(client_of(web, "school").get("/inbox").get_data(as_text=True))


def test_a_manager_finds_the_reports_they_may_open(web):  # noqa: F811
    """The manager at the commission gets the whole menu; an agency's manager the pages of figures alone (not
    «Подросток», `webapp.access.reads_reports`); the links are those the pages open."""
    links = {"/reports": "/reports?on=2025-12-31", "/kpi": "/kpi?half=2025-H2", "/podrostok": "/podrostok"}
    for username, shown in (("manager", ["/reports", "/kpi", "/podrostok"]), ("amanager", ["/reports", "/kpi"])):
        client = client_of(web, username)
        inbox = bar(client.get("/inbox").get_data(as_text=True))
        assert '<details class="menu"> <summary>Отчеты</summary>' in inbox, username
        assert [href for href in re.findall(r"<a href=\"([^\"]+)\"", inbox) if href in links] == shown, username
        for path, url in links.items():
            assert (client.get(url).status_code == 200) == (path in shown), (username, path)


def test_a_menu_of_one_link_is_the_link():
    links = [("inbox.index", "Мои задачи", False), ("kpi.index", "Показатели", True)]
    assert menu(links) == [{"endpoint": "inbox.index", "label": "Мои задачи", "active": False, "children": None},
                           {"endpoint": "kpi.index", "label": "Показатели", "active": True, "children": None}]
    both = menu([*links, ("reports.index", "Статистика", False)])
    assert [item["label"] for item in both] == ["Мои задачи", "Отчеты"]  # in the place of the first of them
    assert both[1]["active"] and [c["label"] for c in both[1]["children"]] == ["Показатели", "Статистика"]


def test_initials():
    assert initials("Смирнова Ольга Викторовна") == "Смирнова О. В."
    assert initials("Администратор системы") == "Администратор системы"
    assert initials("secretary") == "secretary"
    assert initials("=HYPERLINK(\"http://x\",\"y\")") == "=HYPERLINK(\"http://x\",\"y\")"
    assert initials(None) == ""
