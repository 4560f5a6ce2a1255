"""The task page: a form-js form rendered on the server, the case beside it, drafts and completion."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import or_, select
from werkzeug.datastructures import MultiDict

from engine import task_query
from engine.errors import Conflict, ExecutionError, InvalidInput, NotFound, PermissionDenied
from engine.forms import input_fields
from engine.models import Agency, HumanTask, User, UserRole
from sop import materials
from sop.documents import labels
from sop.models import InstanceScope

from ..access import inbox_query, task_scope
from ..auth import client_ip, kurator, login_required
from ..filters import localdate
from .inbox import DUE_SOON, process_names

bp = Blueprint("tasks", __name__)

CASE_STATUS = labels.CASE_STATUSES
DANGER_LEVEL = {"low": "низкий", "medium": "средний", "high": "высокий", "critical": "критический"}
CHOICE_TYPES = ("select", "radio")
LIST_TYPES = ("checklist", "taglist")
TRUE_STRINGS = ("on", "true", "1", "yes")
MAX_WHO = 8
MAX_ROWS = 200  # rows of one dynamic list taken from a submission


# -- access ---------------------------------------------------------------------------------------------------

def _scoped_row(task_id: str) -> dict[str, Any]:
    """The task's row as plain values; `NotFound` when it is outside the user's data scope (never reveal it)."""
    with kurator().db.session() as db:
        row = db.scalar(task_scope(select(HumanTask).where(HumanTask.id == str(task_id)), g.user))
        if row is None:
            raise NotFound("Задача не найдена")
        return {"status": row.status, "assignee": row.assignee, "candidate_roles": list(row.candidate_roles or []),
                "candidate_users": list(row.candidate_users or []), "completed_by": row.completed_by,
                "completed_at": row.completed_at, "data": dict(row.data or {}), "instance_id": row.instance_id,
                "name": row.name, "agency_id": row.agency_id, "due": row.due,
                "agency_name": db.get(Agency, row.agency_id).name if row.agency_id is not None else None}


def _is_candidate(row: dict[str, Any]) -> bool:
    return task_query.is_candidate(row, g.user)


def _may_work(row: dict[str, Any]) -> bool:
    """Assigned to the user, or unclaimed and offered to them (by role, agency or name)."""
    return task_query.may_work(row, g.user)


def _full_names(usernames) -> dict[str, str]:
    return kurator().identity.full_names(usernames)


def _conflict_message(row: dict[str, Any]) -> str:
    """Why the task can no longer be done by this user, in words a user understands."""
    names = _full_names([row["completed_by"], row["assignee"]])
    if row["status"] == "completed":
        who = names.get(row["completed_by"], row["completed_by"] or "другой пользователь")
        when = _local(row["completed_at"])
        return f"Эту задачу уже завершил(а) {who}{' ' + when if when else ''}."
    if row["status"] != "open":
        return "Эта задача больше не ожидает выполнения: процесс по делу изменился."
    if row["assignee"] and row["assignee"] != g.user.username:
        return f"Задачу уже взял(а) в работу {names.get(row['assignee'], row['assignee'])}."
    return "Задачу одновременно изменил другой пользователь. Обновите страницу и повторите."


def _local(moment: datetime | None) -> str:
    return localdate(moment) if moment is not None else ""


# -- the form: rendering model and submitted values -----------------------------------------------------------

def _values(component: dict[str, Any], dynamic: dict[str, list[dict]] | None = None) -> list[Any]:
    """The component's options: its static `values`, or (form-js `valuesKey`) the task context's options of that
    key; none when the context has none (the modeler's preview shows an empty select)."""
    values = component.get("values")
    if isinstance(values, list):
        return values
    key = component.get("valuesKey")
    if isinstance(key, str) and dynamic and isinstance(dynamic.get(key), list):
        return dynamic[key]
    return []


def _options(component: dict[str, Any], dynamic: dict[str, list[dict]] | None = None) -> list[tuple[str, str]]:
    return [(str(v.get("value")), str(v.get("label") or v.get("value"))) for v in _values(component, dynamic)
            if isinstance(v, dict)]


def _option_value(component: dict[str, Any], submitted: str) -> Any:
    """The option's own value (it may be a number or a boolean in the schema) for a submitted string; options from
    a `valuesKey` are strings, so the submitted string is the value."""
    for option in component.get("values") or []:
        if isinstance(option, dict) and str(option.get("value")) == submitted:
            return option.get("value")
    return submitted


def _number(text: str) -> Any:
    cleaned = text.replace(" ", "").replace("\u00a0", "").replace(",", ".")
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        value = float(cleaned)
    except ValueError:
        return text  # the engine answers «должно быть числом» and the user sees what they typed
    return value if value == value and value not in (float("inf"), float("-inf")) else text


def parse_submission(schema: dict[str, Any], form: MultiDict) -> dict[str, Any]:
    """Submitted strings as the JSON types the engine expects; empty text fields are kept as "" (a draft keeps
    them), `for_engine` drops them."""
    data: dict[str, Any] = {}
    for key, component in input_fields(schema).items():
        kind = component.get("type", "textfield")
        if kind == "checkbox":
            data[key] = form.get(key, "").lower() in TRUE_STRINGS
        elif kind in LIST_TYPES:
            data[key] = [_option_value(component, v) for v in form.getlist(key) if v != ""]
        elif kind == "dynamiclist":
            data[key] = _submitted_rows(key, component, form)
        elif kind == "hidden":
            continue
        else:
            data[key] = _scalar(component, form.get(key, ""))
    return data


def _uploaded(schema: dict[str, Any]) -> list[materials.Attachment]:
    """The files posted to the form's file pickers (the request itself is capped by MAX_CONTENT_LENGTH)."""
    keys = [c.get("key") for c in _components(schema) if c.get("type") == "filepicker" and c.get("key")]
    return [materials.Attachment(f.filename or "", f.read()) for key in keys for f in request.files.getlist(key)]


def _components(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found, stack = [], list(schema.get("components") or [])
    while stack:
        component = stack.pop(0)
        if isinstance(component, dict):
            found.append(component)
            stack.extend(component.get("components") or [])
    return found


def _scalar(component: dict[str, Any], submitted: str) -> Any:
    raw = submitted.replace("\r\n", "\n").strip()
    kind = component.get("type", "textfield")
    if raw == "":
        return ""
    if kind == "number":
        return _number(raw)
    if kind in CHOICE_TYPES:
        return _option_value(component, raw)
    return raw


def _submitted_rows(path: str, component: dict[str, Any], form: MultiDict) -> list[dict[str, Any]]:
    """The rows of a dynamic list, posted as `path[i][key]` (empty cells left out, empty rows dropped)."""
    pattern = re.compile(rf"^{re.escape(path)}\[(\d{{1,4}})\]\[([A-Za-z_][A-Za-z0-9_]*)\]$")
    columns = input_fields({"components": component.get("components") or []})
    rows: dict[int, dict[str, Any]] = {}
    for name in form.keys():
        match = pattern.match(name)
        if match is None or match.group(2) not in columns or len(rows) >= MAX_ROWS and int(match.group(1)) not in rows:
            continue
        value = _scalar(columns[match.group(2)], form.get(name, ""))
        if value != "":
            rows.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [rows[index] for index in sorted(rows)]


def for_engine(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value != "" and value is not None}


def _fits(component: dict[str, Any], value: Any) -> bool:
    """Whether a process variable may prefill a field (same key, a value of the field's kind)."""
    kind = component.get("type", "textfield")
    options = [o for o, _ in _options(component)]
    if value is None or value == "":
        return False
    if kind == "checkbox":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in CHOICE_TYPES:
        return str(value) in options if options else isinstance(value, (str, int, float))
    if kind in LIST_TYPES:
        return isinstance(value, list) and (not options or all(str(v) in options for v in value))
    if kind == "datetime":
        return isinstance(value, str) and bool(re.match(r"\d{4}-\d{2}-\d{2}", value))
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def initial_values(schema: dict[str, Any], draft: dict[str, Any], variables: dict[str, Any],
                   defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per field: the saved draft, else the task context's default (`sop.task_context`: what the case records
    say, e.g. the children of the signal on the check), else a matching process variable, else the form's
    default value.

    Only descriptive text (names, addresses, descriptions) is carried over from earlier steps: a decision, a
    number, a date or a resolution number must be entered anew at each step, never inherited by accident
    (several steps use `decision`, `resolution_number`, `meeting_date`…).
    """
    values: dict[str, Any] = {}
    for key, component in input_fields(schema).items():
        if key in draft:
            values[key] = draft[key]
        elif defaults and key in defaults:
            values[key] = defaults[key]
        elif key in variables and _carried_over(key, component) and _fits(component, variables[key]):
            values[key] = variables[key]
        elif "defaultValue" in component:
            values[key] = component["defaultValue"]
    return values


def _carried_over(key: str, component: dict[str, Any]) -> bool:
    return component.get("type", "textfield") in ("textfield", "textarea") and not key.endswith(
        ("_number", "_date", "decision"))


def _display(component: dict[str, Any], value: Any) -> Any:
    kind = component.get("type", "textfield")
    if kind == "checkbox":
        return value is True or (isinstance(value, str) and value.lower() in TRUE_STRINGS)
    if kind in LIST_TYPES:
        return {str(v) for v in value} if isinstance(value, list) else set()
    if value is None:
        return ""
    if kind == "number" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    if kind == "datetime" and isinstance(value, str):
        subtype = component.get("subtype", "date")
        return value[:10] if subtype == "date" else value[:16]
    return str(value)


def markdown_text(text: str) -> Markup:
    """The small subset of markdown the forms' text components use: headings, paragraphs, **bold**."""
    parts = []
    for block in re.split(r"\n\s*\n", (text or "").strip()):
        heading = re.match(r"^(#{1,6})\s+(.*)$", block.strip(), re.S)
        if heading:
            level = min(6, max(2, len(heading.group(1)) - 1))
            parts.append(Markup("<h{0}>{1}</h{0}>").format(level, _inline(heading.group(2).strip())))
        elif block.strip():
            lines = [_inline(line.strip()) for line in block.strip().splitlines()]
            parts.append(Markup("<p>{}</p>").format(Markup("<br>").join(lines)))
    return Markup("").join(parts)


def _inline(text: str) -> Markup:
    escaped = str(escape(text))
    return Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))


