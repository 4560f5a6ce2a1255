"""«Заседания»: the commission's meetings (list and month calendar, the meeting page with its agenda, attendance and
decisions, the agenda and minutes PDF) and «Комиссия» (members and the meeting schedule).

The views are thin: every rule is the MeetingService's (`sop.meetings.service`). Who may see a municipality's
meetings is `MeetingService.may_view` (its commission roles, the regional secretary, the members of the commission
by user name); every change is refused by the service unless the user is the municipality's commission secretary.
A meeting of another municipality, or of one the user may not see, is a 404. The secretary sees the actions; the
chair, the manager and the members see the same page read-only, with each case's short context. Every reading of a
meeting page is audited (`meeting_viewed`).
"""

from __future__ import annotations

import calendar as monthly
from datetime import date
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from engine.calendar import CalendarCoverageError
from engine.errors import Conflict, InvalidInput, NotFound
from engine.models import Agency, Municipality
from sop.meetings.models import ITEM_STATUSES, POSITIONS
from sop.meetings.schedule import WEEKDAYS, meeting_days
from sop.meetings.service import MEETING_FIELDS

from ..auth import client_ip, kurator, login_required
from ..params import db_int
from .tasks import (
    DANGER_LEVEL,
    _case_panel,
    build_widgets,
    for_engine,
    initial_values,
    parse_submission,
)

bp = Blueprint("meetings", __name__)

STATUSES = {"planned": "запланировано", "open": "идет", "closed": "закрыто", "cancelled": "отменено"}
KINDS = {"regular": "очередное", "extraordinary": "внеочередное"}
MONTHS = ("январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август", "сентябрь", "октябрь", "ноябрь",
          "декабрь")
WEEK_CHOICES = ((1, "1-я"), (2, "2-я"), (3, "3-я"), (4, "4-я"), (5, "5-я"), (-1, "последняя"))


def meetings() -> Any:
    return kurator().sop.meetings


def shows_link(user) -> bool:
    """The navigation link: the commission roles, the regional secretary, and members of the commission."""
    if getattr(kurator(), "sop", None) is None:
        return False
    if user.has("commission_secretary", "commission", "regional_secretary"):
        return True
    if user.municipality_id is None:
        return False
    return user.has("manager") and user.agency_kind == "commission" or meetings().may_view(user.username,
                                                                                         user.municipality_id)


def _municipality() -> int:
    """The municipality whose meetings are shown: the user's own; the regional secretary may pick another."""
    chosen = request.values.get("municipality", type=db_int)
    if chosen is not None and chosen != g.user.municipality_id and g.user.has("regional_secretary", "admin"):
        return chosen
    if g.user.municipality_id is None:
        if chosen is not None and g.user.has("admin"):
            return chosen
        raise NotFound("Заседания не найдены")
    return g.user.municipality_id


def _visible(municipality_id: int) -> None:
    if not meetings().may_view(g.user.username, municipality_id):
        raise NotFound("Заседания не найдены")


def _secretary_of(municipality_id: int) -> bool:
    """Whether to show the actions (the service decides whether they are allowed)."""
    return g.user.has("commission_secretary") and g.user.municipality_id == municipality_id


def _may_manage_commission(municipality_id: int) -> bool:
    return g.user.has("admin") or _secretary_of(municipality_id)


# -- the list and the calendar ----------------------------------------------------------------------------------

def _month() -> tuple[int, int]:
    text = request.args.get("month", "")
    try:
        year, month = int(text[:4]), int(text[5:7])
        if len(text) == 7 and text[4] == "-" and 1 <= month <= 12 and 1900 < year < 2200:
            return year, month
    except ValueError:
        pass
    today = _today()
    return today.year, today.month


def _today() -> date:
    from zoneinfo import ZoneInfo

    return kurator().clock.now().astimezone(ZoneInfo(g.user.timezone)).date()


