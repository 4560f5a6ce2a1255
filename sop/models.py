"""Business records of the SOP procedure: families, persons, intake journals, cases, programmes, resolutions,
documents, escalations and reconciliations. Workflow data refers to them by id."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    case,
    event,
    text,
    update,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from engine.db import Base, UTCDateTime
from engine.models import Agency, HumanTask, JSONType, Municipality, ProcessInstance


class Family(Base):
    """A family (or a lone minor's household) known to the commission."""

    __tablename__ = "sop_family"
    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    address_registered: Mapped[str | None] = mapped_column(String(500))
    address_actual: Mapped[str | None] = mapped_column(String(500))
    address_key: Mapped[str] = mapped_column(String(500), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    persons: Mapped[list[Person]] = relationship(back_populates="family", lazy="selectin",
                                                 order_by="Person.id")
    municipality: Mapped[Municipality] = relationship(lazy="joined")

    @property
    def children(self) -> list[Person]:
        return [p for p in self.persons if p.kind == "child"]

    @property
    def parents(self) -> list[Person]:
        return [p for p in self.persons if p.kind == "parent"]


def fold(text: str | None) -> str:
    """A search key: lower case, ё as е, one space between words, no punctuation at the ends."""
    return " ".join((text or "").casefold().replace("ё", "е").replace(",", " ").split()).strip(" .")


class Person(Base):
    """A child or a parent (legal representative) of a family."""

    __tablename__ = "sop_person"
    __table_args__ = (Index("ix_sop_person_lookup", "name_key", "birth_date"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("sop_family.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # child | parent
    last_name: Mapped[str] = mapped_column(String(100))
    first_name: Mapped[str] = mapped_column(String(100))
    patronymic: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date | None] = mapped_column(Date)
    occupation: Mapped[str | None] = mapped_column(String(300))
    # "фамилия имя" folded (lower case, ё as е) for the duplicate guard: SQLite's lower() knows only ASCII
    name_key: Mapped[str] = mapped_column(String(200), default="")
    # the day a closure was proposed because this minor turned 18 (once per person)
    age18_proposed_on: Mapped[date | None] = mapped_column(Date)
    family: Mapped[Family] = relationship(back_populates="persons")

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.last_name, self.first_name, self.patronymic) if part)


class Case(Base):
    """A case (личное дело) of a family and/or minor: status, danger level, curator, dates, outcome."""

    __tablename__ = "sop_case"
    __table_args__ = (UniqueConstraint("municipality_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40))
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("sop_family.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="check", index=True)
    danger_level: Mapped[str | None] = mapped_column(String(10))
    sop_confirmed: Mapped[bool | None] = mapped_column(Boolean)
    criteria: Mapped[list[str] | None] = mapped_column(JSONType)
    curator: Mapped[str | None] = mapped_column(String(100))
    received_on: Mapped[date] = mapped_column(Date)
    recognized_on: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    closure_grounds: Mapped[str | None] = mapped_column(String(30))
    closure_reason: Mapped[str | None] = mapped_column(Text)
    programme_result: Mapped[str | None] = mapped_column(String(20))
    ipr_term_months: Mapped[int | None] = mapped_column(Integer)
    consent_obtained: Mapped[bool | None] = mapped_column(Boolean)
    conclusion: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    card: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    programme: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    process_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    family: Mapped[Family] = relationship(lazy="joined")
    municipality: Mapped[Municipality] = relationship(lazy="joined")
    participants: Mapped[list[CaseAgency]] = relationship(lazy="selectin", cascade="all, delete-orphan")


class CaseAgency(Base):
    """An agency taking part in a case (the working group), with its responsible specialist."""

    __tablename__ = "sop_case_agency"
    case_id: Mapped[int] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(20), default="member")  # intake | member
    responsible: Mapped[str | None] = mapped_column(String(100))
    agency: Mapped[Agency] = relationship(lazy="joined")


class IntakeEntry(Base):
    """A line of an agency's primary intake journal (Appendix 1), numbered per agency and year."""

    __tablename__ = "sop_intake_entry"
    __table_args__ = (UniqueConstraint("agency_id", "year", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    received_on: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(500))
    parents_text: Mapped[str | None] = mapped_column(Text)
    children_text: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(500))
    problem: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    threat_to_life: Mapped[bool] = mapped_column(Boolean, default=False)
    family_id: Mapped[int | None] = mapped_column(ForeignKey("sop_family.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("sop_case.id"), index=True)
    forwarded_from_id: Mapped[int | None] = mapped_column(ForeignKey("sop_intake_entry.id"))
    registered_by: Mapped[str | None] = mapped_column(String(100))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    agency: Mapped[Agency] = relationship(lazy="joined")


class Activity(Base):
    """An activity of the individual programme (Appendix 4) and its execution."""

    __tablename__ = "sop_activity"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500))
    content: Mapped[str | None] = mapped_column(Text)
    agency_kind: Mapped[str | None] = mapped_column(String(50))
    responsible: Mapped[str | None] = mapped_column(String(200))
    term: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="planned")  # planned | done | cancelled
    done_on: Mapped[date | None] = mapped_column(Date)


class ExecutionReport(Base):
    """An agency's report on the programme's execution, sent to the curator."""

    __tablename__ = "sop_execution_report"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    text: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    reported_on: Mapped[date] = mapped_column(Date)
    author: Mapped[str | None] = mapped_column(String(100))


class Proposal(Base):
    """An agency's proposals to the programme (Appendix 5)."""

    __tablename__ = "sop_proposal"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    author: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Resolution(Base):
    """A resolution (постановление) of the commission: number, date, meeting, vote."""

    __tablename__ = "sop_resolution"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # recognition | rejection | approval | closure
    number: Mapped[str | None] = mapped_column(String(40))
    adopted_on: Mapped[date] = mapped_column(Date)
    decision: Mapped[str] = mapped_column(String(20))
    votes_for: Mapped[int | None] = mapped_column(Integer)
    votes_against: Mapped[int | None] = mapped_column(Integer)
    present: Mapped[int | None] = mapped_column(Integer)
    grounds: Mapped[str | None] = mapped_column(String(30))
    text: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # the meeting that adopted it (None when a decision was recorded after the fact, without a meeting)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("sop_meeting.id"), index=True)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Document(Base):
    """A generated document of a case file (PDF), stored with the case; regenerated on demand. A document a step
    wrote is first stored as HTML (`pending_html`, with an empty `content` and `size` 0) and its PDF laid out once
    the step has committed (`sop.casefile.render_pending`)."""

    __tablename__ = "sop_document"
    # the documents waiting for their PDF (`sop.casefile.render_waiting`, each sweep): few, however many are stored
    __table_args__ = (Index("ix_sop_document_pending", "id", postgresql_where=text("pending_html IS NOT NULL"),
                            sqlite_where=text("pending_html IS NOT NULL")),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    pending_html: Mapped[str | None] = mapped_column(Text)
    render_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # laying out the pending PDF failed
    source_ref: Mapped[str | None] = mapped_column(String(100))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # the PDF's state as read, the one rule every list (case file, API, CLI) shows: "ready", "pending" (laid out in
    # a moment, or by its first reader) or "failed" (laying it out failed: regenerate it)
    pdf_state: Mapped[str] = column_property(case((pending_html.is_(None), "ready"),
                                                  (render_failed_at.is_not(None), "failed"), else_="pending"))


class Escalation(Base):
    """A missed deadline brought to the attention of the municipality's commission secretary."""

    __tablename__ = "sop_escalation"
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(String(36), unique=True)
    instance_id: Mapped[int | None] = mapped_column(Integer, index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), index=True)
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id"), index=True)
    task_name: Mapped[str] = mapped_column(String(300))
    due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Reconciliation(Base):
    """A quarterly reconciliation of lists for one municipality (P7)."""

    __tablename__ = "sop_reconciliation"
    __table_args__ = (UniqueConstraint("municipality_id", "quarter"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    quarter: Mapped[str] = mapped_column(String(10))
    process_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    results: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class PodrostokCampaign(Base):
    """Operation «Подросток» of one municipality and year (seed 002): its process and the reports it produced
    (`reports`: {"2026-06": App. 3 form, …, "summer": App. 4, "final": App. 5 entered rows, "returns": […]})."""

    __tablename__ = "sop_podrostok_campaign"
    __table_args__ = (UniqueConstraint("municipality_id", "year"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    year: Mapped[int] = mapped_column(Integer)
    process_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reports: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    municipality: Mapped[Municipality] = relationship(lazy="joined")


class PodrostokEntry(Base):
    """A line of an agency's App. 2 for a month: a child's organised form of rest or employment (3.1–3.14, provider,
    dates), or a valid reason why the child had none (row 4.1)."""

    __tablename__ = "sop_podrostok_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("sop_podrostok_campaign.id", ondelete="CASCADE"),
                                             index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    month: Mapped[str] = mapped_column(String(7))  # the reported month, e.g. 2026-06
    person_id: Mapped[int] = mapped_column(ForeignKey("sop_person.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # employment | excuse
    form: Mapped[str | None] = mapped_column(String(5))
    reason: Mapped[str | None] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(300))
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date | None] = mapped_column(Date)
    author: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InstanceScope(Base):
    """Which case and municipality a process instance belongs to: the data scope of its tasks.

    Writing a scope stamps its municipality onto the instance and its task rows (`municipality_id`), which new
    tasks of the instance copy: the inbox filters on that column instead of reading this table.
    """

    __tablename__ = "sop_instance_scope"
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"),
                                             primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), index=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)


class EmergencyRun(Base):
    """When the emergency called inside a process instance (the `emergency_child_safety` call activity of
    `sop_case`) began: written each time one of its steps opens (`sop.emergencies.note_step_opened`), so that the
    red flag reads it instead of the instance's history. It tells the start of the run of emergency steps that
    was open when it was written; while an emergency step of the instance is open, that is the open run."""

    __tablename__ = "sop_emergency_run"
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"),
                                             primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CaseEmergency(Base):
    """A case with an emergency open now, and since when (the earliest of its open emergencies): the rows the red
    flag reads (migration sop_0009). Derived, never edited: `sop.emergencies` recomputes a case's row from its
    instances and open tasks at the end of every change that starts or ends an emergency of the case, opens or
    closes one of its steps, or links an instance to the case."""

    __tablename__ = "sop_case_emergency"
    __table_args__ = (Index("ix_sop_case_emergency_flag", "municipality_id", "since", "case_id"),)
    case_id: Mapped[int] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    since: Mapped[datetime] = mapped_column(UTCDateTime())


@event.listens_for(InstanceScope, "after_insert")
@event.listens_for(InstanceScope, "after_update")
def _stamp_municipality(_mapper, connection, scope: InstanceScope) -> None:
    """The instance and its tasks (also those already created when the process started) carry the municipality."""
    connection.execute(update(ProcessInstance).where(ProcessInstance.id == scope.instance_id)
                       .values(municipality_id=scope.municipality_id))
    connection.execute(update(HumanTask).where(HumanTask.instance_id == scope.instance_id)
                       .values(municipality_id=scope.municipality_id))


class InstanceReader(Base):
    """Who may read a case's process instances: one row per reader and instance of a case (migration sop_0007).

    A reader is an agency (`agency_reader`: its staff, other than the commission, see the case) or a user
    (`user_reader`). The rows are derived, never written by the application: database triggers keep them equal to
    the case's readers — the agencies of its working group (`sop_case_agency`), its curator, and every agency a task
    of the case's instances is or was addressed to, every user who holds or held one (`assignee`) or completed one
    (`completed_by`) — for every instance of the case (`sop_instance_scope`), whichever code changes those rows,
    and whether the instance is running (an open task belongs to a running instance).
    So the data scope of an agency's staff (`webapp.access`) is one index read of the user's two readers instead of
    a rebuild of the agency's cases, working groups and task history in every statement.
    """

    __tablename__ = "sop_instance_reader"
    __table_args__ = (Index("ix_sop_instance_reader_case", "case_id", "reader"),
                      Index("ix_sop_instance_reader_instance", "instance_id"),
                      # the running instances a reader reads: the only ones with open tasks (the inbox)
                      Index("ix_sop_instance_reader_running", "reader", "instance_id", postgresql_where=text("running"),
                            sqlite_where=text("running = 1")))
    reader: Mapped[str] = mapped_column(String(120), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instance.id", ondelete="CASCADE"),
                                             primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"))
    # the instance is running (`process_instance.status`), kept by a trigger as well
    running: Mapped[bool] = mapped_column(Boolean)


def agency_reader(agency_id: int) -> str:
    """The reader of `InstanceReader` that stands for an agency's staff."""
    return f"agency:{agency_id}"


def user_reader(username: str) -> str:
    """The reader of `InstanceReader` that stands for one user."""
    return f"user:{username}"


from .kpi import models as _kpi_models  # noqa: E402, F401 - the KPI plan's tables share the schema
from .meetings import models as _meeting_models  # noqa: E402, F401 - the commission's tables share the schema
