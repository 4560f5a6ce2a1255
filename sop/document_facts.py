"""What the official documents print besides the case record itself: who signs and how the commission voted, the
terms the workflows set, the family's income as told, the agencies' registers and the outcome of a signal.

Everything here reads the records (the resolution's data, the meeting's details it carries, the commission's
officials, the deployed diagrams) and returns plain values for the document contexts of `sop.casefile`.
"""

from __future__ import annotations

import re
import threading
from datetime import date
from typing import TYPE_CHECKING, Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import Agency, HumanTask, ProcessInstance, Resource, User

from . import lookups
from .documents import labels
from .models import Case, Proposal, Resolution

if TYPE_CHECKING:
    from engine import ProcessEngine

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
_DUE = re.compile(r"^\$\{\s*(calendar_days|working_days|months)\(\s*(\d+)\s*(?:,\s*([A-Za-z_]\w*)\s*)?\)\s*\}$")

# Who does a task, in the dative, as a resolution addresses them ("Ответственному секретарю комиссии … направить").
ROLE_DATIVE = {"commission_secretary": "Ответственному секретарю комиссии", "curator": "Куратору случая",
               "commission": "Комиссии", "agency_specialist": "Органам и учреждениям системы профилактики",
               "КДНиЗП": "Комиссии"}
# The initiator of a closure (forms/sop_closure_decision.json), in the genitive.
CLOSURE_INITIATORS = {"chair": "председателя комиссии", "deputy": "заместителя председателя комиссии",
                      "members": "членов комиссии", "agency": "органа (учреждения) системы профилактики, "
                                                            "проводившего индивидуальную профилактическую работу"}
# Keywords of the income kinds of Appendices 2 and 3 §4, as a family's income is told in free text.
_INCOME_WORDS = (("salary", ("зарплат", "заработн", "з/п")), ("pension", ("пенси",)),
                 ("benefits", ("пособ", "выплат")), ("farm", ("лпх", "подсобн", "хозяйств")),
                 ("alimony", ("алимент",)), ("stipend", ("стипенд",)))
_AMOUNT = re.compile(r"(\d[\d\s\u00a0]*(?:[.,]\d{1,2})?)")
# Appendix 3 §9 rows, as the card's free text names them.
_REGISTER_WORDS = (("commission", ("кдн",)), ("police", ("пдн", "полиц", "омвд", "овд")),
                   ("social_protection", ("соц", "кцсон", "сзн")), ("education", ("образов", "школ")),
                   ("health", ("здрав", "больниц", "поликлин")), ("guardianship", ("опек",)))
_DATE = re.compile(r"\b(\d{2})\.(\d{2})\.(\d{4})\b|\b(\d{4})-(\d{2})-(\d{2})\b")
_PROTOCOL = re.compile(r"(?:протокол\w*\s*)?№\s*([\w/.-]+)", re.IGNORECASE)


# -- who signs, how they voted ------------------------------------------------------------------------------------

def officials(session: Session, municipality_id: int) -> dict[str, Any]:
    """The commission's full name, chair, secretary and meeting place (`sop.meetings.officials`, read once per
    transaction)."""
    return lookups.officials(session, municipality_id)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def votes(resolution: Resolution) -> dict[str, int | None]:
    """present / for / against / abstained, from the meeting (the resolution's data) or the decision's form.

    Where the form counted those present and the votes for and against but not the abstentions, the members
    present who voted neither way abstained."""
    data = resolution.data or {}
    present = _count(data.get("present"))
    present = present if present is not None else resolution.present
    result = {"present": present,
              "votes_for": _first(_count(data.get("votes_for")), resolution.votes_for),
              "votes_against": _first(_count(data.get("votes_against")), resolution.votes_against),
              "votes_abstained": _count(data.get("votes_abstained"))}
    if (result["votes_abstained"] is None and present is not None and result["votes_for"] is not None
            and result["votes_against"] is not None):
        result["votes_abstained"] = max(present - result["votes_for"] - result["votes_against"], 0)
    if result["votes_for"] is not None:
        result["votes_against"] = result["votes_against"] or 0
        result["votes_abstained"] = result["votes_abstained"] or 0
    return result


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def meeting_details(session: Session, case: Case, resolution: Resolution) -> dict[str, Any]:
    """The resolution's meeting: its number, date and place, the chair, the secretary and the commission's full
    name — as the meeting recorded them, or else the commission's officials of today."""
    data = resolution.data or {}
    known = officials(session, case.municipality_id)
    return {"commission": data.get("commission_name") or known.get("commission_name"),
            "chair": {"full_name": data.get("chair_name") or known.get("chair_name")},
            "secretary": {"full_name": data.get("secretary_name") or known.get("secretary_name")},
            "meeting_place": data.get("meeting_place") or known.get("place"),
            "meeting_number": _count(data.get("meeting_number")),
            "meeting_date": day_of(data.get("meeting_date")) or resolution.adopted_on}


