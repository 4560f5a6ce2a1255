"""The context of a task: what the person who decides sees above the form, and what the form starts with.

`task_context` answers, by the task's form key:

- `panels`: read-only blocks with a title, key/value rows and/or a small table, in Russian (the check's conclusion
  on the commission's decision, the agencies' proposals on the draft programme, the round's reports on the
  curator's summary…);
- `defaults`: initial values of form fields (the task page puts them under the saved draft: draft > defaults >
  process variables > the form's `defaultValue`);
- `options`: the options of form fields that name a form-js `valuesKey` instead of static `values`
  (`{values_key: [{"value": …, "label": …}]}`), e.g. the municipality's curators by full name.

Data scope: the caller has checked that the user may work on the task. The panels show only what the user's role
may see of the case file (`sop.access.CaseAccess`): the commission and the case's curator see every agency's
proposals and reports; an agency specialist sees their own agency's only, and never the registration card.

No Flask here: the web pages and the REST API call it through `SopService.task_context`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine import history, task_query
from engine.forms import input_fields
from engine.models import Agency, HistoryEvent, HumanTask, Municipality, ProcessInstance, User, UserRole

from . import PLUGIN, handlers, lookups
from .access import AccessUser, CaseAccess, cases_taken_part_in
from .casefile import activity_term
from .document_facts import add_months, programme_agencies
from .documents import labels
from .emergencies import EMERGENCY_PROCESS, emergency_elements
from .jobs import eighteenth_birthday, quarter_of, quarter_start
from .models import (
    Activity,
    Case,
    CaseAgency,
    ExecutionReport,
    InstanceScope,
    IntakeEntry,
    Proposal,
    Reconciliation,
    Resolution,
)

if TYPE_CHECKING:
    from engine import ProcessEngine

    from .service import SopService

# Roles that see the whole municipality (as `webapp.access.CurrentUser.municipality_wide`, for a user given by name).
MUNICIPALITY_ROLES = frozenset({"commission_secretary", "commission"})
REPORT_STATUSES = {"done": "выполнено", "partly": "выполнено частично", "not_done": "не выполнено"}


@dataclass
class Panel:
    """A titled read-only block: key/value rows, a small table (columns and rows of text), or both."""

    key: str
    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)
    note: str | None = None

    def row(self, label: str, value: Any) -> None:
        """Add a key/value row when there is something to show (several values: one per line, bulleted)."""
        if isinstance(value, (list, tuple)):
            items = [_text(v) for v in value if _text(v)]
            value = "\n".join(f"• {item}" for item in items) if len(items) > 1 else items
        text = _text(value)
        if text:
            self.rows.append((label, text))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title,
                "rows": [{"label": label, "value": value} for label, value in self.rows],
                "columns": list(self.columns), "table": [list(r) for r in self.table], "note": self.note}


@dataclass
class TaskContext:
    panels: list[Panel] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    options: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def panel(self, key: str) -> Panel | None:
        return next((p for p in self.panels if p.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return {"panels": [p.to_dict() for p in self.panels], "defaults": dict(self.defaults),
                "options": {key: [dict(o) for o in values] for key, values in self.options.items()}}


@dataclass(frozen=True)
class ContextUser:
    """A user given by name, described as the access rules need (`sop.access.AccessUser`)."""

    username: str
    roles: Set[str]
    agency_id: int | None
    agency_kind: str | None
    municipality_wide: bool

    @classmethod
    def load(cls, session: Session, username: str) -> ContextUser:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            return cls(username, frozenset(), None, None, False)
        roles = frozenset(user.roles)
        kind = user.agency.kind if user.agency is not None else None
        wide = bool(roles & MUNICIPALITY_ROLES) or ("manager" in roles and kind == "commission")
        return cls(user.username, roles, user.agency_id, kind, wide)


@dataclass
class _Scope:
    """What a builder works with: the task, its case (if any), the user and what they may see of the case."""

    engine: ProcessEngine
    session: Session
    task: Any  # a HumanTask row (or an object with its attributes)
    user: AccessUser
    case: Case | None
    municipality_id: int | None
    definition_id: int | None

    @property
    def today(self) -> date:
        """Today by the engine clock, in the municipality's time zone."""
        return self.engine.clock.now().astimezone(_zone(self)).date()

    @property
    def access(self) -> CaseAccess | None:
        return CaseAccess.of(self.user, self.case) if self.case is not None else None

    def form(self, key: str) -> dict[str, Any]:
        """A form of the task's process version (the check's form gives the conclusion's labels)."""
        return self.engine.repository.form(key, self.definition_id) or {"components": []}

    def agency(self, agency_id: int | None) -> Agency | None:
        return self.session.get(Agency, agency_id) if agency_id is not None else None

    def option_label(self, form_key: str, field: str, code: Any, fallback: dict[str, str] | None = None) -> str:
        """The label a form of this process version gives an option's value (the form owns its labels)."""
        for option in input_fields(self.form(form_key)).get(field, {}).get("values") or []:
            if isinstance(option, dict) and option.get("value") == code:
                return str(option.get("label") or code)
        return (fallback or {}).get(str(code), str(code))


def task_context(service_or_engine: SopService | ProcessEngine, session: Session, task_row: Any,
                 user: AccessUser | str) -> TaskContext:
    """The panels, defaults and options of a task's page, chosen by its form key (empty for other forms)."""
    engine = getattr(service_or_engine, "engine", service_or_engine)
    builder = BUILDERS.get(task_row.form_key or "")
    sent = SENT_ON_COMPLETION.get(task_row.form_key or "")
    if builder is None and sent is None:
        return TaskContext()
    if isinstance(user, str):
        user = ContextUser.load(session, user)
    case_id, municipality_id = session.execute(
        select(InstanceScope.case_id, InstanceScope.municipality_id)
        .where(InstanceScope.instance_id == task_row.instance_id)).first() or (None, None)
    definition_id, business_key = session.execute(
        select(ProcessInstance.definition_id, ProcessInstance.business_key)
        .where(ProcessInstance.id == task_row.instance_id)).first() or (None, None)
    if case_id is None and business_key and business_key.startswith("case-") and business_key[5:].isdigit():
        case_id = int(business_key[5:])
    case = session.get(Case, case_id) if case_id is not None else None
    if case is not None:
        municipality_id = case.municipality_id
    scope = _Scope(engine, session, task_row, user, case, municipality_id, definition_id)
    context = TaskContext()
    if builder is not None:
        builder(scope, context)
    if sent is not None:  # the step itself sends it: today, in the municipality's time zone
        context.defaults.setdefault(sent, scope.today.isoformat())
    return context


# The date fields that say when the step's information or document went out, which is when the step is completed
# in the system: they start at today (the person may enter an earlier day). The dates of what happened outside the
# system (a visit, an act, a meeting) start empty.
SENT_ON_COMPLETION = {
    "sop_programme_dispatch": "programme_sent_date",
    "sop_closure_dispatch": "copies_sent_date",
    "sop_execution_report": "report_date",
    "sop_materials": "materials_date",
    "em_police_report": "police_report_date",
    "em_social_inspection": "social_report_date",
    "em_inform_commission": "inform_date",
    "rec_send_databank": "databank_sent_date",
    "kpi_send": "sent_on",
    "pod_monthly_report": "report_sent_date",
    "pod_summer_summary": "summary_sent_date",
    "pod_final_report": "final_sent_date",
}


# -- sop_check: the signal ----------------------------------------------------------------------------------------

