"""SopService: registering signals, the duplicate guard, and the case records kept in step with the processes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine import history
from engine.errors import InvalidInput, NotFound
from engine.models import Agency, HumanTask, ProcessInstance

from . import access as sop_access
from . import casefile, emergencies, form_rules, handlers, podrostok
from . import jobs as periodic
from .documents import labels
from .kpi import campaign as kpi_campaign
from .meetings.service import MeetingService
from .migrations import BRANCH as MIGRATIONS
from .models import Case, CaseAgency, Document, Escalation, Family, InstanceScope, IntakeEntry, Person, fold
from .roles import ROLES
from .schemas import IntakeSchema, load
from .task_context import TaskContext, task_context

if TYPE_CHECKING:
    from engine import ProcessEngine

log = logging.getLogger(__name__)

CASE_PROCESS = "sop_case"
EMERGENCY_PROCESS = "emergency_child_safety"
OPEN_STATUSES = ("check", "recognized")
MUNICIPALITY_WIDE_ROLES = {"commission_secretary", "commission"}  # see every case of the municipality


class DuplicateFound(InvalidInput):
    """The family or a child of a new signal is already known: show the existing case(s) instead."""

    code = "duplicate"

    def __init__(self, duplicates: list[dict[str, Any]]):
        numbers = ", ".join(duplicate_label(d) for d in duplicates)
        super().__init__(f"Семья или ребенок уже известны комиссии: дело {numbers}. Откройте существующее дело "
                         f"или подтвердите, что это другая семья.", {"duplicates": numbers})
        self.duplicates = duplicates

    def to_dict(self) -> dict:
        return {**super().to_dict(), "duplicates": self.duplicates}


def duplicate_label(duplicate: dict[str, Any]) -> str:
    """«№ 6/2026 (Семья Зайцева)», or, for a case the user does not take part in, no number and no family."""
    if duplicate.get("number") is None:
        return "дело, которое ведет комиссия (сведения о нем вашему органу не показываются)"
    return f"№ {duplicate['number']} ({duplicate['family']})"


@dataclass
class IntakeResult:
    intake_id: int
    case_id: int | None
    case_number: str | None
    instance_ids: list[int] = field(default_factory=list)
    attached: bool = False

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def business_key(case_id: int) -> str:
    return f"case-{case_id}"


def case_id_from_business_key(key: str | None) -> int | None:
    if key and key.startswith("case-") and key[5:].isdigit():
        return int(key[5:])
    return None


class SopService:
    """The domain's verbs; installed on an engine by `sop.install`."""

    roles = ROLES  # seeded by the engine's `init_db` (the plugin hook), with the engine's own roles
    migrations = MIGRATIONS  # the domain's Alembic branch, applied by the engine's `init_db` beside its own chain

    def __init__(self, engine: ProcessEngine, jobs: bool = True):
        self.engine = engine
        self.meetings = MeetingService(self)
        self._called_emergency: dict[int, frozenset[str]] = {}  # definition id -> element ids of its emergency
        engine.history.subscribe(history.TASK_CREATED, self._on_task_created)
        engine.history.subscribe(history.TASK_COMPLETED, self._on_task_completed)
        engine.history.subscribe(history.TASK_OVERDUE, self._on_task_overdue)
        engine.history.subscribe(history.TASK_CANCELLED, self._on_task_cancelled)
        for event_type in (history.INSTANCE_STARTED, history.INSTANCE_COMPLETED):
            engine.history.subscribe(event_type, self._on_instance_started_or_ended)
        for event_type in (history.INSTANCE_MIGRATED, history.MIGRATION_REVERTED):  # its steps may differ now
            engine.history.subscribe(event_type, lambda session, event: emergencies.touch(session, event.instance_id))
        if jobs:
            engine.management.register_job("quarterly_reconciliation", lambda: periodic.start_quarterly(self))
            engine.management.register_job("minor_turned_18", lambda: periodic.propose_closure_at_18(self))
            engine.management.register_job("podrostok_campaign", lambda: len(podrostok.start_campaigns(self)))
            engine.management.register_job("kpi_campaign", lambda: kpi_campaign.start_due(self))
            engine.management.register_job("render_documents", lambda: casefile.render_waiting(engine))

    # -- intake -----------------------------------------------------------------------------------------------

    def register_intake(self, username: str, data: dict[str, Any], attach_to_case: int | None = None,
                        new_family: bool = False) -> IntakeResult:
        """Register a signal in the user's agency journal and pass it to the commission: a new case and its
        process start, or — for a known family — the signal joins the existing case. All or nothing."""
        user = self.engine.identity.get_user(username)
        today = self.engine.clock.now().astimezone(ZoneInfo(user.timezone)).date()
        values = load(IntakeSchema(), data, "signal", today=today)
        if user.agency_id is None:
            raise InvalidInput(f"User '{username}' belongs to no agency: only agency staff register signals",
                               {"agency": "required"})
        with self.engine.db.session() as session:
            agency = session.get(Agency, user.agency_id)
            commission = self.commission_of(session, agency.municipality_id)
            if attach_to_case is None and not new_family:
                duplicates = self.find_duplicates(session, agency.municipality_id, values)
                if duplicates:
                    raise DuplicateFound(_as_seen_by(session, user, duplicates))
            entry = self._journal_entry(session, agency, values, username)
            if agency.id != commission.id:  # the agency passes the signal to the commission (§4.4–4.5)
                forwarded = self._journal_entry(session, commission, values, username)
                forwarded.forwarded_from_id = entry.id
                entries = [entry, forwarded]
            else:
                entries = [entry]
            if attach_to_case is not None:
                case = self._attach(session, attach_to_case, agency, entries, values, username)
                return IntakeResult(entry.id, case.id, case.number, attached=True)
            case, instance_ids = self._open_case(session, agency, commission, entries, values, username)
            return IntakeResult(entry.id, case.id, case.number, instance_ids)

    def find_duplicates(self, session: Session, municipality_id: int, values: dict[str, Any]) -> list[dict]:
        """Open cases of the municipality with the same child (name and birth date) or the same address."""
        child_match = [(Person.name_key == fold(f"{c['last_name']} {c['first_name']}"))
                       & (Person.birth_date == c["birth_date"]) for c in values["children"]]
        query = (select(Case).join(Family, Family.id == Case.family_id)
                 .where(Case.municipality_id == municipality_id, Case.status.in_(OPEN_STATUSES))
                 .where(or_(Case.family_id.in_(select(Person.family_id).where(Person.kind == "child")
                                               .where(or_(*child_match))),
                            Family.address_key == fold(values["address"]))))
        return [{"case_id": c.id, "number": c.number, "family": c.family.name, "status": c.status}
                for c in session.scalars(query.order_by(Case.id)).unique()]

    def commission_of(self, session: Session, municipality_id: int) -> Agency:
        commission = session.scalar(select(Agency).where(Agency.municipality_id == municipality_id,
                                                         Agency.kind == "commission").limit(1))
        if commission is None:
            raise InvalidInput("The municipality has no commission (agency of kind 'commission'): add it first",
                               {"agency": "no commission"})
        return commission

    def _journal_entry(self, session: Session, agency: Agency, values: dict[str, Any], username: str) -> IntakeEntry:
        year = values["received_on"].year
        number = (session.scalar(select(func.max(IntakeEntry.number))
                                 .where(IntakeEntry.agency_id == agency.id, IntakeEntry.year == year)) or 0) + 1
        entry = IntakeEntry(agency_id=agency.id, year=year, number=number, received_on=values["received_on"],
                            source=values["source"], parents_text=_people_text(values["parents"]),
                            children_text=_people_text(values["children"]), address=values["address"],
                            problem=values["problem"], threat_to_life=values["threat_to_life"],
                            registered_by=username, registered_at=self.engine.clock.now())
        session.add(entry)
        session.flush()
        return entry

    def _open_case(self, session, agency, commission, entries, values, username) -> tuple[Case, list[int]]:
        family = Family(municipality_id=agency.municipality_id, name=_family_name(values),
                        address_registered=values["address"], address_actual=values.get("address_actual"),
                        address_key=fold(values["address"]),
                        created_at=self.engine.clock.now())
        family.persons = ([Person(kind="child", **_person(c)) for c in values["children"]]
                          + [Person(kind="parent", **_person(p)) for p in values["parents"]])
        session.add(family)
        session.flush()
        received = entries[-1].received_on
        case = Case(number=self._next_case_number(session, agency.municipality_id, received.year),
                    municipality_id=agency.municipality_id, family_id=family.id, status="check",
                    received_on=received, created_at=self.engine.clock.now())
        case.participants = [CaseAgency(agency_id=commission.id, role="commission")]
        if agency.id != commission.id:
            case.participants.append(CaseAgency(agency_id=agency.id, role="intake", responsible=username))
        session.add(case)
        session.flush()
        for entry in entries:
            entry.family_id, entry.case_id = family.id, case.id
        variables = {"case_id": case.id, "intake_id": entries[-1].id, "received": received.isoformat(),
                     "municipality": case.municipality.name, "family_name": family.name}
        tz = commission.timezone
        instance_id = self.engine.runtime.start(CASE_PROCESS, variables, business_key=business_key(case.id),
                                                started_by=username, timezone=tz, session=session)
        case.process_instance_id = instance_id
        instance_ids = [instance_id]
        if values["threat_to_life"]:
            instance_ids.append(self.engine.runtime.start(EMERGENCY_PROCESS, variables,
                                                          business_key=business_key(case.id),
                                                          started_by=username, timezone=tz, session=session))
        for started in instance_ids:
            session.add(InstanceScope(instance_id=started, case_id=case.id, municipality_id=case.municipality_id))
        return case, instance_ids

    def _attach(self, session, case_id, agency, entries, values, username) -> Case:
        case = session.get(Case, case_id)
        if case is None or case.municipality_id != agency.municipality_id:
            raise NotFound(f"No case {case_id} in this municipality")
        for entry in entries:
            entry.family_id, entry.case_id = case.family_id, case.id
        # the signal waits for the commission (`repeated_signals`); it does not open the case file to an agency
        # outside the working group: the secretary adds the agency to the group if it is to take part
        if values["threat_to_life"] and case.process_instance_id:
            self.engine.runtime.send_signal("threat_to_life", {"threat_reported_on": values["received_on"]
                                                               .isoformat()},
                                            instance_id=case.process_instance_id, actor=username, session=session)
        return case

    @staticmethod
    def _next_case_number(session: Session, municipality_id: int, year: int) -> str:
        count = session.scalar(select(func.count()).select_from(Case)
                               .where(Case.municipality_id == municipality_id, Case.number.like(f"%/{year}"))) or 0
        return f"{count + 1}/{year}"

    # -- listeners --------------------------------------------------------------------------------------------

    def _on_task_created(self, session: Session, event) -> None:
        """A step of the emergency called inside a case process opened: its run's start goes on a row and the case's
        open emergency is recomputed at commit (`sop.emergencies`). Other tasks cost a look-up in memory: the
        instance row is in the session, and the element ids of the emergency a version calls are read from its
        spec once per version."""
        element = (event.data or {}).get("element")
        instance = session.get(ProcessInstance, event.instance_id) if element and event.instance_id else None
        if instance is not None and element in self._emergency_steps(instance):
            emergencies.note_step_opened(session, instance.id, event.task_id, event.at,
                                         self._emergency_steps(instance))
            emergencies.touch(session, instance.id)

    def _on_task_cancelled(self, session: Session, event) -> None:
        """A step of a called emergency cancelled (a boundary event, a migration): the emergency may have ended."""
        self._step_closed(session, event.instance_id, (event.data or {}).get("element"))

    def _on_instance_started_or_ended(self, session: Session, event) -> None:
        """An emergency of its own started or ended (its case is known once the instance is linked to it)."""
        instance = session.get(ProcessInstance, event.instance_id) if event.instance_id else None
        if instance is not None and instance.process_key == emergencies.EMERGENCY_PROCESS:
            emergencies.touch(session, instance.id)

    def _step_closed(self, session: Session, instance_id: int | None, element: str | None) -> None:
        instance = session.get(ProcessInstance, instance_id) if element and instance_id else None
        if instance is not None and element in self._emergency_steps(instance):
            emergencies.touch(session, instance.id)

    def _emergency_steps(self, instance: ProcessInstance) -> frozenset[str]:
        """The element ids of the emergency the instance's version calls (read from its spec once per version)."""
        elements = self._called_emergency.get(instance.definition_id)
        if elements is None:
            elements = emergencies.called_elements(self.engine.repository.spec_json(instance.definition_id))
            self._called_emergency[instance.definition_id] = elements
        return elements

    def _on_task_completed(self, session: Session, event) -> None:
        task = session.get(HumanTask, event.task_id)
        if task is None:
            return
        self._step_closed(session, event.instance_id, task.element_id)
        if not task.form_key:
            return
        form_rules.check(session, task, event.instance_id, self.engine.clock.now(), event.data or {})
        handler = handlers.HANDLERS.get(task.form_key)
        if handler is None:
            return
        instance = session.get(ProcessInstance, event.instance_id)
        case_id = case_id_from_business_key(instance.business_key if instance else None)
        case = session.get(Case, case_id) if case_id else None
        handlers.Context(self, session, case, task, event.data or {}, event.actor, instance).run(handler)

    def _on_task_overdue(self, session: Session, event) -> None:
        """Every missed deadline is escalated to the commission secretary of the case's municipality."""
        task = session.get(HumanTask, event.task_id)
        instance = session.get(ProcessInstance, event.instance_id) if event.instance_id else None
        case_id = case_id_from_business_key(instance.business_key if instance else None)
        case = session.get(Case, case_id) if case_id else None
        # A task escalates once; if its deadline moved later (a migration to a new version re-evaluates it) and the
        # new deadline is missed too, the same escalation is brought up again with the new due date.
        escalation = session.scalar(select(Escalation).where(Escalation.task_id == event.task_id))
        if escalation is None:
            escalation = Escalation(task_id=event.task_id)
            session.add(escalation)
        escalation.instance_id = event.instance_id
        escalation.case_id = case.id if case else None
        escalation.municipality_id = case.municipality_id if case else None
        escalation.task_name = task.name if task else ""
        escalation.due = task.due if task else None
        escalation.created_at = self.engine.clock.now()
        escalation.acknowledged_by = escalation.acknowledged_at = None

    # -- queries ----------------------------------------------------------------------------------------------

    def case(self, case_id: int) -> dict[str, Any]:
        with self.engine.db.session() as session:
            case = session.get(Case, case_id)
            if case is None:
                raise NotFound(f"No case {case_id}")
            return case_summary(case)

    def documents(self, case_id: int) -> list[dict[str, Any]]:
        """The case file's documents, newest first (without their content)."""
        with self.engine.db.session() as session:
            rows = session.execute(select(Document.id, Document.kind, Document.title, Document.filename,
                                          Document.size, Document.pdf_state, Document.created_at,
                                          Document.created_by)
                                   .where(Document.case_id == case_id).order_by(Document.id.desc())).all()
            return [{"id": r.id, "kind": r.kind, "title": r.title, "filename": r.filename, "size": r.size,
                     "pdf_state": r.pdf_state, "pending": r.pdf_state != "ready",
                     "created_at": r.created_at.isoformat(),
                     "created_by": r.created_by} for r in rows]

    def document(self, document_id: int) -> tuple[str, bytes]:
        with self.engine.db.session() as session:
            row = session.get(Document, document_id)
            if row is None:
                raise NotFound(f"No document {document_id}")
            return row.filename, casefile.pdf_of(session, row)

    def task_context(self, task_id: str, user: Any) -> TaskContext:
        """What a task's page shows above its form and starts it with (`sop.task_context`), as `user` (an
        `sop.access.AccessUser` or a username) may see it; the caller has checked that they may work on it."""
        with self.engine.db.session() as session:
            row = session.get(HumanTask, str(task_id))
            if row is None:
                raise NotFound(f"No task {task_id}")
            return task_context(self, session, row, user)

    def escalations(self, municipality_id: int | None = None, open_only: bool = True) -> list[dict]:
        with self.engine.db.session() as session:
            query = select(Escalation)
            if municipality_id is not None:
                query = query.where(Escalation.municipality_id == municipality_id)
            if open_only:
                query = query.where(Escalation.acknowledged_at.is_(None))
            return [{"id": e.id, "task_id": e.task_id, "case_id": e.case_id, "task_name": e.task_name,
                     "due": e.due.isoformat() if e.due else None, "created_at": e.created_at.isoformat()}
                    for e in session.scalars(query.order_by(Escalation.id))]