# -- what the deployed workflows say ------------------------------------------------------------------------------

# Parsed diagrams by their file's content hash: a deployed file never changes (`Resource` is stored once per content
# hash), so a diagram is parsed once per process, not at every document that prints one of its terms. Read only.
_ROOTS: dict[str, Any] = {}
_ROOTS_SIZE = 32
_ROOTS_LOCK = threading.Lock()
_UNREADABLE = object()


def _definition_root(session: Session, process_key: str) -> Any:
    """The latest deployed diagram of `process_key`, parsed (None when there is none or it cannot be read)."""
    found = lookups.latest_diagram(session, process_key)
    if found is None:
        return None
    resource_id, content_hash = found
    root = _ROOTS.get(content_hash)
    if root is None:
        content = session.scalar(select(Resource.content).where(Resource.id == resource_id)) or ""
        try:
            root = etree.fromstring(content.encode("utf-8"), _SAFE_XML)
        except etree.XMLSyntaxError:
            root = _UNREADABLE
        with _ROOTS_LOCK:  # the oldest go first
            root = _ROOTS.setdefault(content_hash, root)
            while len(_ROOTS) > _ROOTS_SIZE:
                _ROOTS.pop(next(iter(_ROOTS)))
    return None if root is _UNREADABLE else root


def _user_task(root: Any, element_id: str) -> Any:
    if root is None:
        return None
    return next((el for el in root.iter(f"{BPMN}userTask") if el.get("id") == element_id), None)


def task_doer(session: Session, process_key: str, element_id: str, default: str) -> str:
    """The role that does a user task of the deployed diagram: `${curator}` as assignee is the curator, else the
    first candidate group, else the name of the lane the task lies in."""
    root = _definition_root(session, process_key)
    task = _user_task(root, element_id)
    if task is None:
        return default
    if "curator" in (task.get(f"{CAMUNDA}assignee") or ""):
        return "curator"
    groups = [g.strip() for g in (task.get(f"{CAMUNDA}candidateGroups") or "").split(",") if g.strip()]
    if groups:
        return groups[0]
    for lane in root.iter(f"{BPMN}lane"):
        if any((ref.text or "").strip() == element_id for ref in lane.iter(f"{BPMN}flowNodeRef")):
            return (lane.get("name") or default).strip()
    return default


def task_term(engine: ProcessEngine, session: Session, process_key: str, element_id: str,
              variables: dict[str, Any], default: tuple[str, int, str]) -> tuple[str, int, date | None]:
    """(function, n, due date) of a user task's deadline as its deployed diagram computes it from `variables`
    (e.g. `${calendar_days(14, programme_start)}`); `default` when the diagram's expression is of another form."""
    task = _user_task(_definition_root(session, process_key), element_id)
    found = _DUE.match((task.get(f"{CAMUNDA}dueDate") or "").strip()) if task is not None else None
    function, n, variable = (found.group(1), int(found.group(2)), found.group(3)) if found else default
    start = day_of(variables.get(variable)) if variable else None
    if start is None:
        return function, n, None
    calendar = engine.calendar.calendar
    step = {"calendar_days": calendar.add_calendar_days, "working_days": calendar.add_working_days,
            "months": calendar.add_months}[function]
    return function, n, step(start, n)


