"""Logging in and out, password change, API tokens; the `login_required` / `roles_required` guards."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from engine.models import User

from .access import CurrentUser

bp = Blueprint("auth", __name__)
_hasher = PasswordHasher()
# verified when the user name is unknown (or has no password), so that a login takes as long either way and does
# not tell which user names exist
_DUMMY_HASH = _hasher.hash("kurator: no such user")
TOKEN_MAX_AGE = 12 * 3600


def kurator():
    return current_app.extensions["kurator"]


def client_ip() -> str:
    return request.remote_addr or "-"


def load_user(user_id: int | None) -> CurrentUser | None:
    if user_id is None:
        return None
    with kurator().db.session() as db:
        user = db.get(User, user_id)
        return CurrentUser.from_row(user) if user is not None and user.is_active else None


def authenticate(username: str, password: str) -> CurrentUser | None:
    """Check a password (argon2), with rate limiting of failures per user name and per address."""
    engine = kurator()
    limit = current_app.config["LOGIN_ATTEMPTS"]
    if (engine.audit.count("login_failed", actor=username) >= limit
            or engine.audit.count("login_failed", ip=client_ip()) >= limit * 4):
        engine.audit.record(username, "login_blocked", ip=client_ip())
        raise PermissionError("Слишком много неудачных попыток входа. Попробуйте через 15 минут.")
    with engine.db.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        known = user is not None and user.is_active and bool(user.password_hash)
        try:
            ok = _hasher.verify(user.password_hash if known else _DUMMY_HASH, password) and known
        except (VerificationError, InvalidHashError):
            ok = False
        if ok and _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        current = CurrentUser.from_row(user) if ok else None
    engine.audit.record(username, "login" if current else "login_failed", ip=client_ip())
    return current


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("user") is None:
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def roles_required(*roles: str):
    """The view is for these roles only (403 for the others)."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not g.user.has(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def issue_token(user: CurrentUser) -> str:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="api-token").dumps({"uid": user.id})


def user_from_token(token: str) -> CurrentUser | None:
    try:
        data = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="api-token").loads(
            token, max_age=TOKEN_MAX_AGE)
    except (BadSignature, SignatureExpired):
        return None
    return load_user(data.get("uid"))


def safe_next(target: str | None) -> str:
    """Only a path of this site is followed after login or an inbox action: no scheme, no host, no `//` or `\\`
    (which browsers read as another host) and no control characters (a tab or CR would be dropped or break the
    header); anything else goes to the inbox."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in target)):
        return url_for("inbox.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path.startswith("//"):
        return url_for("inbox.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        try:
            user = authenticate(username, request.form.get("password", ""))
        except PermissionError as exc:
            user, error = None, str(exc)
        if user is not None:
            session.clear()
            session["uid"] = user.id
            session.permanent = True
            return redirect(safe_next(request.args.get("next")))
        error = error or "Неверное имя пользователя или пароль."
    return render_template("login.html", error=error), (200 if error is None else 401)


@bp.route("/logout", methods=["POST"])
def logout():
    if g.get("user") is not None:
        kurator().audit.record(g.user.username, "logout", ip=client_ip())
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    errors = {}
    if request.method == "POST":
        current, new, again = (request.form.get(k, "") for k in ("current", "new", "again"))
        if authenticate(g.user.username, current) is None:
            errors["current"] = "Текущий пароль неверен"
        if len(new) < 10:
            errors["new"] = "Не короче 10 символов"
        elif new != again:
            errors["again"] = "Пароли не совпадают"
        if not errors:
            with kurator().db.session() as db:
                db.get(User, g.user.id).password_hash = _hasher.hash(new)
            kurator().audit.record(g.user.username, "password_changed", ip=client_ip())
            flash("Пароль изменен.")
            return redirect(url_for("inbox.index"))
    return render_template("password.html", errors=errors), (200 if not errors else 422)
