"""IdentityService: users, agencies, municipalities and roles — enough for assignment and permissions."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argon2 import PasswordHasher
from sqlalchemy import Select, bindparam, delete, func, literal_column, select, update
from sqlalchemy.orm import Session, aliased

from .db import CURRENT_SESSION, Database
from .errors import InvalidInput, NotFound
from .models import Agency, ApiToken, Municipality, Role, User, UserRole, UserSession

if TYPE_CHECKING:
    from . import ProcessEngine

DEFAULT_TIMEZONE = "Europe/Moscow"
# the one argon2 hasher of the application: every password is hashed and checked with it
PASSWORD_HASHER = PasswordHasher()
MIN_PASSWORD = 10
MAX_PASSWORD = 200
# a session's last activity and a token's last use are written at most this often (not a write per request)
TOUCH_EVERY = timedelta(seconds=60)

# The generic roles the engine and its tools need themselves: code -> Russian title shown in the UI and accepted as a
# lane name. `admin` is offered every user task that names no one (the executor's fallback) and administers users;
# `methodologist` edits, simulates, deploys and migrates diagrams (the modeler); `manager` watches deadlines (the
# overdue view). A domain brings its own roles: a plugin with a `roles` mapping has them seeded by `init_db`.
ENGINE_ROLES = {
    "methodologist": "Методолог",
    "manager": "Руководитель",
    "admin": "Администратор",
}


@dataclass(frozen=True)
class UserInfo:
    """What the engine needs to know about a user for permission checks."""

    id: int
    username: str
    roles: tuple[str, ...]
    agency_id: int | None
    agency: str | None
    municipality: str | None
    timezone: str
    # read with the user's credentials (`session_user`, `token_holder`) for the web app's current user
    full_name: str | None = None
    agency_kind: str | None = None
    municipality_id: int | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "roles": list(self.roles), "agency": self.agency,
                "municipality": self.municipality, "timezone": self.timezone}


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"Unknown time zone '{name}': use an IANA name such as Europe/Moscow or "
                           f"Asia/Yekaterinburg", {"timezone": "unknown time zone"}) from exc
    return name


# The password policy of every new password (the web forms, the CLI, the API): the length, and nothing a guesser tries
# first. The Russian messages are shown at the web forms' fields; the CLI and the API say the English ones. The demo's
# users are the one exception: `sop.demo` stores the hash of its short shared password directly.
PASSWORD_RULES: dict[str, tuple[str, str]] = {  # code -> (English, Russian)
    "short": (f"The password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long",
              f"Пароль — не короче {MIN_PASSWORD} символов"),
    "long": (f"The password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long",
             f"Пароль — не длиннее {MAX_PASSWORD} символов"),
    "login": ("The password must not contain the user name",
              "Пароль не должен содержать имя пользователя"),
    "repeated": ("The password must not be one character or a short group of characters repeated",
                 "Пароль не должен состоять из одного повторяющегося символа или короткой группы символов "
                 "(например, 1111111111 или 1212121212)"),
    "sequence": ("The password must not be a run of keys, letters or digits (qwerty, 12345, йцукен)",
                 "Пароль не должен быть рядом клавиш или букв и цифр подряд (например, qwertyuiop, 1234567890, "
                 "йцукенгшщз)"),
    "common": ("The password is one of the most common passwords",
               "Это один из самых распространенных паролей, его подбирают первым: придумайте другой"),
}
# Runs a guesser tries: rows and columns of the Latin and Russian keyboards, the digits, the alphabets. A password made
# only of pieces of them (three characters or more each, either way: «qwerty123», «1q2w3e4r5t», «0987654321») is one.
PASSWORD_RUNS = ("`1234567890-=", "~!@#$%^&*()_+", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./",
                 "qwertyuiopasdfghjklzxcvbnm", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/", "q1w2e3r4t5y6u7i8o9p0",
                 "1q2w3e4r5t6y7u8i9o0p",
                 "abcdefghijklmnopqrstuvwxyz", "ёйцукенгшщзхъ", "фывапролджэ", "ячсмитьбю.",
                 "йцукенгшщзхъфывапролджэячсмитьбю", "абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
# The most common passwords (leaked-password lists, Russian ones among them), in lower case; with digits or punctuation
# added at the end they are as common («password2024», «пароль123»).
COMMON_PASSWORDS = frozenset({
    "password", "passw0rd", "p@ssw0rd", "p@ssword", "qwerty", "qwerty123", "qwertyuiop", "123456", "1234567",
    "12345678", "123456789", "1234567890", "111111", "000000", "123123", "654321", "987654321", "abc123",
    "1q2w3e4r", "1q2w3e4r5t", "1qaz2wsx", "zaq12wsx", "q1w2e3r4", "qazwsx", "qwe123", "asdfgh", "zxcvbnm",
    "iloveyou", "letmein", "welcome", "admin", "administrator", "root", "master", "monkey", "dragon", "sunshine",
    "princess", "football", "superman", "trustno1", "starwars", "secret", "changeme", "default", "guest", "test",
    "demo", "user", "login", "google", "samsung", "computer", "internet", "parol", "privet", "marina", "natasha",
    "пароль", "привет", "любовь", "солнышко", "москва", "россия", "йцукен", "наташа", "кдн", "кднизп", "kurator",
    "куратор",
})
_TRAILING = "0123456789!@#$%^&*()-_=+.,;:?/\\|~`'\"[]{}<> "


def _runs_only(text: str) -> bool:
    """Whether `text` is made only of pieces, three characters or longer, of the keyboard's and alphabets' runs."""
    runs = [*PASSWORD_RUNS, *(run[::-1] for run in PASSWORD_RUNS)]
    ends = [False] * len(text) + [True]  # ends[i]: text[i:] splits into such pieces
    for start in range(len(text) - 3, -1, -1):
        ends[start] = any(ends[stop] and any(text[start:stop] in run for run in runs)
                          for stop in range(start + 3, len(text) + 1))
    return bool(text) and ends[0]


def password_problem(password: str, username: str | None = None) -> str | None:
    """The first rule of the password policy that a new password breaks (a key of `PASSWORD_RULES`), or None: the
    length; not containing the user name (case-insensitive; a name shorter than 3 characters is not looked for); not
    one character or a group of up to three repeated; not a run of keys, letters or digits; not one of the most
    common passwords, with or without digits and punctuation added at the end."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        return "short"
    if len(password) > MAX_PASSWORD:
        return "long"
    lower = password.lower()
    login = (username or "").strip().lower()
    if len(login) >= 3 and login in lower:
        return "login"
    if any(lower == (lower[:size] * len(lower))[:len(lower)] for size in (1, 2, 3)):
        return "repeated"
    if _runs_only(lower):
        return "sequence"
    if lower in COMMON_PASSWORDS or lower.rstrip(_TRAILING) in COMMON_PASSWORDS:
        return "common"
    return None


