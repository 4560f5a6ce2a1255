"""Logging in and out, password change, API tokens; the `login_required` / `roles_required` guards.

Sessions and tokens live on the server (`engine.identity`): the session cookie carries a random secret whose
SHA-256 is a `user_session` row, and an API token is a random secret whose SHA-256 is an `api_token` row. Logging
out deletes the session's row, so a cookie saved before logout no longer works; a password change ends the user's
other sessions and tokens, and an administrator's reset or deactivation ends them all.

Failed logins slow down, they do not lock anybody out: each (user name, client address) pair gets a few free
failures, then waits twice as long after each further one (from `BACKOFF_FIRST` up to `BACKOFF_MAX`), until a
login from that address succeeds; and an address with `LOGIN_IP_ATTEMPTS` failures within `IP_WINDOW`, whatever
the names, waits until it has fewer. The client address is the proxy's `X-Forwarded-For` only when
`KURATOR_PROXY_COUNT` says how many proxies to trust (`ProxyFix`, see `create_app`).
"""

from __future__ import annotations

import math
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import func, select

from engine.identity import PASSWORD_HASHER, password_error
from engine.models import AuditEvent, User

from .access import CurrentUser
from .errors import wants_json

bp = Blueprint("auth", __name__)
_hasher = PASSWORD_HASHER  # the identity service's one hasher (a module name, so tests can watch it)
# verified when the user name is unknown (or has no password), so that a login takes as long either way and does
# not tell which user names exist
_DUMMY_HASH = _hasher.hash("kurator: no such user")
TOKEN_MAX_AGE = 12 * 3600

BACKOFF_FIRST = timedelta(seconds=30)   # the wait after the last free failure of a (name, address) pair
BACKOFF_MAX = timedelta(minutes=15)     # the longest wait
BACKOFF_MEMORY = timedelta(hours=24)    # failures older than this are forgotten
IP_WINDOW = timedelta(minutes=15)       # the per-address limit counts the failures of this window
PASSWORD_WINDOW = timedelta(minutes=15)  # the password page's limit of wrong current passwords


def kurator():
    return current_app.extensions["kurator"]


def client_ip() -> str:
    return request.remote_addr or "-"


def session_idle() -> timedelta:
    return current_app.permanent_session_lifetime


class TooManyAttempts(PermissionError):
    """Too many failed attempts: answered 429 with `Retry-After` (seconds)."""

    def __init__(self, retry_after: float, what: str = "входа"):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"Слишком много неудачных попыток {what}. Повторите через {wait_text(self.retry_after)}.")

    @property
    def message(self) -> str:
        return str(self)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} с"
    return f"{math.ceil(seconds / 60)} мин"


def user_from_session(secret: str | None) -> CurrentUser | None:
    """The user of the session cookie's secret, if that session is live and the user active."""
    if not secret:
        return None
    info = kurator().identity.session_user(secret, session_idle())
    return CurrentUser.from_info(info) if info is not None else None


def login_retry_after(username: str, ip: str) -> float:
    """Seconds before a login of this name from this address is heard again (0: now)."""
    engine = kurator()
    free = current_app.config["LOGIN_ATTEMPTS"]
    per_ip = current_app.config["LOGIN_IP_ATTEMPTS"]
    now = engine.clock.now()
    failed = (AuditEvent.action == "login_failed")
    waits = [0.0]
    with engine.db.session() as db:
        # the address: its per_ip-th most recent failure must leave the window
        oldest = db.scalar(select(AuditEvent.at).where(failed, AuditEvent.ip == ip, AuditEvent.at >= now - IP_WINDOW)
                           .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(max(per_ip, 1) - 1).limit(1))
        if oldest is not None:
            waits.append((oldest + IP_WINDOW - now).total_seconds())
        # the (name, address) pair: failures since its last success, exponential back-off past the free ones
        pair = (AuditEvent.actor == username, AuditEvent.ip == ip, AuditEvent.at >= now - BACKOFF_MEMORY)
        last_ok = db.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.action == "login", *pair)) or 0
        count, newest = db.execute(select(func.count(), func.max(AuditEvent.at))
                                   .where(failed, AuditEvent.id > last_ok, *pair)).one()
        if count >= free and newest is not None:
            delay = min(BACKOFF_FIRST * 2 ** min(count - free, 30), BACKOFF_MAX)
            waits.append((newest + delay - now).total_seconds())
    return max(waits)


def authenticate(username: str, password: str) -> CurrentUser | None:
    """Check a password (argon2); raises TooManyAttempts while this name and address, or this address, backs off.
    An unknown name costs the same argon2 check as a wrong password."""
    engine = kurator()
    wait = login_retry_after(username, client_ip())
    if wait > 0:
        engine.audit.record(username, "login_blocked", ip=client_ip())
        raise TooManyAttempts(wait)
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


def password_retry_after(username: str) -> float:
    """Seconds before the password page checks this user's current password again (0: now). Its own count, so
    that wrong current passwords never hold up the user's login."""
    engine = kurator()
    limit = max(current_app.config["LOGIN_ATTEMPTS"], 1)
    now = engine.clock.now()
    with engine.db.session() as db:
        oldest = db.scalar(select(AuditEvent.at).where(AuditEvent.action == "password_check_failed",
                                                       AuditEvent.actor == username,
                                                       AuditEvent.at >= now - PASSWORD_WINDOW)
                           .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(limit - 1).limit(1))
    return 0.0 if oldest is None else (oldest + PASSWORD_WINDOW - now).total_seconds()


