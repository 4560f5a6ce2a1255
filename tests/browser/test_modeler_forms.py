"""The forms editor in a real browser: edit a task form as JSON, watch the preview, save a draft, deploy."""

from __future__ import annotations

import json

from sqlalchemy import select

from engine.models import FormDefinition, ProcessDefinition

from .conftest import screenshot

NEW_LABEL = "Ф.И.О. несовершеннолетнего и дата его рождения"


def _latest(engine, model, key):
    with engine.db.session() as db:
        return db.scalar(select(model.version).where(model.key == key).order_by(model.version.desc()).limit(1))


def test_methodologist_edits_a_form_with_a_live_preview_and_deploys_it(live, login):
    engine = live["engine"]
    form_before = _latest(engine, FormDefinition, "sop_check")
    process_before = _latest(engine, ProcessDefinition, "sop_case")
    page = login("methodologist")
    page.goto(f"{live['base']}/modeler")
    page.get_by_role("link", name="Формы задач").click()
    page.wait_for_selector("text=sop_check")
    page.get_by_role("link", name="Изменить форму sop_check").click()
    page.wait_for_selector("#form-editor.preview-ready .form-preview >> text=Ф.И.О. несовершеннолетнего",
                           timeout=15_000)

    schema = json.loads(page.input_value("#form-json"))
    field = next(c for c in schema["components"] if c.get("key") == "minor_name")
    field["label"] = NEW_LABEL
    page.fill("#form-json", json.dumps(schema, ensure_ascii=False, indent=2))
    page.wait_for_selector(f".form-preview >> text={NEW_LABEL}", timeout=15_000)

    page.fill("#form-json", page.input_value("#form-json").replace('"key": "minor_name"', '"key": "minor name"'))
    page.wait_for_selector(".form-problems >> text=minor name", timeout=15_000)
    screenshot(page, "modeler-form-problem")
    page.fill("#form-json", json.dumps(schema, ensure_ascii=False, indent=2))
    page.wait_for_function("() => document.querySelector('.form-problems').children.length === 0", timeout=15_000)

    page.fill("input[name=comment]", "Уточнена подпись поля")
    page.get_by_role("button", name="Сохранить черновик").click()
    page.wait_for_selector(".modeler-status.ok >> text=Черновик сохранен", timeout=15_000)
    assert "draft=" in page.url
    screenshot(page, "modeler-forms")

    page.get_by_role("button", name="Развернуть").click()
    page.wait_for_selector(".modeler-status.ok >> text=форма sop_check версия", timeout=20_000)
    assert _latest(engine, FormDefinition, "sop_check") == form_before + 1
    assert _latest(engine, ProcessDefinition, "sop_case") == process_before + 1
    assert engine.drafts.list("form") == []  # the deployed draft is closed
    with engine.db.session() as db:
        pins = db.scalar(select(ProcessDefinition.form_versions).where(ProcessDefinition.key == "sop_case")
                         .order_by(ProcessDefinition.version.desc()).limit(1))
    assert pins["sop_check"] == form_before + 1