def signal_panel(scope: _Scope, entry: IntakeEntry, entries: list[IntakeEntry], title: str) -> Panel:
    """A journal entry as the agency that acts on it reads it: when it came, from whom, what it says. `entries` are
    the case's entries, to name the agency that passed it on."""
    panel = Panel("signal", title)
    panel.row("Поступила", _date(entry.received_on))
    registered = entry.registered_at.astimezone(_zone(scope)).strftime("%d.%m.%Y %H:%M")
    panel.row("Зарегистрирована", f"{registered}, {entry.agency.name}, № {entry.number}/{entry.year}")
    panel.row("Источник информации", entry.source)
    origin = next((e for e in entries if e.id == entry.forwarded_from_id), None)
    if origin is not None:
        panel.row("Передана органом", origin.agency.name)
    panel.row("Суть проблемы", entry.problem)
    panel.row("Адрес", entry.address)
    panel.row("Дети", entry.children_text)
    panel.row("Родители (законные представители)", entry.parents_text)
    if entry.threat_to_life:
        panel.row("Угроза жизни или здоровью", "да")
    return panel


def _check(scope: _Scope, context: TaskContext) -> None:
    case = scope.case
    if case is None:
        return
    entries = scope.session.scalars(select(IntakeEntry).where(IntakeEntry.case_id == case.id)
                                    .order_by(IntakeEntry.id)).all()
    entry = next((e for e in entries if e.agency.kind == "commission"), entries[0] if entries else None)
    family = case.family
    if entry is not None:
        context.panels.append(signal_panel(scope, entry, entries,
                                           "Поступившая информация (журнал первичного учета)"))
    children, parents = family.children, family.parents
    values = {
        "minor_name": "; ".join(_person(p) for p in children) or (entry.children_text if entry else None),
        "parents_names": "; ".join(p.full_name for p in parents) or (entry.parents_text if entry else None),
        "family_composition": "\n".join(
            ", ".join(filter(None, (f"{'ребенок' if p.kind == 'child' else 'родитель (законный представитель)'}: "
                                    f"{p.full_name}", _date(p.birth_date), p.occupation)))
            for p in [*parents, *children]),
        "address_registered": family.address_registered or (entry.address if entry else None),
        "address_actual": family.address_actual,
        "source": entry.source if entry else None,
        "information_source": entry.source if entry else None,
    }
    fields = input_fields(scope.form("sop_check"))
    context.defaults.update({key: value for key, value in values.items() if key in fields and value})


def _registration_card(scope: _Scope, context: TaskContext) -> None:
    """The card starts from the signal: detected when the first agency received it, and by that agency (the one
    that passed it to the commission; else the source the journal names); and from what the check and the
    recognition recorded (`_card_from_case`)."""
    case = scope.case
    if case is None:
        return
    _card_from_case(scope, context)
    first = scope.session.scalars(select(IntakeEntry).where(IntakeEntry.case_id == case.id)
                                  .order_by(IntakeEntry.received_on, IntakeEntry.id).limit(1)).first()
    if first is None:
        return
    origin = scope.session.get(IntakeEntry, first.forwarded_from_id) if first.forwarded_from_id else None
    found = origin or first
    context.defaults["detection_date"] = found.received_on.isoformat()
    detected_by = found.agency.name if found.agency.kind != "commission" else found.source
    if detected_by:
        context.defaults["detected_by"] = detected_by


def _card_from_case(scope: _Scope, context: TaskContext) -> None:
    """What the case already knows of the card: the kinds of the situation from the criteria of the check's
    conclusion, the commission's register from the recognition (date, number, criteria), the actual address (the
    registered one when the case says they are the same)."""
    case = scope.case
    check = case.conclusion or {}
    criteria = case.criteria if case.criteria is not None else check.get("family_criteria") or []
    kinds = [_CARD_SITUATION_OF[c] for c in criteria if c in _CARD_SITUATION_OF]
    if kinds:
        context.defaults["sop_kind"] = kinds
    resolution = _latest_resolution(scope, "recognition")
    if resolution is not None:
        reasons = "; ".join(labels.FAMILY_CRITERIA_SHORT[c] for c in criteria if c in labels.FAMILY_CRITERIA_SHORT)
        context.defaults["agency_registrations"] = ", ".join(part for part in (
            f"КДН: {_date(resolution.adopted_on)}", f"протокол № {resolution.number}" if resolution.number else "",
            "признание находящимися в социально опасном положении" + (f" ({reasons})" if reasons else ""))
            if part)
    family = case.family
    registered = str(check.get("address_registered") or "").strip() or family.address_registered
    actual = str(check.get("address_actual") or "").strip() or family.address_actual or registered
    if actual:
        context.defaults["address_actual"] = actual


# the card's kinds of the situation (forms/sop_registration_card.json `sop_kind`) by the check's criteria
_CARD_SITUATION_OF = {"c1": "evasion", "c2": "evasion_addiction", "c3": "involvement", "c4": "unlawful_acts",
                      "c5": "minor_alcohol", "c6": "minor_drugs", "c7": "violence", "c8": "no_home"}


def _check_assign(scope: _Scope, context: TaskContext) -> None:
    if scope.municipality_id is None:
        return
    agencies = scope.session.scalars(select(Agency).where(Agency.municipality_id == scope.municipality_id)
                                     .order_by(Agency.name, Agency.id)).unique().all()
    context.options["agency_options"] = [{"value": str(a.id), "label": a.name} for a in agencies]


# -- sop_recognition: the conclusion, the family, the curators ---------------------------------------------------

def _recognition(scope: _Scope, context: TaskContext) -> None:
    if scope.case is not None:
        context.panels.append(conclusion_panel(scope))
        context.panels.append(family_panel(scope.case))
    context.options["curator_options"] = curator_options(scope.session, scope.municipality_id)


def conclusion_panel(scope: _Scope) -> Panel:
    """Appendix 2, the conclusion of the check: danger level, criteria, findings (the check form's labels)."""
    case = scope.case
    panel = Panel("conclusion", "Заключение по результатам проверки (приложение 2)")
    data = case.conclusion or {}
    if not data and case.danger_level is None:
        panel.note = "Проверка еще не завершена: заключения нет."
        return panel
    def label_of(key: str, code: Any, fallback: dict[str, str] | None = None) -> str:
        return scope.option_label("sop_check", key, code, fallback)

    level = case.danger_level or data.get("danger_level")
    panel.row("Уровень опасности", labels.DANGER_LEVELS.get(level or "", level))
    confirmed = case.sop_confirmed if case.sop_confirmed is not None else data.get("sop_confirmed")
    if confirmed is not None:
        panel.row("Социально опасное положение", "подтверждено" if confirmed else "не подтверждено")
    criteria = case.criteria if case.criteria is not None else data.get("family_criteria") or []
    panel.row("Критерии СОП", [label_of("family_criteria", c, labels.FAMILY_CRITERIA) for c in criteria])
    panel.row("Заключение", data.get("conclusion"))
    panel.row("Условия жизни несовершеннолетних", data.get("living_conditions"))
    housing = [label_of("housing_type", data["housing_type"]) if data.get("housing_type") else None,
               f"{_number(data['housing_area'])} кв. м" if data.get("housing_area") not in (None, "") else None,
               label_of("housing_amenities", data["housing_amenities"]) if data.get("housing_amenities") else None]
    panel.row("Жилищные условия", ", ".join(h for h in housing if h))
    if data.get("sanitary_state"):
        panel.row("Санитарное состояние жилья", label_of("sanitary_state", data["sanitary_state"]))
    panel.row("Доход семьи", data.get("family_income"))
    if data.get("income_per_capita") not in (None, ""):
        panel.row("Среднедушевой доход", f"{_number(data['income_per_capita'])} руб.")
    panel.row("Меры социальной поддержки", data.get("social_support"))
    panel.row("Руководитель", data.get("head_name"))
    panel.row("Дата заключения", _date(data.get("conclusion_date")))
    return panel


