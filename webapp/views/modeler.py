"""«Моделер»: methodologists edit, validate and deploy BPMN diagrams (Camunda 7 dialect) in the browser.

The page runs the bpmn-js modeler with the Camunda properties panel (static/vendor/modeler, built by
webapp/assets/modeler/build.sh). The server only lists the deployed versions, hands out a version's XML, validates
and deploys: the same checks as `kurator deploy` (`RepositoryService`), so nothing the engine cannot run is stored.
Every validation and deployment is written to the audit log. Download and upload of .bpmn files happen in the
browser.
"""

from __future__ import annotations

from flask import Blueprint, abort, g, jsonify, render_template, request
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.errors import Conflict, ValidationFailed
from engine.models import ProcessDefinition

from ..auth import client_ip, kurator, roles_required

bp = Blueprint("modeler", __name__, url_prefix="/modeler")

ROLE = "methodologist"
MAX_XML = 5 * 1024 * 1024
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
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


def _problems(problems) -> list[dict]:
    return [{"severity": p.severity, "message": p.message, "element_id": p.element_id} for p in problems]


@bp.route("")
@roles_required(ROLE)
def index():
    with kurator().db.session() as db:
        rows = db.scalars(select(ProcessDefinition).order_by(ProcessDefinition.key,
                                                             ProcessDefinition.version.desc())).all()
        definitions = [{"key": r.key, "version": r.version, "name": r.name, "deployed_at": r.deployed_at,
                        "deployed_by": r.deployed_by, "comment": r.comment} for r in rows]
    groups: dict[str, list[dict]] = {}
    for d in definitions:
        groups.setdefault(d["key"], []).append(d)
    return render_template("modeler/index.html", groups=groups)


@bp.route("/edit")
@roles_required(ROLE)
def edit():
    key = request.args.get("key", "").strip()
    if not key:
        return render_template("modeler/edit.html", xml=NEW_DIAGRAM, definition=None)
    version = request.args.get("version", type=int)
    with kurator().db.session() as db:
        query = (select(ProcessDefinition).options(selectinload(ProcessDefinition.resource))
                 .where(ProcessDefinition.key == key))
        if version is not None:
            query = query.where(ProcessDefinition.version == version)
        row = db.scalars(query.order_by(ProcessDefinition.version.desc()).limit(1)).first()
        if row is None:
            abort(404)
        definition = {"key": row.key, "version": row.version, "name": row.name, "deployed_at": row.deployed_at,
                      "deployed_by": row.deployed_by, "comment": row.comment}
        xml = row.resource.content
    return render_template("modeler/edit.html", xml=xml, definition=definition)


@bp.route("/validate", methods=["POST"])
@roles_required(ROLE)
def validate():
    xml, _ = _payload()
    problems = kurator().repository.validate([("diagram.bpmn", xml)])
    key = process_key(xml)
    kurator().audit.record(g.user.username, "diagram_validated", "process", key, ip=client_ip(),
                           details={"errors": sum(p.severity == "error" for p in problems),
                                    "warnings": sum(p.severity == "warning" for p in problems)})
    return jsonify(_problems(problems))


@bp.route("/deploy", methods=["POST"])
@roles_required(ROLE)
def deploy():
    xml, data = _payload()
    comment = data.get("comment")
    comment = (comment.strip()[:2000] or None) if isinstance(comment, str) else None
    key = process_key(xml)
    if key is None:
        problems = [{"severity": "error", "message": "Схема не читается как BPMN: нет элемента process",
                     "element_id": None}]
        return jsonify({"error": "validation_failed", "problems": problems}), 422
    engine = kurator()
    try:
        result = engine.repository.deploy([(f"{key}.bpmn", xml)], deployed_by=g.user.username, comment=comment)
    except ValidationFailed as exc:
        engine.audit.record(g.user.username, "diagram_deploy_refused", "process", key, ip=client_ip(),
                            details={"errors": sum(p.severity == "error" for p in exc.problems)})
        return jsonify({"error": "validation_failed", "problems": _problems(exc.problems)}), 422
    except Conflict as exc:
        return jsonify({"error": "conflict", "message": exc.message}), 409
    items = [i.to_dict() for i in result.items]
    engine.audit.record(g.user.username, "diagram_deployed", "process", key, ip=client_ip(),
                        details={"comment": comment,
                                 "versions": [{"key": i.key, "version": i.version, "created": i.created}
                                              for i in result.items]})
    return jsonify({"items": items, "warnings": _problems(result.warnings)})
