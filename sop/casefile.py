"""The case file's documents: contexts built from the case records, PDFs rendered and stored with the case.

Documents are regenerated on demand from the records (`regenerate`), so a corrected record gives a corrected
document. The journal (Appendix 1) and the databank (Appendix 8) are registers, generated for a period.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar, Token
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.errors import InvalidInput, NotFound
from engine.models import Agency, HumanTask, Municipality, ProcessInstance

from . import document_facts as facts
from . import lookups
from .documents import labels
from .documents.render import DOCUMENT_KINDS, pdf_from_html, render_html
from .models import Activity, Case, Document, IntakeEntry, Proposal, Resolution

if TYPE_CHECKING:
    from engine import ProcessEngine

log = logging.getLogger(__name__)

# the documents written by committed changes that the caller renders later (`defer_rendering`), else None
_DEFERRED: ContextVar[list[int] | None] = ContextVar("sop_documents_to_render", default=None)
RENDER_LEFT_AFTER = timedelta(minutes=1)  # `render_waiting` takes a document still waiting after this long

CASE_DOCUMENTS = ("conclusion", "registration_card", "programme", "proposals", "resolution_recognition",
                  "resolution_approval", "resolution_closure", "removal_act", "materials")
_RESOLUTION_KIND = {"resolution_recognition": "recognition", "resolution_approval": "approval",
                    "resolution_closure": "closure"}
_DECISION_CODES = {"recognize": "recognise", "reject": "refuse"}
# Codes of the registration card form (forms/sop_registration_card.json) -> codes of the document labels.
_CARD_SITUATIONS = {"evasion": "c1", "evasion_addiction": "c2", "violence": "c7", "involvement": "c3",
                    "unlawful_acts": "c4", "minor_alcohol": "c5", "minor_drugs": "c6", "no_home": "c8"}
_CARD_CATEGORIES = {"full": "complete", "parent_imprisoned": "parent_in_prison",
                    "one_disabled_parent": "disabled_parent", "returned_from_detention": "returned_from_prison"}
_HOUSING = {"private_house": "house", "basic": "uncomfortable"}
_PLACEMENTS = {"family": "foster"}


def generate(engine: ProcessEngine, session: Session, case: Case, kind: str, actor: str | None,
             source_ref: str | None = None, agency_id: int | None = None, title: str | None = None
             ) -> Document | None:
    """Write a case document from the records and store it as the newest version of that kind (for that source).

    The document is rendered to HTML here, from the records as the caller's transaction has them; its PDF is laid
    out once that transaction commits (see `defer_rendering`), so that a person's step does not wait for
    WeasyPrint while it holds the case. A template failure is logged and leaves the case as it is: the document
    can be regenerated later, and the work of the person who completed the task is not lost because of it.
    """
    try:
        html = render_html(kind, case_context(engine, session, case, kind, source_ref))
    except ValueError:
        log.exception("case %s: document %s could not be rendered", case.id, kind)
        return None
    title, suffix = title or DOCUMENT_KINDS[kind], ""
    agency = session.get(Agency, agency_id) if agency_id is not None else None
    if agency is not None:  # documents of one kind from several agencies are told apart by their agency
        title, suffix = f"{title} — {agency.name}", f"-{_file_part(agency.name)}"
    document = Document(case_id=case.id, kind=kind, title=title[:500],
                        filename=f"{kind}-{case.number.replace('/', '-')}{suffix}.pdf", content=b"", size=0,
                        pending_html=html, source_ref=source_ref, agency_id=agency_id, created_by=actor,
                        created_at=engine.clock.now())
    session.add(document)
    session.flush()
    engine.db.after_commit(session, partial(_written, engine, document.id))
    return document


def _written(engine: ProcessEngine, document_id: int) -> None:
    """A document's change has committed: its PDF is laid out now, or later by whoever deferred it."""
    render_pending(engine, [document_id])