def build_widgets(components: list[dict[str, Any]], values: dict[str, Any], errors: dict[str, str],
                  options: dict[str, list[dict]] | None = None) -> list[dict]:
    """What the template draws, component by component (groups keep their children); `options` are the task
    context's options for components with a `valuesKey`."""
    widgets = []
    for component in components or []:
        if not isinstance(component, dict):
            continue
        kind = component.get("type", "textfield")
        key = component.get("key")
        widget = {"type": kind, "key": key, "label": component.get("label") or "",
                  "description": component.get("description") or "",
                  "required": bool((component.get("validate") or {}).get("required")),
                  "error": errors.get(key) if key else None}
        if kind == "text":
            widget["html"] = markdown_text(component.get("text") or "")
        elif kind in ("group", "fieldset"):
            widget["type"] = "group"
            widget["children"] = build_widgets(component.get("components"), values, errors, options)
        elif kind in ("separator", "spacer"):
            pass
        elif kind in ("textfield", "textarea", "number", "checkbox", "datetime", *CHOICE_TYPES, *LIST_TYPES):
            if not key:
                continue
            widget["value"] = _display(component, values.get(key))
            widget["options"] = _options(component, options)
            widget["subtype"] = component.get("subtype", "date")
            widget["label"] = widget["label"] or component.get("dateLabel") or key
            widget["step"] = "1" if component.get("decimalDigits") == 0 else "any"
            rules = component.get("validate") or {}
            widget["min"], widget["max"] = rules.get("min"), rules.get("max")
            widget["maxlength"] = rules.get("maxLength")
        elif kind == "dynamiclist" and (component.get("path") or key):
            widget.update(_rows_widget(component, values, options))
        elif kind == "filepicker" and key:
            widget.update(accept=component.get("accept") or "", multiple=bool(component.get("multiple")))
        else:
            continue  # images, hidden fields: nothing to draw
        widgets.append(widget)
    return widgets