def family_panel(case: Case) -> Panel:
    family = case.family
    panel = Panel("family", f"{family.name}: дети и родители", columns=["", "Ф.И.О.", "Дата рождения", "Занятость"])
    panel.row("Адрес по прописке", family.address_registered)
    if family.address_actual and family.address_actual != family.address_registered:
        panel.row("Адрес фактический", family.address_actual)
    for person in [*family.children, *family.parents]:
        panel.table.append(["ребенок" if person.kind == "child" else "родитель", person.full_name,
                            _date(person.birth_date), person.occupation or ""])
    return panel


def curator_options(session: Session, municipality_id: int | None) -> list[dict[str, str]]:
    """Active users with the curator role at an agency of the municipality: value username, label full name and
    agency."""
    if municipality_id is None:
        return []
    rows = session.execute(
        select(User.username, User.full_name, Agency.name)
        .join(UserRole, UserRole.user_id == User.id).join(Agency, Agency.id == User.agency_id)
        .where(UserRole.role_code == "curator", User.is_active.is_(True), Agency.municipality_id == municipality_id)
        .order_by(User.full_name, User.username)).all()
    return [{"value": username, "label": f"{full_name or username} ({agency})"} for username, full_name, agency in rows]


# -- the programme: proposals, draft, approval -------------------------------------------------------------------

def _programme_draft(scope: _Scope, context: TaskContext) -> None:
    case = scope.case
    if case is None:
        return
    proposals = _visible_proposals(scope)
    panel = Panel("proposals", "Предложения органов системы профилактики в программу",
                  columns=["Орган", "Ситуация в семье", "Задачи", "Мероприятия", "Срок"])
    for agency, data in proposals:
        activities = [line.strip() for line in str(data.get("proposal_activities") or "").splitlines()
                      if re.search(r"\w", line)]  # not the lines that name no activity («;;»)
        panel.table.append([agency, _text(data.get("proposal_situation")), _text(data.get("proposal_tasks")),
                            "\n".join(activities), _text(data.get("proposal_term"))])
    if not proposals:
        panel.note = "Предложений органов нет."
    context.panels.append(panel)
    programme = case.programme or {}
    if programme.get("programme_activities"):  # a correction or a reworked draft: start from the draft as it is
        context.defaults["programme_activities"] = programme["programme_activities"]
        return
    context.defaults.update(_family_information(case))
    if not proposals:
        return
    programme_term = _ipr_end(case)
    lines = []
    for agency, data in proposals:
        term = _plain(data.get("proposal_term")) or programme_term
        for line in str(data.get("proposal_activities") or "").splitlines():
            activity = proposed_activity(line, agency, term)
            if activity:
                lines.append(activity)
    context.defaults["programme_activities"] = "\n".join(lines)
    for key, source in (("programme_situation", "proposal_situation"), ("programme_tasks", "proposal_tasks")):
        text = "\n".join(f"{agency}: {str(data[source]).strip()}" for agency, data in proposals
                         if str(data.get(source) or "").strip())
        if text:
            context.defaults[key] = text


def proposed_activity(line: str, agency: str, term: str) -> str:
    """A line of an agency's proposals («мероприятие; содержание; срок», as the proposals form asks) as a line of
    the draft («мероприятие; содержание деятельности; исполнитель; срок», `casefile.activities_from_form`): each
    part in its column, the proposing agency the executor, the activity's own term, else `term` (the proposal's
    term for the whole programme). Empty for a line that names no activity (blank, «;;»)."""
    parts = [_plain(part) for part in line.split(";")]
    title = parts[0]
    if not re.search(r"\w", title):
        return ""
    content = ", ".join(p for p in parts[1:-1] if p) if len(parts) > 2 else (parts[1] if len(parts) > 1 else "")
    own_term = parts[-1] if len(parts) > 2 else ""
    return f"{title}; {content}; {_plain(agency)}; {own_term or term}".rstrip("; ")


def _ipr_end(case: Case) -> str:
    """The end of the case's individual preventive work, «до 23.06.2026» (empty before the recognition)."""
    if case.recognized_on is None or not case.ipr_term_months:
        return ""
    return f"до {_date(add_months(case.recognized_on, case.ipr_term_months))}"


# Russian patronymics tell a parent's sex (-вна, -чна / -вич, -ич; the Turkic кызы / оглы, улы, уулу)
_FEMALE_PATRONYMIC = ("вна", "чна", "шна", "кызы", "гызы")
_MALE_PATRONYMIC = ("ич", "оглы", "улы", "уулу")


def _family_information(case: Case) -> dict[str, str]:
    """The draft's «Сведения о семье» from the case's record: each person as «Ф.И.О., дата рождения, занятость».
    A parent is the mother or the father by the patronymic; a parent without one is left for the curator."""
    def line(person: Any) -> str:
        return ", ".join(part for part in (person.full_name, _date(person.birth_date) if person.birth_date else "",
                                           (person.occupation or "").strip()) if part)

    mothers, fathers = [], []
    for parent in case.family.parents:
        patronymic = (parent.patronymic or "").strip().lower()
        if patronymic.endswith(_FEMALE_PATRONYMIC):
            mothers.append(line(parent))
        elif patronymic.endswith(_MALE_PATRONYMIC):
            fathers.append(line(parent))
    values = {"mother_info": "; ".join(mothers), "father_info": "; ".join(fathers),
              "child_info": "; ".join(line(child) for child in case.family.children)}
    return {key: value for key, value in values.items() if value}


def _latest_resolution(scope: _Scope, kind: str) -> Resolution | None:
    """The case's latest resolution of this kind (recognition, approval, closure…)."""
    return scope.session.scalar(select(Resolution).where(Resolution.case_id == scope.case.id, Resolution.kind == kind)
                                .order_by(Resolution.id.desc()).limit(1))


def _resolution_title(resolution: Resolution | None, adopted_on: date | None = None) -> str:
    """«№ 45/3, от 23.12.2025» (the number when it has one; `adopted_on` without a resolution on record)."""
    adopted = resolution.adopted_on if resolution is not None else adopted_on
    return ", ".join(filter(None, (f"№ {resolution.number}" if resolution is not None and resolution.number else "",
                                   f"от {_date(adopted)}" if adopted is not None else "")))


# the resolution a dispatch sends copies of: its kind, the panel's title and the labels of its decisions
_DISPATCHED = {"programme_recipients": ("approval", "Постановление об утверждении программы",
                                        labels.APPROVAL_DECISIONS),
               "copies_recipients": ("closure", "Постановление о снятии с учета", labels.CLOSURE_DECISIONS)}


def _working_group_recipients(key: str) -> Callable[[_Scope, TaskContext], None]:
    """A dispatch whose form asks to whom the document went (`key`) starts from the working group's agencies;
    above it, the resolution it sends: its number and date, what it decided and, for a closure, on what grounds."""
    kind, title, decisions = _DISPATCHED[key]

    def build(scope: _Scope, context: TaskContext) -> None:
        if scope.case is None:
            return
        names = programme_agencies(scope.case)
        if names:
            context.defaults[key] = "\n".join(names)
        resolution = _latest_resolution(scope, kind)
        if resolution is None:
            return
        panel = Panel("resolution", title)
        panel.row("Постановление", _resolution_title(resolution))
        panel.row("Решение", decisions.get(resolution.decision, resolution.decision))
        if resolution.grounds:
            panel.row("Основание", scope.option_label("sop_closure_decision", "grounds", resolution.grounds,
                                                      labels.CLOSURE_GROUNDS_SHORT))
        context.panels.append(panel)
    return build


