"""TaskService: query, claim, unclaim and complete human tasks, with permission checks."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Select, bindparam, or_, select, update
from sqlalchemy.orm import Session, aliased, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from . import history, task_query
from .db import note_row_locked
from .errors import Conflict, InvalidInput, NotFound, PermissionDenied
from .executor import expire_task_rows, task_keys
from .forms import validate_submission
from .identity import UserInfo, user_info, user_select
from .models import Agency, HumanTask, ProcessInstance, User
from .runtime import check_variables

if TYPE_CHECKING:
    from . import ProcessEngine
    from .db import Database

TASK_ASSIGNED = "task_assigned"  # history event: a task given to a user by someone else (`TaskService.assign`)
TASK_FIELDS = ("id", "name", "process_key", "instance_id", "candidate_roles", "assignee", "due", "follow_up",
               "form_key", "overdue", "agency_id", "agency_name")


def task_to_dict(row: HumanTask, agency_name: str | None = None) -> dict[str, Any]:
    """The task object of `kurator tasks --json` and of the REST API."""
    return {
        "id": row.id,
        "name": row.name,
        "process_key": row.process_key,
        "instance_id": row.instance_id,
        "candidate_roles": list(row.candidate_roles or []),
        "assignee": row.assignee,
        "due": row.due.isoformat() if row.due else None,
        "follow_up": row.follow_up.isoformat() if row.follow_up else None,
        "form_key": row.form_key,
        "overdue": bool(row.overdue),
        "element_id": row.element_id,
        "candidate_users": list(row.candidate_users or []),
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
        "completed_by": row.completed_by,
        "agency_id": row.agency_id,
        "agency_name": agency_name,
    }


def _with_agency(query):
    """A HumanTask query with the name of the agency each task is addressed to."""
    return query.outerjoin(Agency, Agency.id == HumanTask.agency_id).add_columns(Agency.name)


class TaskService:
    """Human tasks as the inbox sees them."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine

    def query(self, user: str | None = None, role: str | None = None, instance_id: int | None = None,
              overdue: bool | None = None, status: str = "open", limit: int | None = None,
              offset: int = 0) -> list[dict[str, Any]]:
        """Tasks by user (assigned to them, or claimable by their roles), role, instance and overdue state."""
        query = select(HumanTask)
        if status:
            query = query.where(HumanTask.status == status)
        if user is not None:
            info = self._engine.identity.get_user(user)
            query = query.where(or_(task_query.assigned_to(info.username), task_query.offered_to(info)))
        if role is not None:
            query = query.where(task_query.with_role(role))
        if instance_id is not None:
            query = query.where(HumanTask.instance_id == instance_id)
        if overdue is not None:
            query = query.where(HumanTask.overdue.is_(overdue))
        query = query.order_by(HumanTask.due.is_(None), HumanTask.due, HumanTask.created_at, HumanTask.id)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        with self._engine.db.session() as session:
            return [task_to_dict(row, agency) for row, agency in session.execute(_with_agency(query))]

    def get(self, task_id: str) -> dict[str, Any]:
        with self._engine.db.session() as session:
            row = self._row(session, task_id)
            agency = session.get(Agency, row.agency_id) if row.agency_id is not None else None
            return task_to_dict(row, agency.name if agency is not None else None)

    def claim(self, task_id: str, username: str) -> dict[str, Any]:
        user = self._engine.identity.get_user(username)
        with self._engine.db.session() as session:
            row = self._open_row(session, task_id)
            if row.assignee == user.username:
                return self.get(task_id)
            if not task_query.is_candidate(row, user):
                raise PermissionDenied(f"User '{username}' is not a candidate for task '{row.name}' "
                                       f"({_offered_to(row)})")
            result = session.execute(update(HumanTask)
                                     .where(HumanTask.id == task_id, HumanTask.status == "open",
                                            HumanTask.assignee.is_(None))
                                     .values(assignee=user.username)
                                     .execution_options(synchronize_session=False))
            if result.rowcount != 1:
                session.refresh(row)
                raise Conflict(f"Task '{row.name}' is already claimed by {row.assignee or 'someone else'}")
            self._engine.history.record(session, history.TASK_CLAIMED, row.instance_id, task_id=task_id,
                                        actor=user.username)
        return self.get(task_id)

    def unclaim(self, task_id: str, username: str) -> dict[str, Any]:
        user = self._engine.identity.get_user(username)
        with self._engine.db.session() as session:
            row = self._open_row(session, task_id)
            if row.assignee is None:
                if not task_query.is_candidate(row, user):
                    raise PermissionDenied(f"User '{username}' is not a candidate for task '{row.name}' "
                                           f"({_offered_to(row)})")
                return self.get(task_id)
            if row.assignee != user.username:
                raise PermissionDenied(f"Task '{row.name}' is claimed by {row.assignee}; only they can "
                                       f"give it back")
            result = session.execute(update(HumanTask)
                                     .where(HumanTask.id == task_id, HumanTask.status == "open",
                                            HumanTask.assignee == user.username)
                                     .values(assignee=None).execution_options(synchronize_session=False))
            if result.rowcount != 1:
                raise Conflict(f"Task '{row.name}' changed at the same time; reload and try again")
            self._engine.history.record(session, history.TASK_UNCLAIMED, row.instance_id, task_id=task_id,
                                        actor=user.username)
        return self.get(task_id)

    def assign(self, task_id: str, username: str, by: str | None, session=None) -> dict[str, Any]:
        """Give an open task to one of its candidates (a secretary passing an overdue visit on to a specialist):
        the task becomes theirs, whoever held it before, and a `task_assigned` event records who gave it to whom.

        With `session` it runs inside the caller's transaction (a domain handler completing another task);
        refusals: `InvalidInput` (no such active user), `PermissionDenied` (not a candidate), `Conflict`."""
        if session is not None:
            return self._assign(session, task_id, username, by)
        with self._engine.db.session() as own:
            return self._assign(own, task_id, username, by)

    def _assign(self, session, task_id: str, username: str, by: str | None) -> dict[str, Any]:
        row = self._open_row(session, task_id)
        target = session.scalar(select(User).where(User.username == str(username).strip()))
        if target is None or not target.is_active:
            raise InvalidInput(f"assignee: no active user '{username}'", {"assignee": "нет такого пользователя"})
        if not task_query.is_candidate(row, target):
            raise PermissionDenied(f"assignee: user '{target.username}' is not a candidate for task '{row.name}' "
                                   f"({_offered_to(row)})")
        previous = row.assignee
        if previous != target.username:
            held = HumanTask.assignee.is_(None) if previous is None else HumanTask.assignee == previous
            result = session.execute(update(HumanTask).where(HumanTask.id == row.id, HumanTask.status == "open", held)
                                     .values(assignee=target.username).execution_options(synchronize_session=False))
            if result.rowcount != 1:
                raise Conflict(f"Task '{row.name}' changed at the same time; reload and try again")
            session.refresh(row)
            self._engine.history.record(session, TASK_ASSIGNED, row.instance_id, task_id=row.id, actor=by,
                                        data={"assignee": target.username, "previous": previous})
        agency = session.get(Agency, row.agency_id) if row.agency_id is not None else None
        return task_to_dict(row, agency.name if agency is not None else None)

    def address(self, task_id: str, agency_id: int, roles: list[str], by: str | None,
                session=None) -> dict[str, Any]:
        """Send an open task to another agency (the secretary sending the check to the agency that will do it):
        it is offered to that agency's users of `roles`, its claim is released, and a `task_addressed` event
        records the move. With `session` it runs in the caller's transaction."""
        if session is not None:
            return self._address(session, task_id, agency_id, roles, by)
        with self._engine.db.session() as own:
            return self._address(own, task_id, agency_id, roles, by)

    def _address(self, session, task_id: str, agency_id: int, roles: list[str], by: str | None) -> dict[str, Any]:
        row = self._open_row(session, task_id)
        agency = session.get(Agency, agency_id) if isinstance(agency_id, int) and 0 < agency_id < 2**31 else None
        if agency is None:
            raise InvalidInput(f"agency: no agency {agency_id}", {"agency": "нет такого органа"})
        roles = [r for r in roles if r]
        if not roles:
            raise InvalidInput("roles: name at least one role of the agency", {"roles": "укажите роль"})
        previous = (row.agency_id, list(row.candidate_roles or []), row.assignee)
        result = session.execute(
            update(HumanTask).where(HumanTask.id == row.id, HumanTask.status == "open")
            .values(agency_id=agency.id, candidate_roles=roles, assignee=None,
                    candidates=task_query.candidates_token(roles, row.candidate_users or []))
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise Conflict(f"Task '{row.name}' changed at the same time; reload and try again")
        session.refresh(row)
        self._engine.history.record(session, history.TASK_ADDRESSED, row.instance_id, task_id=row.id, actor=by,
                                    data={"agency_id": agency.id, "agency": agency.name, "roles": roles,
                                          "previous_agency_id": previous[0], "previous_roles": previous[1],
                                          "previous_assignee": previous[2]})
        return task_to_dict(row, agency.name)

    def complete(self, task_id: str, username: str, data: dict[str, Any] | None = None, session=None,
                 authorised: bool = False) -> dict[str, Any]:
        """Complete a task with its form data and advance the instance; all or nothing.

        With `session`, the completion is part of the caller's transaction. With `authorised`, the caller has
        already decided that the user may record this task's outcome though it is not offered to them (a
        secretary recording a collegial body's decision); the user is still the actor in the history.
        """
        data = check_variables(data, "data")
        engine = self._engine
        executor = engine.executor
        changing = None  # (instance id, actor) once the instance is loaded: a Conflict then is recorded
        try:
            # one transaction; one read for the user, the task, its instance and the instance's other open tasks
            with executor.clock_in_force(), engine.db.session(join=session) as work:
                rows = _read_for_completion(engine.db, work, str(task_id), username)
                row = next((r for r in rows if r.id == str(task_id)), None)
                if row is None:
                    raise NotFound(f"No task {task_id}")
                user = user_info(row, username)
                _check_open(row, row.instance_status)
                if not authorised:
                    self._check_may_complete(row, user)
                instance_id, form_key, assignee = row.instance_id, row.form_key, row.assignee
                if form_key:
                    schema = engine.repository.shared_form(form_key, row.definition_id, session=work)
                    if schema is not None:
                        data = validate_submission(schema, data)
                held = "offered" if not authorised else "unassigned" if assignee is None else "held"
                changing = (instance_id, user.username)
                instance = executor.instance_row(work, row)  # held: the session keeps it only while in use
                others = [r for r in rows if r.id != row.id and r.status == "open"]
                with executor.change(work, instance.id, user.username, open_rows=others) as loaded:
                    task = loaded.workflow.get_task_from_id(UUID(task_id))
                    if task is None or task.state != TaskState.READY:
                        raise Conflict("The task is no longer waiting for completion; reload the inbox")
                    now = engine.clock.now()

                    def taken(count: int) -> None:
                        if count != 1:
                            raise Conflict("The task was completed or claimed by someone else at the same time")

                    engine.db.queue(work, _completed_update(held),
                                    {"k_id": row.id, "k_user": user.username, "k_held": assignee, "k_at": now,
                                     "k_data": data}, check=taken, touches=task_keys([row.id]))
                    done = {name: getattr(row, name) for name in _TASK_COLUMNS}
                    done.update(status="completed", completed_at=now, completed_by=user.username, data=data,
                                assignee=user.username)
                    if engine.history.has_listeners(history.TASK_COMPLETED):
                        # the row as the UPDATE leaves it, in the session: a listener of the completion reads it
                        # without a SELECT (nor the queued writes sent early); referenced while the change lasts
                        completed_row = _hold_row(work, done)
                    else:
                        expire_task_rows(work, [row.id])
                        completed_row = SimpleNamespace(**done)
                    task.set_data(**data)
                    task.run()
                    executor.advance(loaded)
                    engine.history.record(work, history.TASK_COMPLETED, instance_id, task_id=task_id,
                                          actor=user.username, data=data)
                    return task_to_dict(completed_row, row.agency_name)
        except Conflict as exc:
            if changing is not None:  # recorded once the transaction is rolled back, as `operation` does
                executor.record_conflict(*changing, "complete task", exc)
            raise

    def save_draft(self, task_id: str, username: str, data: dict[str, Any] | None) -> dict[str, Any]:
        """Keep a user's unfinished form data on the open task (not validated; completion checks it)."""
        data = check_variables(data, "data")
        user = self._engine.identity.get_user(username)
        with self._engine.db.session() as session:
            row = self._open_row(session, task_id)
            self._check_may_complete(row, user)
            row.data = {**data, "_draft_by": user.username, "_draft_at": self._engine.clock.now().isoformat()}
        return self.get(task_id)

    def draft(self, task_id: str) -> dict[str, Any]:
        """The saved draft of an open task (empty when there is none)."""
        with self._engine.db.session() as session:
            row = self._row(session, task_id)
            if row.status != "open" or not row.data:
                return {}
            return {k: v for k, v in row.data.items() if not k.startswith("_draft")}

    def form(self, task_id: str) -> dict[str, Any] | None:
        """The form definition of a task: the version its instance's process version was deployed with."""
        with self._engine.db.session() as session:
            row = self._row(session, task_id)
            form_key, instance_id = row.form_key, row.instance_id
            definition_id = session.scalar(select(ProcessInstance.definition_id)
                                           .where(ProcessInstance.id == instance_id))
        return self._engine.repository.form(form_key, definition_id) if form_key else None

    # -- helpers ----------------------------------------------------------------------------------------------

    @staticmethod
    def _row(session, task_id: str) -> HumanTask:
        row = session.get(HumanTask, str(task_id))
        if row is None:
            raise NotFound(f"No task {task_id}")
        return row

    def _open_row(self, session, task_id: str) -> HumanTask:
        return self._open_row_and_definition(session, task_id)[0]

    def _open_row_and_definition(self, session, task_id: str) -> tuple[HumanTask, int]:
        """The open task's row and the process version of its instance (read with the instance's status)."""
        row = self._row(session, task_id)
        _check_open(row)
        instance_status, definition_id = session.execute(
            select(ProcessInstance.status, ProcessInstance.definition_id)
            .where(ProcessInstance.id == row.instance_id)).first() or (None, None)
        _check_open(row, instance_status)
        return row, definition_id

    @staticmethod
    def _check_may_complete(row: HumanTask, user: UserInfo) -> None:
        if row.assignee is not None:
            if row.assignee != user.username:
                raise PermissionDenied(f"Task '{row.name}' is assigned to {row.assignee}")
            return
        if not task_query.is_candidate(row, user):
            raise PermissionDenied(f"User '{user.username}' may not complete task '{row.name}': it is for "
                                   f"{_offered_to(row)}")


_TASK_COLUMNS = tuple(column.name for column in HumanTask.__table__.c)


@functools.cache
def _completed_update(held: str):
    """The UPDATE that completes an open task (`k_id`) for `k_user`, unless someone else took it meanwhile: with
    `held` "offered" it must be unassigned or theirs, "unassigned" unassigned, "held" still held by `k_held` (a
    decision recorded for its holder). Built once per kind."""
    table = HumanTask.__table__
    user = bindparam("k_user", type_=table.c.assignee.type)
    may_take = {"offered": or_(table.c.assignee.is_(None), table.c.assignee == user),
                "unassigned": table.c.assignee.is_(None),
                "held": table.c.assignee == bindparam("k_held", type_=table.c.assignee.type)}[held]
    return (update(table).where(table.c.id == bindparam("k_id"), table.c.status == "open", may_take)
            .values(status="completed", completed_at=bindparam("k_at", type_=table.c.completed_at.type),
                    completed_by=user, data=bindparam("k_data", type_=table.c.data.type), assignee=user))


def _read_for_completion(db: Database, session: Session, task_id: str, username: str) -> list[Any]:
    """The rows of `_completion_read`; on PostgreSQL with the instance's row locked for the change.

    The read skips an instance that another change holds (`SKIP LOCKED`: the scheduler firing a timer of the case,
    another person's completion) and finds nothing; the completion then waits for that change to end and reads
    again, in a new statement that sees what it committed. (Waiting inside the read itself would return the
    instance as the other change left it but its task rows as they were before.) A change that committed after the
    read began but before it reached the instance's row has the same effect: PostgreSQL locks the row as that
    change left it and keeps the task rows of the read's snapshot. The read also gives the instance's revision as
    of its snapshot (`snapshot_revision`); when the two differ, the rows are read again, under the lock now held.
    Either way the completion works on the instance as it is, and nothing else changes it until the completion
    commits: no refusal for a change that was merely simultaneous, and no deadlock with the sweep, which locks
    instances before anything else."""
    params, lock = {"task_id": task_id, "username": username}, db.is_postgresql
    # what the session holds unwritten goes first, as the ORM's autoflush would send it; the statements themselves
    # go through Core, which reads plain rows for less than the ORM's execution does
    db.send_queued(session)
    if session.new or session.dirty or session.deleted:
        session.flush()
    connection = session.connection()
    rows = _rows(connection, _completion_read(lock), params)
    if not lock:
        return rows
    if not rows:
        if connection.execute(_LOCK_INSTANCE_OF_TASK, params).scalar() is None:
            return []  # no such task
        rows = _rows(connection, _completion_read(), params)  # the lock is held: a plain read sees it all
    elif rows[0].revision != rows[0].snapshot_revision:
        rows = _rows(connection, _completion_read(), params)
    if rows:
        note_row_locked(session, ProcessInstance, rows[0].instance_id)
    return rows


def _rows(connection: Any, statement: Select, params: dict[str, Any]) -> list[Any]:
    """Where the completion's reads execute (the test of the snapshot race stands in for the first one here)."""
    return connection.execute(statement, params).all()


_LOCK_INSTANCE_OF_TASK = (select(ProcessInstance.id)
                          .where(ProcessInstance.id == select(HumanTask.instance_id)
                                 .where(HumanTask.id == bindparam("task_id")).scalar_subquery())
                          .with_for_update(key_share=True))


@functools.cache
def _completion_read(lock: bool = False) -> Select:
    """The task (`task_id`), the other open tasks of its instance, each with the instance's columns, and the user
    (`username`, see `identity.user_select`): everything a completion reads, in one statement (built once). With
    `lock`, the instance's row is locked `FOR NO KEY UPDATE`, the rows of an instance held by another transaction
    are skipped, and the instance's revision in the statement's snapshot comes too (see `_read_for_completion`)."""
    instance_of_task = select(HumanTask.instance_id).where(HumanTask.id == bindparam("task_id")).scalar_subquery()
    task_agency = aliased(Agency)
    query = (select(*HumanTask.__table__.c, task_agency.name.label("agency_name"),
                    ProcessInstance.status.label("instance_status"), ProcessInstance.revision,
                    ProcessInstance.definition_id, ProcessInstance.timezone,
                    ProcessInstance.municipality_id.label("instance_municipality_id"),
                    ProcessInstance.business_key.label("instance_business_key"))
             .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
             .outerjoin(task_agency, task_agency.id == HumanTask.agency_id)
             .where(HumanTask.instance_id == instance_of_task,
                    or_(HumanTask.status == "open", HumanTask.id == bindparam("task_id"))))
    if lock:
        as_read = aliased(ProcessInstance)  # not locked: the revision in the statement's snapshot
        query = (query.add_columns(select(as_read.revision).where(as_read.id == instance_of_task)
                                   .scalar_subquery().label("snapshot_revision"))
                 .with_for_update(key_share=True, skip_locked=True, of=ProcessInstance))
    return user_select(query, aliased(User), bindparam("username"), joined_to=HumanTask)


def _hold_row(session: Session, values: dict[str, Any]) -> HumanTask:
    """The session's object of a task row written by a statement of its own, as that statement leaves it: made
    from `values` (every column), or the object the session holds already brought up to date."""
    held = session.identity_map.get(identity_key(HumanTask, values["id"]))
    if held is None:
        held = HumanTask(**values)
        make_transient_to_detached(held)
        session.add(held)
    else:
        for name, value in values.items():
            set_committed_value(held, name, value)
    return held


def _check_open(row: Any, instance_status: str | None = "running") -> None:
    """A Conflict unless the task is open and its process running."""
    if row.status == "completed":
        raise Conflict(f"Task '{row.name}' was already completed by {row.completed_by} at "
                       f"{row.completed_at.isoformat() if row.completed_at else '?'}")
    if row.status != "open":
        raise Conflict(f"Task '{row.name}' is no longer open (it was {row.status})")
    if instance_status != "running":
        raise Conflict(f"The process of task '{row.name}' is {instance_status}")


def _offered_to(row: HumanTask) -> str:
    roles = f"role(s) {', '.join(row.candidate_roles or []) or '—'}"
    return f"{roles} of agency {row.agency_id}" if row.agency_id is not None else roles
