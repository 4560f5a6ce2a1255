"""IdentityService: users, agencies, municipalities and roles — enough for assignment and permissions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InvalidInput, NotFound
from .models import Agency, Municipality, Role, User, UserRole

if TYPE_CHECKING:
    from . import ProcessEngine

DEFAULT_TIMEZONE = "Europe/Moscow"

# Roles of the default diagrams (DOMAIN §2): code -> Russian title shown in the UI and accepted as a lane name.
DEFAULT_ROLES = {
    "commission_secretary": "Ответственный секретарь КДНиЗП",
    "commission": "КДНиЗП",
    "curator": "Куратор случая",
    "agency_specialist": "Специалист органа системы профилактики",
    "guardianship": "Орган опеки и попечительства",
    "police": "ПДН / ОВД",
    "social_protection": "Социальная защита",
    "education": "Образование",
    "health": "Здравоохранение",
    "methodologist": "Методолог",
    "manager": "Руководитель",
    "regional_secretary": "Ответственный секретарь региональной КДНиЗП",
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


class IdentityService:
    """Creates and looks up users, agencies and roles."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine

    def ensure_default_roles(self) -> None:
        with self._engine.db.session() as session:
            known = set(session.scalars(select(Role.code)))
            for code, title in DEFAULT_ROLES.items():
                if code not in known:
                    session.add(Role(code=code, title=title))

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
                 full_name: str | None = None, password_hash: str | None = None) -> int:
        username = username.strip()
        if not username:
            raise InvalidInput("Username must not be empty", {"username": "required"})
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

    def get_user(self, username: str) -> UserInfo:
        with self._engine.db.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None or not user.is_active:
                raise NotFound(f"No active user '{username}'")
            return _info(user)

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
        with self._engine.db.session() as session:
            rows = session.execute(select(Agency.id, Agency.name, Agency.kind)
                                   .join(Municipality, Municipality.id == Agency.municipality_id)
                                   .where(Agency.kind == str(kind), Municipality.name == str(municipality))
                                   .order_by(Agency.id).limit(2)).all()
        if len(rows) != 1:
            return None
        return {"id": rows[0].id, "name": rows[0].name, "kind": rows[0].kind}

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
    )