def add_months(start: date, months: int) -> date:
    """The same day `months` later (the last day of a shorter month)."""
    month = start.month - 1 + months
    year, month = start.year + month // 12, month % 12 + 1
    for day in range(start.day, 27, -1):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    return date(year, month, min(start.day, 28))


# -- the case ------------------------------------------------------------------------------------------------------

def working_group(session: Session, case: Case, resolution: Resolution) -> list[dict[str, Any]]:
    """The working group the recognition approved: the agencies of the kinds chosen and the curator's agency,
    each with its responsible specialist when one is named."""
    kinds = [k for k in (resolution.data or {}).get("working_group") or [] if isinstance(k, str)]
    agencies = list(session.scalars(select(Agency).where(Agency.municipality_id == case.municipality_id,
                                                         Agency.kind.in_(kinds)).order_by(Agency.id)).unique())
    curator = lookups.user_named(session, case.curator)
    if curator is not None and curator.agency_id is not None and curator.agency_id not in {a.id for a in agencies}:
        agencies.append(session.get(Agency, curator.agency_id))
    responsible = {p.agency_id: p.responsible for p in case.participants if p.responsible}
    names = _full_names(session, set(responsible.values()))
    order = {kind: index for index, kind in enumerate(labels.AGENCY_REGISTERS)}
    agencies.sort(key=lambda a: (order.get(a.kind or "", len(order)), a.name))
    return [{"agency": a.name, "full_name": names.get(responsible.get(a.id) or "")} for a in agencies]


def _full_names(session: Session, usernames: set[str]) -> dict[str, str]:
    if not usernames:
        return {}
    return {u: n for u, n in session.execute(select(User.username, User.full_name)
                                              .where(User.username.in_(usernames))) if n}


def programme_agencies(case: Case) -> list[str]:
    """The agencies of the working group that carry out the programme (all but the commission)."""
    return [p.agency.name for p in sorted(case.participants, key=lambda p: p.agency_id)
            if p.agency is not None and p.agency.kind != "commission"]


def proposal_agencies(session: Session, case: Case) -> list[str]:
    ids = list(session.scalars(select(Proposal.agency_id).where(Proposal.case_id == case.id)
                               .order_by(Proposal.id)))
    names = dict(session.execute(select(Agency.id, Agency.name).where(Agency.id.in_([i for i in ids if i]))).all())
    return list(dict.fromkeys(names[i] for i in ids if i in names))


def latest_form(session: Session, case: Case, form_key: str) -> tuple[dict[str, Any], date | None]:
    """The data and the completion day of the last completed task with this form in the case's processes."""
    row = session.execute(select(HumanTask.data, HumanTask.completed_at)
                          .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
                          .where(ProcessInstance.business_key == f"case-{case.id}", HumanTask.form_key == form_key,
                                 HumanTask.status == "completed")
                          .order_by(HumanTask.completed_at.desc()).limit(1)).first()
    if row is None:
        return {}, None
    return row.data or {}, row.completed_at.date() if row.completed_at else None


# -- the family as told --------------------------------------------------------------------------------------------

def income(text: Any, per_capita: Any = None) -> dict[str, Any]:
    """The income table of Appendices 2 and 3 §4 from the free text of the form ("заработная плата 15000,
    пособия 8 000"): each amount in the row of its kind; what names no kind goes to «Другой источник» as told."""
    result: dict[str, Any] = {}
    others = []
    for chunk in re.split(r"[;,\n]+(?!\d{1,2}\b)", str(text or "")):
        chunk = chunk.strip()
        if not chunk:
            continue
        lowered = chunk.lower()
        kind = next((k for k, words in _INCOME_WORDS if any(w in lowered for w in words)), None)
        amount = _AMOUNT.search(chunk)
        if kind is not None and amount is not None and kind not in result:
            result[kind] = _number(amount.group(1))
        else:
            others.append(chunk)
    if others:
        result["other"] = "; ".join(others)
    if _count(per_capita) is not None or isinstance(per_capita, float):
        result["per_capita"] = per_capita
    return result


def _number(text: str) -> int | float:
    digits = re.sub(r"[\s\u00a0]", "", text).replace(",", ".")
    value = float(digits)
    return int(value) if value.is_integer() else value