def case_summary(case: Case) -> dict[str, Any]:
    family = case.family
    return {
        "id": case.id, "number": case.number, "status": case.status, "danger_level": case.danger_level,
        "sop_confirmed": case.sop_confirmed, "curator": case.curator, "municipality": case.municipality.name,
        "family": {"id": family.id, "name": family.name, "address": family.address_registered,
                   "children": [{"id": p.id, "name": p.full_name, "birth_date": _iso(p.birth_date)}
                                for p in family.children],
                   "parents": [{"id": p.id, "name": p.full_name, "birth_date": _iso(p.birth_date)}
                               for p in family.parents]},
        "received_on": _iso(case.received_on), "recognized_on": _iso(case.recognized_on),
        "closed_on": _iso(case.closed_on), "closure_grounds": case.closure_grounds,
        "programme_result": case.programme_result, "process_instance_id": case.process_instance_id,
        "status_label": labels.case_status(case.status, case.programme),
        "agencies": [{"id": p.agency_id, "name": p.agency.name, "role": p.role} for p in case.participants],
    }


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _person(values: dict[str, Any]) -> dict[str, Any]:
    person = {k: (v.strip() if isinstance(v, str) else v) for k, v in values.items()
              if k in ("last_name", "first_name", "patronymic", "birth_date", "occupation")}
    person["name_key"] = fold(f"{person['last_name']} {person['first_name']}")
    return person


def _people_text(people: list[dict[str, Any]]) -> str:
    return "; ".join(" ".join(filter(None, (p["last_name"], p["first_name"], p.get("patronymic"))))
                     + (f", {p['birth_date'].strftime('%d.%m.%Y')}" if p.get("birth_date") else "")
                     for p in people)


def _family_name(values: dict[str, Any]) -> str:
    first = (values["parents"] or values["children"])[0]
    return f"Семья {first['last_name'].strip()}"


def _as_seen_by(session: Session, user: Any, duplicates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The matching cases as the registering user may know them: a case they do not take part in (nor see as the
    commission) keeps only its id, to attach the signal to; its number, family and status are not shown."""
    if set(user.roles) & MUNICIPALITY_WIDE_ROLES:
        return duplicates
    ids = [d["case_id"] for d in duplicates]
    seen = set(session.scalars(sop_access.cases_taken_part_in(select(Case.id).where(Case.id.in_(ids)),
                                                                user.username, user.agency_id)))
    return [d if d["case_id"] in seen else {"case_id": d["case_id"], "number": None, "family": None,
                                            "status": None} for d in duplicates]