def password_error(password: str, username: str | None = None) -> str | None:
    """What is wrong with a new password, in Russian for the form's field (`password_problem`), or None."""
    problem = password_problem(password, username)
    return PASSWORD_RULES[problem][1] if problem else None


def check_new_password(password: str, username: str | None = None) -> str:
    """The password if the policy accepts it (`password_problem`); InvalidInput {"password": rule} if not."""
    problem = password_problem(password, username)
    if problem is not None:
        # both length rules keep the code "length"
        raise InvalidInput(PASSWORD_RULES[problem][0],
                           {"password": "length" if problem in ("short", "long") else problem})
    return password


def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(password)


# built once (a diagram's expression asks it for every task it addresses); agencies and municipalities are not among
# the tables a change's queued writes touch, so the change's writes are not sent ahead of it
_AGENCY_OF_KIND = (select(Agency.id, Agency.name, Agency.kind)
                   .join(Municipality, Municipality.id == Agency.municipality_id)
                   .where(Agency.kind == bindparam("kind"), Municipality.name == bindparam("municipality"))
                   .order_by(Agency.id).limit(2)
                   .execution_options(**{Database.READS_NO_QUEUED_TABLE: True}))


class IdentityService:
    """Creates and looks up users, agencies and roles."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine

    def ensure_default_roles(self) -> None:
        """Seed the engine's roles and those the attached plugins declare (`plugin.roles`: code -> title)."""
        self.ensure_roles(ENGINE_ROLES)
        for plugin in self._engine.plugins.values():
            roles = getattr(plugin, "roles", None)
            if isinstance(roles, dict):
                self.ensure_roles(roles)

    def ensure_roles(self, roles: dict[str, str]) -> list[str]:
        """Add the roles that are missing (a role already there keeps its title); returns the codes added."""
        added = []
        with self._engine.db.session() as session:
            known = set(session.scalars(select(Role.code)))
            for code, title in roles.items():
                if code not in known:
                    session.add(Role(code=code, title=title))
                    added.append(code)
        if added:
            self._engine.forget_role_titles()
        return added

    def roles(self) -> dict[str, str]:
        with self._engine.db.session() as session:
            return {role.code: role.title for role in session.scalars(select(Role).order_by(Role.code))}

    def add_role(self, code: str, title: str) -> None:
        if not code or not code.replace("_", "").isalnum() or not code.isascii():
            raise InvalidInput(f"Role code '{code}' must be Latin letters, digits and '_'", {"code": "invalid"})
        with self._engine.db.session() as session:
            if session.get(Role, code) is not None:
                raise InvalidInput(f"Role '{code}' already exists", {"code": "exists"})
            session.add(Role(code=code, title=title))
        self._engine.forget_role_titles()

    def add_agency(self, name: str, municipality: str, kind: str | None = None,
                   timezone: str | None = None) -> int:
        """Create an agency (and its municipality on first mention); returns the agency id."""
        if not name.strip() or not municipality.strip():
            raise InvalidInput("Agency name and municipality must not be empty",
                               {"name": "required", "municipality": "required"})
        with self._engine.db.session() as session:
            muni = session.scalar(select(Municipality).where(Municipality.name == municipality))
            if muni is None:
                muni = Municipality(name=municipality, timezone=check_timezone(timezone or DEFAULT_TIMEZONE))
                session.add(muni)
                session.flush()
            exists = session.scalar(select(Agency).where(Agency.municipality_id == muni.id, Agency.name == name))
            if exists is not None:
                raise InvalidInput(f"Agency '{name}' already exists in {municipality}", {"name": "exists"})
            agency = Agency(name=name, kind=kind, municipality_id=muni.id,
                            timezone=check_timezone(timezone or muni.timezone))
            session.add(agency)
            session.flush()
            return agency.id

    def add_user(self, username: str, roles: list[str], agency: str | int | None = None,
                 full_name: str | None = None, password_hash: str | None = None,
                 password: str | None = None) -> int:
        """Create a user; `password` (checked against the password policy, `check_new_password`, then hashed) or an
        already computed `password_hash`."""
        username = username.strip()
        if not username:
            raise InvalidInput("Username must not be empty", {"username": "required"})
        if password is not None:
            if password_hash is not None:
                raise InvalidInput("Give a password or a password hash, not both", {"password": "ambiguous"})
            password_hash = hash_password(check_new_password(password, username))
        with self._engine.db.session() as session:
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise InvalidInput(f"User '{username}' already exists", {"username": "exists"})
            known = set(session.scalars(select(Role.code)))
            unknown = sorted(set(roles) - known)
            if unknown:
                raise InvalidInput(f"Unknown role(s) {', '.join(unknown)}; known roles: {', '.join(sorted(known))}",
                                   {"roles": "unknown role"})
            agency_id = self._find_agency(session, agency) if agency is not None else None
            user = User(username=username, full_name=full_name, agency_id=agency_id, password_hash=password_hash)
            user.role_links = [UserRole(role_code=code) for code in sorted(set(roles))]
            session.add(user)
            session.flush()
            return user.id

    def user_id(self, username: str) -> int:
        """The id of a user (active or not) by user name."""
        with self._engine.db.session() as session:
            found = session.scalar(select(User.id).where(User.username == username))
        if found is None:
            raise NotFound(f"No user '{username}'")
        return found

    def user_record(self, user_id: int) -> dict:
        """A user, active or not, as the administration edits it: {id, username, full_name, roles, agency_id,
        active}."""
        with self._engine.db.session() as session:
            user = _user_row(session, user_id)
            return {"id": user.id, "username": user.username, "full_name": user.full_name, "roles": user.roles,
                    "agency_id": user.agency_id, "active": user.is_active}

    def agency_id(self, agency: str | int) -> int:
        """An agency's id by id or by its (unique) name."""
        with self._engine.db.session() as session:
            return self._find_agency(session, agency)

    def municipality_id(self, name: str) -> int:
        with self._engine.db.session() as session:
            found = session.scalar(select(Municipality.id).where(Municipality.name == name))
        if found is None:
            raise NotFound(f"No municipality '{name}'")
        return found

    def update_user(self, user_id: int, full_name: str | None, roles: list[str], agency_id: int | None) -> dict:
        """Change a user's full name, roles and agency; returns what changed as {field: [old, new]} (empty when
        nothing did). Unknown roles or agency change nothing."""
        with self._engine.db.session() as session:
            user = _user_row(session, user_id)
            if not roles:
                raise InvalidInput("A user needs at least one role", {"roles": "required"})
            known = set(session.scalars(select(Role.code)))
            unknown = sorted(set(roles) - known)
            if unknown:
                raise InvalidInput(f"Unknown role(s) {', '.join(unknown)}; known roles: {', '.join(sorted(known))}",
                                   {"roles": "unknown role"})
            if agency_id is not None and session.get(Agency, agency_id) is None:
                raise InvalidInput(f"No agency with id {agency_id}", {"agency": "not found"})
            changes = {}
            if (user.full_name or "") != (full_name or ""):
                changes["full_name"] = [user.full_name, full_name]
                user.full_name = full_name
            wanted = sorted(set(roles))
            if user.roles != wanted:
                changes["roles"] = [user.roles, wanted]
                kept = [link for link in user.role_links if link.role_code in wanted]
                held = {link.role_code for link in kept}
                user.role_links = kept + [UserRole(role_code=code) for code in wanted if code not in held]
            if user.agency_id != agency_id:
                changes["agency_id"] = [user.agency_id, agency_id]
                user.agency_id = agency_id
            return changes

    def set_active(self, user_id: int, active: bool) -> bool:
        """Activate or deactivate a user; False if it already was so. Deactivation ends every session and revokes
        every API token of the user, in the same transaction (a later activation does not bring them back)."""
        with self._engine.db.session() as session:
            user = _user_row(session, user_id)
            if user.is_active == active:
                return False
            user.is_active = active
            if not active:
                self.end_sessions(user_id, session=session)
            return True

    def set_password(self, user_id: int, password: str, keep_secret: str | None = None) -> dict[str, int]:
        """Set a user's password (a change by the user or an administrator's reset): every session of the user but
        the one of `keep_secret` ends and every API token is revoked, in the same transaction. Returns the counts
        {"sessions", "tokens"}. The password is checked against the password policy (`check_new_password`)."""
        with self._engine.db.session() as session:
            user = _user_row(session, user_id)
            user.password_hash = hash_password(check_new_password(password, user.username))
            return self.end_sessions(user_id, keep_secret=keep_secret, session=session)

    def set_municipality_timezone(self, municipality_id: int, timezone: str,
                                  with_agencies: bool = False) -> tuple[str, int]:
        """Change a municipality's time zone, and with `with_agencies` its agencies' that kept the old one; returns
        the old zone and how many agencies followed. Running processes keep the zone they started with."""
        check_timezone(timezone)
        with self._engine.db.session() as session:
            row = session.get(Municipality, municipality_id)
            if row is None:
                raise NotFound(f"No municipality with id {municipality_id}")
            old = row.timezone
            row.timezone = timezone
            moved = 0
            if with_agencies and old != timezone:
                moved = session.execute(update(Agency).where(Agency.municipality_id == municipality_id,
                                                             Agency.timezone == old)
                                        .values(timezone=timezone)
                                        .execution_options(synchronize_session=False)).rowcount or 0
            return old, moved

    def get_user(self, username: str, session: Session | None = None) -> UserInfo:
        """An active user with roles and agency, read in one statement (in the caller's transaction when given)."""
        with self._engine.db.session(join=session) as session:
            row = session.execute(user_select(select(), User, username)).first()
        return user_info(row, username)

    def full_names(self, usernames: Iterable[str | None], session: Session | None = None) -> dict[str, str]:
        """Each user's full name (their username when it has none), by username; unknown names are left out. For
        pages that show people, not logins."""
        wanted = {name for name in usernames if name}
        if not wanted:
            return {}
        with self._engine.db.session(join=session) as work:
            rows = work.execute(select(User.username, User.full_name).where(User.username.in_(wanted))).all()
        return {username: full_name or username for username, full_name in rows}

    def users(self) -> list[UserInfo]:
        with self._engine.db.session() as session:
            return [_info(u) for u in session.scalars(select(User).order_by(User.username)).unique()]

    def agencies(self) -> list[dict]:
        with self._engine.db.session() as session:
            rows = session.scalars(select(Agency).order_by(Agency.id)).unique()
            return [{"id": a.id, "name": a.name, "kind": a.kind, "municipality": a.municipality.name,
                     "timezone": a.timezone} for a in rows]

    def agency_of_kind(self, kind: str, municipality: str | None) -> dict | None:
        """The one agency of a kind (e.g. 'guardianship') in a municipality, as {id, name, kind}; None when the
        municipality has none or several of that kind (a task must then be addressed some other way)."""
        if not kind or not municipality:
            return None
        # in the transaction of the change that evaluates it, if any
        with self._engine.db.session(join=CURRENT_SESSION.get()) as session, session.no_autoflush:
            rows = session.execute(_AGENCY_OF_KIND, {"kind": str(kind), "municipality": str(municipality)}).all()
        if len(rows) != 1:
            return None
        return {"id": rows[0].id, "name": rows[0].name, "kind": rows[0].kind}

    # -- sessions and API tokens -----------------------------------------------------------------------------
    # A browser session and an API token are both a random secret handed to the client; the database keeps only
    # its SHA-256 (a 256-bit random secret needs no slow hash), so a stolen database copy holds no usable secret.
    # Ending a session or revoking a token deletes its row: a secret without a row is refused. Their lifetimes run
    # on the real clock (`now`, for tests), like the signed cookie that carries a session: the engine clock may
    # be a demo's or a test's (`KURATOR_NOW`, time travel), which must neither expire nor extend a login.

    def open_session(self, user_id: int, ip: str | None, idle: timedelta, now: datetime | None = None) -> str:
        """A new browser session of the user; returns the secret for the session cookie. Sessions idle for longer
        than `idle` are purged on the way."""
        now = now or _utcnow()
        secret = secrets.token_urlsafe(32)
        with self._engine.db.session() as session:
            session.execute(delete(UserSession).where(UserSession.last_seen_at < now - idle))
            session.add(UserSession(user_id=user_id, secret_hash=secret_hash(secret), created_at=now,
                                    last_seen_at=now, ip=ip))
        return secret

    def session_user_id(self, secret: str | None, idle: timedelta, session: Session | None = None,
                        now: datetime | None = None) -> int | None:
        """The id of the active user of a live session (see `session_user`); marks the session used."""
        info = self.session_user(secret, idle, session=session, now=now)
        return info.id if info is not None else None

    def session_user(self, secret: str | None, idle: timedelta, session: Session | None = None,
                     now: datetime | None = None) -> UserInfo | None:
        """The active user of a live session (none when it was ended, idle for longer than `idle`, or its user is
        inactive), read with the session row in one statement; marks the session used (at most every
        TOUCH_EVERY). What every page request asks first."""
        if not secret or not isinstance(secret, str):
            return None
        now = now or _utcnow()
        with self._engine.db.session(join=session) as db:
            row = db.execute(_credential_user("session"), {"secret_hash": secret_hash(secret)}).first()
            if row is None or row.last_seen_at < now - idle or not row.user_active:
                return None
            if now - row.last_seen_at >= TOUCH_EVERY:
                db.execute(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=now))
            return user_info(row, row.user_name)

    def token_holder(self, secret: str | None, ip: str | None = None, session: Session | None = None,
                     now: datetime | None = None) -> tuple[UserInfo, int] | None:
        """(the active user, the token id) of a valid token, read in one statement; none when the token is
        unknown, revoked or expired or its user inactive. Records its use (time and address) when the address
        changed or at most every TOUCH_EVERY."""
        if not secret or not isinstance(secret, str):
            return None
        now = now or _utcnow()
        with self._engine.db.session(join=session) as db:
            row = db.execute(_credential_user("token"), {"secret_hash": secret_hash(secret)}).first()
            if row is None or row.expires_at <= now or not row.user_active:
                return None
            if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY or row.last_ip != ip:
                db.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now, last_ip=ip))
            return user_info(row, row.user_name), row.id

    def close_session(self, secret: str | None) -> None:
        """End one session (logout)."""
        if secret and isinstance(secret, str):
            with self._engine.db.session() as session:
                session.execute(delete(UserSession).where(UserSession.secret_hash == secret_hash(secret)))

    def session_count(self, user_id: int, idle: timedelta, except_secret: str | None = None,
                      now: datetime | None = None) -> int:
        """How many live sessions the user has (other than `except_secret`'s)."""
        since = (now or _utcnow()) - idle
        with self._engine.db.session() as session:
            hashes = session.scalars(select(UserSession.secret_hash).where(UserSession.user_id == user_id,
                                                                           UserSession.last_seen_at >= since))
            skip = secret_hash(except_secret) if except_secret else None
            return sum(1 for h in hashes if h != skip)

    def end_sessions(self, user_id: int, keep_secret: str | None = None, tokens: bool = True,
                     session: Session | None = None) -> dict[str, int]:
        """End every session of the user but the one of `keep_secret`, and (unless `tokens` is false) revoke
        every API token of the user: after a password change or reset, or a deactivation. Returns the counts
        {"sessions": n, "tokens": m}."""
        with self._engine.db.session(join=session) as db:
            query = delete(UserSession).where(UserSession.user_id == user_id)
            if keep_secret:
                query = query.where(UserSession.secret_hash != secret_hash(keep_secret))
            ended = db.execute(query).rowcount or 0
            revoked = 0
            if tokens:
                revoked = db.execute(delete(ApiToken).where(ApiToken.user_id == user_id)).rowcount or 0
            return {"sessions": ended, "tokens": revoked}

    def issue_token(self, user_id: int, ip: str | None, lifetime: timedelta, now: datetime | None = None) -> dict:
        """A new API token of the user: {"id", "token" (the secret, shown only now), "expires_at"}. The user's
        expired tokens are purged on the way."""
        now = now or _utcnow()
        secret = secrets.token_urlsafe(32)
        with self._engine.db.session() as session:
            session.execute(delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.expires_at <= now))
            row = ApiToken(user_id=user_id, secret_hash=secret_hash(secret), created_at=now,
                           expires_at=now + lifetime, created_ip=ip)
            session.add(row)
            session.flush()
            return {"id": row.id, "token": secret, "expires_at": row.expires_at}

    def token_user(self, secret: str | None, ip: str | None = None, session: Session | None = None,
                   now: datetime | None = None) -> tuple[int, int] | None:
        """(user id, token id) of a valid token of an active user (see `token_holder`); records its use."""
        holder = self.token_holder(secret, ip, session=session, now=now)
        return (holder[0].id, holder[1]) if holder is not None else None

    def tokens(self, user_id: int, now: datetime | None = None) -> list[dict]:
        """The user's tokens that have not expired, newest first, with their last use (to the minute)."""
        now = now or _utcnow()
        with self._engine.db.session() as session:
            rows = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.expires_at > now)
                                   .order_by(ApiToken.id.desc()))
            return [{"id": r.id, "created_at": r.created_at, "expires_at": r.expires_at, "created_ip": r.created_ip,
                     "last_used_at": r.last_used_at, "last_ip": r.last_ip} for r in rows]

    def revoke_token(self, token_id: int, user_id: int | None = None) -> bool:
        """Revoke a token (of that user only, when `user_id` is given); False when there is no such token."""
        with self._engine.db.session() as session:
            query = delete(ApiToken).where(ApiToken.id == token_id)
            if user_id is not None:
                query = query.where(ApiToken.user_id == user_id)
            return bool(session.execute(query).rowcount)

    def functions(self) -> dict:
        """Directory lookups that diagram expressions may call."""
        return {"agency_of_kind": self.agency_of_kind}

    @staticmethod
    def _find_agency(session: Session, agency: str | int) -> int:
        if isinstance(agency, int) or str(agency).isdigit():
            row = session.get(Agency, int(agency))
            if row is not None:
                return row.id
        matches = session.scalars(select(Agency).where(Agency.name == str(agency))).unique().all()
        if len(matches) == 1:
            return matches[0].id
        if not matches:
            raise InvalidInput(f"No agency '{agency}': create it first with 'kurator agencies add'",
                               {"agency": "not found"})
        raise InvalidInput(f"Several agencies are called '{agency}': give the agency id",
                           {"agency": "ambiguous"})