def support_measures(text: Any) -> list[str] | None:
    """Appendices 2 and 3 §5: the measures as told; [] for «не оформлены»; None when nothing was said."""
    value = str(text or "").strip()
    if not value:
        return None
    if re.fullmatch(r"(меры\s+)?(социальной\s+поддержки\s+)?не\s+оформлен\w*\.?", value.lower()):
        return []
    return [value]


def agency_registers(text: Any, recognition: Resolution | None, case: Case) -> dict[str, dict[str, Any]]:
    """Appendix 3 §9: the КДН row from the recognition (date, resolution number, the criteria), the other rows
    from the card's free text, one line per register ("ПДН: 12.09.2025, протокол № 7, причина")."""
    registers: dict[str, dict[str, Any]] = {}
    for line in str(text or "").splitlines():
        line = line.strip(" ;")
        if not line:
            continue
        head, _, rest = line.partition(":")
        lowered = head.lower() if rest else line.lower()
        kind = next((k for k, words in _REGISTER_WORDS if any(lowered.startswith(w) or f" {w}" in lowered
                                                               for w in words)), "other")
        body = rest if rest else line
        found_date = _DATE.search(body)
        protocol = _PROTOCOL.search(body)
        reason = body
        for match in (found_date, protocol):
            if match is not None:
                reason = reason.replace(match.group(0), "")
        reason = re.sub(r"^[\s,.;—-]+|[\s,;—-]+$", "", re.sub(r"\s*,\s*(,\s*)+", ", ", reason))
        entry = {"date": day_of(found_date.group(0)) if found_date else None,
                 "protocol": protocol.group(1) if protocol else None, "reason": reason or None}
        if kind == "other":
            entry["agency"] = head.strip() if rest else None
        if kind in registers:  # a second line of the same register adds its reason
            registers[kind]["reason"] = "; ".join(filter(None, (registers[kind]["reason"], entry["reason"])))
        else:
            registers[kind] = entry
    if recognition is not None:
        criteria = "; ".join(labels.FAMILY_CRITERIA[c] for c in case.criteria or [] if c in labels.FAMILY_CRITERIA)
        registers["commission"] = {
            "date": recognition.adopted_on, "protocol": recognition.number,
            "reason": ("признание находящимися в социально опасном положении"
                       + (f": {criteria.lower()}" if criteria else ""))}
    return registers


def intake_outcome(session: Session, case: Case | None) -> str | None:
    """Appendix 1 «Результат»: what became of a signal, from its case."""
    if case is None:
        return None
    def resolution_of(kind: str) -> Resolution | None:
        return session.scalar(select(Resolution).where(Resolution.case_id == case.id, Resolution.kind == kind)
                              .order_by(Resolution.id.desc()).limit(1))

    def numbered(r: Resolution | None) -> str:
        if r is None:
            return ""
        return f" (постановление{f' № {r.number}' if r.number else ''} от {r.adopted_on:%d.%m.%Y})"

    recognised = resolution_of("recognition")
    if case.status == "closed":
        ground = labels.CLOSURE_GROUNDS_SHORT.get(case.closure_grounds or "", case.closure_grounds)
        text = f"Признаны в СОП{numbered(recognised)}; сняты с учета"
        if case.closed_on:
            text += f" {case.closed_on:%d.%m.%Y}"
        return text + (f": {ground}" if ground else "") + numbered(resolution_of("closure"))
    if case.status == "recognized":
        return f"Признаны в СОП, организована ИПР{numbered(recognised)}, случай № {case.number}"
    if case.status == "rejected":
        rejection = resolution_of("rejection")
        if rejection is not None:
            return f"Комиссия не признала находящимися в СОП{numbered(rejection)}"
        return "СОП не подтверждено по результатам проверки; информация закрыта"
    return f"Передано в КДНиЗП, проводится проверка (случай № {case.number})"


def day_of(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    for candidate in (text[:10], "-".join(reversed(text[:10].split(".")))):
        try:
            return date.fromisoformat(candidate)
        except ValueError:
            continue
    return None