def check_password(user_id: int, password: str) -> bool:
    with kurator().db.session() as db:
        stored = db.scalar(select(User.password_hash).where(User.id == user_id))
    try:
        return bool(_hasher.verify(stored or _DUMMY_HASH, password)) and bool(stored)
    except (VerificationError, InvalidHashError):
        return False


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


def _token_signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="api-token")


def issue_token(user: CurrentUser) -> dict:
    """A new API token of the user: {"id", "token", "expires_at"}; it lives TOKEN_MAX_AGE seconds. The token is
    the random secret signed with the secret key, so that a token is only good with the key it was issued under."""
    issued = kurator().identity.issue_token(user.id, client_ip(), timedelta(seconds=TOKEN_MAX_AGE))
    return {**issued, "token": _token_signer().dumps(issued["token"])}


def user_from_token(token: str) -> CurrentUser | None:
    """The user of a bearer token that is neither expired nor revoked (and sets `g.token_id`)."""
    try:
        secret = _token_signer().loads(token)
    except BadData:
        return None
    if not isinstance(secret, str):
        return None
    found = kurator().identity.token_holder(secret, client_ip())
    if found is None:
        return None
    info, g.token_id = found
    return CurrentUser.from_info(info)


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


@bp.app_errorhandler(TooManyAttempts)
def _too_many(error: TooManyAttempts):
    if wants_json():
        response = current_app.response_class(
            current_app.json.dumps({"message": error.message, "errors": {}}), mimetype="application/json")
    else:
        response = current_app.make_response(render_template(
            "error.html", code=429, title="Слишком много попыток", message=error.message))
    response.status_code = 429
    response.headers.update(error.headers())
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status, headers = None, 200, {}
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        try:
            user = authenticate(username, request.form.get("password", ""))
        except TooManyAttempts as exc:
            user, error, status, headers = None, exc.message, 429, exc.headers()
        if user is not None:
            session.clear()
            session["sid"] = kurator().identity.open_session(user.id, client_ip(), session_idle())
            session.permanent = True
            return redirect(safe_next(request.args.get("next")))
        if error is None:
            error, status = "Неверное имя пользователя или пароль.", 401
    return render_template("login.html", error=error), status, headers


@bp.route("/logout", methods=["POST"])
def logout():
    if g.get("user") is not None:
        kurator().audit.record(g.user.username, "logout", ip=client_ip())
    kurator().identity.close_session(session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"))


def _password_page(errors: dict | None = None, limited: str | None = None, status: int = 200, headers=None):
    identity = kurator().identity
    return render_template("password.html", errors=errors or {}, limited=limited,
                           tokens=identity.tokens(g.user.id),
                           other_sessions=identity.session_count(g.user.id, session_idle(), session.get("sid"))
                           ), status, headers or {}


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    """The password change, the user's API tokens (revocable) and a button to end the other sessions."""
    if request.method == "GET":
        return _password_page()
    engine = kurator()
    wait = password_retry_after(g.user.username)
    if wait > 0:
        engine.audit.record(g.user.username, "password_check_blocked", ip=client_ip())
        limit = TooManyAttempts(wait, "ввода текущего пароля")
        return _password_page(limited=limit.message, status=429, headers=limit.headers())
    errors = {}
    current, new, again = (request.form.get(k, "") for k in ("current", "new", "again"))
    if not check_password(g.user.id, current):
        errors["current"] = "Текущий пароль неверен"
        engine.audit.record(g.user.username, "password_check_failed", ip=client_ip())
    problem = password_error(new, g.user.username)  # the password policy of `engine.identity`
    if problem:
        errors["new"] = problem
    elif new != again:
        errors["again"] = "Пароли не совпадают"
    if errors:
        return _password_page(errors, status=422)
    ended = engine.identity.set_password(g.user.id, new, keep_secret=session.get("sid"))
    engine.audit.record(g.user.username, "password_changed", ip=client_ip(),
                        details={"sessions_ended": ended["sessions"], "tokens_revoked": ended["tokens"]})
    flash("Пароль изменен." + (" Другие сеансы и токены API завершены." if any(ended.values()) else ""))
    return redirect(url_for("inbox.index"))


@bp.route("/password/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int):
    if not kurator().identity.revoke_token(token_id, user_id=g.user.id):
        abort(404)
    kurator().audit.record(g.user.username, "token_revoked", "api_token", token_id, ip=client_ip(),
                           details={"user": g.user.username})
    flash(f"Токен № {token_id} отозван.")
    return redirect(url_for("auth.password"))


@bp.route("/password/sessions/end", methods=["POST"])
@login_required
def end_other_sessions():
    ended = kurator().identity.end_sessions(g.user.id, keep_secret=session.get("sid"), tokens=False)
    kurator().audit.record(g.user.username, "sessions_ended", "user", g.user.id, ip=client_ip(),
                           details={"sessions_ended": ended["sessions"]})
    flash("Другие сеансы завершены." if ended["sessions"] else "Других сеансов нет.")
    return redirect(url_for("auth.password"))
