"""Requests for materials (004 §4.6, §5.1): the commission asks agencies of the system of prevention for what
they know of a family, each agency answering in a task of its own (process `sop_materials`); the answer is
kept in the case file as a document of that agency."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.errors import InvalidInput, NotFound
from engine.models import Agency, HumanTask

from .checks import CHECK_FORM, require_secretary
from .models import Case, Document, InstanceScope

if TYPE_CHECKING:
    from engine import ProcessEngine

MATERIALS_PROCESS = "sop_materials"
ANSWER_FORM = "sop_materials"
FILE_KIND = "materials_file"
MAX_FILES = 10
MAX_FILE_BYTES = 5 * 1024 * 1024  # the web app takes requests of up to 5 MB in all


@dataclass(frozen=True)
class Attachment:
    """A file an agency attaches to its answer (a PDF: scans of certificates, acts, characteristics)."""

    filename: str
    content: bytes


# The files of the answer being completed: set around the completion, stored by the completion's handler in
# the same transaction, so that an answer and its files are saved together or not at all.
_ATTACHED: ContextVar[tuple[Attachment, ...]] = ContextVar("kurator_materials_attached", default=())


def check_attachments(files: list[Attachment]) -> list[Attachment]:
    """The files that were really chosen, each a PDF of at most 5 MB, at most 10; `InvalidInput` naming the
    field otherwise."""
    chosen = [f for f in files if f.filename or f.content]
    if len(chosen) > MAX_FILES:
        raise InvalidInput("materials_files: too many files", {"materials_files": f"не более {MAX_FILES} файлов"})
    for attachment in chosen:
        if len(attachment.content) > MAX_FILE_BYTES:
            raise InvalidInput(f"materials_files: {attachment.filename} is larger than 5 MB",
                               {"materials_files": f"файл «{attachment.filename}» больше 5 МБ"})
        if not attachment.content.startswith(b"%PDF-"):
            raise InvalidInput(f"materials_files: {attachment.filename} is not a PDF",
                               {"materials_files": f"файл «{attachment.filename}» не является PDF"})
    return chosen


@contextmanager
def attached(files: list[Attachment]) -> Iterator[None]:
    """Complete an answer (`engine.tasks.complete`) inside this block to store `files` with it."""
    token = _ATTACHED.set(tuple(check_attachments(files)))
    try:
        yield
    finally:
        _ATTACHED.reset(token)


def store_attachments(session, case: Case, task, actor: str | None, now: datetime) -> int:
    """Store the files of the answer being completed as documents of the answering agency; returns how many."""
    agency = session.get(Agency, task.agency_id) if task.agency_id else None
    for number, attachment in enumerate(_ATTACHED.get(), start=1):
        name = _safe_filename(attachment.filename, number)
        title = f"Материалы органа{f' — {agency.name}' if agency else ''}: {name}"
        session.add(Document(case_id=case.id, kind=FILE_KIND, title=title[:500], filename=name,
                             content=attachment.content, size=len(attachment.content),
                             source_ref=f"materials-{task.id}-file-{number}", agency_id=task.agency_id,
                             created_by=actor, created_at=now))
    return len(_ATTACHED.get())


def _safe_filename(name: str, number: int) -> str:
    base = re.sub(r"[^\w .()-]+", "_", (name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip(" ._")[:150]
    base = base or f"file-{number}"
    return base if base.lower().endswith(".pdf") else f"{base}.pdf"
ANSWER_WORKING_DAYS = 3
MAX_QUESTION = 4000


def request_materials(engine: ProcessEngine, case_id: int, agency_ids: list[Any], question: str, by: str,
                      due_on: date | None = None) -> list[int]:
    """Ask each agency for materials; returns the started instances. The answer is due in 3 working days, and
    no later than the case's open check, unless `due_on` is given. All or nothing."""
    question = str(question or "").strip()
    if not question:
        raise InvalidInput("question: say what the commission asks for", {"question": "укажите, что запрашивается"})
    if len(question) > MAX_QUESTION:
        raise InvalidInput("question: too long", {"question": f"не более {MAX_QUESTION} символов"})
    try:
        wanted = sorted({int(a) for a in agency_ids or []})
    except (TypeError, ValueError):
        raise InvalidInput("agencies: choose agencies from the list", {"agencies": "выберите органы"}) from None
    if not wanted:
        raise InvalidInput("agencies: choose at least one agency", {"agencies": "выберите хотя бы один орган"})
    with engine.db.session() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound(f"No case {case_id}")
        sender = require_secretary(session, by, case.municipality_id, "requests materials")
        agencies = session.scalars(select(Agency).where(Agency.id.in_([a for a in wanted if 0 < a < 2**31]),
                                                        Agency.municipality_id == case.municipality_id,
                                                        Agency.kind != "commission")).unique().all()
        if len(agencies) != len(wanted):
            raise InvalidInput("agencies: an agency is not of the case's municipality",
                               {"agencies": "выберите органы своего муниципалитета"})
        tz = ZoneInfo(sender.agency.timezone)
        today = engine.clock.now().astimezone(tz).date()
        if due_on is None:
            due_on = engine.calendar.calendar.add_working_days(today, ANSWER_WORKING_DAYS)
            check_due = session.scalar(select(HumanTask.due).join(InstanceScope,
                                                                  InstanceScope.instance_id == HumanTask.instance_id)
                                       .where(InstanceScope.case_id == case.id, HumanTask.form_key == CHECK_FORM,
                                              HumanTask.status == "open"))
            if check_due is not None and today <= check_due.astimezone(tz).date() < due_on:
                due_on = check_due.astimezone(tz).date()
        due_at = datetime.combine(due_on, time(23, 59, 59), tzinfo=tz)
        started = []
        for agency in agencies:
            variables = {"case_id": case.id, "municipality": case.municipality.name,
                         "family_name": case.family.name if case.family else "", "agency_id": agency.id,
                         "agency_name": agency.name, "materials_question": question,
                         "requested_on": today.isoformat(), "due_on": due_at.isoformat()}
            instance_id = engine.runtime.start(MATERIALS_PROCESS, variables, business_key=f"case-{case.id}",
                                               started_by=by, timezone=agency.timezone, session=session)
            session.add(InstanceScope(instance_id=instance_id, case_id=case.id, municipality_id=case.municipality_id))
            started.append(instance_id)
        return started