def _calendar(year: int, month: int, rows: list[dict], commission: dict | None) -> dict[str, Any]:
    """The month grid (weeks from Monday) with the meetings on record and the scheduled days marked."""
    on_record: dict[date, list[dict]] = {}
    for row in rows:
        on_record.setdefault(row["held_on"], []).append(row)
    scheduled: set[date] = set()
    notice = None
    if commission and commission["schedule_weekday"] is not None and commission["schedule_weeks"]:
        first = date(year, month, 1)
        try:
            # from the last day of the previous month: its window must take in the month shown (a meeting of
            # that month moved off a day off may be held early in this one)
            for _, held in meeting_days(kurator().calendar.calendar, commission["schedule_weekday"],
                                        commission["schedule_weeks"], date.fromordinal(first.toordinal() - 1),
                                        months=2):
                scheduled.add(held)
        except CalendarCoverageError as exc:  # a year the production calendar does not cover: no scheduled marks
            scheduled = set()
            notice = (f"Производственного календаря на {exc.year} год нет, поэтому дни заседаний по графику "
                      f"не отмечены. Администратор может заполнить этот год в разделе «Производственный календарь».")
    today = _today()
    weeks = [[{"day": day, "in_month": day.month == month, "today": day == today,
               "meetings": on_record.get(day, []), "scheduled": day in scheduled and not on_record.get(day)}
              for day in week] for week in monthly.Calendar().monthdatescalendar(year, month)]
    previous = (year - 1, 12) if month == 1 else (year, month - 1)
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return {"title": f"{MONTHS[month - 1].capitalize()} {year}", "weeks": weeks, "notice": notice,
            "previous": f"{previous[0]:04d}-{previous[1]:02d}", "next": f"{following[0]:04d}-{following[1]:02d}"}


def _list_page(errors: dict[str, str] | None = None, form: dict | None = None, status: int = 200):
    municipality_id = _municipality()
    _visible(municipality_id)
    service = meetings()
    rows = service.meetings(municipality_id)
    today = _today()
    upcoming = sorted((r for r in rows if r["status"] in ("planned", "open") and r["held_on"] >= today
                       or r["status"] == "open"), key=lambda r: (r["held_on"], r["id"]))
    past = [r for r in rows if r not in upcoming]
    year, month = _month()
    commission = service.commission(municipality_id)
    kurator().audit.record(g.user.username, "meetings_listed", "municipality", municipality_id, ip=client_ip())
    return render_template("meetings/index.html", upcoming=upcoming, past=past, commission=commission,
                           calendar=_calendar(year, month, rows, commission), statuses=STATUSES, kinds=KINDS,
                           secretary=_secretary_of(municipality_id), errors=errors or {}, form=form or {},
                           municipality_id=municipality_id, today=today), status


@bp.route("/meetings")
@login_required
def index():
    return _list_page()


@bp.route("/meetings/next", methods=["POST"])
@login_required
def upcoming():
    municipality_id = _municipality()
    _visible(municipality_id)
    try:
        meeting_id = meetings().upcoming(municipality_id, g.user.username)
    except InvalidInput as exc:
        return _list_page({"next": "; ".join(exc.errors.values()) or exc.message}, status=422)
    return redirect(url_for("meetings.show", meeting_id=meeting_id))


@bp.route("/meetings/new", methods=["POST"])
@login_required
def create():
    municipality_id = _municipality()
    _visible(municipality_id)
    form = {key: request.form.get(key, "").strip() for key in ("held_on", "starts_at", "place")}
    try:
        meeting_id = meetings().create(municipality_id, form["held_on"], "extraordinary", form["starts_at"] or None,
                                       form["place"] or None, by=g.user.username)
    except InvalidInput as exc:
        errors = dict(exc.errors) or {"held_on": exc.message}
        errors = {("starts_at" if key == "schedule_time" else key): text for key, text in errors.items()}
        return _list_page(errors, form, 422)
    flash("Внеочередное заседание назначено.")
    return redirect(url_for("meetings.show", meeting_id=meeting_id))


# -- the meeting page ---------------------------------------------------------------------------------------------

def _meeting(meeting_id: int) -> dict[str, Any]:
    return meetings().get(meeting_id, g.user.username)


def _item(meeting: dict[str, Any], item_id: int) -> dict[str, Any]:
    item = next((i for i in meeting["items"] if i["id"] == item_id), None)
    if item is None:
        raise NotFound("Вопрос повестки не найден")
    return item


def _prefix(item_id: int) -> str:
    return f"q{item_id}_"