def _rows_widget(component: dict[str, Any], values: dict[str, Any], options: dict[str, list[dict]] | None) -> dict:
    """A dynamic list as a table: one row per value row (the rows come from the task's defaults or the draft),
    read-only columns shown as text and posted back as hidden fields."""
    path = component.get("path") or component["key"]
    columns = [c for c in component.get("components") or [] if isinstance(c, dict) and c.get("key")]
    rows = values.get(path) if isinstance(values.get(path), list) else []
    cells = []
    for index, row in enumerate(r for r in rows[:MAX_ROWS] if isinstance(r, dict)):
        cells.append([{"name": f"{path}[{index}][{c['key']}]", "type": c.get("type", "textfield"),
                       "readonly": bool(c.get("readonly") or c.get("disabled")),
                       "value": _display(c, row.get(c["key"])), "options": _options(c, options),
                       "label": c.get("label") or c["key"], "subtype": c.get("subtype", "date")}
                      for c in columns])
    return {"type": "dynamiclist", "key": path, "columns": [c.get("label") or c["key"] for c in columns],
            "rows": cells}


def _labels(schema: dict[str, Any]) -> dict[str, str]:
    return {key: c.get("label") or c.get("dateLabel") or key for key, c in input_fields(schema).items()}


# -- the case beside the form ---------------------------------------------------------------------------------

