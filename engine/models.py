"""Engine tables: identity, definitions, instances, human tasks, history, calendar overrides."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base, UTCDateTime

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Municipality(Base):
    """A municipality (муниципальное образование): the unit of a commission and of data scope."""

    __tablename__ = "municipality"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")


class Agency(Base):
    """An organisation of the system of prevention (commission, police, school…)."""

    __tablename__ = "agency"
    __table_args__ = (UniqueConstraint("municipality_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str | None] = mapped_column(String(50))
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    municipality: Mapped[Municipality] = relationship(lazy="joined")


class Role(Base):
    """A role that diagrams name in lanes and `camunda:candidateGroups`."""

    __tablename__ = "role"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))


class User(Base):
    """A person who works in Kurator; the web app adds the password hash."""

    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(300))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    agency: Mapped[Agency | None] = relationship(lazy="joined")
    role_links: Mapped[list[UserRole]] = relationship(lazy="selectin", cascade="all, delete-orphan")

    @property
    def roles(self) -> list[str]:
        return sorted(link.role_code for link in self.role_links)


class UserRole(Base):
    __tablename__ = "user_role"
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    role_code: Mapped[str] = mapped_column(ForeignKey("role.code"), primary_key=True)


class UserSession(Base):
    """A login in a browser. The session cookie carries a random secret; this row keeps only its SHA-256. A
    cookie whose row is gone (logout, password change, an administrator's reset or deactivation) or idle for
    longer than the session lifetime is refused."""

    __tablename__ = "user_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str | None] = mapped_column(String(60))


class ApiToken(Base):
    """A bearer token of the REST API: only the SHA-256 of its secret is stored. It expires at `expires_at` and
    can be revoked (the row is deleted) by its user or an administrator."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_ip: Mapped[str | None] = mapped_column(String(60))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_ip: Mapped[str | None] = mapped_column(String(60))


class Resource(Base):
    """A deployed file (BPMN or form), stored once per content hash."""

    __tablename__ = "resource"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(10))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProcessDefinition(Base):
    """One version of one process key; its parsed spec is stored here once."""

    __tablename__ = "process_definition"
    __table_args__ = (UniqueConstraint("key", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    # deferred: tens of kilobytes that every instance row would otherwise bring along through its joined
    # `definition` (the executor takes the spec from `RepositoryService.spec_json`, cached per process)
    spec_json: Mapped[str] = mapped_column(Text, deferred=True)
    warnings: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deployed_by: Mapped[str | None] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)
    # The form versions this process version runs with ({form key: version}), fixed at deployment: a form changed
    # later reaches running cases only through a new process version (and a migration). None = before 0006.
    form_versions: Mapped[dict[str, int] | None] = mapped_column(JSONType)
    resource: Mapped[Resource] = relationship(lazy="select")


class FormDefinition(Base):
    """One version of a form definition (form-js schema) referenced by `camunda:formKey`."""

    __tablename__ = "form_definition"
    __table_args__ = (UniqueConstraint("key", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deployed_by: Mapped[str | None] = mapped_column(String(100))


class ModelerDraft(Base):
    """A methodologist's unfinished diagram or form, saved in the modeler; `revision` guards concurrent saves."""

    __tablename__ = "modeler_draft"
    __table_args__ = (Index("ix_modeler_draft_kind_key", "kind", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # "diagram" or "form"
    key: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(300))
    content: Mapped[str] = mapped_column(Text)
    base_version: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    saved_by: Mapped[str | None] = mapped_column(String(100))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProcessInstance(Base):
    """A running or finished case process; `revision` is the optimistic lock."""

    __tablename__ = "process_instance"
    __table_args__ = (
        Index("ix_process_instance_wakeup", "next_wakeup"),
        # the instances of no municipality, whose tasks are in every user's data scope (migration 0015)
        Index("ix_process_instance_no_municipality", "id", postgresql_where=text("municipality_id IS NULL"),
              sqlite_where=text("municipality_id IS NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), default="running")
    # read only when needed: a change usually continues the live workflow kept in memory (`instance_cache`)
    state: Mapped[str] = mapped_column(Text, deferred=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    next_wakeup: Mapped[datetime | None] = mapped_column(UTCDateTime())
    waiting_for: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_by: Mapped[str | None] = mapped_column(String(100))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    # the municipality whose data the instance carries (set by the domain when it scopes the instance; None =
    # none, e.g. a methodologist's test run); its human tasks copy it, so the inbox can filter on an index
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id",
                                                                   name="fk_process_instance_municipality"))
    definition: Mapped[ProcessDefinition] = relationship(lazy="joined")


class HumanTask(Base):
    """A user task that is (or was) ready for a person: the inbox reads this table, never the state."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_human_task_open_due", "status", "due"),
        Index("ix_human_task_instance", "instance_id"),
        Index("ix_human_task_assignee", "assignee", "status"),
        # the inbox's order, on open tasks only (migration 0004)
        Index("ix_human_task_open_order", text("(due IS NULL)"), "due", "created_at", "id",
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
        # the stages and processes of one municipality's open tasks (the inbox's filter lists; migration 0014)
        Index("ix_human_task_open_lists", "municipality_id", "process_key", "element_id", "name",
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
        Index("ix_human_task_agency", "agency_id", "status"),
        # the inbox's order within one municipality's open tasks, and "tasks someone completed" (migration 0008)
        Index("ix_human_task_open_municipality", "municipality_id", text("(due IS NULL)"), "due", "created_at", "id",
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
        Index("ix_human_task_completed_by", "completed_by"),
        # the open tasks of given instances: an inbox of the instances in a user's scope (migration 0015)
        Index("ix_human_task_open_instance", "instance_id", postgresql_where=text("status = 'open'"),
              sqlite_where=text("status = 'open'")),
        # the tasks of some municipalities completed in a period (statistics; migration 0013)
        Index("ix_human_task_completed_municipality", "municipality_id", "status", "completed_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    process_key: Mapped[str] = mapped_column(String(200))
    element_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    lane: Mapped[str | None] = mapped_column(String(200))
    candidate_roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    candidate_users: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # "|role:x|user:y|": the candidates in one searchable string (the same on SQLite and PostgreSQL)
    candidates: Mapped[str] = mapped_column(Text, default="|")
    # the agency (organisation) the task is addressed to: only its staff holding a candidate role are offered it
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", name="fk_human_task_agency"))
    # the instance's municipality (`ProcessInstance.municipality_id`), copied on insert: the data scope, indexed
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id",
                                                                   name="fk_human_task_municipality"))
    assignee: Mapped[str | None] = mapped_column(String(100))
    form_key: Mapped[str | None] = mapped_column(String(200))
    due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    follow_up: Mapped[datetime | None] = mapped_column(UTCDateTime())
    priority: Mapped[int | None] = mapped_column(Integer)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_by: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


@event.listens_for(HumanTask, "before_insert")
def _copy_municipality(_mapper, _connection, target: HumanTask) -> None:
    """A new task row takes its instance's municipality, in the INSERT itself (no extra round trip)."""
    if target.municipality_id is None and target.instance_id is not None:
        target.municipality_id = (select(ProcessInstance.municipality_id)
                                  .where(ProcessInstance.id == target.instance_id).scalar_subquery())


class HistoryEvent(Base):
    """Append-only history: what happened to which instance, when and by whom."""

    __tablename__ = "history_event"
    __table_args__ = (Index("ix_history_instance", "instance_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class CalendarOverride(Base):
    """A day whose status differs from the federal production calendar (regional day off, late decree)."""

    __tablename__ = "calendar_override"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_working: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(String(300))


class CalendarYear(Base):
    """A year an administrator declared complete in the override table (beyond the package's data)."""

    __tablename__ = "calendar_year"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    comment: Mapped[str | None] = mapped_column(String(300))


class AuditEvent(Base):
    """Who read or changed what, when and from where: logins, case file views, document downloads, changes."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_object", "object_type", "object_id"), Index("ix_audit_actor_at", "actor", "at"),
                      # failed logins per client address (the login back-off's per-address limit)
                      Index("ix_audit_login_failed_ip", "ip", "at", postgresql_where=text("action = 'login_failed'"),
                            sqlite_where=text("action = 'login_failed'")))
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(60))
    ip: Mapped[str | None] = mapped_column(String(60))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class MigrationBatch(Base):
    """A migration of running instances to another version of their process, run in chunks (engine.migration)."""

    __tablename__ = "migration_batch"
    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    target_definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    target_version: Mapped[int] = mapped_column(Integer)
    instance_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    filters: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    moved: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="running")
    comment: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InstanceMigration(Base):
    """One instance's move to another version (or a failed attempt), with what is needed to move it back."""

    __tablename__ = "instance_migration"
    __table_args__ = (UniqueConstraint("batch_id", "instance_id"),
                      Index("ix_instance_migration_instance", "instance_id", "id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("migration_batch.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"))
    # "moved", "failed" or "reverted"
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    from_definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    to_definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    previous_state: Mapped[str | None] = mapped_column(Text)
    previous_revision: Mapped[int | None] = mapped_column(Integer)
    revision_after: Mapped[int | None] = mapped_column(Integer)
    # the open inbox rows before the move, to give them back on a revert
    previous_tasks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    changes: Mapped[list[str] | None] = mapped_column(JSONType)
    migrated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    migrated_by: Mapped[str | None] = mapped_column(String(100))
    reverted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reverted_by: Mapped[str | None] = mapped_column(String(100))