def defer_rendering() -> Token:
    """From now on in this context, the documents written by committed changes (and those `render_pending` is
    asked for, the scheduler's job included) are listed instead of laid out at once: the web app answers the person
    first and renders them after (`deferred_documents`); the demo leaves them to the scheduler and their first
    reader. A reader (`pdf_of`) still lays out the document it reads."""
    return _DEFERRED.set([])


def deferred_documents(token: Token) -> list[int]:
    """The documents listed since `defer_rendering` gave `token`, which ends the deferral."""
    listed = _DEFERRED.get() or []
    _DEFERRED.reset(token)
    return listed


def pdf_of(session: Session, document: Document) -> bytes:
    """The document's PDF; laid out now, and stored with the caller's transaction, if it is still waiting.
    `InvalidInput` when it cannot be (the document is then left waiting, and can be regenerated)."""
    if document.pending_html is None:
        return document.content
    try:
        pdf = pdf_from_html(document.pending_html)
    except Exception as exc:  # WeasyPrint on HTML it rendered before: a fault to log, not the reader's
        log.exception("document %s could not be laid out", document.id)
        raise InvalidInput(f"Документ «{document.title}» не удалось сформировать в PDF; его можно сформировать "
                           f"заново по записям дела («Сформировать заново» в деле: секретарь комиссии или куратор)"
                           ) from exc
    document.content, document.size, document.pending_html, document.render_failed_at = pdf, len(pdf), None, None
    return pdf


def render_pending(engine: ProcessEngine, document_ids: Iterable[int]) -> int:
    """Lay out the PDFs of those of the documents still waiting, each in a transaction of its own; returns how many.
    A failure is logged and leaves that document waiting (its first reader tries again). Inside `defer_rendering`
    they are only listed."""
    deferred = _DEFERRED.get()
    if deferred is not None:
        deferred.extend(document_ids)
        return 0
    rendered = 0
    for document_id in document_ids:
        try:
            with engine.db.session() as session:
                document = session.get(Document, document_id)
                if document is not None and document.pending_html is not None:
                    pdf_of(session, document)
                    rendered += 1
        except InvalidInput:  # the layout failed (logged): the scheduler does not try it again and again
            with engine.db.session() as session:
                session.execute(update(Document).where(Document.id == document_id, Document.pending_html.is_not(None))
                                .values(render_failed_at=engine.clock.now()))
        except Exception:  # noqa: BLE001 - after the change committed: nothing to give it back to
            log.exception("document %s: PDF not laid out; it is laid out when first read", document_id)
    return rendered


def render_waiting(engine: ProcessEngine, limit: int = 20) -> int:
    """The scheduler's job: lay out the documents still waiting `RENDER_LEFT_AFTER` after they were written (their
    process stopped before it rendered them), oldest first, at most `limit` per run; not those whose layout failed
    (their reader tries again, or a regeneration replaces them)."""
    written_before = engine.clock.now() - RENDER_LEFT_AFTER
    with engine.db.session() as session:
        waiting = session.scalars(select(Document.id)
                                  .where(Document.pending_html.is_not(None), Document.render_failed_at.is_(None),
                                         Document.created_at < written_before)
                                  .order_by(Document.id).limit(limit)).all()
    return render_pending(engine, waiting)


def _file_part(name: str) -> str:
    """An agency's name as part of a file name: letters and digits, the rest as single hyphens."""
    return re.sub(r"[^\w]+", "-", name).strip("-_")[:80] or "agency"


def regenerate(engine: ProcessEngine, document_id: int, actor: str | None) -> int:
    """Render a stored case document again from today's records; returns the new document's id."""
    with engine.db.session() as session:
        old = session.get(Document, document_id)
        if old is None or old.case_id is None:
            raise NotFound(f"No case document {document_id}")
        if old.kind not in CASE_DOCUMENTS:  # a file an agency attached is kept as it came
            raise InvalidInput(f"The document '{old.title}' is a file, not rendered from the records")
        new = generate(engine, session, session.get(Case, old.case_id), old.kind, actor, old.source_ref,
                       old.agency_id)
        if new is None:
            raise InvalidInput(f"The document '{old.title}' cannot be rendered from the current records")
        pdf_of(session, new)  # asked for by a person, who waits for it: a version that cannot be laid out is not kept
        return new.id