def _decision_schema(item: dict[str, Any]) -> dict[str, Any]:
    """The case task's form without the fields the meeting fills itself (date, numbers, votes, present), its keys
    prefixed with the item so that several forms on one page keep distinct field ids."""
    schema = kurator().tasks.form(item["task_id"]) or {"components": []}
    prefix = _prefix(item["id"])

    def strip(components):
        kept = []
        for component in components or []:
            if not isinstance(component, dict):
                continue
            if component.get("key") in MEETING_FIELDS or component.get("path") in MEETING_FIELDS:
                continue
            copy = dict(component)
            if copy.get("key"):
                copy["key"] = prefix + copy["key"]
            if copy.get("path"):
                copy["path"] = prefix + copy["path"]
            if copy.get("type") in ("group", "fieldset"):
                copy["components"] = strip(component.get("components"))
            kept.append(copy)
        return kept

    return {**schema, "components": strip(schema.get("components"))}


def _unprefixed(item_id: int, data: dict[str, Any]) -> dict[str, Any]:
    prefix = _prefix(item_id)
    return {key[len(prefix):]: value for key, value in data.items() if key.startswith(prefix)}


def _decision_widgets(item: dict[str, Any], values: dict[str, Any] | None, errors: dict[str, str]) -> list[dict]:
    engine = kurator()
    schema = _decision_schema(item)
    prefix = _prefix(item["id"])
    context = engine.sop.task_context(item["task_id"], g.user).to_dict()
    if values is None:
        task = engine.tasks.get(item["task_id"])
        variables = engine.runtime.instance(task["instance_id"])["variables"]
        plain = initial_values({"components": _plain(schema.get("components"), prefix)}, {}, variables,
                               context["defaults"])
        values = {prefix + key: value for key, value in plain.items()}
    prefixed_errors = {prefix + key: text for key, text in errors.items()}
    return build_widgets(schema.get("components"), values, prefixed_errors, context["options"])


def _plain(components, prefix: str):
    """The components with their own keys back (for the defaults, which are keyed by the form's fields)."""
    result = []
    for component in components or []:
        copy = dict(component)
        for name in ("key", "path"):
            if isinstance(copy.get(name), str) and copy[name].startswith(prefix):
                copy[name] = copy[name][len(prefix):]
        if copy.get("components"):
            copy["components"] = _plain(copy["components"], prefix)
        result.append(copy)
    return result


def _case_context(item: dict[str, Any]) -> dict[str, Any] | None:
    if item.get("case_id") is None:
        return None
    panel = _case_panel(item["case_id"])
    if panel is None:
        return None
    return {"family": panel["family"]["name"], "children": panel["children"], "danger": panel.get("danger_label"),
            "danger_level": panel.get("danger_level"), "curator": panel.get("curator_name"), "due": item["due"],
            "late": item["late"]}


def _materials(item: dict[str, Any]) -> list[dict[str, Any]]:
    """What the commission decides on, for a case's question still before it: the panels its task's page shows
    (`sop.task_context`: the programme to approve, the control's results, the proposal to close…), as the user may
    see them."""
    if item["kind"] != "decision" or item["status"] != "planned" or not item.get("task_id"):
        return []
    try:
        return kurator().sop.task_context(item["task_id"], g.user).to_dict()["panels"]
    except NotFound:
        return []


def _render(meeting_id: int, errors: dict[int | str, dict[str, str]] | None = None,
            values: dict[int, dict[str, Any]] | None = None, message: str | None = None, status: int = 200):
    """The meeting page; `errors` per item id (or "attendance", "add", "meeting") and the values posted."""
    engine = kurator()
    meeting = _meeting(meeting_id)
    errors, values = errors or {}, values or {}
    secretary = _secretary_of(meeting["municipality_id"])
    for item in meeting["items"]:
        item["status_label"] = ITEM_STATUSES.get(item["status"], item["status"])
        item["context"] = _case_context(item)
        item["panels"] = _materials(item)
        item["errors"] = errors.get(item["id"], {})
        item["posted"] = values.get(item["id"], {})
        item["widgets"] = []
        if secretary and meeting["status"] == "open" and item["status"] == "planned" and item["kind"] == "decision":
            item["widgets"] = _decision_widgets(item, values.get(item["id"], {}).get("form"), item["errors"])
    members = meeting["commission"]["members"]
    engine.audit.record(g.user.username, "meeting_viewed", "meeting", meeting_id, ip=client_ip())
    pending = [i["position"] for i in meeting["items"] if i["status"] == "planned"]
    return render_template("meetings/show.html", meeting=meeting, secretary=secretary, statuses=STATUSES,
                           kinds=KINDS, members=members, errors=errors, message=message, pending=pending,
                           danger_levels=DANGER_LEVEL, positions=POSITIONS,
                           invited_text="\n".join(f"{p['name']} — {p['position']}" if p.get("position") else p["name"]
                                                  for p in meeting["invited"])), status