def _user_row(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}")
    return user


def user_select(query: Select, user: Any, username: Any, joined_to: Any = None) -> Select:
    """`query` with the columns `user_info` reads of the user `username` (a value or a bind parameter) through
    `user` (the User entity or an alias of it). With `joined_to` (an entity `query` reads), `user` is outer-joined
    to it, so a caller reading other rows gets the user with them in one statement (its columns are NULL when there
    is no such user); otherwise `query` selects from `user`."""
    condition = user.username == username
    query = query.outerjoin_from(joined_to, user, condition) if joined_to is not None \
        else query.select_from(user).where(condition)
    return _with_user_columns(query, user)


def _with_user_columns(query: Select, user: Any) -> Select:
    """`query`, which reads `user` (the User entity or an alias), with the user's columns that `user_info` reads:
    the agency and its municipality joined, the roles aggregated."""
    agency, municipality = aliased(Agency), aliased(Municipality)
    # the separator as SQL text: a plain "," is a literal-execute parameter, and a statement with one has its SQL
    # rendered again on every execution
    roles = (select(func.aggregate_strings(UserRole.role_code, literal_column("','")))
             .where(UserRole.user_id == user.id).scalar_subquery())
    return (query.outerjoin(agency, agency.id == user.agency_id)
            .outerjoin(municipality, municipality.id == agency.municipality_id)
            .add_columns(user.id.label("user_id"), user.username.label("user_name"),
                         user.full_name.label("user_full_name"), user.is_active.label("user_active"),
                         agency.id.label("user_agency_id"), agency.name.label("user_agency"),
                         agency.kind.label("user_agency_kind"), agency.municipality_id.label("user_municipality_id"),
                         agency.timezone.label("user_timezone"), municipality.name.label("user_municipality"),
                         roles.label("user_roles")))