def common_context(engine: ProcessEngine, session: Session, municipality_id: int) -> dict[str, Any]:
    """The commission's full name (its record, else its agency's name), the municipality, today."""
    municipality = session.get(Municipality, municipality_id)
    name = municipality.name if municipality else ""
    commission = facts.officials(session, municipality_id).get("commission_name")
    if not commission:  # a commission record without its full name: its agency's
        commission = session.scalar(select(Agency.name).where(Agency.municipality_id == municipality_id,
                                                              Agency.kind == "commission").limit(1)) or ""
    return {"commission": commission, "municipality": name, "generated_at": engine.clock.now().date(),
            "place": name}


def case_context(engine: ProcessEngine, session: Session, case: Case, kind: str,
                 source_ref: str | None = None) -> dict[str, Any]:
    context = common_context(engine, session, case.municipality_id)
    context["case"] = case_data(session, case)
    if kind == "conclusion":
        data = case.conclusion or {}
        context["conclusion"] = {"danger_level": case.danger_level,
                                 "criteria": _codes(case.criteria, labels.FAMILY_CRITERIA),
                                 "text": data.get("conclusion"),
                                 "date": data.get("conclusion_date") or case.received_on,
                                 "head": {"full_name": data.get("head_name")}}
        context["case"]["housing"] = housing(data)
        context["case"].update(told_about_family(data))
    elif kind == "registration_card":
        card = case.card or {}
        situations = [_CARD_SITUATIONS.get(code, code) for code in card.get("sop_kind") or []]
        categories = [_CARD_CATEGORIES.get(code, code) for code in card.get("family_category") or []]
        context["card"] = {"family_categories": _codes(categories, labels.FAMILY_CATEGORIES),
                           "parent_type": _code(card.get("parents_characteristic"), labels.PARENT_CHARACTERISTICS),
                           "situations": _codes(situations or case.criteria, labels.REGISTRATION_CARD_SITUATIONS),
                           "attachment": {"clinic": card.get("clinic"), "school": card.get("school"),
                                          "kindergarten": card.get("kindergarten"),
                                          "police": card.get("police_district"),
                                          "patronage": card.get("patronage_service")},
                           "date": card.get("detection_date")}
        context["card"]["registers"] = facts.agency_registers(card.get("agency_registrations"),
                                                              _latest_resolution(session, case, "recognition"), case)
        context["case"]["detected_by"] = card.get("detected_by")
        context["case"]["housing"] = housing(card)
        check = case.conclusion or {}  # what the check found, where the card does not say it again
        context["case"].update(told_about_family({
            "family_income": card.get("family_income") or check.get("family_income"),
            "income_per_capita": card.get("income_per_capita", check.get("income_per_capita")),
            "social_support": card.get("social_support") or check.get("social_support")}))
    elif kind == "programme":
        context["programme"] = programme_data(session, case)
    elif kind == "proposals":
        context["proposals"] = proposals_data(session, case, source_ref)
    elif kind == "materials":
        context["materials"] = materials_data(session, case, source_ref)
    elif kind in _RESOLUTION_KIND:
        context["resolution"] = resolution_data(engine, session, case, _RESOLUTION_KIND[kind])
        context["commission"] = context["resolution"].pop("commission", None) or context["commission"]
        if kind == "resolution_approval":
            context["programme"] = programme_data(session, case)
        if kind == "resolution_recognition" and case.conclusion:
            context["conclusion"] = {"date": case.conclusion.get("conclusion_date") or case.received_on}
    elif kind == "removal_act":
        act = _latest_form(session, case, "em_removal_act")
        inspection = _latest_form(session, case, "em_inspection")
        placement = _PLACEMENTS.get(inspection.get("placement"), inspection.get("placement"))
        context["removal_act"] = {
            "date": act.get("removal_act_date") or engine.clock.now().date(), "number": act.get("removal_act_number"),
            "inspection_act": {"number": inspection.get("inspection_act_number"), "date": inspection.get("visit_date")},
            "circumstances": inspection.get("inspection_findings"),
            "children": context["case"]["minors"], "removed_from": context["case"]["parents"],
            "from_only_parent": bool(inspection.get("removed_from_all_parents")),
            "placement": {"kind": _code(placement, labels.REMOVAL_PLACEMENTS), "name": act.get("placement_details")},
        }
    return context