@bp.route("/meetings/<int:meeting_id>")
@login_required
def show(meeting_id: int):
    meeting = _meeting(meeting_id)
    if meeting["status"] == "planned" and _secretary_of(meeting["municipality_id"]):
        meetings().refresh_agenda(meeting_id, g.user.username)  # the agenda builds itself when opened
    return _render(meeting_id)


def _back(meeting_id: int, anchor: str | None = None):
    return redirect(url_for("meetings.show", meeting_id=meeting_id) + (f"#{anchor}" if anchor else ""))


def _conflict(meeting_id: int, exc: Conflict):
    return _render(meeting_id, {"meeting": {"meeting": exc.user_message}},
                   message=f"Действие не выполнено: {exc.user_message}", status=409)


@bp.route("/meetings/<int:meeting_id>/refresh", methods=["POST"])
@login_required
def refresh(meeting_id: int):
    _meeting(meeting_id)
    meetings().refresh_agenda(meeting_id, g.user.username)
    flash("Повестка обновлена.")
    return _back(meeting_id, "agenda")


@bp.route("/meetings/<int:meeting_id>/items", methods=["POST"])
@login_required
def add_item(meeting_id: int):
    _meeting(meeting_id)
    title, speaker = request.form.get("title", ""), request.form.get("speaker", "")
    try:
        meetings().add_item(meeting_id, title, speaker, g.user.username)
    except InvalidInput as exc:
        return _render(meeting_id, {"add": dict(exc.errors)}, {0: {"title": title, "speaker": speaker}},
                       "Вопрос не добавлен: проверьте поля.", 422)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    flash("Вопрос добавлен в повестку.")
    return _back(meeting_id, "agenda")


@bp.route("/meetings/<int:meeting_id>/items/<int:item_id>/move", methods=["POST"])
@login_required
def move_item(meeting_id: int, item_id: int):
    _item(_meeting(meeting_id), item_id)
    offset = -1 if request.form.get("direction") == "up" else 1
    try:
        meetings().move_item(item_id, offset, g.user.username)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    return _back(meeting_id, f"item-{item_id}")


@bp.route("/meetings/<int:meeting_id>/items/<int:item_id>/remove", methods=["POST"])
@login_required
def remove_item(meeting_id: int, item_id: int):
    _item(_meeting(meeting_id), item_id)
    try:
        meetings().remove_item(item_id, g.user.username)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    flash("Вопрос снят с повестки.")
    return _back(meeting_id, "agenda")


@bp.route("/meetings/<int:meeting_id>/items/<int:item_id>/postpone", methods=["POST"])
@login_required
def postpone(meeting_id: int, item_id: int):
    _item(_meeting(meeting_id), item_id)
    reason = request.form.get("reason", "")
    try:
        meetings().postpone(item_id, reason, g.user.username)
    except InvalidInput as exc:
        return _render(meeting_id, {item_id: dict(exc.errors)}, {item_id: {"reason": reason}},
                       "Вопрос не перенесен: укажите причину.", 422)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    flash("Вопрос перенесен на следующее заседание.")
    return _back(meeting_id, f"item-{item_id}")


@bp.route("/meetings/<int:meeting_id>/items/<int:item_id>/decide", methods=["POST"])
@login_required
def decide(meeting_id: int, item_id: int):
    item = _item(_meeting(meeting_id), item_id)
    form = request.form
    votes = {key: form.get(key, "").strip() for key in ("votes_for", "votes_against", "votes_abstained")}
    posted: dict[str, Any] = {**votes, "decision_text": form.get("decision_text", ""),
                              "family_appeared": form.get("family_appeared", ""),
                              "casting_vote": form.get("casting_vote") == "yes", "dissent": form.get("dissent", "")}
    data = None
    if item["kind"] == "decision" and item["task_id"]:
        schema = _decision_schema(item)
        parsed = parse_submission(schema, form)
        posted["form"] = parsed
        data = for_engine(_unprefixed(item_id, parsed))
    appeared = {"yes": True, "no": False}.get(posted["family_appeared"])
    try:
        result = meetings().decide(item_id, g.user.username, data, votes["votes_for"], votes["votes_against"],
                                   votes["votes_abstained"], appeared, posted["decision_text"],
                                   casting_vote=posted["casting_vote"], dissent=posted["dissent"])
    except InvalidInput as exc:
        errors = dict(exc.errors) or {"meeting": exc.message}
        return _render(meeting_id, {item_id: errors}, {item_id: posted},
                       f"Решение по вопросу {item['position']} не записано: проверьте поля, отмеченные ниже.", 422)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    flash(f"Решение по вопросу {item['position']} записано, постановление № {result['resolution_number']}.")
    return _back(meeting_id, f"item-{item_id}")