def _visible_proposals(scope: _Scope) -> list[tuple[str, dict[str, Any]]]:
    """(agency name, proposal data) of the latest proposal of each agency the user may read, in order of arrival."""
    rows = scope.session.scalars(select(Proposal).where(Proposal.case_id == scope.case.id)
                                 .order_by(Proposal.id)).all()
    access = scope.access
    latest: dict[Any, Proposal] = {}
    for proposal in rows:
        if access.sees_proposal(proposal.agency_id):
            latest.pop(proposal.agency_id or f"p{proposal.id}", None)
            latest[proposal.agency_id or f"p{proposal.id}"] = proposal
    result = []
    for proposal in latest.values():
        agency = scope.agency(proposal.agency_id)
        data = proposal.data or {}
        result.append((agency.name if agency is not None else _text(data.get("agency_name")) or "—", data))
    return result


def _programme_approval(scope: _Scope, context: TaskContext) -> None:
    case = scope.case
    if case is None:
        return
    programme = case.programme or {}
    panel = Panel("programme", "Проект индивидуальной программы", columns=["№", "Мероприятие", "Исполнитель", "Срок"])
    panel.row("Цель программы", programme.get("goal"))
    panel.row("Заключение консилиума", programme.get("consilium_conclusion"))
    panel.row("Ситуация в семье", programme.get("programme_situation"))
    panel.row("Задачи программы", programme.get("programme_tasks"))
    activities = _activities(scope)
    for activity in activities:
        panel.table.append([str(activity.number), activity.title, _executor(scope, activity), _term(activity)])
    if not activities:
        panel.note = "В проекте программы нет мероприятий."
    context.panels.append(panel)


def _activities(scope: _Scope, kind: str | None = None, by_kind: bool = False) -> list[Activity]:
    query = (select(Activity).where(Activity.case_id == scope.case.id, Activity.status != "cancelled")
             .order_by(Activity.number, Activity.id))
    if by_kind:
        query = query.where(Activity.agency_kind == kind)
    return list(scope.session.scalars(query))


def _executor(scope: _Scope, activity: Activity) -> str:
    """The working-group agency of the activity's kind and the executor the draft names (once when they agree)."""
    agency = None
    if activity.agency_kind:
        agency = next((p.agency.name for p in scope.case.participants if p.agency.kind == activity.agency_kind),
                      labels.AGENCY_REGISTERS.get(activity.agency_kind, activity.agency_kind))
    responsible = (activity.responsible or "").strip()
    if agency and responsible and (responsible.casefold() in agency.casefold()
                                   or agency.casefold() in responsible.casefold()):
        return responsible if len(responsible) > len(agency) else agency
    return ", ".join(part for part in (agency, responsible) if part)


def _term(activity: Activity) -> str:
    return _date(activity_term(activity))


# -- execution: the agency's report, the curator's summary -------------------------------------------------------

def _agency_name(scope: _Scope, agency: Agency | None) -> str | None:
    """The name of the agency a task is addressed to, else of the user's agency: who fills the form in."""
    if agency is None and scope.user.agency_id is not None:
        return scope.agency(scope.user.agency_id).name
    return agency.name if agency is not None else None


def _specialist(scope: _Scope, context: TaskContext, key: str) -> None:
    """An agency's answer names its responsible specialist: by default the person filling the form in (their
    full name as their account has it; nothing when it has none)."""
    user = lookups.user_named(scope.session, scope.user.username)
    if user is not None and user.full_name:
        context.defaults[key] = user.full_name


def _materials(scope: _Scope, context: TaskContext) -> None:
    _specialist(scope, context, "materials_specialist")


def _proposals(scope: _Scope, context: TaskContext) -> None:
    """An agency's proposals to the programme: the form names the agency, which the task already knows, and the
    specialist filling it in; above it, what the commission recognised (the resolution is a document every agency
    of the case may read)."""
    name = _agency_name(scope, scope.agency(scope.task.agency_id))
    if name:
        context.defaults["agency_name"] = name
    _specialist(scope, context, "proposal_specialist")
    case = scope.case
    if case is None or case.recognized_on is None:
        return
    resolution = _latest_resolution(scope, "recognition")
    panel = Panel("recognition", "Семья признана находящейся в СОП")
    panel.row("Постановление", _resolution_title(resolution, case.recognized_on))
    panel.row("Критерии", [labels.FAMILY_CRITERIA.get(c, c) for c in case.criteria or []])
    panel.row("Уровень опасности", labels.DANGER_LEVELS.get(case.danger_level or "", ""))
    panel.row("Рабочая группа", [p.agency.name for p in working_group(case)])
    context.panels.append(panel)


def _execution_report(scope: _Scope, context: TaskContext) -> None:
    agency = scope.agency(scope.task.agency_id)
    name = _agency_name(scope, agency)
    if name:
        context.defaults["report_agency"] = name
    _specialist(scope, context, "report_specialist")
    if scope.case is None:
        return
    activities = _activities(scope, agency.kind if agency is not None else None, by_kind=agency is not None)
    context.defaults["activity_reports"] = [{"number": a.number, "title": a.title} for a in activities]
    title = f"Мероприятия программы: {agency.name}" if agency is not None else "Мероприятия программы"
    panel = Panel("activities", title, columns=["№", "Мероприятие", "Срок", "Состояние"])
    for activity in activities:
        panel.table.append([str(activity.number), activity.title, _term(activity),
                            labels.ACTIVITY_STATUSES.get(activity.status, activity.status)])
    if not activities:
        panel.note = "Мероприятий этого органа в программе нет."
    context.panels.append(panel)


def _curator_summary(scope: _Scope, context: TaskContext) -> None:
    case = scope.case
    if case is None:
        return
    since = round_start(scope.session, case)
    reports = round_reports(scope.session, case, since)
    access = scope.access
    panel = Panel("reports", "Отчеты органов об исполнении программы за текущий период",
                  columns=["Орган", "Дата", "Отчет"])
    if since is not None:
        panel.row("Период", f"с {_date(since)}")
    for report in reports:
        if access.sees_report(report.agency_id):
            agency = scope.agency(report.agency_id)
            panel.table.append([agency.name if agency is not None else "—", _date(report.reported_on),
                                _report_text(report)])
    if not panel.table:
        panel.note = "Отчетов за текущий период нет."
    context.panels.append(panel)
    missing = _not_reporting(scope, case, since, {r.agency_id for r in reports})
    silent = Panel("not_reported", "Органы рабочей группы, не представившие отчет", columns=["Орган"],
                   table=[[name] for name in missing])
    if not missing:
        silent.note = "Все органы рабочей группы представили отчеты."
    context.panels.append(silent)
    if missing:
        context.defaults["agencies_not_reporting"] = "\n".join(missing)


