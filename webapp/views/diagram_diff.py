"""«Сравнение версий»: what changed between two deployed versions of a process, drawn side by side.

The page shows the old version on the left and the new one on the right (bpmn-js viewer, static/diagram-diff.js)
with added, removed, changed and moved elements marked, and lists the changes of every element. The comparison
itself is `modeler.diagram_diff.diff_diagrams`; `/modeler/diff/data` returns the same as JSON. Every view is
written to the audit log.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.models import ProcessDefinition
from modeler.diagram_diff import diff_diagrams

from ..auth import client_ip, kurator, roles_required
from ..errors import respond
from .modeler import version_summaries, version_summary

bp = Blueprint("diagram_diff", __name__, url_prefix="/modeler/diff")

ROLE = "methodologist"


class BadRequest(Exception):
    """A parameter of the request is wrong: the message says which and what to do."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _version(name: str, label: str) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        raise BadRequest(400, f"Не указана {label} версия: добавьте параметр {name}=<номер версии>")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise BadRequest(400, f"Номер версии в параметре {name} должен быть целым положительным числом, "
                              f"а передано «{raw[:40]}»")
    return int(raw)


def _comparison() -> dict:
    """The two versions named by the query string, all versions of the key, and the diff; BadRequest if wrong."""
    key = request.args.get("key", "").strip()
    if not key:
        raise BadRequest(400, "Не указан процесс: добавьте параметр key=<ключ процесса>, например key=sop_case")
    if len(key) > 200:
        raise BadRequest(400, "Ключ процесса слишком длинный")
    old_version, new_version = _version("from", "исходная"), _version("to", "сравниваемая")
    with kurator().db.session() as db:
        rows = db.scalars(select(ProcessDefinition).options(selectinload(ProcessDefinition.resource))
                          .where(ProcessDefinition.key == key)
                          .where(ProcessDefinition.version.in_({old_version, new_version}))).all()
        versions = version_summaries(db, key)
        by_version = {r.version: {**version_summary(r), "xml": r.resource.content} for r in rows}
    if not versions:
        raise BadRequest(404, f"Процесс «{key}» не развернут")
    for version in (old_version, new_version):
        if version not in by_version:
            raise BadRequest(404, f"У процесса «{key}» нет версии {version}; есть версии "
                                  f"{', '.join(str(v['version']) for v in reversed(versions))}")
    old, new = by_version[old_version], by_version[new_version]
    try:
        diff = diff_diagrams(old["xml"], new["xml"])
    except ValueError as exc:
        raise BadRequest(422, f"Версии не удалось сравнить: {exc}") from exc
    return {"key": key, "old": old, "new": new, "versions": versions, "diff": diff}


def _audit(comparison: dict, via: str) -> None:
    summary = comparison["diff"]["summary"]
    kurator().audit.record(g.user.username, "diagram_diff_viewed", "process", comparison["key"], ip=client_ip(),
                           details={"from": comparison["old"]["version"], "to": comparison["new"]["version"],
                                    "via": via, **summary})


def _public(version: dict) -> dict:
    return {**version, "deployed_at": version["deployed_at"].isoformat() if version["deployed_at"] else None}


@bp.route("")
@roles_required(ROLE)
def page():
    try:
        comparison = _comparison()
    except BadRequest as exc:
        return respond(exc.code, exc.message)
    _audit(comparison, "page")
    data = {"key": comparison["key"], "old": _public(comparison["old"]), "new": _public(comparison["new"]),
            "diff": comparison["diff"]}
    return render_template("modeler/diff.html", comparison=comparison, data=data)


@bp.route("/data")
@roles_required(ROLE)
def data():
    try:
        comparison = _comparison()
    except BadRequest as exc:
        return jsonify({"error": {400: "bad_request", 404: "not_found"}.get(exc.code, "not_comparable"),
                        "message": exc.message}), exc.code
    _audit(comparison, "json")
    return jsonify({"key": comparison["key"], "from": _public(comparison["old"]), "to": _public(comparison["new"]),
                    "diff": comparison["diff"]})
