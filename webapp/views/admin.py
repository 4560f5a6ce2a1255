"""«Администрирование»: users, roles, agencies, municipalities and the production calendar's overrides.

Every form carries the CSRF token, checks every field (Russian messages next to the field), answers 422 with the
input kept when something is wrong, and changes nothing then. Every change is written to the audit log — never a
password. The engine's identity and calendar services do the work: creating, editing, (de)activating a user,
resetting a password (hashed by the identity service's one argon2 hasher), changing a municipality's time zone.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from zoneinfo import available_timezones

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import func, or_, select

from engine.errors import InvalidInput, NotFound
from engine.identity import password_error
from engine.models import (
    Agency,
    AuditEvent,
    CalendarOverride,
    CalendarYear,
    HumanTask,
    Municipality,
    Role,
    User,
    UserRole,
)

from ..auth import client_ip, kurator, roles_required, session_idle

bp = Blueprint("admin", __name__, url_prefix="/admin")

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,99}")
ROLE_CODE = re.compile(r"[a-z][a-z0-9_]{1,63}")
AGENCY_KINDS = {
    "commission": "КДНиЗП муниципального образования",
    "regional_commission": "Региональная КДНиЗП",
    "police": "Органы внутренних дел (ПДН)",
    "education": "Образование",
    "health": "Здравоохранение",
    "social_protection": "Социальная защита",
    "guardianship": "Опека и попечительство",
    "employment": "Служба занятости",
    "youth": "Молодежная политика и спорт",
    "culture": "Культура",
    "probation": "Уголовно-исполнительная инспекция",
    "other": "Иной орган",
}
# offered in the time zone field; any IANA name is accepted
RUSSIAN_TIMEZONES = ("Europe/Kaliningrad", "Europe/Moscow", "Europe/Samara", "Europe/Volgograd", "Asia/Yekaterinburg",
                     "Asia/Omsk", "Asia/Novosibirsk", "Asia/Krasnoyarsk", "Asia/Irkutsk", "Asia/Yakutsk",
                     "Asia/Vladivostok", "Asia/Magadan", "Asia/Kamchatka")
ADMIN_ACTIONS = ("user_created", "user_updated", "user_deactivated", "user_activated", "password_reset",
                 "token_revoked", "sessions_ended",
                 "role_created", "agency_created", "municipality_timezone_changed", "calendar_override_set",
                 "calendar_override_removed", "calendar_year_declared")
WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")
TABS = (("admin.index", "Обзор"), ("admin.users", "Пользователи"), ("admin.roles", "Роли"),
        ("admin.agencies", "Органы"), ("admin.municipalities", "Муниципальные образования"),
        ("admin.calendar", "Производственный календарь"))


@bp.before_request
@roles_required("admin")
def _admins_only():
    """Every page here is for administrators only (403 for everyone else)."""


@bp.context_processor
def _admin_layout():
    return {"admin_tabs": TABS, "agency_kinds": AGENCY_KINDS, "timezones": RUSSIAN_TIMEZONES}


def _audit(action: str, object_type: str, object_id, **details) -> None:
    kurator().audit.record(g.user.username, action, object_type, object_id, ip=client_ip(), details=details)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone_error(name: str) -> str | None:
    if not name:
        return "Укажите часовой пояс"
    if name not in _zones():
        return "Неизвестный часовой пояс: укажите имя IANA, например Europe/Moscow или Asia/Yekaterinburg"
    return None


def _text(name: str, limit: int = 300) -> str:
    return " ".join(request.form.get(name, "").split())[:limit + 1]


# -- overview ----------------------------------------------------------------------------------------------------

@bp.route("")
def index():
    with kurator().db.session() as db:
        counts = {
            "users": db.scalar(select(func.count()).select_from(User).where(User.is_active.is_(True))),
            "inactive": db.scalar(select(func.count()).select_from(User).where(User.is_active.is_(False))),
            "roles": db.scalar(select(func.count()).select_from(Role)),
            "agencies": db.scalar(select(func.count()).select_from(Agency)),
            "municipalities": db.scalar(select(func.count()).select_from(Municipality)),
            "overrides": db.scalar(select(func.count()).select_from(CalendarOverride)),
        }
        events = db.scalars(select(AuditEvent).where(AuditEvent.action.in_(ADMIN_ACTIONS))
                            .order_by(AuditEvent.id.desc()).limit(20)).all()
    return render_template("admin/index.html", counts=counts, events=events)


# -- users -------------------------------------------------------------------------------------------------------

def _agency_choices(db) -> list[tuple[int, str]]:
    rows = db.execute(select(Agency.id, Agency.name, Municipality.name.label("municipality"))
                      .join(Municipality, Municipality.id == Agency.municipality_id)
                      .order_by(Municipality.name, Agency.name)).all()
    return [(r.id, f"{r.name} ({r.municipality})") for r in rows]


def _user_form_context(db) -> dict:
    return {"roles": kurator().identity.roles(), "agencies": _agency_choices(db)}


def _check_user_fields(db, form: dict, errors: dict) -> None:
    """Full name, roles and agency: shared by the create and the edit form."""
    if not form["full_name"]:
        errors["full_name"] = "Укажите фамилию, имя и отчество"
    elif len(form["full_name"]) > 300:
        errors["full_name"] = "Не длиннее 300 символов"
    known = set(db.scalars(select(Role.code)))
    if not form["roles"]:
        errors["roles"] = "Выберите хотя бы одну роль"
    elif set(form["roles"]) - known:
        errors["roles"] = "Неизвестная роль: " + ", ".join(sorted(set(form["roles"]) - known))
    if form["agency"]:
        if not form["agency"].isdigit() or db.get(Agency, int(form["agency"])) is None:
            errors["agency"] = "Такого органа нет"


def _password_errors(errors: dict, password: str, again: str, username: str) -> None:
    """The password policy's objection (`engine.identity.password_error`: length, the login, repeats, runs of keys,
    the most common passwords) at the field, else a mismatch of the two fields."""
    problem = password_error(password, username)
    if problem:
        errors["password"] = problem
    elif password != again:
        errors["password2"] = "Пароли не совпадают"


def _user_form() -> dict:
    return {"username": request.form.get("username", "").strip(), "full_name": _text("full_name"),
            "roles": sorted(set(request.form.getlist("roles"))), "agency": request.form.get("agency", "").strip()}


@bp.route("/users")
def users():
    query = request.args.get("q", "").strip()
    status = request.args.get("status", "")
    with kurator().db.session() as db:
        stmt = select(User).order_by(User.username)
        if query:
            pattern = f"%{query}%"
            stmt = stmt.where(or_(User.username.ilike(pattern), User.full_name.ilike(pattern)))
        if status in ("active", "inactive"):
            stmt = stmt.where(User.is_active.is_(status == "active"))
        rows = db.scalars(stmt).unique().all()
        people = [{"id": u.id, "username": u.username, "full_name": u.full_name, "roles": u.roles,
                   "agency": u.agency.name if u.agency else None,
                   "municipality": u.agency.municipality.name if u.agency else None, "active": u.is_active}
                  for u in rows]
    return render_template("admin/users.html", people=people, role_titles=kurator().identity.roles(), q=query,
                           status=status)


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = {"username": "", "full_name": "", "roles": [], "agency": ""}
    errors: dict[str, str] = {}
    with kurator().db.session() as db:
        if request.method == "POST":
            form = _user_form()
            if not form["username"]:
                errors["username"] = "Укажите имя пользователя"
            elif not USERNAME.fullmatch(form["username"]):
                errors["username"] = ("Латинские буквы, цифры, точка, дефис и подчеркивание, от 2 до 100 символов; "
                                      "начинается с буквы или цифры")
            elif db.scalar(select(User.id).where(func.lower(User.username) == form["username"].lower())):
                errors["username"] = "Такое имя пользователя уже занято"
            _check_user_fields(db, form, errors)
            _password_errors(errors, request.form.get("password", ""), request.form.get("password2", ""),
                             form["username"])
        context = _user_form_context(db)
    if request.method == "POST" and not errors:
        try:
            user_id = kurator().identity.add_user(
                form["username"], form["roles"], agency=int(form["agency"]) if form["agency"] else None,
                full_name=form["full_name"], password=request.form["password"])
        except InvalidInput as exc:  # a race with another administrator
            errors[next(iter(exc.errors or {"username": ""}))] = "Не удалось сохранить: " + exc.message
        else:
            _audit("user_created", "user", user_id, username=form["username"], full_name=form["full_name"],
                   roles=form["roles"], agency_id=int(form["agency"]) if form["agency"] else None)
            flash(f"Пользователь {form['username']} создан.")
            return redirect(url_for("admin.users"))
    return render_template("admin/user_new.html", form=form, errors=errors, **context), (422 if errors else 200)


def _load_user(db, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _user_view(user: User) -> dict:
    return {"id": user.id, "username": user.username, "full_name": user.full_name or "", "roles": user.roles,
            "agency": str(user.agency_id or ""), "active": user.is_active}


def _render_user(user_id: int, form: dict | None = None, errors: dict | None = None, status: int = 200,
                 section: str = "profile"):
    with kurator().db.session() as db:
        user = _load_user(db, user_id)
        view = _user_view(user)
        open_tasks = db.scalar(select(func.count()).select_from(HumanTask)
                               .where(HumanTask.assignee == user.username, HumanTask.status == "open"))
        context = _user_form_context(db)
    identity = kurator().identity
    return render_template("admin/user_edit.html", user=view, form=form or view, errors=errors or {},
                           section=section, open_tasks=open_tasks, tokens=identity.tokens(user_id),
                           sessions=identity.session_count(user_id, session_idle()), **context), status


def _or_404(call, *args, **kwargs):
    """Run an identity service verb; a user or municipality that is gone is a 404."""
    try:
        return call(*args, **kwargs)
    except NotFound:
        abort(404)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user_edit(user_id: int):
    if request.method == "GET":
        return _render_user(user_id)
    form = _user_form()
    errors: dict[str, str] = {}
    with kurator().db.session() as db:
        user = _load_user(db, user_id)
        form["username"] = user.username
        _check_user_fields(db, form, errors)
        if user.id == g.user.id and "admin" in user.roles and "admin" not in form["roles"]:
            errors["roles"] = "Нельзя снять роль администратора с самого себя"
    if errors:
        return _render_user(user_id, form, errors, 422)
    try:
        changes = _or_404(kurator().identity.update_user, user_id, form["full_name"], form["roles"],
                          int(form["agency"]) if form["agency"] else None)
    except InvalidInput as exc:  # a role or an agency removed meanwhile
        field = next(iter(exc.errors or {"roles": ""}))
        return _render_user(user_id, form, {field: "Не удалось сохранить: " + exc.message}, 422)
    if changes:
        _audit("user_updated", "user", user_id, username=form["username"], changes=changes)
        flash("Изменения сохранены.")
    else:
        flash("Изменений нет.")
    return redirect(url_for("admin.user_edit", user_id=user_id))


@bp.route("/users/<int:user_id>/active", methods=["POST"])
def user_active(user_id: int):
    wanted = request.form.get("active")
    if wanted not in ("0", "1"):
        return _render_user(user_id, errors={"active": "Неверное значение"}, status=422, section="status")
    if user_id == g.user.id and wanted == "0":
        return _render_user(user_id, errors={"active": "Нельзя отключить собственную учетную запись"}, status=422,
                            section="status")
    with kurator().db.session() as db:
        username = _load_user(db, user_id).username
    if _or_404(kurator().identity.set_active, user_id, wanted == "1"):
        _audit("user_activated" if wanted == "1" else "user_deactivated", "user", user_id, username=username)
        flash(f"Учетная запись {username} " + ("включена." if wanted == "1" else "отключена: вход невозможен."))
    return redirect(url_for("admin.user_edit", user_id=user_id))


@bp.route("/users/<int:user_id>/password", methods=["POST"])
def user_password(user_id: int):
    errors: dict[str, str] = {}
    password = request.form.get("password", "")
    with kurator().db.session() as db:
        username = _load_user(db, user_id).username
    _password_errors(errors, password, request.form.get("password2", ""), username)
    if errors:
        return _render_user(user_id, errors=errors, status=422, section="password")
    keep = session.get("sid") if user_id == g.user.id else None  # the administrator's own current session stays
    ended = _or_404(kurator().identity.set_password, user_id, password, keep_secret=keep)
    _audit("password_reset", "user", user_id, username=username, sessions_ended=ended["sessions"],
           tokens_revoked=ended["tokens"])
    flash(f"Пароль пользователя {username} изменен, его сеансы и токены API завершены. Сообщите пароль "
          f"пользователю лично.")
    return redirect(url_for("admin.user_edit", user_id=user_id))


@bp.route("/users/<int:user_id>/tokens/<int:token_id>/revoke", methods=["POST"])
def user_token_revoke(user_id: int, token_id: int):
    with kurator().db.session() as db:
        username = _load_user(db, user_id).username
    if not kurator().identity.revoke_token(token_id, user_id=user_id):
        abort(404)
    _audit("token_revoked", "api_token", token_id, user=username)
    flash(f"Токен № {token_id} пользователя {username} отозван.")
    return redirect(url_for("admin.user_edit", user_id=user_id))


@bp.route("/users/<int:user_id>/sessions/end", methods=["POST"])
def user_sessions_end(user_id: int):
    """End every session and revoke every token of a user (the administrator's own current session stays)."""
    with kurator().db.session() as db:
        username = _load_user(db, user_id).username
    keep = session.get("sid") if user_id == g.user.id else None
    ended = kurator().identity.end_sessions(user_id, keep_secret=keep)
    _audit("sessions_ended", "user", user_id, username=username, sessions_ended=ended["sessions"],
           tokens_revoked=ended["tokens"])
    flash(f"Сеансы и токены API пользователя {username} завершены: сеансов {ended['sessions']}, "
          f"токенов {ended['tokens']}.")
    return redirect(url_for("admin.user_edit", user_id=user_id))


# -- roles -------------------------------------------------------------------------------------------------------

def _roles_page(form: dict | None = None, errors: dict | None = None, status: int = 200):
    with kurator().db.session() as db:
        rows = db.execute(select(Role.code, Role.title, func.count(UserRole.user_id).label("users"))
                          .outerjoin(UserRole, UserRole.role_code == Role.code)
                          .group_by(Role.code, Role.title).order_by(Role.title)).all()
    return render_template("admin/roles.html", rows=rows, form=form or {"code": "", "title": ""},
                           errors=errors or {}), status


@bp.route("/roles", methods=["GET", "POST"])
def roles():
    if request.method == "GET":
        return _roles_page()
    form = {"code": request.form.get("code", "").strip(), "title": _text("title", 200)}
    errors: dict[str, str] = {}
    with kurator().db.session() as db:
        if not form["code"]:
            errors["code"] = "Укажите код роли"
        elif not ROLE_CODE.fullmatch(form["code"]):
            errors["code"] = "Строчные латинские буквы, цифры и «_», от 2 до 64 символов, начинается с буквы"
        elif db.get(Role, form["code"]) is not None:
            errors["code"] = "Роль с таким кодом уже есть"
        if not form["title"]:
            errors["title"] = "Укажите название роли"
        elif len(form["title"]) > 200:
            errors["title"] = "Не длиннее 200 символов"
        elif form["title"].casefold() in {title.casefold() for title in db.scalars(select(Role.title))}:
            # titles are accepted as lane names in diagrams: two roles must not share one
            errors["title"] = "Роль с таким названием уже есть"
    if not errors:
        try:
            kurator().identity.add_role(form["code"], form["title"])
        except InvalidInput as exc:
            errors["code"] = "Не удалось сохранить: " + exc.message
    if errors:
        return _roles_page(form, errors, 422)
    _audit("role_created", "role", form["code"], code=form["code"], title=form["title"])
    flash(f"Роль «{form['title']}» добавлена.")
    return redirect(url_for("admin.roles"))


# -- agencies and municipalities ---------------------------------------------------------------------------------

def _agencies_page(form: dict | None = None, errors: dict | None = None, status: int = 200):
    with kurator().db.session() as db:
        users = (select(User.agency_id, func.count().label("n")).where(User.is_active.is_(True))
                 .group_by(User.agency_id).subquery())
        rows = db.execute(select(Agency.id, Agency.name, Agency.kind, Agency.timezone,
                                 Municipality.name.label("municipality"), func.coalesce(users.c.n, 0).label("users"))
                          .join(Municipality, Municipality.id == Agency.municipality_id)
                          .outerjoin(users, users.c.agency_id == Agency.id)
                          .order_by(Municipality.name, Agency.name)).all()
        municipalities = db.execute(select(Municipality.id, Municipality.name, Municipality.timezone)
                                    .order_by(Municipality.name)).all()
    empty = {"name": "", "kind": "", "municipality": "", "new_municipality": "", "timezone": ""}
    return render_template("admin/agencies.html", rows=rows, municipalities=municipalities, form=form or empty,
                           errors=errors or {}), status


@bp.route("/agencies", methods=["GET", "POST"])
def agencies():
    if request.method == "GET":
        return _agencies_page()
    form = {"name": _text("name"), "kind": request.form.get("kind", ""),
            "municipality": request.form.get("municipality", ""), "new_municipality": _text("new_municipality", 200),
            "timezone": request.form.get("timezone", "").strip()}
    errors: dict[str, str] = {}
    municipality = None
    with kurator().db.session() as db:
        if form["municipality"] == "new":
            if not form["new_municipality"]:
                errors["new_municipality"] = "Укажите название нового муниципального образования"
            elif len(form["new_municipality"]) > 200:
                errors["new_municipality"] = "Не длиннее 200 символов"
            elif db.scalar(select(Municipality.id).where(Municipality.name == form["new_municipality"])):
                errors["new_municipality"] = "Такое муниципальное образование уже есть — выберите его из списка"
            else:
                municipality = form["new_municipality"]
            if not form["timezone"]:
                errors["timezone"] = "Для нового муниципального образования укажите часовой пояс"
        elif form["municipality"].isdigit() and (row := db.get(Municipality, int(form["municipality"]))):
            municipality = row.name
        else:
            errors["municipality"] = "Выберите муниципальное образование"
        if not form["name"]:
            errors["name"] = "Укажите название органа"
        elif len(form["name"]) > 300:
            errors["name"] = "Не длиннее 300 символов"
        elif municipality and db.scalar(select(Agency.id).join(Municipality)
                                        .where(Municipality.name == municipality, Agency.name == form["name"])):
            errors["name"] = "Такой орган в этом муниципальном образовании уже есть"
        if form["kind"] not in AGENCY_KINDS:
            errors["kind"] = "Выберите вид органа"
        if form["timezone"] and "timezone" not in errors:
            message = timezone_error(form["timezone"])
            if message:
                errors["timezone"] = message
    if not errors:
        try:
            agency_id = kurator().identity.add_agency(form["name"], municipality, kind=form["kind"],
                                                      timezone=form["timezone"] or None)
        except InvalidInput as exc:
            errors["name"] = "Не удалось сохранить: " + exc.message
    if errors:
        return _agencies_page(form, errors, 422)
    _audit("agency_created", "agency", agency_id, name=form["name"], kind=form["kind"], municipality=municipality,
           new_municipality=form["municipality"] == "new", timezone=form["timezone"] or None)
    flash(f"Орган «{form['name']}» добавлен.")
    return redirect(url_for("admin.agencies"))


def _municipalities_page(errors: dict | None = None, edited: int | None = None, value: str = "", status: int = 200):
    with kurator().db.session() as db:
        agencies = (select(Agency.municipality_id, func.count().label("n")).group_by(Agency.municipality_id)
                    .subquery())
        rows = db.execute(select(Municipality.id, Municipality.name, Municipality.timezone,
                                 func.coalesce(agencies.c.n, 0).label("agencies"))
                          .outerjoin(agencies, agencies.c.municipality_id == Municipality.id)
                          .order_by(Municipality.name)).all()
    return render_template("admin/municipalities.html", rows=rows, errors=errors or {}, edited=edited,
                           value=value), status


@bp.route("/municipalities")
def municipalities():
    return _municipalities_page()


@bp.route("/municipalities/<int:municipality_id>/timezone", methods=["POST"])
def municipality_timezone(municipality_id: int):
    value = request.form.get("timezone", "").strip()
    with kurator().db.session() as db:
        row = db.get(Municipality, municipality_id)
        if row is None:
            abort(404)
        name, current = row.name, row.timezone
    message = timezone_error(value)
    if message:
        return _municipalities_page({"timezone": message}, municipality_id, value, 422)
    if value == current:
        flash("Часовой пояс не изменился.")
        return redirect(url_for("admin.municipalities"))
    old, moved = _or_404(kurator().identity.set_municipality_timezone, municipality_id, value,
                         with_agencies=request.form.get("agencies") == "1")
    _audit("municipality_timezone_changed", "municipality", municipality_id, municipality=name, old=old, new=value,
           agencies_updated=moved)
    flash(f"Часовой пояс «{name}»: {value} (органов с тем же поясом обновлено: {moved}). "
          "Уже идущие процессы считают сроки в прежнем поясе.")
    return redirect(url_for("admin.municipalities"))


# -- production calendar -----------------------------------------------------------------------------------------

def _calendar_page(form: dict | None = None, errors: dict | None = None, year_form: dict | None = None,
                   status: int = 200):
    engine = kurator()
    with engine.db.session() as db:
        years = db.execute(select(CalendarYear.year, CalendarYear.comment).order_by(CalendarYear.year)).all()
    overrides = [{**o, "date": date.fromisoformat(o["day"])} for o in engine.calendar.overrides()]
    calendar = engine.calendar.calendar
    return render_template("admin/calendar.html", overrides=overrides, years=years, weekdays=WEEKDAYS,
                           package_years=(calendar.first_year, calendar.last_year),
                           form=form or {"day": "", "kind": "", "comment": ""},
                           year_form=year_form or {"year": "", "comment": ""}, errors=errors or {}), status


@bp.route("/calendar")
def calendar():
    return _calendar_page()


@bp.route("/calendar/overrides", methods=["POST"])
def calendar_override():
    form = {"day": request.form.get("day", "").strip(), "kind": request.form.get("kind", ""),
            "comment": _text("comment")}
    errors: dict[str, str] = {}
    day = None
    try:
        day = date.fromisoformat(form["day"]) if form["day"] else None
        if day is None:
            errors["day"] = "Укажите дату"
        elif not 1990 <= day.year <= 2200:
            errors["day"] = "Год — от 1990 до 2200"
    except ValueError:
        errors["day"] = "Дата в виде ГГГГ-ММ-ДД"
    if form["kind"] not in ("working", "off"):
        errors["kind"] = "Выберите: рабочий день или выходной"
    if len(form["comment"]) > 300:
        errors["comment"] = "Не длиннее 300 символов"
    if errors:
        return _calendar_page(form, errors, status=422)
    engine = kurator()
    with engine.db.session() as db:
        previous = db.get(CalendarOverride, day)
        was = None if previous is None else previous.is_working
    engine.calendar.set_override(day, form["kind"] == "working", form["comment"] or None)
    _audit("calendar_override_set", "calendar", day.isoformat(), day=day.isoformat(),
           is_working=form["kind"] == "working", comment=form["comment"] or None, previous_is_working=was)
    flash(f"{day:%d.%m.%Y} — {'рабочий день' if form['kind'] == 'working' else 'выходной'}. "
          "Новые сроки считаются с учетом этого дня; уже назначенные сроки не меняются.")
    return redirect(url_for("admin.calendar"))


@bp.route("/calendar/overrides/<day>/remove", methods=["POST"])
def calendar_override_remove(day: str):
    try:
        when = date.fromisoformat(day)
    except ValueError:
        abort(404)
    engine = kurator()
    with engine.db.session() as db:
        row = db.get(CalendarOverride, when)
        if row is None:
            abort(404)
        was = row.is_working
    engine.calendar.remove_override(when)
    _audit("calendar_override_removed", "calendar", when.isoformat(), day=when.isoformat(), was_working=was)
    flash(f"Исключение на {when:%d.%m.%Y} удалено: день снова по производственному календарю.")
    return redirect(url_for("admin.calendar"))


@bp.route("/calendar/years", methods=["POST"])
def calendar_year():
    year_form = {"year": request.form.get("year", "").strip(), "comment": _text("year_comment")}
    errors: dict[str, str] = {}
    if not year_form["year"].isdigit() or not 1990 <= int(year_form["year"]) <= 2200:
        errors["year"] = "Год — число от 1990 до 2200"
    if len(year_form["comment"]) > 300:
        errors["year_comment"] = "Не длиннее 300 символов"
    if not errors:
        with kurator().db.session() as db:
            if db.get(CalendarYear, int(year_form["year"])) is not None:
                errors["year"] = "Этот год уже объявлен заполненным"
    if errors:
        return _calendar_page(year_form=year_form, errors=errors, status=422)
    year = int(year_form["year"])
    kurator().calendar.declare_year(year, year_form["comment"] or None)
    _audit("calendar_year_declared", "calendar", year, year=year, comment=year_form["comment"] or None)
    flash(f"{year} год объявлен заполненным: выходные и праздники года берутся из таблицы исключений.")
    return redirect(url_for("admin.calendar"))