def _review(scope: _Scope, context: TaskContext) -> None:
    """The six-month control (п. 5.6) decides on the curator's information and on how far the programme has got:
    both beside the form. The curator's information is the curator's report to the commission: the commission's
    staff see it (full view), an agency does not."""
    case = scope.case
    if case is None:
        return
    if scope.access.full:
        summary = Panel("curator_summary", "Информация куратора об исполнении программы")
        found = _latest_completed(scope, case, "sop_curator_summary")
        if found is None:
            summary.note = "Куратор еще не представил информацию об исполнении программы."
        else:
            data, completed_at = found
            summary.row("Представлена", _date(completed_at.astimezone(_zone(scope))))
            summary.row("Анализ исполнения программы и динамика", data.get("execution_summary"))
            summary.row("Итоги социального патронажа", data.get("patronage_results"))
            summary.row("Органы, не представившие информацию или нарушившие сроки", data.get("agencies_not_reporting"))
            if data.get("curator_proposal"):
                summary.row("Предложение куратора", scope.option_label("sop_curator_summary", "curator_proposal",
                                                                       data["curator_proposal"]))
        context.panels.append(summary)
    activities = _activities(scope)
    done = [a for a in activities if a.status == "done"]
    panel = Panel("activities", f"Мероприятия программы: выполнено {len(done)} из {len(activities)}",
                  columns=["№", "Мероприятие", "Исполнитель", "Срок", "Выполнено"])
    for activity in activities:
        finished = (_date(activity.done_on) if activity.done_on else "да") if activity.status == "done" else "—"
        panel.table.append([str(activity.number), activity.title, _executor(scope, activity), _term(activity),
                            finished])
    if not activities:
        panel.note = "В программе нет мероприятий."
    context.panels.append(panel)


def _coming_of_age(scope: _Scope, context: TaskContext) -> None:
    """A minor turned 18 (п. 6.3 а, 6.4 а): the family's minors with the day each comes of age, the proposal worded
    from the record, and whether other minors keep the family registered."""
    case = scope.case
    if case is None:
        return
    today = scope.today
    panel = Panel("minors", "Несовершеннолетние семьи", columns=["Ф.И.О.", "Дата рождения", "Совершеннолетие"])
    adults, minors = [], []
    for child in case.family.children:
        if child.birth_date is None:
            panel.table.append([child.full_name, "—", "—"])
            minors.append(child)
            continue
        of_age = add_months(child.birth_date, 18 * 12)
        panel.table.append([child.full_name, _date(child.birth_date), _date(of_age)])
        if of_age <= today:
            adults.append(f"{child.full_name}, {_date(child.birth_date)} г. р. (18 лет исполнилось {_date(of_age)})")
        else:
            minors.append(child)
    context.panels.append(panel)
    if adults:
        context.defaults["closure_proposal"] = ("Внести на заседание комиссии вопрос о снятии с учета в связи с "
                                                "достижением совершеннолетия: " + "; ".join(adults))
    context.defaults["other_minors_remain"] = bool(minors)
    service = scope.engine.plugin(PLUGIN)
    meeting = service.meetings.next_meeting_date(scope.municipality_id, today, scope.session) if service else None
    if meeting is not None:  # the commission's next meeting on record or by its schedule
        context.defaults["proposal_meeting_date"] = meeting.isoformat()


def _closure_decision(scope: _Scope, context: TaskContext) -> None:
    """The commission decides on a closure (п. 6) from what brought it there: the six-month control that proposed
    it, or the proposal made when the minor comes of age; then what the control saw (`_review`)."""
    case = scope.case
    if case is None:
        return
    if scope.access.full:
        grounds = Panel("closure_grounds", "Основание рассмотрения вопроса о снятии с учета")
        review = _latest_completed(scope, case, "sop_review")
        if review is not None:
            data, completed_at = review
            grounds.row("Контроль исполнения программы", _date(completed_at.astimezone(_zone(scope))))
            grounds.row("Итоги контроля", data.get("summary"))
            if data.get("decision"):
                grounds.row("Решение по итогам контроля",
                            scope.option_label("sop_review", "decision", data["decision"]))
        proposal = _latest_completed(scope, case, "sop_closure_proposal")
        if proposal is not None:
            data, completed_at = proposal
            grounds.row("Предложение о снятии с учета", data.get("closure_proposal"))
            grounds.row("Предложено", _date(completed_at.astimezone(_zone(scope))))
            if data.get("other_minors_remain"):
                grounds.row("В семье остаются другие несовершеннолетние", "да: семья остается на учете")
        if not grounds.rows:
            grounds.note = "Ни контроль исполнения программы, ни предложение о снятии с учета еще не записаны."
        context.panels.append(grounds)
    children = [p for p in case.family.children if p.birth_date is not None] if case.family is not None else []
    if children and all(scope.today >= eighteenth_birthday(p.birth_date) for p in children):
        context.defaults["grounds"] = "age_18"  # п. 6.3: every minor of the case has come of age
    _review(scope, context)


def _latest_completed(scope: _Scope, case: Case, form_key: str) -> tuple[dict[str, Any], datetime] | None:
    """The data and completion time of the case's last completed task with this form."""
    instances = select(InstanceScope.instance_id).where(InstanceScope.case_id == case.id)
    row = scope.session.execute(
        select(HumanTask.data, HumanTask.completed_at)
        .where(HumanTask.instance_id.in_(instances), HumanTask.form_key == form_key, HumanTask.status == "completed")
        .order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1)).first()
    return (row.data or {}, row.completed_at) if row is not None else None


def _not_reporting(scope: _Scope, case: Case, since: datetime | None, reported: set) -> list[str]:
    """The agencies asked for a report in this round (each had a report task addressed to it) that did not
    report: their task is still open, or was cancelled when the round's reports became late. For rounds of a
    diagram version without addressed reports, the working group's agencies without a report."""
    instances = select(InstanceScope.instance_id).where(InstanceScope.case_id == case.id)
    query = select(HumanTask.agency_id, HumanTask.status).where(
        HumanTask.form_key == "sop_execution_report", HumanTask.instance_id.in_(instances),
        HumanTask.agency_id.is_not(None))
    if since is not None:
        query = query.where(HumanTask.created_at >= since)
    asked = scope.session.execute(query).all()
    if not asked:
        return [p.agency.name for p in working_group(case) if p.agency_id not in reported]
    late = {agency_id for agency_id, status in asked if status != "completed" and agency_id not in reported}
    return sorted(scope.agency(agency_id).name for agency_id in late if scope.agency(agency_id) is not None)


def round_start(session: Session, case: Case) -> datetime | None:
    """When the current execution round began: the previous curator's summary was completed, or (first round)
    the programme was approved."""
    instances = select(InstanceScope.instance_id).where(InstanceScope.case_id == case.id)
    keyed = select(ProcessInstance.id).where(ProcessInstance.business_key == f"case-{case.id}")
    summary = session.scalar(select(HumanTask.completed_at)
                             .where(HumanTask.form_key == "sop_curator_summary", HumanTask.status == "completed",
                                    HumanTask.instance_id.in_(instances) | HumanTask.instance_id.in_(keyed))
                             .order_by(HumanTask.completed_at.desc()).limit(1))
    if summary is not None:
        return summary
    return session.scalar(select(Resolution.created_at).where(Resolution.case_id == case.id,
                                                              Resolution.kind == "approval")
                          .order_by(Resolution.created_at.desc()).limit(1))


