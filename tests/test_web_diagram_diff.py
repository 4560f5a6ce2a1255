"""«Сравнение версий» on the web: methodologists only, versions picked by key/from/to, 404 and 400 with messages
that say what to fix, every view audited, the JSON variant with both XML files and the diff."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .modeler_support import modeler_app, signed_in
from .test_web_auth import login

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
SOP_CASE = (WORKFLOWS / "sop_case.bpmn").read_text(encoding="utf-8")
V2 = (SOP_CASE.replace('camunda:dueDate="${working_days(5, received)}"',
                      'camunda:dueDate="${working_days(7, received)}"')
      .replace('<bpmn:lane id="Lane_case_agency" name="agency_specialist">',
               '<bpmn:lane id="Lane_case_agency" name="education">'))


@pytest.fixture
def app(engine):
    from .test_sop_diagrams import FORMS

    app = modeler_app(engine)
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))],
                             deployed_by="installer", comment="Первая установка")
    assert V2 != SOP_CASE
    engine.repository.deploy([("sop_case.bpmn", V2)], deployed_by="method", comment="Срок проверки 7 рабочих дней")
    return app


@pytest.fixture
def method(app):
    return signed_in(app)


def audit(app, action="diagram_diff_viewed") -> list[dict]:
    return [e for e in app.extensions["kurator"].audit.events() if e["action"] == action]


def page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" nonce="[^"]+" id="diff-data">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


@pytest.mark.parametrize("username", ["secretary", "admin"])
def test_other_roles_get_403(app, username):
    client = app.test_client()
    login(client, username)
    for path in ("/modeler/diff?key=sop_case&from=1&to=2", "/modeler/diff/data?key=sop_case&from=1&to=2"):
        assert client.get(path).status_code == 403
    assert audit(app) == []


def test_anonymous_is_sent_to_login(app):
    for path in ("/modeler/diff?key=sop_case&from=1&to=2", "/modeler/diff/data?key=sop_case&from=1&to=2"):
        response = app.test_client().get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_page_shows_both_versions_the_changes_and_the_viewer(app, method):
    response = method.get("/modeler/diff?key=sop_case&from=1&to=2")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "vendor/bpmn-viewer.production.min.js" in page and "diagram-diff.js" in page
    assert "diagram-diff.css" in page
    # who deployed what and when, with the comment, for both sides of the comparison
    assert "installer" in page and "Первая установка" in page
    assert "method" in page and "Срок проверки 7 рабочих дней" in page
    assert 'name="from"' in page and 'name="to"' in page
    # the grouped list: changed elements with the labels of what changed
    assert "Изменено" in page and 'data-id="sop_check"' in page and 'data-id="Lane_case_agency"' in page
    assert "Срок (camunda:dueDate)" in page
    assert "Добавлено" not in page.split('id="diff-list-h"', 1)[1].split("</section>", 1)[0]
    data = page_data(page)
    assert data["old"]["version"] == 1 and data["new"]["version"] == 2
    assert data["old"]["xml"] == SOP_CASE and data["new"]["xml"] == V2
    assert {i["id"] for i in data["diff"]["changed"]} == {"sop_check", "Lane_case_agency"}
    events = audit(app)
    assert len(events) == 1
    event = events[0]
    assert (event["actor"], event["object_type"], event["object_id"]) == ("method", "process", "sop_case")
    assert event["details"]["from"] == 1 and event["details"]["to"] == 2 and event["details"]["changed"] == 2
    assert event["details"]["via"] == "page"


def test_json_variant_returns_both_xml_files_and_the_diff(app, method):
    response = method.get("/modeler/diff/data?key=sop_case&from=1&to=2")
    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    assert body["key"] == "sop_case"
    assert body["from"]["version"] == 1 and body["from"]["xml"] == SOP_CASE
    assert body["from"]["deployed_by"] == "installer" and body["from"]["comment"] == "Первая установка"
    assert body["to"]["version"] == 2 and body["to"]["xml"] == V2 and body["to"]["deployed_by"] == "method"
    assert body["to"]["deployed_at"].startswith("2025-10-30")
    diff = body["diff"]
    assert diff["summary"] == {"added": 0, "removed": 0, "changed": 2, "moved": 0}
    check = next(i for i in diff["changed"] if i["id"] == "sop_check")
    assert check["changes"] == [{"what": "Срок (camunda:dueDate)", "old": "${working_days(5, received)}",
                                 "new": "${working_days(7, received)}"}]
    # the other direction reads the other way round; a version against itself is identical
    back = method.get("/modeler/diff/data?key=sop_case&from=2&to=1").get_json()["diff"]
    assert next(i for i in back["changed"] if i["id"] == "sop_check")["changes"][0]["new"] == \
        "${working_days(5, received)}"
    assert method.get("/modeler/diff/data?key=sop_case&from=2&to=2").get_json()["diff"]["identical"] is True
    assert [e["details"]["via"] for e in audit(app)] == ["json", "json", "json"]


def test_unknown_process_or_version_is_404(app, method):
    for query, text in (("key=nope&from=1&to=2", "Процесс «nope» не развернут"),
                        ("key=sop_case&from=1&to=9", "нет версии 9"),
                        ("key=sop_case&from=7&to=2", "нет версии 7"),
                        ("key=emergency_child_safety&from=1&to=2", "нет версии 2")):
        page = method.get(f"/modeler/diff?{query}")
        assert page.status_code == 404 and text in page.get_data(as_text=True)
        data = method.get(f"/modeler/diff/data?{query}")
        assert data.status_code == 404 and data.get_json()["error"] == "not_found"
        assert text in data.get_json()["message"]
    assert audit(app) == []


@pytest.mark.parametrize(("query", "text"), [
    ("from=1&to=2", "Не указан процесс: добавьте параметр key"),
    ("key=&from=1&to=2", "Не указан процесс"),
    ("key=sop_case&to=2", "Не указана исходная версия: добавьте параметр from"),
    ("key=sop_case&from=1", "Не указана сравниваемая версия: добавьте параметр to"),
    ("key=sop_case&from=abc&to=2", "Номер версии в параметре from должен быть целым положительным числом"),
    ("key=sop_case&from=1&to=-2", "параметре to должен быть целым положительным числом"),
    ("key=sop_case&from=0&to=2", "параметре from"),
    ("key=sop_case&from=1.5&to=2", "«1.5»"),
    ("key=sop_case&from=99999999999999999999&to=2", "параметре from"),
])
def test_bad_parameters_are_400_with_a_russian_message(app, method, query, text):
    page = method.get(f"/modeler/diff?{query}")
    assert page.status_code == 400 and text in page.get_data(as_text=True)
    data = method.get(f"/modeler/diff/data?{query}")
    assert data.status_code == 400 and data.get_json()["error"] == "bad_request"
    assert text in data.get_json()["message"]
    assert audit(app) == []


def test_modeler_list_links_to_the_comparison(method):
    page = method.get("/modeler").get_data(as_text=True)
    # the compact form for a key with two versions: from the previous to the latest
    form = re.search(r'<form method="get" action="/modeler/diff" class="modeler-compare">(.*?)</form>', page, re.S)
    assert form and 'name="key" value="sop_case"' in form.group(1)
    assert re.search(r'<select name="from"[^>]*>.*?<option value="1" selected>', form.group(1), re.S)
    assert re.search(r'<select name="to"[^>]*><option value="2" selected>', form.group(1))
    assert page.count('class="modeler-compare"') == 1  # the other processes have one version only
    # the per-version link: version 2 against version 1; version 1 has nothing before it
    assert "/modeler/diff?key=sop_case&amp;from=1&amp;to=2" in page
    assert page.count("сравнить с предыдущей") == 1