def told_about_family(data: dict[str, Any]) -> dict[str, Any]:
    """Appendices 2 and 3 §4–5: the family's income and social support as the check or the card recorded them."""
    told: dict[str, Any] = {}
    income = facts.income(data.get("family_income"), data.get("income_per_capita"))
    if income:
        told["income"] = income
    measures = facts.support_measures(data.get("social_support"))
    if measures is not None:
        told["support_measures"] = measures
    return told


def housing(data: dict[str, Any]) -> dict[str, Any]:
    """The housing block of Appendices 2 and 3 from the fields of the check or card form."""
    return {"type": _code(_HOUSING.get(data.get("housing_type"), data.get("housing_type")), labels.HOUSING_TYPES),
            "area": data.get("housing_area"),
            "amenities": _code(_HOUSING.get(data.get("housing_amenities"), data.get("housing_amenities")),
                               labels.HOUSING_AMENITIES),
            "sanitary": _code(data.get("sanitary_state"), labels.SANITARY_STATES),
            "living_conditions": data.get("living_conditions")}


def _latest_form(session: Session, case: Case, form_key: str) -> dict[str, Any]:
    """The data of the last completed task with this form in the case's processes."""
    if case.process_instance_id is None:
        return {}
    data = session.scalar(select(HumanTask.data).join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
                          .where(ProcessInstance.business_key == f"case-{case.id}", HumanTask.form_key == form_key,
                                 HumanTask.status == "completed")
                          .order_by(HumanTask.completed_at.desc()).limit(1))
    return data or {}


def case_data(session: Session, case: Case) -> dict[str, Any]:
    family = case.family
    curator = lookups.user_named(session, case.curator)
    return {
        "number": case.number,
        "family_name": family.name.removeprefix("Семья ").strip(),
        "minors": [{"full_name": p.full_name, "birth_date": p.birth_date, "occupation": p.occupation}
                   for p in family.children],
        "parents": [{"full_name": p.full_name, "birth_date": p.birth_date, "occupation": p.occupation}
                    for p in family.parents],
        "address_registered": family.address_registered,
        "address_actual": family.address_actual or family.address_registered,
        "danger_level": _code(case.danger_level, labels.DANGER_LEVELS),
        "criteria": _codes(case.criteria, labels.FAMILY_CRITERIA),
        "detected_at": case.received_on,
        "registered_at": case.recognized_on,
        "curator": {"full_name": (curator.full_name or curator.username) if curator else None,
                    "agency": curator.agency.name if curator and curator.agency else None},
    }