@bp.route("/meetings/<int:meeting_id>/notify", methods=["POST"])
@login_required
def notify(meeting_id: int):
    _meeting(meeting_id)
    try:
        written = meetings().notify(meeting_id, g.user.username)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    flash(f"Органы уведомлены: новых уведомлений {written}.")
    return _back(meeting_id)


def _invited(text: str) -> list[dict[str, str]]:
    """Lines «ФИО — кем приходится» (a hyphen or a comma also separates)."""
    guests = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        for separator in (" — ", " – ", " - ", "—", ","):
            if separator in line:
                name, position = line.split(separator, 1)
                break
        else:
            name, position = line, ""
        guests.append({"name": name.strip(), "position": position.strip()})
    return guests


@bp.route("/meetings/<int:meeting_id>/attendance", methods=["POST"])
@login_required
def attendance(meeting_id: int):
    _meeting(meeting_id)
    present = [value for value in (request.form.getlist("present", type=db_int)) if value is not None]
    try:
        quorum = meetings().set_attendance(meeting_id, present, _invited(request.form.get("invited", "")),
                                           g.user.username)
    except InvalidInput as exc:
        return _render(meeting_id, {"attendance": dict(exc.errors)}, message="Явка не сохранена.", status=422)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    if quorum.reached:
        flash(f"Явка отмечена: присутствуют {quorum.present} из {quorum.members}, кворум есть.")
    else:
        flash(f"Явка отмечена: присутствуют {quorum.present} из {quorum.members}. Кворума нет: нужно не менее "
              f"{quorum.needed}, решения не могут приниматься.", "error")
    return _back(meeting_id, "agenda")


@bp.route("/meetings/<int:meeting_id>/close", methods=["POST"])
@login_required
def close(meeting_id: int):
    _meeting(meeting_id)
    try:
        meetings().close(meeting_id, g.user.username)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    flash("Заседание закрыто, протокол сформирован.")
    return _back(meeting_id)


@bp.route("/meetings/<int:meeting_id>/cancel", methods=["POST"])
@login_required
def cancel(meeting_id: int):
    _meeting(meeting_id)
    reason = request.form.get("reason", "")
    try:
        meetings().cancel(meeting_id, reason, g.user.username)
    except InvalidInput as exc:
        return _render(meeting_id, {"cancel": dict(exc.errors)}, message="Заседание не отменено.", status=422)
    except Conflict as exc:
        return _conflict(meeting_id, exc)
    flash("Заседание отменено; вопросы перенесены.")
    return _back(meeting_id)


def _pdf(filename: str, content: bytes) -> Response:
    return Response(content, mimetype="application/pdf", headers={
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}", "Content-Length": str(len(content)),
        "Cache-Control": "private, no-store"})


@bp.route("/meetings/<int:meeting_id>/agenda.pdf")
@login_required
def agenda_pdf(meeting_id: int):
    return _pdf(*meetings().agenda_pdf(meeting_id, g.user.username))


@bp.route("/meetings/<int:meeting_id>/minutes.pdf")
@login_required
def minutes_pdf(meeting_id: int):
    return _pdf(*meetings().minutes_pdf(meeting_id, g.user.username))


# -- the commission -------------------------------------------------------------------------------------------------

def _commission_municipality() -> int:
    municipality_id = _municipality() if g.user.municipality_id is not None or request.values.get(
        "municipality") else None
    if municipality_id is None:
        if not g.user.has("admin"):
            raise NotFound("Комиссия не найдена")
        with kurator().db.session() as db:
            municipality_id = db.scalar(select(Municipality.id).order_by(Municipality.name).limit(1))
        if municipality_id is None:
            raise NotFound("Муниципальных образований нет")
    if not (g.user.has("admin") or meetings().may_view(g.user.username, municipality_id)):
        raise NotFound("Комиссия не найдена")
    return municipality_id


