"""«Симуляция» in the modeler: run the diagram being edited against a scenario, without touching real cases.

The server is stateless: the page sends the whole scenario and the current XML on every action, and the engine
(`modeler.simulation`) replays it from the start in a throw-away database. Every run is written to the audit log.
"""

from __future__ import annotations

import json

from flask import Blueprint, g, jsonify, request

from engine.errors import InvalidInput
from modeler.simulation import MAX_STEPS, check_scenario, municipality_timezone, simulate

from ..auth import client_ip, kurator, roles_required
from .modeler import MAX_XML, process_key

bp = Blueprint("simulation", __name__, url_prefix="/modeler")

ROLE = "methodologist"
MAX_SCENARIO = 256 * 1024


def _bad(status: int, field: str, message: str):
    return jsonify({"error": "invalid_input", "message": message, "field": field, "errors": {field: message}}), status


@bp.route("/simulate", methods=["POST"])
@roles_required(ROLE)
def simulate_draft():
    """JSON {xml, scenario} -> the simulation result (see `modeler.simulation`); 400/413/422 name the bad field."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _bad(400, "body", "Нужен JSON-объект с полями xml и scenario")
    xml = data.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        return _bad(400, "xml", "Нужна схема: поле xml с текстом BPMN")
    if len(xml) > MAX_XML:
        return _bad(413, "xml", f"Схема больше {MAX_XML // (1024 * 1024)} МБ")
    scenario = data.get("scenario", {})
    if scenario is None:
        scenario = {}
    if not isinstance(scenario, dict):
        return _bad(400, "scenario", "Поле scenario должно быть JSON-объектом")
    if len(json.dumps(scenario, ensure_ascii=False)) > MAX_SCENARIO:
        return _bad(413, "scenario", f"Сценарий больше {MAX_SCENARIO // 1024} КБ")
    engine = kurator()
    try:
        check_scenario(scenario, engine.clock.now(), lambda name: municipality_timezone(engine, name))
    except InvalidInput as exc:
        field, message = next(iter(exc.errors.items()), ("scenario", exc.message))
        return _bad(422, field, message)
    result = simulate(engine, xml, scenario, actor=g.user.username)
    engine.audit.record(g.user.username, "diagram_simulated", "process", result.get("process_key") or process_key(xml),
                        ip=client_ip(),
                        details={"steps": len(scenario.get("steps") or []), "ok": result["ok"],
                                 "problems": sum(p.get("severity") == "error" for p in result["problems"])})
    return jsonify({**result, "max_steps": MAX_STEPS})