def programme_data(session: Session, case: Case) -> dict[str, Any]:
    """Appendix 4 from the case's programme and its activities: each activity in its columns (the content without
    the term, the term as a day or in words), the perspective plan's activities and the programme's term, and the
    social patronage the curator chose."""
    programme = case.programme or {}
    activities = session.scalars(select(Activity).where(Activity.case_id == case.id)
                                 .order_by(Activity.number, Activity.id)).all()
    planned = [a for a in activities if a.status != "cancelled"]
    patronage = programme.get("patronage_kind")
    return {
        "goal": programme.get("goal"),
        "consilium_conclusion": programme.get("consilium_conclusion"),
        "plan": [{"situation": programme.get("programme_situation"), "tasks": programme.get("programme_tasks"),
                  "planned": "\n".join(f"{a.number}. {a.title}" for a in planned)
                  or programme.get("programme_activities"),
                  "term": programme_term(case)}],
        "potential": {"initial": _code(programme.get("rehabilitation_potential"), labels.REHABILITATION_POTENTIAL)},
        "reactions": {"initial": _code(programme.get("family_reaction"), labels.FAMILY_REACTIONS)},
        "patronage_changes": [{"kind": patronage, "reason": "установлен индивидуальной программой",
                               "date": programme.get("approved_date")}]
        if patronage in labels.PATRONAGE_TYPES else [],
        "approved_protocol": programme.get("approved_protocol"),
        "approved_date": programme.get("approved_date"),
        "activities": [{"number": a.number, "title": a.title, "content": split_term(a.content)[0],
                        "agency": labels.AGENCY_REGISTERS.get(a.agency_kind or "", a.agency_kind),
                        "responsible": a.responsible, "term": activity_term(a), "status": a.status,
                        "done_at": a.done_on} for a in activities],
    }


def programme_term(case: Case) -> str | None:
    """The programme's term: the individual preventive work the recognition organised, «с 23.12.2025 по
    23.06.2026» (the months alone before the recognition)."""
    months = case.ipr_term_months
    if not months:
        return None
    if case.recognized_on is None:
        return f"{months} мес."
    return f"с {case.recognized_on:%d.%m.%Y} по {facts.add_months(case.recognized_on, months):%d.%m.%Y}"


def proposals_data(session: Session, case: Case, source_ref: str | None) -> dict[str, Any]:
    query = select(Proposal).where(Proposal.case_id == case.id)
    if source_ref and source_ref.startswith("proposal-"):
        query = query.where(Proposal.id == int(source_ref.removeprefix("proposal-")))
    proposal = session.scalar(query.order_by(Proposal.id.desc()).limit(1))
    data = proposal.data if proposal else {}
    agency = session.get(Agency, proposal.agency_id) if proposal and proposal.agency_id else None
    return {"agency": data.get("agency_name") or (agency.name if agency else "—"),
            "date": proposal.created_at.date() if proposal else None,
            "plan": [{"situation": data.get("proposal_situation"), "tasks": data.get("proposal_tasks"),
                      "planned": data.get("proposal_activities"), "term": data.get("proposal_term")}],
            "author": {"full_name": data.get("proposal_specialist")}}


def materials_data(session: Session, case: Case, source_ref: str | None) -> dict[str, Any]:
    """An agency's answer to the commission's request for materials, from the completed `sop_materials` task
    that `source_ref` ("materials-<task id>") names."""
    task_id = (source_ref or "").removeprefix("materials-")
    row = session.get(HumanTask, task_id) if task_id else None
    if row is not None:
        session.refresh(row)  # the completion updated it in this transaction
    if row is None or row.status != "completed":
        raise ValueError(f"case {case.id}: no answered request for materials {source_ref}")
    data = row.data or {}
    agency = session.get(Agency, row.agency_id) if row.agency_id else None
    return {"agency": agency.name if agency else "—", "date": _parse_date(str(data.get("materials_date") or "")),
            "question": data.get("materials_question"), "answer": data.get("materials_answer") or "—",
            "specialist": data.get("materials_specialist"), "requested_on": row.created_at.date()}


def _latest_resolution(session: Session, case: Case, kind: str) -> Resolution | None:
    """The case's latest resolution of a kind; for "recognition" the commission's answer either way (a refusal to
    recognise is printed on the same form, «не признавать»)."""
    kinds = ("recognition", "rejection") if kind == "recognition" else (kind,)
    return session.scalar(select(Resolution).where(Resolution.case_id == case.id, Resolution.kind.in_(kinds))
                          .order_by(Resolution.id.desc()).limit(1))