def _case_id(instance_id: int) -> int | None:
    with kurator().db.session() as db:
        return db.scalar(select(InstanceScope.case_id).where(InstanceScope.instance_id == instance_id))


def _age(birth: str | None, today: date) -> int | None:
    if not birth:
        return None
    born = date.fromisoformat(birth[:10])
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def years(age: int | None) -> str:
    """«1 год», «3 года», «11 лет»."""
    if age is None or age < 0:
        return ""
    if age % 10 == 1 and age % 100 != 11:
        word = "год"
    elif age % 10 in (2, 3, 4) and age % 100 not in (12, 13, 14):
        word = "года"
    else:
        word = "лет"
    return f"{age} {word}"


def _case_panel(case_id: int | None) -> dict[str, Any] | None:
    if case_id is None:
        return None
    try:
        case = kurator().sop.case(case_id)
    except NotFound:
        return None
    today = _today()
    children = [{**child, "age_text": years(_age(child.get("birth_date"), today))}
                for child in case["family"]["children"]]
    curator = case.get("curator")
    return {**case, "children": children,
            "danger_label": DANGER_LEVEL.get(case.get("danger_level") or "", case.get("danger_level")),
            "curator_name": _full_names([curator]).get(curator, curator) if curator else None}


def _task_context(task_id: str) -> dict[str, Any]:
    """Panels, defaults and options of the task (`sop.task_context`) as the current user may see them."""
    service = getattr(kurator(), "sop", None)
    if service is None:
        return {"panels": [], "defaults": {}, "options": {}}
    return service.task_context(task_id, g.user).to_dict()


def _today() -> date:
    return kurator().clock.now().astimezone(ZoneInfo(g.user.timezone)).date()