def round_reports(session: Session, case: Case, since: datetime | None) -> list[ExecutionReport]:
    """The agencies' execution reports of the round that began at `since` (all of them when None).

    A report carries its day only; the completion of the task that wrote it (same author, same day) tells whether
    it came before or after `since`. The rows the curator's own summary writes are not agencies' reports."""
    reports = session.scalars(select(ExecutionReport).where(ExecutionReport.case_id == case.id)
                              .order_by(ExecutionReport.reported_on, ExecutionReport.id)).all()
    instances = select(InstanceScope.instance_id).where(InstanceScope.case_id == case.id)
    keyed = select(ProcessInstance.id).where(ProcessInstance.business_key == f"case-{case.id}")
    done = session.execute(select(HumanTask.form_key, HumanTask.completed_by, HumanTask.completed_at)
                           .where(HumanTask.status == "completed",
                                  HumanTask.form_key.in_(("sop_execution_report", "sop_curator_summary")),
                                  HumanTask.instance_id.in_(instances) | HumanTask.instance_id.in_(keyed))).all()
    result = []
    for report in reports:
        tasks = [t for t in done if t.completed_by == report.author and t.completed_at is not None
                 and t.completed_at.date() == report.reported_on]
        own = [t for t in tasks if t.form_key == "sop_execution_report"]
        if tasks and not own:
            continue  # written by the curator's summary
        if since is None:
            result.append(report)
        elif own:
            if any(t.completed_at >= since for t in own):
                result.append(report)
        elif report.reported_on >= since.date():
            result.append(report)
    return result


def _report_text(report: ExecutionReport) -> str:
    rows = (report.data or {}).get("activity_reports")
    if isinstance(rows, list) and rows:
        lines = []
        for row in rows:
            if not isinstance(row, dict):
                continue
            status = REPORT_STATUSES.get(str(row.get("status") or ""), _text(row.get("status")))
            head = " ".join(part for part in (f"{row['number']}." if row.get("number") not in (None, "") else "",
                                              _text(row.get("title"))) if part)
            tail = ", ".join(part for part in (status, _date(row.get("status_date")), _text(row.get("comment")))
                             if part)
            lines.append(f"{head}: {tail}" if tail else head)
        text = (report.text or "").strip()
        return "\n".join([*lines, *([text] if text and text != "—" else [])])
    return report.text or ""


# -- em_escalation: the guardianship agency whose visit is overdue ---------------------------------------------

def _escalation(scope: _Scope, context: TaskContext) -> None:
    _threat(scope, context)
    inspection = handlers.open_inspection(scope.session, scope.task)
    panel = Panel("guardianship", "Орган опеки и попечительства")
    context.panels.append(panel)
    context.options["guardian_options"] = []
    if inspection is None:
        panel.note = "Выезд уже выполнен или отменен."
        return
    agency = scope.agency(inspection.agency_id)
    if agency is None:
        panel.note = ("Выезд не адресован органу опеки (в муниципалитете его нет или их несколько): "
                      "задача выезда у ответственного секретаря.")
    else:
        panel.row("Орган", agency.name)
    panel.row("Задача", inspection.name)
    if inspection.due is not None:
        zone = ZoneInfo(agency.timezone if agency is not None else "Europe/Moscow")
        panel.row("Срок выезда", inspection.due.astimezone(zone).strftime("%d.%m.%Y %H:%M"))
    assignee = scope.session.scalar(select(User).where(User.username == inspection.assignee)) \
        if inspection.assignee else None
    panel.row("Взял(а) в работу", (assignee.full_name or assignee.username) if assignee is not None
              else (inspection.assignee or "никто"))
    if agency is None:
        return
    staff = scope.session.scalars(select(User).where(User.agency_id == agency.id, User.is_active.is_(True))
                                  .order_by(User.full_name, User.username)).unique().all()
    panel.row("Сотрудники органа", [user.full_name or user.username for user in staff])
    context.options["guardian_options"] = [{"value": user.username, "label": user.full_name or user.username}
                                           for user in staff if task_query.is_candidate(inspection, user)]


# -- em_*: the emergency's steps (004 п. 7): what the threat is, and what the visit found ---------------------------

def _emergency(scope: _Scope, context: TaskContext) -> None:
    """An emergency step shows what it acts on: the threat to the child as the journal has it (for the visit and the
    police's and social protection's steps, which start at once) and, for the steps the visit leads to, the visit's
    act and, after it, the removal act. The removal act starts from what the visit's act recorded."""
    _threat(scope, context)
    key = scope.task.form_key
    if key == "em_social_inspection":
        _child_outcome(scope, context)
    if key not in _AFTER_VISIT:
        return
    visit = _step_answers(scope, context, "em_inspection", "visit", "Акт обследования условий жизни ребенка")
    if key == "em_removal_act":
        if visit is not None and visit.get("removal_date"):
            context.defaults["removal_act_date"] = visit["removal_date"]
        if visit is not None and visit.get("placement") not in (None, "", "not_removed"):
            context.defaults["placement_details"] = scope.option_label("em_inspection", "placement",
                                                                       visit["placement"])
    else:
        # the removal act runs beside the notice to the prosecutor and the journal: the one made since the visit,
        # even after this step opened (the notice cites its number and date)
        _step_answers(scope, context, "em_removal_act", "removal", "Акт об отобрании ребенка",
                      since=_completed_at(scope, "em_inspection"))
    if key == "em_inform_commission":
        summary = _measures_taken(scope)
        if summary:
            context.defaults["measures_taken"] = summary


def _measures_taken(scope: _Scope) -> str:
    """The information to the commission starts from the measures the emergency's steps recorded so far: the visit
    and its finding, the removal and where the child went, the prosecutor, the journal of children left without
    parental care, the claim to the court."""
    answers = {key: data for key, data in scope.session.execute(
        select(HumanTask.form_key, HumanTask.data)
        .where(HumanTask.instance_id == scope.task.instance_id, HumanTask.status == "completed",
               HumanTask.form_key.in_(("em_inspection", "em_removal_act", "em_prosecutor_notice",
                                       "em_orphan_journal", "em_court_claim")))
        .order_by(HumanTask.completed_at, HumanTask.id)).all()}  # the latest of each form

    def of(key: str, field: str) -> str:
        return _date(answers.get(key, {}).get(field)) or ""

    lines = []
    visit = answers.get("em_inspection")
    if visit:
        act = f", акт обследования № {visit['inspection_act_number']}" if visit.get("inspection_act_number") else ""
        found = "подтверждена" if visit.get("threat_confirmed") else "не подтверждена"
        lines.append(f"Выезд и обследование условий жизни ребенка {of('em_inspection', 'visit_date')}{act}; угроза "
                     f"жизни или здоровью ребенка {found}.")
        called = [who for field, who in (("police_called", "сотрудники органов внутренних дел"),
                                         ("health_called", "медицинские работники")) if visit.get(field)]
        if called:
            lines.append(f"Вызывались {' и '.join(called)}.")
    removal = answers.get("em_removal_act")
    if removal or (visit and visit.get("removed")):
        removal = removal or {}
        act = (f", акт об отобрании № {removal['removal_act_number']} от {of('em_removal_act', 'removal_act_date')}"
               if removal.get("removal_act_number") else "")
        placed = removal.get("placement_details") or (
            scope.option_label("em_inspection", "placement", visit["placement"])
            if visit and visit.get("placement") not in (None, "", "not_removed") else "")
        lines.append(f"Ребенок отобран (ст. 77 СК РФ){act}" + (f"; передан: {placed.rstrip('.')}." if placed else "."))
    notice = answers.get("em_prosecutor_notice")
    if notice:
        office = f" ({notice['prosecutor_office']})" if notice.get("prosecutor_office") else ""
        lines.append(f"Прокурор уведомлен{office} {of('em_prosecutor_notice', 'prosecutor_notice_date')}".rstrip()
                     + ".")
    journal = answers.get("em_orphan_journal")
    if journal:
        entry = f", запись № {journal['orphan_journal_number']}" if journal.get("orphan_journal_number") else ""
        lines.append(f"Ребенок учтен в журнале детей, оставшихся без попечения родителей{entry}.")
    claim = answers.get("em_court_claim")
    if claim:
        kind = scope.option_label("em_court_claim", "claim_kind", claim["claim_kind"]).lower() \
            if claim.get("claim_kind") else "лишение (ограничение) родительских прав"
        court = f" в {claim['court_name']}" if claim.get("court_name") else " в суд"
        lines.append(f"Подан иск{court} ({kind}) {of('em_court_claim', 'claim_date')}".rstrip() + ".")
    return "\n".join(lines)