def resolution_data(engine: ProcessEngine, session: Session, case: Case, kind: str) -> dict[str, Any]:
    """A resolution as its document prints it: number, meeting, votes, who signs, and what the kind decides."""
    resolution = _latest_resolution(session, case, kind)
    if resolution is None:
        raise ValueError(f"case {case.id} has no {kind} resolution")
    data = resolution.data or {}
    meeting = facts.meeting_details(session, case, resolution)
    result = {"number": resolution.number or "б/н", "date": resolution.adopted_on,
              "meeting_date": meeting["meeting_date"], "protocol": meeting["meeting_number"],
              "meeting_place": meeting["meeting_place"], "commission": meeting["commission"],
              "chair": meeting["chair"], "secretary": meeting["secretary"],
              "decision": _DECISION_CODES.get(resolution.decision, resolution.decision), **facts.votes(resolution)}
    curator = case_data(session, case)["curator"]
    if kind == "recognition" and resolution.kind == "rejection":
        result.update(text=_conclusion_found(case), recommendations=data.get("recognition_notes"))
    elif kind == "recognition":
        start = case.recognized_on or resolution.adopted_on
        months = case.ipr_term_months or 6
        terms = {"meeting_date": start, "programme_start": start}
        result.update(
            text=data.get("recognition_notes") or _conclusion_found(case), ipr_from=start, ipr_months=months,
            ipr_to=facts.add_months(start, months), working_group=facts.working_group(session, case, resolution),
            proposals_due=facts.task_term(engine, session, "sop_programme", "sop_proposals", terms,
                                          ("calendar_days", 7, "meeting_date"))[2],
            programme_due=facts.task_term(engine, session, "sop_programme", "sop_programme_draft", terms,
                                          ("calendar_days", 14, "programme_start"))[2])
    elif kind == "approval":
        approved = facts.day_of(data.get("approval_date")) or resolution.adopted_on
        function, days, due = facts.task_term(engine, session, "sop_programme", "sop_programme_dispatch",
                                              {"approval_date": approved}, ("calendar_days", 5, "approval_date"))
        role = facts.task_doer(session, "sop_programme", "sop_programme_dispatch", "commission_secretary")
        result.update(dispatcher=facts.ROLE_DATIVE.get(role, role), dispatcher_is_curator=role == "curator",
                      send_days=days, send_working_days=function == "working_days", send_due=due,
                      review_date=_review_date(engine, session, case), agencies=facts.programme_agencies(case),
                      remarks=data.get("comment"),
                      text=data.get("comment") or _programme_presented(session, case, curator))
    elif kind == "closure":
        result.update(grounds=resolution.grounds, result=_code(case.programme_result, labels.CLOSURE_RESULTS),
                      result_reasons=data.get("reasons"), agencies=facts.programme_agencies(case),
                      initiator=facts.CLOSURE_INITIATORS.get(data.get("closure_initiator") or ""),
                      text=_closure_found(session, case, resolution))
    return result


def _conclusion_found(case: Case) -> str | None:
    check = case.conclusion or {}
    when = facts.day_of(check.get("conclusion_date")) or case.received_on
    found = str(check.get("conclusion") or "").strip()
    criteria = [labels.FAMILY_CRITERIA[c].lower() for c in case.criteria or [] if c in labels.FAMILY_CRITERIA]
    if not found and not criteria:
        return None
    text = f"По результатам проверки информации (заключение от {when:%d.%m.%Y})"
    return f"{text}: {found.rstrip('.')}." if found else f"{text} выявлены признаки социально опасного положения."