def _who_else(task: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Who else may do the task: the assignee, the candidate roles and the people holding them nearby."""
    titles = kurator().identity.roles()
    roles = [titles.get(code, code) for code in row["candidate_roles"]]
    people: list[str] = []
    if task["assignee"] is None:
        query = (select(User.full_name, User.username).join(UserRole, UserRole.user_id == User.id)
                 .join(Agency, Agency.id == User.agency_id)
                 .where(User.is_active.is_(True), User.username != g.user.username,
                        or_(UserRole.role_code.in_(row["candidate_roles"] or [""]),
                            User.username.in_(row["candidate_users"] or [""])))
                 .distinct().order_by(User.full_name, User.username))
        if row.get("agency_id") is not None:
            query = query.where(User.agency_id == row["agency_id"])
        elif g.user.municipality_id is not None:
            query = query.where(Agency.municipality_id == g.user.municipality_id)
        with kurator().db.session() as db:
            people = [full_name or username for full_name, username in db.execute(query).all()]
    assignee = task["assignee"]
    return {"roles": roles, "agency": row.get("agency_name"), "people": people[:MAX_WHO],
            "more": max(0, len(people) - MAX_WHO),
            "assignee": assignee, "assignee_name": _full_names([assignee]).get(assignee, assignee),
            "mine": assignee == g.user.username, "claimable": assignee is None and _is_candidate(row)}


def _due_state(task: dict[str, Any]) -> str | None:
    if not task.get("due"):
        return None
    due = datetime.fromisoformat(task["due"])
    now = kurator().clock.now()
    if task.get("overdue") or due < now:
        return "overdue"
    return "soon" if due <= now + DUE_SOON else None


# -- pages ----------------------------------------------------------------------------------------------------

def _render(task_id: str, row: dict[str, Any], values: dict[str, Any] | None = None,
            errors: dict[str, str] | None = None, message: str | None = None, status: int = 200):
    engine = kurator()
    task = engine.tasks.get(task_id)
    schema = engine.tasks.form(task_id) or {"components": []}
    context = _task_context(task_id)
    if values is None:
        variables = engine.runtime.instance(task["instance_id"])["variables"]
        values = initial_values(schema, engine.tasks.draft(task_id), variables, context["defaults"])
    errors = errors or {}
    labels = _labels(schema)
    summary = [(key, labels.get(key), text) for key, text in errors.items()]
    draft_meta = {"by": row["data"].get("_draft_by"), "at": row["data"].get("_draft_at")} \
        if row["data"].get("_draft_at") else None
    if draft_meta:
        draft_meta["by"] = _full_names([draft_meta["by"]]).get(draft_meta["by"], draft_meta["by"])
    return render_template(
        "tasks/show.html", task=task,
        widgets=build_widgets(schema.get("components"), values, errors, context["options"]), errors=errors,
        summary=summary, message=message, case=_case_panel(_case_id(task["instance_id"])), panels=context["panels"],
        who=_who_else(task, row), due_state=_due_state(task), draft=draft_meta,
        has_form=bool(input_fields(schema)), today=_today().isoformat(),
        process_name=process_names().get(task["process_key"], task["process_key"])), status


def _closed(row: dict[str, Any], message: str, entered: list[tuple[str, Any]] | None = None, status: int = 409):
    return render_template("tasks/closed.html", row=row, message=message, entered=entered or [],
                           case=_case_panel(_case_id(row["instance_id"]))), status


def _entered(schema: dict[str, Any], data: dict[str, Any]) -> list[tuple[str, str]]:
    """The user's input as label/text pairs, so that nothing typed is lost when the task has gone."""
    fields = input_fields(schema)
    shown = []
    for key, value in data.items():
        component = fields.get(key, {})
        labels = dict(_options(component))
        if value in ("", None, [], False):
            continue
        if isinstance(value, list):
            text = "; ".join(labels.get(str(v), str(v)) for v in value)
        elif value is True:
            text = "да"
        elif component.get("type") == "datetime" and isinstance(value, str):
            text = localdate(value, with_time=component.get("subtype", "date") != "date")
        else:
            text = labels.get(str(value), str(value))
        shown.append((component.get("label") or key, text))
    return shown


@bp.route("/tasks/<task_id>")
@login_required
def show(task_id: str):
    row = _scoped_row(task_id)
    if row["status"] != "open":
        if not (_is_candidate(row) or g.user.username in (row["assignee"], row["completed_by"])):
            abort(403)
        return _closed(row, _conflict_message(row), status=200)
    if not _may_work(row):
        if not _supervises(row):
            abort(403)
        kurator().audit.record(g.user.username, "task_viewed", "task", task_id, ip=client_ip())
        return _closed(row, _supervision_message(row), status=200)
    kurator().audit.record(g.user.username, "task_viewed", "task", task_id, ip=client_ip())
    return _render(task_id, row)


def _supervises(row: dict[str, Any]) -> bool:
    """The commission and managers follow tasks in their scope that are not theirs to do (the manager's overdue
    list links to them): they see where the task stands, read-only."""
    return row["status"] == "open" and (g.user.municipality_wide or g.user.has("manager"))


def _supervision_message(row: dict[str, Any]) -> str:
    holder = row["assignee"]
    who = (f"в работе у {_full_names([holder]).get(holder, holder)}" if holder
           else "ожидает исполнителя" + (f" в органе «{row['agency_name']}»" if row.get("agency_name") else ""))
    due = _local(row.get("due")) if row.get("due") else ""
    return f"Задача {who}{', срок ' + due if due else ''}. Вы можете только просматривать ее."


def _guard_post(task_id: str):
    """The row if the user may still work on the task; otherwise a response (403 or a friendly conflict)."""
    row = _scoped_row(task_id)
    if row["status"] == "open" and _may_work(row):
        return row, None
    if not (_is_candidate(row) or g.user.username in (row["assignee"], row["completed_by"])):
        abort(403)
    schema = kurator().tasks.form(task_id) or {"components": []}
    return row, _closed(row, _conflict_message(row) + " Ваши данные не сохранены.",
                        _entered(schema, parse_submission(schema, request.form)))


def _after_failure(task_id: str, schema: dict[str, Any], data: dict[str, Any], exc: Exception):
    """Conflict or a lost claim while saving: a clear message, never a 500."""
    row = _scoped_row(task_id)
    if isinstance(exc, PermissionDenied) and not (row["assignee"] and _is_candidate(row)):
        raise exc
    return _closed(row, _conflict_message(row) + " Ваши данные не сохранены.", _entered(schema, data))


@bp.route("/tasks/<task_id>", methods=["POST"])
@login_required
def complete(task_id: str):
    row, refused = _guard_post(task_id)
    if refused is not None:
        return refused
    engine = kurator()
    schema = engine.tasks.form(task_id) or {"components": []}
    data = parse_submission(schema, request.form)
    try:
        with materials.attached(_uploaded(schema)):  # an agency's answer to a request for materials
            engine.tasks.complete(task_id, g.user.username, for_engine(data))
    except InvalidInput as exc:
        message = "Проверьте поля, отмеченные ниже." if exc.errors else f"Данные не приняты: {exc.message}"
        return _render(task_id, row, data, dict(exc.errors), message, 422)
    except ExecutionError as exc:
        return _render(task_id, row, data, {}, f"Не удалось выполнить следующий шаг процесса: {exc.message}. "
                                                "Данные не сохранены; сообщите методологу.", 422)
    except (Conflict, PermissionDenied) as exc:
        return _after_failure(task_id, schema, data, exc)
    engine.audit.record(g.user.username, "task_completed", "task", task_id, ip=client_ip())
    following = next_task(row["instance_id"])
    if following is not None:
        flash(f"Задача «{row['name']}» завершена. Следующая задача по делу: «{following['name']}».")
        return redirect(url_for("tasks.show", task_id=following["id"]))
    flash(f"Задача «{row['name']}» завершена.")
    return redirect(url_for("inbox.index"))


@bp.route("/tasks/<task_id>/draft", methods=["POST"])
@login_required
def draft(task_id: str):
    row, refused = _guard_post(task_id)
    if refused is not None:
        return refused
    engine = kurator()
    schema = engine.tasks.form(task_id) or {"components": []}
    data = parse_submission(schema, request.form)
    try:
        engine.tasks.save_draft(task_id, g.user.username, data)
    except (Conflict, PermissionDenied) as exc:
        return _after_failure(task_id, schema, data, exc)
    except InvalidInput as exc:
        return _render(task_id, row, data, dict(exc.errors), f"Черновик не сохранен: {exc.message}", 422)
    engine.audit.record(g.user.username, "draft_saved", "task", task_id, ip=client_ip())
    flash("Черновик сохранен. Задача остается открытой.")
    return redirect(url_for("tasks.show", task_id=task_id))


def next_task(instance_id: int) -> dict[str, str] | None:
    """The first open task of the same case (or process) that this user works on: assigned or claimable."""
    with kurator().db.session() as db:
        case_id = db.scalar(select(InstanceScope.case_id).where(InstanceScope.instance_id == instance_id))
        if case_id is not None:
            instances = select(InstanceScope.instance_id).where(InstanceScope.case_id == case_id)
            query = inbox_query(g.user).where(HumanTask.instance_id.in_(instances))
        else:
            query = inbox_query(g.user).where(HumanTask.instance_id == instance_id)
        found = db.scalar(query.order_by(HumanTask.due.is_(None), HumanTask.due, HumanTask.created_at, HumanTask.id)
                          .limit(1))
        return {"id": found.id, "name": found.name} if found is not None else None
