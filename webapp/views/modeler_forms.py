"""«Формы» in the modeler: methodologists edit the form-js definitions that user tasks show.

A form is edited as JSON beside a live preview drawn by the same code as the task page (webapp/views/tasks.py), so
what the preview shows is what a specialist will see. Forms are versioned with the diagrams that use them: a
process version runs with the form versions fixed when it was deployed (`ProcessDefinition.form_versions`), so
deploying a changed form also deploys a new version of every process whose latest version uses it; running cases
keep their forms until they are migrated to the new version. Drafts of forms are kept like drafts of diagrams.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, abort, g, jsonify, render_template, request
from sqlalchemy import func, select

from engine.bpmn import validation
from engine.errors import NotFound, Problem
from engine.forms import input_fields
from engine.models import FormDefinition, ProcessDefinition

from ..auth import client_ip, kurator, roles_required
from ..params import id_arg
from .modeler import FORM_KEY, deploy_and_answer, problem_dicts
from .tasks import build_widgets, initial_values

bp = Blueprint("modeler_forms", __name__, url_prefix="/modeler/forms")

ROLE = "methodologist"
MAX_FORM = 512 * 1024
NEW_FORM = {"type": "default", "components": [
    {"type": "text", "text": "## Новая форма"},
    {"type": "textarea", "key": "comment", "label": "Комментарий", "validate": {"required": True}},
]}




def _users_of(session) -> dict[str, list[dict]]:
    """Form key -> the processes whose latest version uses it (directly or in a process it calls)."""
    latest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
              .group_by(ProcessDefinition.key).subquery())
    rows = session.scalars(select(ProcessDefinition).join(
        latest, (ProcessDefinition.key == latest.c.key) & (ProcessDefinition.version == latest.c.version))
        .order_by(ProcessDefinition.key)).all()
    users: dict[str, list[dict]] = {}
    for row in rows:
        keys = row.form_versions or kurator().repository.spec_form_keys(row.spec_json)
        for form_key in keys:
            users.setdefault(form_key, []).append({"key": row.key, "version": row.version, "name": row.name})
    return users


def _payload() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="Нужен JSON-объект")
    return data


def _schema_text(data: dict) -> str:
    text = data.get("schema")
    if isinstance(text, (dict, list)):
        text = json.dumps(text, ensure_ascii=False, indent=2)
    if not isinstance(text, str) or not text.strip():
        abort(400, description="Поле schema: нужен текст формы (JSON)")
    if len(text) > MAX_FORM:
        abort(413)
    return text


def _form_key(data: dict) -> str:
    key = data.get("key")
    if not isinstance(key, str) or not FORM_KEY.match(key.strip()):
        abort(400, description="Поле key: ключ формы — латинские строчные буквы, цифры и «_», "
                               "начинается с буквы (например, sop_check)")
    return key.strip()


@bp.route("")
@roles_required(ROLE)
def index():
    with kurator().db.session() as db:
        rows = db.scalars(select(FormDefinition).order_by(FormDefinition.key, FormDefinition.version.desc())).all()
        forms: dict[str, dict] = {}
        for row in rows:
            entry = forms.setdefault(row.key, {"key": row.key, "version": row.version, "deployed_at": row.deployed_at,
                                               "deployed_by": row.deployed_by, "versions": 0,
                                               "title": _title(row.schema)})
            entry["versions"] += 1
        users = _users_of(db)
    drafts = kurator().drafts.list("form")
    return render_template("modeler/forms.html", forms=list(forms.values()), users=users, drafts=drafts)


def _title(schema: dict) -> str:
    """A form's human title: its first heading text, else its first field's label."""
    for component in schema.get("components") or []:
        if isinstance(component, dict) and component.get("type") == "text":
            heading = re.match(r"^\s*#+\s*(.+)", component.get("text") or "")
            if heading:
                return heading.group(1).strip()[:200]
    for component in input_fields(schema).values():
        return (component.get("label") or "")[:200]
    return ""


@bp.route("/edit")
@roles_required(ROLE)
def edit():
    engine = kurator()
    draft = None
    key = request.args.get("key", "").strip() or None
    version = id_arg(request.args, "version")
    draft_id = id_arg(request.args, "draft")
    with engine.db.session() as db:
        if draft_id is not None:
            try:
                draft = engine.drafts.get(draft_id, kind="form")
            except NotFound:
                abort(404)
            key, text, version = draft["key"], draft["content"], draft["base_version"]
        elif key is not None:
            query = select(FormDefinition).where(FormDefinition.key == key)
            if version is not None:
                query = query.where(FormDefinition.version == version)
            row = db.scalars(query.order_by(FormDefinition.version.desc()).limit(1)).first()
            if row is None:
                abort(404)
            version, text = row.version, json.dumps(row.schema, ensure_ascii=False, indent=2)
        else:
            text = json.dumps(NEW_FORM, ensure_ascii=False, indent=2)
        versions = [{"version": r.version, "deployed_at": r.deployed_at, "deployed_by": r.deployed_by}
                    for r in db.scalars(select(FormDefinition).where(FormDefinition.key == key)
                                        .order_by(FormDefinition.version.desc()))] if key else []
        users = _users_of(db).get(key, []) if key else []
    if draft is not None:
        engine.audit.record(g.user.username, "draft_opened", "draft", draft["id"], ip=client_ip(),
                            details={"kind": "form", "key": key})
    return render_template("modeler/form_edit.html", key=key, version=version, text=text, versions=versions,
                           users=users, draft=draft)


@bp.route("/preview", methods=["POST"])
@roles_required(ROLE)
def preview():
    """The form as a specialist will see it, and what validation says about it (nothing is stored)."""
    data = _payload()
    text = _schema_text(data)
    problems: list[Problem] = []
    schema = validation.check_form("form.json", text, problems)
    html = ""
    if schema is not None:
        widgets = build_widgets(schema.get("components"), initial_values(schema, {}, {}), {})
        html = render_template("modeler/_form_preview.html", widgets=widgets,
                               has_form=bool(input_fields(schema)))
    return jsonify({"html": html, "problems": problem_dicts(problems),
                    "fields": sorted(input_fields(schema)) if schema is not None else []})


@bp.route("/deploy", methods=["POST"])
@roles_required(ROLE)
def deploy():
    """Deploy a form; each process whose latest version uses it gets a new version with it (the repository)."""
    data = _payload()
    key, text = _form_key(data), _schema_text(data)
    comment = data.get("comment")
    comment = (comment.strip()[:2000] or None) if isinstance(comment, str) else None
    # the repository gives the processes that use the form new versions; lint is for diagrams, not forms
    return deploy_and_answer([(f"{key}.json", text)], kind="form", key=key, comment=comment or f"Изменена форма {key}",
                             draft_id=data.get("draft_id"), lint=False)