def _programme_presented(session: Session, case: Case, curator: dict[str, Any]) -> str:
    from .documents.names import inflect_name

    programme = case.programme or {}
    count = session.scalar(select(func.count()).select_from(Activity).where(Activity.case_id == case.id)) or 0
    who = inflect_name(curator.get("full_name"), "ablt") if curator.get("full_name") else None
    text = "Куратором случая" + (f" {who}" if who else "") + " в комиссию представлена индивидуальная программа " \
        "социальной реабилитации"
    sources = facts.proposal_agencies(session, case)
    text += f", разработанная с учетом предложений: {', '.join(sources)}." if sources else "."
    if count:
        text += f" Программа содержит мероприятий: {count}."
    if programme.get("goal"):
        text += f" Цель программы: {str(programme['goal']).strip().rstrip('.')}."
    return text


def _closure_found(session: Session, case: Case, resolution: Resolution) -> str:
    data = resolution.data or {}
    lines = []
    review, reviewed_on = facts.latest_form(session, case, "sop_review")
    if review.get("summary"):
        when = f" ({reviewed_on:%d.%m.%Y})" if reviewed_on else ""
        lines.append(f"По итогам контроля исполнения индивидуальной программы{when}: "
                     f"{str(review['summary']).strip().rstrip('.')}.")
    summary, _ = facts.latest_form(session, case, "sop_curator_summary")
    if summary.get("execution_summary"):
        lines.append(f"По информации куратора случая об исполнении индивидуальной программы: "
                     f"{str(summary['execution_summary']).strip().rstrip('.')}.")
    ground = labels.CLOSURE_GROUNDS.get(resolution.grounds or "", resolution.grounds)
    if ground:
        lines.append(f"Имеется основание для прекращения индивидуальной профилактической работы: "
                     f"{str(ground).rstrip('.')}.")
    if data.get("comment"):
        lines.append(str(data["comment"]).strip())
    return "\n".join(lines)


def _review_date(engine: ProcessEngine, session: Session, case: Case) -> date | None:
    """The six-month control of the programme (004 §5.6) as the case's timer sets it: six months after the
    recognition or after the last control, rolled forward to a working day."""
    start = case.recognized_on
    _, reviewed_on = facts.latest_form(session, case, "sop_review")
    if reviewed_on is not None and (start is None or reviewed_on > start):
        start = reviewed_on
    return engine.calendar.calendar.add_months(start, 6) if start else None


def journal_context(engine: ProcessEngine, agency_id: int, period_from: date, period_to: date) -> dict[str, Any]:
    """Appendix 1 for one agency and period."""
    with engine.db.session() as session:
        agency = session.get(Agency, agency_id)
        if agency is None:
            raise NotFound(f"No agency {agency_id}")
        entries = session.scalars(select(IntakeEntry).where(IntakeEntry.agency_id == agency_id,
                                                            IntakeEntry.received_on >= period_from,
                                                            IntakeEntry.received_on <= period_to)
                                  .order_by(IntakeEntry.year, IntakeEntry.number)).all()
        context = common_context(engine, session, agency.municipality_id)
        context["journal"] = {"agency": agency.name, "period_from": period_from, "period_to": period_to,
                              "entries": [{"number": e.number, "received": e.received_on, "source": e.source,
                                           "parents": e.parents_text, "children": e.children_text,
                                           "address": e.address, "problem": e.problem,
                                           "result": e.result or facts.intake_outcome(
                                               session, session.get(Case, e.case_id) if e.case_id else None)}
                                          for e in entries]}
        return context


