"""«Новое сообщение»: a signal registered in the journal (Appendix 1), with the duplicate guard."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from engine.errors import InvalidInput, NotFound, PermissionDenied
from sop import repeated_signals
from sop.schemas import IntakeSchema, load
from sop.service import DuplicateFound

from ..access import can_view_case
from ..auth import client_ip, kurator, roles_required
from .tasks import CASE_STATUS

bp = Blueprint("intake", __name__)

ROLES = ("commission_secretary", "police", "guardianship", "social_protection", "education", "health",
         "agency_specialist", "curator")
PERSON_FIELDS = ("last_name", "first_name", "patronymic", "birth_date", "occupation")
TEXT_FIELDS = ("received_on", "source", "problem", "address", "address_actual")
GROUPS = ("children", "parents")
MIN_ROWS = 2
MAX_ROWS = 30
LABELS = {"received_on": "Дата поступления", "source": "От кого поступила информация",
          "problem": "Суть проблемы и необходимая помощь", "address": "Адрес места жительства (регистрации)",
          "address_actual": "Адрес фактического проживания", "threat_to_life": "Угроза жизни или здоровью ребенка",
          "children": "Дети", "parents": "Родители (законные представители)", "agency": "Орган (учреждение)",
          "last_name": "фамилия", "first_name": "имя", "patronymic": "отчество", "birth_date": "дата рождения",
          "occupation": "место учебы или работы", "attach_to_case": "Дело"}


# marshmallow's own messages, for the fields whose schema gives none in Russian
_MESSAGES = [(re.compile(r"Length must be between (\d+) and (\d+)\."), "от {0} до {1} символов"),
             (re.compile(r"Shorter than minimum length (\d+)\."), "не короче {0} символов"),
             (re.compile(r"Longer than maximum length (\d+)\."), "не длиннее {0} символов"),
             (re.compile(r"Not a valid date\."), "дата в формате ГГГГ-ММ-ДД"),
             (re.compile(r"Missing data for required field\.|Field may not be null\."), "обязательное поле"),
             (re.compile(r"Not a valid (string|boolean)\."), "неверное значение"),
             (re.compile(r"Unknown field\."), "неизвестное поле")]


def russian(message: str) -> str:
    """A validation message in Russian (the domain's own messages already are)."""
    parts = []
    for part in message.split("; "):
        for pattern, text in _MESSAGES:
            found = pattern.fullmatch(part.strip())
            if found:
                part = text.format(*found.groups())
                break
        parts.append(part)
    return "; ".join(parts)


def _today() -> str:
    return kurator().clock.now().astimezone(ZoneInfo(g.user.timezone)).date().isoformat()


def _blank_entry() -> dict[str, Any]:
    return {"received_on": _today(), "source": "", "problem": "", "address": "", "address_actual": "",
            "threat_to_life": False, "children": [], "parents": []}


def read_entry(form: MultiDict) -> dict[str, Any]:
    """The submitted journal entry as the user typed it; rows left completely empty are dropped (and the
    others renumbered, so that error keys like children.0.birth_date match what is shown again)."""
    entry: dict[str, Any] = {name: form.get(name, "").replace("\r\n", "\n").strip() for name in TEXT_FIELDS}
    entry["threat_to_life"] = form.get("threat_to_life", "").lower() in ("on", "true", "1", "yes")
    for group in GROUPS:
        indexes = sorted({int(m.group(1)) for key in form
                          if (m := re.fullmatch(rf"{group}\.(\d{{1,3}})\.[a-z_]+", key))})
        rows = []
        for index in indexes:
            row = {name: form.get(f"{group}.{index}.{name}", "").strip() for name in PERSON_FIELDS}
            if any(row.values()):
                rows.append(row)
        entry[group] = rows[:MAX_ROWS]
    return entry


def payload(entry: dict[str, Any]) -> dict[str, Any]:
    """What `register_intake` accepts: empty values left out, so the schema reports what is missing."""
    data: dict[str, Any] = {name: entry[name] for name in TEXT_FIELDS if entry[name]}
    data["threat_to_life"] = entry["threat_to_life"]
    for group in GROUPS:
        data[group] = [{k: v for k, v in row.items() if v} for row in entry[group]]
    return data


def _rows(entry: dict[str, Any], extra: str | None = None) -> dict[str, list[dict[str, str]]]:
    """The rows to draw: those entered, padded with empty ones (at least two of each, one more on request)."""
    rows = {}
    for group in GROUPS:
        filled = list(entry[group])
        wanted = max(MIN_ROWS, len(filled) + (1 if extra == group else 0))
        rows[group] = filled + [dict.fromkeys(PERSON_FIELDS, "") for _ in range(wanted - len(filled))]
    return rows


def _form(entry: dict[str, Any], errors: dict[str, str] | None = None, message: str | None = None,
          extra: str | None = None, status: int = 200):
    errors = errors or {}
    summary = []
    for key, text in errors.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] in GROUPS and parts[1].isdigit():
            who = "Ребенок" if parts[0] == "children" else "Родитель"
            summary.append((key, f"{who} {int(parts[1]) + 1}, {LABELS.get(parts[2], parts[2])}", text))
        else:
            summary.append((key, LABELS.get(key, key), text))
    return render_template("intake/new.html", entry=entry, rows=_rows(entry, extra), errors=errors,
                           summary=summary, message=message, today=_today(), fields=PERSON_FIELDS), status


