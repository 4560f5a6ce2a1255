"""Never a 500 from the modeler's JSON endpoints: malformed bodies of every shape get a clear 4xx (or a 200 that
reports the problem), and change nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from engine.models import MigrationBatch, ModelerDraft, ProcessDefinition

from .modeler_support import modeler_app, signed_in, token
from .test_sop_diagrams import FORMS, WORKFLOWS

ENDPOINTS = ["/modeler/validate", "/modeler/deploy", "/modeler/drafts", "/modeler/simulate",
             "/modeler/forms/preview", "/modeler/forms/deploy", "/modeler/migrations/plan",
             "/modeler/migrations/start"]
BODIES = [
    "not json", "[]", "null", "42", '"text"', "{}",
    json.dumps({"xml": 5, "content": [], "kind": {}, "scenario": "x", "schema": 7, "key": ["sop_case"]}),
    json.dumps({"xml": "<a/>", "content": "<a/>", "kind": "diagram", "scenario": {"steps": "many"},
                "schema": "{", "key": "sop_case", "target_version": "latest", "from_versions": ["x"]}),
    json.dumps({"xml": "", "key": "", "stages": [1, 2], "after_id": -1, "limit": 0, "movable_ids": "all"}),
    json.dumps({"key": "sop_case", "target_version": 10 ** 30, "instance_ids": [10 ** 30], "draft_id": 10 ** 30,
                "revision": -5, "base_version": True}),
    json.dumps({"xml": "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
                "scenario": {"start": "yesterday", "steps": [{"advance": {"day": -3}}, {"complete": None}]}}),
    # what Python's json cannot take: an integer beyond its 4,300-digit limit, nesting past its recursion limit
    '{"key": "sop_case", "target_version": ' + "7" * 5000 + "}",
    '{"scenario": ' + '{"steps": [' * 5000 + "]}" * 5000 + "}",
    "[" * 10_000 + "]" * 10_000,
]


@pytest.fixture
def app(engine):
    app = modeler_app(engine)
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))],
                             deployed_by="installer")
    return app


def counts(app) -> tuple[int, int, int]:
    with app.extensions["kurator"].db.session() as db:
        return tuple(db.scalar(select(func.count()).select_from(model))
                     for model in (ProcessDefinition, ModelerDraft, MigrationBatch))


@pytest.mark.parametrize("path", ENDPOINTS)
def test_malformed_bodies_get_a_clear_answer_and_change_nothing(app, path):
    client = signed_in(app)
    csrf = token(client)
    before = counts(app)
    for body in BODIES:
        response = client.post(path, data=body, content_type="application/json", headers={"X-CSRFToken": csrf})
        assert response.status_code < 500, (path, body, response.get_data(as_text=True)[:300])
        if response.status_code >= 400:
            payload = response.get_json(silent=True)
            text = json.dumps(payload, ensure_ascii=False) if payload else response.get_data(as_text=True)
            assert any("\u0400" <= ch <= "\u04ff" for ch in text), (path, body, text[:300])  # said in Russian
    assert counts(app) == before


def test_a_deploy_naming_an_impossible_draft_still_deploys_and_closes_nothing(app):
    engine = app.extensions["kurator"]
    draft = engine.drafts.save("diagram", "<x/>", "method", key="other")
    client = signed_in(app)
    xml = (WORKFLOWS / "quarterly_reconciliation.bpmn").read_text(encoding="utf-8").replace(
        'isExecutable="true"', 'isExecutable="true" camunda:versionTag="2"', 1)
    for draft_id in (10 ** 30, True, -1, "1"):
        response = client.post("/modeler/deploy", data=json.dumps({"xml": xml, "draft_id": draft_id}),
                               content_type="application/json", headers={"X-CSRFToken": token(client)})
        assert response.status_code == 200 and response.get_json()["draft_deleted"] is False
    assert [d["id"] for d in engine.drafts.list()] == [draft["id"]]


HUGE = 10 ** 30


@pytest.mark.parametrize("path", [
    f"/modeler/edit?key=sop_case&version={HUGE}", f"/modeler/edit?draft={HUGE}",
    f"/modeler/forms/edit?key=sop_check&version={HUGE}", f"/modeler/forms/edit?draft={HUGE}",
    f"/modeler/diff?key=sop_case&from={HUGE}&to=1", f"/modeler/diff/data?key=sop_case&from=1&to={HUGE}",
    f"/modeler/migrations/{HUGE}", "/modeler/diff?key=sop_case&from=-1&to=x", "/modeler/migrations?key=%00",
])
def test_odd_query_parameters_get_a_4xx(app, path):
    response = signed_in(app).get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)


@pytest.mark.parametrize("path", [f"/cases/{HUGE}", f"/inbox?page={HUGE}", f"/cases?page={HUGE}",
                                  f"/registers/journal?agency={HUGE}"])
def test_huge_numbers_elsewhere_are_not_found_or_ignored(app, path):
    response = signed_in(app, "secretary").get(path)
    assert response.status_code in (200, 302, 404), (path, response.status_code)


def test_nul_characters_are_refused_before_they_reach_the_database(app):
    client = signed_in(app)
    csrf = token(client)
    for path, body in (("/modeler/validate", {"xml": "<a>\u0000</a>"}),
                       ("/modeler/drafts", {"kind": "form", "content": "{}", "key": "x\u0000"}),
                       ("/modeler/migrations/plan", {"key": "sop_case\u0000"})):
        response = client.post(path, data=json.dumps(body), content_type="application/json",
                               headers={"X-CSRFToken": csrf})
        assert response.status_code == 400 and "NUL" in response.get_data(as_text=True), path
    assert client.get("/modeler/forms/edit?key=a%00b").status_code == 400
    assert client.get("/cases/1%00").status_code in (400, 404)
    assert counts(app) == (counts(app)[0], 0, 0)