def _commission_page(municipality_id: int, errors: dict[str, dict[str, str]] | None = None,
                     form: dict[str, Any] | None = None, status: int = 200):
    commission = meetings().commission(municipality_id)
    with kurator().db.session() as db:
        agencies = db.execute(select(Agency.id, Agency.name).where(Agency.municipality_id == municipality_id)
                              .order_by(Agency.name)).all()
        municipality = db.get(Municipality, municipality_id)
        municipalities = db.execute(select(Municipality.id, Municipality.name).order_by(Municipality.name)).all() \
            if g.user.has("admin") else []
    kurator().audit.record(g.user.username, "commission_viewed", "municipality", municipality_id, ip=client_ip())
    return render_template("meetings/commission.html", commission=commission, agencies=agencies,
                           municipality=municipality, municipalities=municipalities,
                           manage=_may_manage_commission(municipality_id), errors=errors or {}, form=form or {},
                           positions=POSITIONS, weekdays=list(enumerate(WEEKDAYS)), week_choices=WEEK_CHOICES), \
        status


@bp.route("/commission")
@login_required
def commission():
    return _commission_page(_commission_municipality())


def _managed() -> int:
    municipality_id = _commission_municipality()
    if not _may_manage_commission(municipality_id):
        abort(403)
    return municipality_id


def _again(municipality_id: int):
    target = url_for("meetings.commission")
    return redirect(target + (f"?municipality={municipality_id}" if municipality_id != g.user.municipality_id
                              else ""))


@bp.route("/commission", methods=["POST"])
@login_required
def set_up():
    municipality_id = _managed()
    form = request.form
    posted = {"full_name": form.get("full_name", ""), "place": form.get("place", ""),
              "schedule_weekday": form.get("schedule_weekday", ""), "schedule_weeks": form.getlist("schedule_weeks"),
              "schedule_time": form.get("schedule_time", "")}
    weekday = form.get("schedule_weekday", type=db_int)
    weeks = [w for w in form.getlist("schedule_weeks", type=int) if w is not None]
    if weekday is None and posted["schedule_weekday"]:
        weekday = -1  # not a day of the week: the service names the field
    try:
        meetings().set_up(municipality_id, posted["full_name"], posted["place"], weekday, weeks,
                          posted["schedule_time"] or None, by=g.user.username)
    except InvalidInput as exc:
        return _commission_page(municipality_id, {"set_up": dict(exc.errors) or {"full_name": exc.message}},
                                posted, 422)
    flash("Сведения о комиссии и график заседаний сохранены.")
    return _again(municipality_id)


@bp.route("/commission/members", methods=["POST"])
@login_required
def add_member():
    municipality_id = _managed()
    form = request.form
    posted = {key: form.get(key, "").strip() for key in ("full_name", "position", "agency_id", "username",
                                                         "job_title")}
    agency_id = form.get("agency_id", type=db_int)
    if posted["agency_id"] and agency_id is None:
        agency_id = -1
    try:
        meetings().add_member(municipality_id, posted["full_name"], posted["position"] or "member", agency_id,
                              posted["username"] or None, posted["job_title"] or None, by=g.user.username)
    except InvalidInput as exc:
        return _commission_page(municipality_id, {"member": dict(exc.errors) or {"full_name": exc.message}},
                                posted, 422)
    except NotFound:
        return _commission_page(municipality_id, {"member": {
            "full_name": "сначала сохраните наименование комиссии"}}, posted, 422)
    flash("Член комиссии добавлен.")
    return _again(municipality_id)


@bp.route("/commission/members/<int:member_id>/active", methods=["POST"])
@login_required
def member_active(member_id: int):
    municipality_id = _managed()
    commission_row = meetings().commission(municipality_id)
    if commission_row is None or member_id not in {m["id"] for m in commission_row["members"]}:
        raise NotFound("Член комиссии не найден")
    active = request.form.get("active") == "1"
    meetings().set_member_active(member_id, active, by=g.user.username)
    flash("Член комиссии снова в составе." if active else "Член комиссии выведен из состава.")
    return _again(municipality_id)

