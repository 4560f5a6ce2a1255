"""Who is offered which human task: the one place that writes and reads the candidate encoding of `human_task`.

A task is offered to a user when it is open and unassigned and the user is named in `camunda:candidateUsers`,
or holds one of its candidate roles and, for a task addressed to an agency (organisation), works at that
agency. The inbox page, the REST API, the task page, the manager's view, the CLI and the benchmarks all build
their queries from these functions, so the rule cannot drift between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import literal_column, or_, select
from sqlalchemy.sql import ColumnElement, Select

from .models import HumanTask


class Candidate(Protocol):
    """Anyone the engine may offer a task to (the engine's `UserInfo`, the web app's current user)."""

    username: str
    roles: Iterable[str]
    agency_id: int | None


def candidates_token(roles: Iterable[str], users: Iterable[str]) -> str:
    """The searchable form of a task's candidates: '|role:x|user:y|' (the same on SQLite and PostgreSQL)."""
    return "|" + "".join(f"role:{r}|" for r in roles) + "".join(f"user:{u}|" for u in users)


def offered_to(user: Candidate) -> ColumnElement[bool]:
    """Unassigned tasks the user may claim: named in the task, or a candidate role at the right agency."""
    by_role = or_(*[HumanTask.candidates.like(f"%|role:{role}|%") for role in sorted(user.roles)]) \
        if user.roles else None
    agency_ok = HumanTask.agency_id.is_(None) if user.agency_id is None \
        else or_(HumanTask.agency_id.is_(None), HumanTask.agency_id == user.agency_id)
    named = HumanTask.candidates.like(f"%|user:{user.username}|%")
    clause = or_(named, by_role & agency_ok) if by_role is not None else named
    return HumanTask.assignee.is_(None) & clause


def not_another_agencys(user: Candidate) -> ColumnElement[bool]:
    """Tasks that are not another agency's: addressed to no agency or to the user's, or held, done or named for
    the user. What is another agency's is not shown to agency staff at all."""
    return or_(HumanTask.agency_id.is_(None), HumanTask.agency_id == user.agency_id,
               HumanTask.assignee == user.username, HumanTask.completed_by == user.username,
               HumanTask.candidates.like(f"%|user:{user.username}|%"))


def is_open() -> ColumnElement[bool]:
    """`status = 'open'` with the value written into the statement rather than sent as a parameter: the partial
    indexes on open tasks (`WHERE status = 'open'`) then serve every plan of it, a generic plan of a prepared
    statement on PostgreSQL (which cannot know a parameter's value) and SQLite's plans alike."""
    return HumanTask.status == literal_column("'open'")


def with_role(role: str) -> ColumnElement[bool]:
    return HumanTask.candidates.like(f"%|role:{role}|%")


def assigned_to(username: str) -> ColumnElement[bool]:
    return HumanTask.assignee == username


def open_tasks_of(user: Candidate, mine_only: bool = False) -> Select:
    """Open tasks the user works on: assigned to them, or (with `mine_only` false) offered to them."""
    mine = assigned_to(user.username)
    return select(HumanTask).where(is_open(), mine if mine_only else or_(mine, offered_to(user)))


def offered_tasks_of(user: Candidate) -> Select:
    """Open unassigned tasks the user may claim (the API's `scope=candidate`)."""
    return select(HumanTask).where(is_open(), offered_to(user))


def is_candidate(task: HumanTask | dict[str, Any], user: Candidate) -> bool:
    """Whether the task is offered to the user (ignoring who holds it now); `task` is a row or its dict."""
    get = task.get if isinstance(task, dict) else lambda name: getattr(task, name)
    if user.username in (get("candidate_users") or []):
        return True
    agency_id = get("agency_id")
    if agency_id is not None and agency_id != user.agency_id:
        return False
    return bool(set(get("candidate_roles") or []) & set(user.roles))


def may_work(task: HumanTask | dict[str, Any], user: Candidate) -> bool:
    """Whether the user may work on an open task now: it is theirs, or unassigned and offered to them."""
    get = task.get if isinstance(task, dict) else lambda name: getattr(task, name)
    assignee = get("assignee")
    if assignee is not None:
        return assignee == user.username
    return is_candidate(task, user)
