"""«Моделер»: methodologists edit, validate and deploy BPMN diagrams (Camunda 7 dialect) in the browser.

The page runs the bpmn-js modeler with the Camunda properties panel (static/vendor/modeler, built by
webapp/assets/modeler/build.sh). The server only lists the deployed versions, hands out a version's XML, validates
and deploys: the same checks as `kurator deploy` (`RepositoryService`), so nothing the engine cannot run is stored.
Every validation and deployment is written to the audit log. Download and upload of .bpmn files happen in the
browser.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.errors import Conflict, NotFound, ValidationFailed
from engine.models import ProcessDefinition

from ..auth import client_ip, kurator, roles_required
from ..params import DB_INT_MAX, id_arg

bp = Blueprint("modeler", __name__, url_prefix="/modeler")

ROLE = "methodologist"
MAX_XML = 5 * 1024 * 1024
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
FORM_KEY = re.compile(r"^[a-z][a-z0-9_]{1,99}$")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)

# A new diagram: one executable process in a pool with one lane and a start event (Camunda 7 dialect).
NEW_DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Definitions_new_process" targetNamespace="http://kurator.example/bpmn" exporter="Kurator modeler"
    exporterVersion="1.0">
  <bpmn:collaboration id="Collaboration_new_process">
    <bpmn:participant id="Participant_new_process" name="Новый процесс" processRef="new_process" />
  </bpmn:collaboration>
  <bpmn:process id="new_process" name="Новый процесс" isExecutable="true" camunda:historyTimeToLive="P180D">
    <bpmn:laneSet id="LaneSet_new_process">
      <bpmn:lane id="Lane_new_process" name="commission_secretary">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Начало" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="BPMNDiagram_new_process">
    <bpmndi:BPMNPlane id="BPMNPlane_new_process" bpmnElement="Collaboration_new_process">
      <bpmndi:BPMNShape id="Participant_new_process_di" bpmnElement="Participant_new_process" isHorizontal="true">
        <dc:Bounds x="120" y="80" width="700" height="250" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Lane_new_process_di" bpmnElement="Lane_new_process" isHorizontal="true">
        <dc:Bounds x="150" y="80" width="670" height="250" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="212" y="187" width="36" height="36" />
        <bpmndi:BPMNLabel>
          <dc:Bounds x="205" y="230" width="50" height="14" />
        </bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def process_key(xml: str) -> str | None:
    """The key a deployment of this XML stores: the id of its (first executable) process, None if unreadable."""
    try:
        root = etree.fromstring(xml.encode("utf-8"), _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    processes = root.findall(f"{{{BPMN_NS}}}process")
    executable = [p for p in processes if p.get("isExecutable", "true").lower() != "false"] or processes
    return executable[0].get("id") if executable else None


def _payload() -> tuple[str, dict]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("xml"), str) or not data["xml"].strip():
        abort(400, description="Нужен JSON с полем xml")
    if len(data["xml"]) > MAX_XML:
        abort(413)
    return data["xml"], data


def problem_dicts(problems) -> list[dict]:
    """Problems for the page: the Russian message (the English one when there is none) and the lint rule id."""
    return [{"severity": p.severity, "message": p.message, "message_ru": p.message_ru or p.message,
             "element_id": p.element_id, "rule": p.rule} for p in problems]


SUMMARY = (ProcessDefinition.key, ProcessDefinition.version, ProcessDefinition.name, ProcessDefinition.deployed_at,
           ProcessDefinition.deployed_by, ProcessDefinition.comment)


def version_summary(row) -> dict:
    """What the pages show of a deployed version: who deployed it, when and why (not its XML or spec)."""
    return {"key": row.key, "version": row.version, "name": row.name, "deployed_at": row.deployed_at,
            "deployed_by": row.deployed_by, "comment": row.comment}


def version_summaries(db, key: str | None = None) -> list[dict]:
    """The deployed versions (of one key), newest first per key, read without their XML and specs."""
    query = select(*SUMMARY).order_by(ProcessDefinition.key, ProcessDefinition.version.desc())
    if key is not None:
        query = query.where(ProcessDefinition.key == key)
    return [version_summary(row) for row in db.execute(query)]


@bp.route("")
@roles_required(ROLE)
def index():
    with kurator().db.session() as db:
        definitions = version_summaries(db)
    groups: dict[str, list[dict]] = {}
    for d in definitions:
        groups.setdefault(d["key"], []).append(d)
    return render_template("modeler/index.html", groups=groups, drafts=kurator().drafts.list("diagram"))


@bp.route("/edit")
@roles_required(ROLE)
def edit():
    key = request.args.get("key", "").strip()
    draft_id = id_arg(request.args, "draft")
    if draft_id is not None:
        return _edit_draft(draft_id)
    if not key:
        return render_template("modeler/edit.html", xml=NEW_DIAGRAM, definition=None, draft=None)
    version = id_arg(request.args, "version")
    with kurator().db.session() as db:
        query = (select(ProcessDefinition).options(selectinload(ProcessDefinition.resource))
                 .where(ProcessDefinition.key == key))
        if version is not None:
            query = query.where(ProcessDefinition.version == version)
        row = db.scalars(query.order_by(ProcessDefinition.version.desc()).limit(1)).first()
        if row is None:
            abort(404)
        definition, xml = version_summary(row), row.resource.content
    return render_template("modeler/edit.html", xml=xml, definition=definition, draft=None)


def _edit_draft(draft_id: int):
    engine = kurator()
    try:
        draft = engine.drafts.get(draft_id, kind="diagram")
    except NotFound:
        abort(404)
    definition = None
    if draft["key"] and draft["base_version"]:
        with engine.db.session() as db:
            row = db.execute(select(*SUMMARY).where(ProcessDefinition.key == draft["key"],
                                                    ProcessDefinition.version == draft["base_version"])).first()
            definition = version_summary(row) if row is not None else None
    engine.audit.record(g.user.username, "draft_opened", "draft", draft_id, ip=client_ip(),
                        details={"kind": "diagram", "key": draft["key"]})
    xml = draft.pop("content")
    return render_template("modeler/edit.html", xml=xml, definition=definition, draft=draft)


@bp.route("/validate", methods=["POST"])
@roles_required(ROLE)
def validate():
    xml, _ = _payload()
    problems = kurator().repository.validate([("diagram.bpmn", xml)], lint=True)
    key = process_key(xml)
    kurator().audit.record(g.user.username, "diagram_validated", "process", key, ip=client_ip(),
                           details={"errors": sum(p.severity == "error" for p in problems),
                                    "warnings": sum(p.severity == "warning" for p in problems)})
    return jsonify(problem_dicts(problems))


@bp.route("/deploy", methods=["POST"])
@roles_required(ROLE)
def deploy():
    xml, data = _payload()
    comment = data.get("comment")
    comment = (comment.strip()[:2000] or None) if isinstance(comment, str) else None
    key = process_key(xml)
    if key is None:
        problems = [{"severity": "error", "message": "Схема не читается как BPMN: нет элемента process",
                     "message_ru": "Схема не читается как BPMN: нет элемента process", "element_id": None,
                     "rule": None}]
        return jsonify({"error": "validation_failed", "problems": problems}), 422
    return deploy_and_answer([(f"{key}.bpmn", xml)], kind="diagram", key=key, comment=comment,
                             draft_id=data.get("draft_id"), lint=True)


def deploy_and_answer(files: list[tuple[str, str]], *, kind: str, key: str, comment: str | None,
                      draft_id, lint: bool):
    """Deploy from the modeler (a diagram, or a form with the processes that use it) and answer the page: the
    problems on refusal (422), else the deployed items; audited either way; a deployed draft is closed."""
    engine = kurator()
    object_type = "process" if kind == "diagram" else kind
    try:
        result = engine.repository.deploy(files, deployed_by=g.user.username, comment=comment, lint=lint)
    except ValidationFailed as exc:
        engine.audit.record(g.user.username, f"{kind}_deploy_refused", object_type, key, ip=client_ip(),
                            details={"errors": sum(p.severity == "error" for p in exc.problems)})
        return jsonify({"error": "validation_failed", "problems": problem_dicts(exc.problems)}), 422
    except Conflict as exc:
        return jsonify({"error": "conflict", "message": exc.message}), 409
    engine.audit.record(g.user.username, f"{kind}_deployed", object_type, key, ip=client_ip(),
                        details={"comment": comment,
                                 "versions": [{"key": i.key, "version": i.version, "created": i.created,
                                               **({"kind": i.kind} if i.kind != "process" else {})}
                                              for i in result.items]})
    closed = type(draft_id) is int and 0 < draft_id <= DB_INT_MAX and drop_deployed_draft(draft_id, kind)
    return jsonify({"items": [i.to_dict() for i in result.items], "warnings": problem_dicts(result.warnings),
                    "draft_deleted": closed})


# -- drafts -------------------------------------------------------------------------------------------------------

def drop_deployed_draft(draft_id: int, kind: str) -> bool:
    """A deployed draft is done: remove it (the deployment is the record). Whether it was removed."""
    engine = kurator()
    try:
        engine.drafts.get(draft_id, kind=kind)
        engine.drafts.delete(draft_id)
    except NotFound:
        return False
    engine.audit.record(g.user.username, "draft_deleted", "draft", draft_id, ip=client_ip(),
                        details={"kind": kind, "reason": "deployed"})
    return True


def _draft_conflict_message(draft_id: int) -> str:
    try:
        current = kurator().drafts.get(draft_id)
    except NotFound:
        return "Черновик уже удален или развернут. Сохраните свою схему как новый черновик."
    return (f"Черновик изменил(а) {current['saved_by'] or 'другой пользователь'} после того, как вы его открыли. "
            f"Откройте его заново или сохраните свою версию как новый черновик.")


@bp.route("/drafts", methods=["POST"])
@roles_required(ROLE)
def save_draft():
    """Save a diagram or form draft (new, or over the revision the page opened); JSON in and out."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="Нужен JSON-объект")
    kind = data.get("kind", "diagram")
    content = data.get("content")
    if kind not in ("diagram", "form"):
        return jsonify({"error": "invalid_input", "field": "kind", "message": "Поле kind: diagram или form"}), 400
    if not isinstance(content, str) or not content.strip():
        return jsonify({"error": "invalid_input", "field": "content", "message": "Черновик пуст"}), 400
    if len(content) > MAX_XML:
        abort(413)
    draft_id, revision, base_version = data.get("draft_id"), data.get("revision"), data.get("base_version")
    for field, value in (("draft_id", draft_id), ("revision", revision), ("base_version", base_version)):
        if value is not None and not (type(value) is int and 0 <= value <= DB_INT_MAX):
            return jsonify({"error": "invalid_input", "field": field,
                            "message": f"Поле {field}: нужно целое число"}), 400
    if kind == "diagram":
        key, name = process_key(content), None
        if key is None:
            return jsonify({"error": "invalid_input", "field": "content",
                            "message": "Схема не читается как BPMN: нет элемента process"}), 400
    else:
        key, name = data.get("key"), None
        if not isinstance(key, str) or not FORM_KEY.match(key):
            return jsonify({"error": "invalid_input", "field": "key",
                            "message": "Поле key: ключ формы — латинские строчные буквы, цифры и «_», "
                                       "начинается с буквы"}), 400
    note = data.get("note") if isinstance(data.get("note"), str) else None
    engine = kurator()
    try:
        draft = engine.drafts.save(kind, content, g.user.username, key=key, name=name, base_version=base_version,
                                   note=note, draft_id=draft_id, revision=revision)
    except Conflict:
        return jsonify({"error": "conflict", "message": _draft_conflict_message(draft_id)}), 409
    except NotFound:
        return jsonify({"error": "not_found", "message": _draft_conflict_message(draft_id)}), 404
    engine.audit.record(g.user.username, "draft_saved", "draft", draft["id"], ip=client_ip(),
                        details={"kind": kind, "key": key, "revision": draft["revision"],
                                 "base_version": base_version})
    draft.pop("content", None)
    return jsonify(draft)


@bp.route("/drafts/<int:draft_id>/delete", methods=["POST"])
@roles_required(ROLE)
def delete_draft(draft_id: int):
    engine = kurator()
    try:
        draft = engine.drafts.delete(draft_id)
    except NotFound:
        abort(404)
    engine.audit.record(g.user.username, "draft_deleted", "draft", draft_id, ip=client_ip(),
                        details={"kind": draft["kind"], "key": draft["key"]})
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        return jsonify({"deleted": draft_id})
    flash("Черновик удален.", "ok")
    return redirect(url_for("modeler_forms.index" if draft["kind"] == "form" else "modeler.index"))
