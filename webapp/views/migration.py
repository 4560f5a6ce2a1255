"""«Перенос экземпляров»: methodologists move running instances of a process to another version.

The page offers the source versions (with their running instances), the open stages and the target version; a
dry run (`engine.migration.plan`) lists every selected instance with its verdict and reasons. Starting stores a
batch of the movable ones; the batch page steps it from the browser in chunks (POST .../step), so the work
spreads over requests and over web processes, with no background threads. Each moved instance can be put back
on its previous version while nothing further happened to it. Dry runs, starts, steps and reverts are audited.
"""

from __future__ import annotations

from flask import Blueprint, abort, g, jsonify, render_template, request

from engine.errors import Conflict, InvalidInput, KuratorError, NotFound

from ..auth import client_ip, kurator, roles_required
from ..params import json_ints

bp = Blueprint("migration", __name__, url_prefix="/modeler/migrations")

ROLE = "methodologist"
STEP = 25
PLAN_PAGE_MAX = 500  # instances judged in one dry-run request (about 50 per second): well inside a worker timeout


def _ints(values, field: str) -> list[int]:
    try:
        return json_ints(values, field)
    except InvalidInput as exc:
        abort(_error(400, exc.message))


def _int(value, field: str) -> int | None:
    return None if value in (None, "") else _ints([value], field)[0]


def _error(status: int, message: str):
    response = jsonify({"error": "invalid_input" if status == 400 else "error", "message": message})
    response.status_code = status
    return response


def _request() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(_error(400, "Нужен JSON-объект"))
    key = data.get("key")
    if not isinstance(key, str) or not key.strip():
        abort(_error(400, "Не указан процесс (поле key)"))
    stages = data.get("stages") or []
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        abort(_error(400, "Поле stages: ожидается список идентификаторов элементов"))
    target, after_id, limit = (_int(data.get(name), name) for name in ("target_version", "after_id", "limit"))
    if limit is not None and not 1 <= limit <= PLAN_PAGE_MAX:
        abort(_error(400, f"Поле limit: от 1 до {PLAN_PAGE_MAX}"))
    movable_ids = data.get("movable_ids")
    return {"key": key.strip(), "target_version": target, "after_id": after_id, "limit": limit,
            "movable_ids": _ints(movable_ids, "movable_ids") if movable_ids is not None else None,
            "from_versions": _ints(data.get("from_versions"), "from_versions"),
            "stages": [s for s in stages if s], "instance_ids": _ints(data.get("instance_ids"), "instance_ids"),
            "comment": data.get("comment") if isinstance(data.get("comment"), str) else None}


def _plan(args: dict):
    return kurator().migration.plan(args["key"], args["target_version"], from_versions=args["from_versions"],
                                    stages=args["stages"], instance_ids=args["instance_ids"],
                                    after_id=args["after_id"], limit=args["limit"])


@bp.route("")
@roles_required(ROLE)
def index():
    key = request.args.get("key", "").strip()
    if not key:
        abort(404)
    try:
        overview = kurator().migration.overview(key)
    except NotFound:
        abort(404)
    batches = kurator().migration.batches(key, limit=20)
    return render_template("modeler/migration.html", overview=overview, batches=batches, step=STEP)


@bp.route("/plan", methods=["POST"])
@roles_required(ROLE)
def plan():
    args = _request()
    try:
        result = _plan(args)
    except NotFound as exc:
        return _error(404, exc.message)
    data = result.to_dict()
    kurator().audit.record(g.user.username, "migration_planned", "process", args["key"], ip=client_ip(),
                           details={"target_version": result.target_version, "filters": result.filters,
                                    "total": data["total"], "movable": data["movable"], "blocked": data["blocked"],
                                    "after_id": args["after_id"], "next_after": result.next_after})
    return jsonify(data)


@bp.route("/start", methods=["POST"])
@roles_required(ROLE)
def start():
    args = _request()
    engine = kurator()
    try:
        if args["movable_ids"] is not None:  # the movable instances of a paged dry run the page went through
            filters = {"from_versions": args["from_versions"] or None, "stages": args["stages"] or None}
            batch_id = engine.migration.start_batch_of(args["key"], args["target_version"], args["movable_ids"],
                                                       actor=g.user.username, comment=args["comment"],
                                                       filters=filters)
            details = {"filters": filters, "instances": len(set(args["movable_ids"]))}
        else:
            result = _plan(args)
            batch_id = engine.migration.start_batch(result, actor=g.user.username, comment=args["comment"])
            details = {"filters": result.filters, "instances": len(result.movable), "blocked": len(result.blocked)}
    except NotFound as exc:
        return _error(404, exc.message)
    except InvalidInput as exc:
        return _error(422, exc.message)
    engine.audit.record(g.user.username, "migration_started", "migration_batch", batch_id, ip=client_ip(),
                        details={"process_key": args["key"], "target_version": engine.migration.progress(batch_id)
                                 .get("target_version"), "comment": args["comment"], **details})
    return jsonify({"batch_id": batch_id, "url": f"{bp.url_prefix}/{batch_id}"})


@bp.route("/<int:batch_id>")
@roles_required(ROLE)
def batch(batch_id: int):
    try:
        data = kurator().migration.batch(batch_id)
    except NotFound:
        abort(404)
    return render_template("modeler/migration_batch.html", batch=data, step=STEP)


@bp.route("/<int:batch_id>/step", methods=["POST"])
@roles_required(ROLE)
def step(batch_id: int):
    engine = kurator()
    try:
        before = engine.migration.progress(batch_id)
        if before["status"] != "running":
            return jsonify(engine.migration.batch(batch_id))
        progress = engine.migration.run_batch(batch_id, STEP, actor=g.user.username)
    except NotFound as exc:
        return _error(404, exc.message)
    engine.audit.record(g.user.username, "migration_step", "migration_batch", batch_id, ip=client_ip(),
                        details={"done": progress["done"], "moved": progress["moved"], "failed": progress["failed"],
                                 "total": progress["total"]})
    if progress["status"] != "running":
        return jsonify(engine.migration.batch(batch_id))
    return jsonify(progress)


@bp.route("/revert/<int:migration_id>", methods=["POST"])
@roles_required(ROLE)
def revert(migration_id: int):
    engine = kurator()
    try:
        result = engine.migration.revert(migration_id, actor=g.user.username)
    except NotFound as exc:
        return _error(404, exc.message)
    except (Conflict, InvalidInput) as exc:
        return jsonify({"error": exc.code, "message": exc.message}), 409
    except KuratorError as exc:
        return jsonify({"error": exc.code, "message": exc.message}), 422
    engine.audit.record(g.user.username, "migration_reverted", "process_instance", result["instance_id"],
                        ip=client_ip(), details={"migration_id": migration_id, "version": result["version"]})
    return jsonify(result)