def _completed_at(scope: _Scope, form_key: str) -> datetime | None:
    """When the instance's last step with `form_key` completed before this task opened."""
    query = select(HumanTask.completed_at).where(HumanTask.instance_id == scope.task.instance_id,
                                                 HumanTask.form_key == form_key, HumanTask.status == "completed")
    if scope.task.created_at is not None:
        query = query.where(HumanTask.completed_at <= scope.task.created_at)
    return scope.session.scalar(query.order_by(HumanTask.completed_at.desc()).limit(1))


def _child_outcome(scope: _Scope, context: TaskContext) -> None:
    """Social protection examines the family after the guardianship's visit and the police's measures (004 п. 7.1,
    7.2 «г», 7.3): it is told what became of the child — removed and placed, delivered to an institution, handed
    to the parents — not the other agencies' acts themselves."""
    steps = {key: (data or {}, at) for key, data, at in scope.session.execute(
        select(HumanTask.form_key, HumanTask.data, HumanTask.completed_at)
        .where(HumanTask.instance_id == scope.task.instance_id, HumanTask.status == "completed",
               HumanTask.form_key.in_(("em_inspection", "em_removal_act", "em_police_report")))
        .order_by(HumanTask.completed_at, HumanTask.id)).all()}  # the latest of each
    panel = Panel("child_outcome", "Что стало с ребенком: меры органа опеки и ОВД")
    visit = steps.get("em_inspection")
    if visit is not None:
        data = visit[0]
        found = "подтверждена" if data.get("threat_confirmed") else "не подтверждена"
        panel.row("Выезд органа опеки", f"{_date(data.get('visit_date')) or '—'}; угроза жизни или здоровью {found}")
        if data.get("removed"):
            placed = scope.option_label("em_inspection", "placement", data["placement"]) \
                if data.get("placement") not in (None, "", "not_removed") else None
            removal = steps.get("em_removal_act", ({}, None))[0]
            panel.row("Ребенок отобран", ", ".join(part for part in (
                _date(data.get("removal_date")), removal.get("placement_details") or placed) if part) or "да")
        else:
            panel.row("Ребенок отобран", "нет")
    police = steps.get("em_police_report")
    if police is not None and police[0].get("child_outcome"):
        outcome = scope.option_label("em_police_report", "child_outcome", police[0]["child_outcome"])
        act = police[0].get("detection_act_number")
        panel.row("ОВД", f"{outcome}{f' (акт № {act})' if act else ''}")
    if not panel.rows:
        panel.note = "Орган опеки и ОВД еще не сообщили о принятых мерах."
    context.panels.append(panel)


_AFTER_VISIT = frozenset({"em_removal_act", "em_prosecutor_notice", "em_orphan_journal", "em_court_claim",
                          "em_inform_commission"})


def _threat(scope: _Scope, context: TaskContext) -> None:
    """The journal's latest entry on a threat to the child's life or health registered for the case before the task
    opened; when the emergency came from the check instead (a critical danger level), the check's conclusion."""
    case = scope.case
    if case is None:
        return
    entries = scope.session.scalars(select(IntakeEntry).where(IntakeEntry.case_id == case.id)
                                    .order_by(IntakeEntry.id)).all()
    opened = scope.task.created_at
    threats = [e for e in entries if e.threat_to_life and (opened is None or e.registered_at <= opened)]
    if threats:
        context.panels.append(signal_panel(scope, threats[-1], entries,
                                           "Информация об угрозе жизни или здоровью ребенка"))
    elif case.conclusion or case.danger_level:
        context.panels.append(conclusion_panel(scope))


def _step_answers(scope: _Scope, context: TaskContext, form_key: str, panel_key: str,
                  title: str, since: datetime | None = None) -> dict[str, Any] | None:
    """The answers of the instance's last completed step with `form_key` before this task opened (with `since`:
    completed since then, before or after this task opened), as a panel of the form's own labels, shown to those
    who may read that agency's entries; the answers themselves, else None."""
    query = (select(HumanTask.data, HumanTask.agency_id, HumanTask.completed_by, HumanTask.completed_at)
             .where(HumanTask.instance_id == scope.task.instance_id, HumanTask.form_key == form_key,
                    HumanTask.status == "completed"))
    if since is not None:
        query = query.where(HumanTask.completed_at >= since)
    elif scope.task.created_at is not None:
        query = query.where(HumanTask.completed_at <= scope.task.created_at)
    row = scope.session.execute(query.order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1)).first()
    if row is None:
        return None
    data = row.data or {}
    access = scope.access
    if access is not None and not access.sees_history_data(row.agency_id):
        return data
    panel = Panel(panel_key, title, rows=form_answers(scope.form(form_key), data))
    author = lookups.user_named(scope.session, row.completed_by)
    agency = scope.agency(row.agency_id)
    panel.row("Составил(а)", ", ".join(part for part in (
        (author.full_name if author is not None else None) or row.completed_by,
        agency.name if agency is not None else None,
        row.completed_at.astimezone(_zone(scope)).strftime("%d.%m.%Y %H:%M")) if part))
    context.panels.append(panel)
    return data