@functools.cache
def _credential_user(kind: str) -> Select:
    """The browser session ("session") or API token ("token") whose secret hash is `secret_hash`, with its user's
    columns (`user_info`): the whole look-up of a request's user in one statement. Built once per kind."""
    credential: Any = UserSession if kind == "session" else ApiToken
    columns = select(UserSession.id, UserSession.last_seen_at) if kind == "session" \
        else select(ApiToken.id, ApiToken.expires_at, ApiToken.last_used_at, ApiToken.last_ip)
    query = columns.join(User, User.id == credential.user_id).where(
        credential.secret_hash == bindparam("secret_hash"))
    return _with_user_columns(query, User)


def user_info(row: Any, username: str) -> UserInfo:
    """The user of a row read with `user_select`; `NotFound` when there is no such active user."""
    if row is None or row.user_id is None or not row.user_active:
        raise NotFound(f"No active user '{username}'")
    agency_id = row.user_agency_id
    return UserInfo(id=row.user_id, username=row.user_name,
                    roles=tuple(sorted(r for r in (row.user_roles or "").split(",") if r)),
                    agency_id=agency_id, agency=row.user_agency, municipality=row.user_municipality,
                    timezone=row.user_timezone if agency_id is not None else DEFAULT_TIMEZONE,
                    full_name=row.user_full_name, agency_kind=row.user_agency_kind,
                    municipality_id=row.user_municipality_id)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def secret_hash(secret: str) -> str:
    """What is stored of a session or token secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _info(user: User) -> UserInfo:
    agency = user.agency
    return UserInfo(
        id=user.id,
        username=user.username,
        roles=tuple(user.roles),
        agency_id=agency.id if agency else None,
        agency=agency.name if agency else None,
        municipality=agency.municipality.name if agency else None,
        timezone=agency.timezone if agency else DEFAULT_TIMEZONE,
        full_name=user.full_name,
        agency_kind=agency.kind if agency else None,
        municipality_id=agency.municipality_id if agency else None,
    )