def _case_link(case_id: int) -> str | None:
    if "cases.show" not in current_app.view_functions:
        return None
    with kurator().db.session() as db:
        visible = can_view_case(db, g.user, case_id)
    return url_for("cases.show", case_id=case_id) if visible else None


def _duplicates_page(entry: dict[str, Any], duplicates: list[dict[str, Any]], message: str | None = None):
    # a case the user may not open is named only as the commission's: not its number, family or status
    shown = []
    for d in duplicates:
        link = _case_link(d["case_id"])
        shown.append({**d, "status_label": CASE_STATUS.get(d["status"], d["status"]), "link": link}
                     if link else {"case_id": d["case_id"], "hidden": True})
    return render_template("intake/duplicates.html", entry=entry, duplicates=shown, message=message,
                           fields=PERSON_FIELDS, labels=LABELS), 409


def _current_duplicates(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The open cases the signal may belong to (the same check `register_intake` makes)."""
    values = load(IntakeSchema(), data, "signal", today=date.fromisoformat(_today()))
    with kurator().db.session() as db:
        return kurator().sop.find_duplicates(db, g.user.municipality_id, values)


@bp.route("/intake/new", methods=["GET", "POST"])
@roles_required(*ROLES)
def new():
    if request.method == "GET":
        return _form(_blank_entry())
    form = request.form
    entry = read_entry(form)
    if form.get("add_row") in GROUPS:  # "add another" without JavaScript: draw one more empty row
        return _form(entry, extra=form["add_row"])
    if form.get("edit"):
        return _form(entry)
    data = payload(entry)
    attach_to_case = None
    if form.get("attach_to_case"):
        try:
            attach_to_case = int(form["attach_to_case"])
            duplicates = _current_duplicates(data)
        except ValueError:
            return _form(entry, {"attach_to_case": "неверный номер дела"}, status=422)
        except InvalidInput as exc:
            return _form(entry, {k: russian(v) for k, v in exc.errors.items()}, status=422)
        if attach_to_case not in {d["case_id"] for d in duplicates}:
            if not duplicates:
                return _form(entry, message="Подходящих дел больше нет: зарегистрируйте сообщение заново.",
                             status=409)
            return _duplicates_page(entry, duplicates, "Выберите одно из дел, перечисленных ниже.")
    try:
        result = kurator().sop.register_intake(g.user.username, data, attach_to_case=attach_to_case,
                                               new_family=form.get("new_family") == "1")
    except DuplicateFound as exc:
        return _duplicates_page(entry, exc.duplicates)
    except InvalidInput as exc:
        errors = {key: russian(text) for key, text in exc.errors.items() if key != "duplicates"}
        if "agency" in errors:
            errors["agency"] = "ваша учетная запись не привязана к органу или в муниципалитете нет комиссии; " \
                               "обратитесь к администратору"
        return _form(entry, errors, "Сообщение не зарегистрировано. Проверьте поля, отмеченные ниже.", status=422)
    except NotFound:
        return _form(entry, {"attach_to_case": "дело не найдено"}, "Сообщение не зарегистрировано.", status=422)
    kurator().audit.record(g.user.username, "intake_registered", "case", result.case_id, ip=client_ip(),
                           details={"intake_id": result.intake_id, "attached": result.attached})
    link = _case_link(result.case_id) if result.case_id else None
    if link is None and result.attached:  # a case of the commission the user does not take part in
        flash("Сообщение зарегистрировано и передано в комиссию: оно присоединено к делу, которое ведет комиссия.")
    else:
        flash(f"Сообщение зарегистрировано: дело № {result.case_number}"
              + (" (присоединено к существующему делу)." if result.attached else "."))
    return redirect(link or url_for("inbox.index"))


@bp.route("/signals/<int:entry_id>/consider", methods=["POST"])
@roles_required("commission_secretary", "curator")
def consider_signal(entry_id: int):
    """The secretary (or the case's curator) records what was done with a repeated signal (`repeated_signals`)."""
    try:
        repeated_signals.consider(kurator(), entry_id, g.user.username, request.form.get("result", ""))
    except InvalidInput as exc:
        flash(f"Результат не записан: {exc.errors.get('result', exc.message)}.", "error")
    except (NotFound, PermissionDenied):
        raise NotFound("Сообщение не найдено") from None
    else:
        kurator().audit.record(g.user.username, "signal_considered", "intake", entry_id, ip=client_ip())
        flash("Результат рассмотрения сообщения записан в журнал комиссии.")
    return redirect(url_for("inbox.index") + "#repeated-signals")
