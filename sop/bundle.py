"""«Личное дело» as one PDF: a contents page, then the newest version of every document of the case file the
user may see, in the order they were made.

Agencies' attached files go in when they are PDFs; other files are named in the contents as not included. The
caller checks that the user may open the case (`sop.access` decides which documents they see).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError
from sqlalchemy import select

from engine.errors import InvalidInput, NotFound

from . import casefile
from .access import CaseAccess, visible_documents
from .documents.render import render_contents_pdf
from .models import Case, Document

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from engine import ProcessEngine

    from .access import AccessUser


@dataclass
class Bundle:
    pdf: bytes
    filename: str
    entries: list[dict[str, Any]]  # {id, title, created_at, first_page, pages, included}
    pages: int


def case_bundle(engine: ProcessEngine, case_id: int, user: AccessUser) -> Bundle:
    """The case file of `case_id` as `user` may see it, in one PDF (the caller has checked the case's scope)."""
    with engine.db.session() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise NotFound(f"No case {case_id}")
        documents = _latest_documents(session, CaseAccess.of(user, case), case_id)
        entries, readers = [], []
        for document in documents:
            reader = _reader(_pdf(session, document))
            entries.append({"id": document.id, "title": document.title, "created_at": document.created_at,
                            "pages": len(reader.pages) if reader else 0, "included": reader is not None})
            if reader is not None:
                readers.append((document.title, reader))
        context = {"case": {"number": case.number, "family": case.family.name, "status": case.status},
                   "municipality": case.municipality.name, "generated_at": engine.clock.now().date()}
        number = case.number
    contents, first = _contents(context, entries)
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(contents)))
    for title, reader in readers:
        writer.append(reader, outline_item=title[:120])
    writer.add_metadata({"/Title": f"Личное дело № {number}"})
    buffer = io.BytesIO()
    writer.write(buffer)
    total = first - 1 + sum(e["pages"] for e in entries if e["included"])
    return Bundle(buffer.getvalue(), f"case-{number.replace('/', '-')}-bundle.pdf", entries, total)


def _latest_documents(session: Session, access: CaseAccess, case_id: int) -> list[Document]:
    """The newest version of each visible document (one per kind and source), oldest first."""
    latest: dict[tuple[str, str | None, int | None], int] = {}
    for row in visible_documents(session, access, case_id):  # newest first
        latest.setdefault((row.kind, row.source_ref, row.agency_id), row.id)
    ids = sorted(latest.values())
    if not ids:
        return []
    return list(session.scalars(select(Document).where(Document.id.in_(ids)).order_by(Document.created_at,
                                                                                       Document.id)))


def _pdf(session: Session, document: Document) -> bytes | None:
    """The document's PDF (laid out now if it is still waiting); None when it cannot be: listed, not included."""
    try:
        return casefile.pdf_of(session, document)
    except InvalidInput:
        return None


def _reader(content: bytes | None) -> PdfReader | None:
    if not content or not bytes(content[:1024]).lstrip().startswith(b"%PDF"):
        return None
    try:
        reader = PdfReader(io.BytesIO(bytes(content)))
        return reader if len(reader.pages) else None
    except (PdfReadError, ValueError, OSError):
        return None


def _contents(context: dict[str, Any], entries: list[dict[str, Any]]) -> tuple[bytes, int]:
    """The contents pages, numbered for the pages that follow them; (PDF, first page after the contents)."""
    contents_pages = 1
    for _ in range(3):  # the contents may itself take more than one page: number again until it is stable
        page = contents_pages + 1
        for entry in entries:
            entry["first_page"] = page if entry["included"] else None
            page += entry["pages"]
        pdf = render_contents_pdf({**context, "entries": entries, "generated_on": context["generated_at"]})
        pages = len(PdfReader(io.BytesIO(pdf)).pages)
        if pages == contents_pages:
            return pdf, contents_pages + 1
        contents_pages = pages
    return pdf, contents_pages + 1