def form_answers(form: Mapping[str, Any], data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a completed step recorded, as its form labels it: (label, text) per input field, in the form's order.
    A checkbox reads «да» or «нет», a choice its option's label, a date дд.мм.гггг; empty fields and lists of rows
    are left out."""
    rows = []
    for key, component in input_fields(dict(form)).items():
        kind, value = component.get("type"), data.get(key)
        if kind == "checkbox":
            text = "да" if value else "нет"
        elif kind == "dynamiclist" or value in (None, "", []):
            continue
        elif component.get("values"):
            labels = {str(o.get("value")): str(o.get("label") or o.get("value"))
                      for o in component["values"] if isinstance(o, dict)}
            values = value if isinstance(value, list) else [value]
            text = ", ".join(labels.get(str(v), str(v)) for v in values)
        elif kind == "datetime":
            text = _date(value)
        else:
            text = _text(value)
        if text:
            rows.append((str(component.get("label") or key), text))
    return rows


def emergency_steps(engine: ProcessEngine, session: Session, case: Case, access: CaseAccess) -> list[dict[str, Any]]:
    """The case's completed emergency steps (п. 7), oldest first, for the case file: the step, who did it for which
    agency and when, and what it recorded (`form_answers`), the last for those who may read that agency's entries
    (`CaseAccess.sees_history_data`); the others see that the step was done (`rows` None)."""
    elements = emergency_elements(session)
    instances = select(InstanceScope.instance_id).where(InstanceScope.case_id == case.id)
    completion = (select(func.min(HistoryEvent.id))  # the order of completions made at the same instant
                  .where(HistoryEvent.instance_id == HumanTask.instance_id, HistoryEvent.task_id == HumanTask.id,
                         HistoryEvent.event_type == history.TASK_COMPLETED).scalar_subquery())
    found = session.execute(
        select(HumanTask, ProcessInstance.definition_id)
        .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
        .where(HumanTask.instance_id.in_(instances), HumanTask.status == "completed",
               or_(HumanTask.process_key == EMERGENCY_PROCESS, HumanTask.element_id.in_(elements)))
        .order_by(HumanTask.completed_at, completion, HumanTask.id)).all()
    steps = []
    for task, definition_id in found:
        author = lookups.user_named(session, task.completed_by)
        agency = session.get(Agency, task.agency_id) if task.agency_id is not None else None
        shown = access.sees_history_data(task.agency_id)
        form = engine.repository.form(task.form_key, definition_id, session=session) if task.form_key else None
        steps.append({"name": task.name, "completed_at": task.completed_at,
                      "author": (author.full_name if author is not None else None) or task.completed_by,
                      "agency": agency.name if agency is not None else None,
                      "rows": form_answers(form or {}, task.data or {}) if shown else None})
    return steps


# -- rec_agency: an agency's quarterly reconciliation of lists (004 §5.6) ---------------------------------------------

def _reconciliation(scope: _Scope, context: TaskContext) -> None:
    """The commission's list to compare with the agency's own: the families in СОП today and those removed since the
    previous quarter began. Agency staff see the cases their agency or they take part in (the case file's data
    scope); the commission's staff, every case of the municipality."""
    if scope.municipality_id is None:
        return
    today = scope.today
    since = quarter_of(quarter_of(today)[1] - timedelta(days=1))[1]  # the previous quarter's first day
    listed = select(Case.id).where(Case.municipality_id == scope.municipality_id, Case.recognized_on.is_not(None),
                                   Case.recognized_on <= today, or_(Case.closed_on.is_(None), Case.closed_on >= since))
    shown = listed
    if not scope.user.municipality_wide:
        shown = cases_taken_part_in(listed, scope.user.username, scope.task.agency_id or scope.user.agency_id)
    panel = Panel("databank", "Банк данных КДНиЗП: семьи в СОП", columns=[
        "Дело", "Несовершеннолетние", "Родители", "Основания постановки", "Поставлены на учет", "Сняты с учета"])
    for case in scope.session.scalars(select(Case).where(Case.id.in_(shown))
                                      .order_by(Case.recognized_on, Case.id)).unique():
        family = case.family
        panel.table.append([
            case.number, "\n".join(_person(child) for child in family.children),
            "\n".join(parent.full_name for parent in family.parents if parent.full_name),
            "; ".join(labels.FAMILY_CRITERIA_SHORT.get(c, c) for c in case.criteria or []),
            _date(case.recognized_on),
            ", ".join(filter(None, (_date(case.closed_on),
                                    labels.CLOSURE_GROUNDS_SHORT.get(case.closure_grounds or "", ""))))])
    period = f"состоят на учете сегодня или сняты с учета с {_date(since)}"
    if scope.user.municipality_wide:
        panel.note = f"Все семьи муниципального банка данных, которые {period}."
    else:
        others = scope.session.scalar(select(func.count()).select_from(listed.subquery())) - len(panel.table)
        panel.note = (f"Семьи из дел, в которых участвует ваш орган, и которые {period}. " if panel.table else
                      f"Дел, в которых участвует ваш орган и семьи которых {period}, нет. ")
        panel.note += (f"Других дел в банке данных: {others}. Если семьи из вашего списка здесь нет, впишите ее в "
                       "«Есть в списке органа, нет в банке данных КДНиЗП»: ответственный секретарь сверит ее с "
                       "полным банком данных." if others else "Других дел в банке данных нет.")
    context.panels.append(panel)


def _reconciliation_resolve(scope: _Scope, context: TaskContext) -> None:
    """The secretary resolves the differences the agencies reported and updates the databank: their answers side by
    side, and the counts at the end of the quarter reconciled (the day before this quarter began) from the records."""
    row = scope.session.scalar(select(Reconciliation)
                               .where(Reconciliation.process_instance_id == scope.task.instance_id))
    if row is None:
        return
    panel = Panel("agency_answers", "Ответы органов", columns=[
        "Орган", "Расхождения", "Есть у органа, нет в банке данных", "Есть в банке данных, нет у органа",
        "Подтверждено"])
    for answer in (row.results or {}).get("rec_agency", []):
        agency = scope.agency(answer.get("agency_id"))
        panel.table.append([agency.name if agency is not None else _text(answer.get("by")),
                            _text(answer.get("differences")), _text(answer.get("missing_in_commission")),
                            _text(answer.get("missing_in_agency")), "да" if answer.get("confirmed") else "нет"])
    if not panel.table:
        panel.note = "Ни один орган еще не ответил."
    context.panels.append(panel)
    end = quarter_start(row.quarter) - timedelta(days=1)
    in_sop = (select(Case).where(Case.municipality_id == row.municipality_id, Case.recognized_on.is_not(None),
                                 Case.recognized_on <= end, or_(Case.closed_on.is_(None), Case.closed_on > end)))
    cases = scope.session.scalars(in_sop).unique().all()
    context.defaults["families_count"] = len(cases)
    context.defaults["minors_count"] = sum(len(case.family.children) for case in cases)


def _zone(scope: _Scope) -> ZoneInfo:
    municipality = scope.session.get(Municipality, scope.municipality_id)
    return ZoneInfo(municipality.timezone if municipality is not None else "Europe/Moscow")


BUILDERS: dict[str, Callable[[_Scope, TaskContext], None]] = {
    "sop_check": _check,
    "sop_check_assign": _check_assign,
    "sop_recognition": _recognition,
    "sop_registration_card": _registration_card,
    "sop_proposals": _proposals,
    "sop_programme_draft": _programme_draft,
    "sop_programme_approval": _programme_approval,
    "sop_programme_dispatch": _working_group_recipients("programme_recipients"),
    "sop_closure_dispatch": _working_group_recipients("copies_recipients"),
    "sop_execution_report": _execution_report,
    "sop_materials": _materials,
    "sop_curator_summary": _curator_summary,
    "sop_review": _review,
    "sop_closure_decision": _closure_decision,
    "sop_closure_proposal": _coming_of_age,
    "em_escalation": _escalation,
    **{key: _emergency for key in ("em_inspection", "em_police_report", "em_social_inspection", "em_removal_act",
                                   "em_prosecutor_notice", "em_orphan_journal", "em_court_claim",
                                   "em_inform_commission")},
    "rec_agency": _reconciliation,
    "rec_resolve": _reconciliation_resolve,
}


# -- text -----------------------------------------------------------------------------------------------------

def russian_date(value: Any) -> str:
    """A date (or an ISO date string) as «дд.мм.гггг»; anything else as text."""
    return _date(value)


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}", value):
        return f"{value[8:10]}.{value[5:7]}.{value[0:4]}"
    return _text(value)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace(".", ",")


def _person(person) -> str:
    return ", ".join(filter(None, (person.full_name, _date(person.birth_date))))


def _plain(text: Any) -> str:
    """One line of text that cannot break the "a; b; c; d" format of programme activities."""
    return " ".join(str(text or "").replace(";", ",").split())


def _text(value: Any) -> str:
    if value is None or value is False:
        return ""
    if value is True:
        return "да"
    if isinstance(value, (list, tuple)):
        return "\n".join(_text(v) for v in value if _text(v))
    return str(value).strip()


def working_group(case: Case) -> list[CaseAgency]:
    """The agencies of the case's working group (the commission itself is not one)."""
    return [p for p in case.participants if p.role != "commission" and p.agency.kind != "commission"]


from .kpi.campaign import CONTEXT_BUILDERS as _KPI_BUILDERS  # noqa: E402 - the KPI campaign's pages (sop/kpi)

BUILDERS.update(_KPI_BUILDERS)


from .podrostok import context_builders as _podrostok_builders  # noqa: E402 - operation «Подросток» (sop/podrostok)

BUILDERS.update(_podrostok_builders())