def databank_context(engine: ProcessEngine, municipality_id: int, as_of: date,
                     include_closed: bool = True) -> dict[str, Any]:
    """Appendix 8: minors and families in СОП of a municipality (those registered, and removed ones)."""
    with engine.db.session() as session:
        query = select(Case).where(Case.municipality_id == municipality_id, Case.recognized_on.is_not(None),
                                   Case.recognized_on <= as_of)
        if not include_closed:
            query = query.where(Case.status == "recognized")
        rows = []
        for case in session.scalars(query.order_by(Case.recognized_on, Case.id)).unique():
            parents = [{"full_name": p.full_name, "occupation": p.occupation} for p in case.family.parents]
            for child in case.family.children or [None]:
                rows.append({"minor_full_name": child.full_name if child else None,
                             "minor_birth_date": child.birth_date if child else None,
                             "parents": parents, "address_registered": case.family.address_registered,
                             "address_actual": case.family.address_actual,
                             "minor_occupation": child.occupation if child else None,
                             "registration_reason": "; ".join(labels.FAMILY_CRITERIA_SHORT.get(c, c)
                                                              for c in case.criteria or []) or None,
                             "registered_at": case.recognized_on, "removed_at": case.closed_on,
                             "removal_reason": case.closure_grounds})
        context = common_context(engine, session, municipality_id)
        secretary = facts.officials(session, municipality_id).get("secretary_name")
        context["databank"] = {"rows": rows, "as_of": as_of,
                               "secretary": {"position": "Ответственный секретарь комиссии", "full_name": secretary}}
        return context


def activities_from_form(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Programme activities from the draft form's `programme_activities`: one per line, as the form asks,
    "мероприятие; содержание деятельности; исполнитель; срок" (only the first part is required; a line with no
    activity, such as ";;", is left out). A term that names a day ("01.03.2026", "2026-03-01", "до 01.03.2026")
    is the activity's date; any other term (e.g. "ежемесячно", "6 месяцев") is kept as text at the end of the
    content, "(срок: …)", where `split_term` finds it."""
    result = []
    for line in str(data.get("programme_activities") or "").splitlines():
        parts = [part.strip() for part in line.split(";")] + ["", "", ""]
        title, content, responsible, term = parts[0], parts[1], parts[2], ";".join(parts[3:]).strip("; ")
        if not re.search(r"\w", title):
            continue
        term_date = term_day(term)
        if term and term_date is None:
            content = f"{content} (срок: {term})" if content else f"срок: {term}"
        result.append({"title": title[:500], "content": content or None, "responsible": responsible or None,
                       "agency_kind": None, "term": term_date})
    return result


_DEADLINE = re.compile(r"^(?:до|не позднее|не позже)\s+(.+?)(?:\s*г(?:ода?)?)?\.?$", re.IGNORECASE)


def term_day(text: str) -> date | None:
    """The day an activity's term names: "2026-03-01", "01.03.2026", or a deadline "до 01.03.2026" (that day);
    None for any other term ("ежемесячно", "весь учебный год")."""
    text = (text or "").strip()
    deadline = _DEADLINE.match(text)
    if deadline is not None:
        day = deadline.group(1).strip()
        return _parse_date(day) if len(day) == 10 else None
    return _parse_date(text)


def split_term(content: str | None) -> tuple[str | None, str | None]:
    """An activity's content and the term that names no day, which `activities_from_form` keeps at its end:
    "2 встречи (срок: 6 месяцев)" -> ("2 встречи", "6 месяцев"); "срок: ежемесячно" -> (None, "ежемесячно")."""
    text = (content or "").strip()
    if text.startswith("срок: "):
        return None, text.removeprefix("срок: ").strip() or None
    head, found, term = text.rpartition(" (срок: ")
    if found and term.endswith(")"):
        return head.strip() or None, term[:-1].strip() or None
    return text or None, None


def activity_term(activity: Any) -> date | str | None:
    """An activity's term: its day, else the term it names in words, else None."""
    return activity.term if activity.term is not None else split_term(activity.content)[1]


def _parse_date(text: str) -> date | None:
    for candidate in (text[:10], ".".join(reversed(text[:10].split(".")))):
        try:
            return date.fromisoformat(candidate.replace(".", "-"))
        except ValueError:
            continue
    return None


def _code(value: Any, known: dict) -> Any:
    return value if value in known else None


def _codes(values: Any, known: dict) -> list[str]:
    return [v for v in (values or []) if v in known]
