"""`GET /api/v1/documents/{id}`: a case file's document as a PDF, for users who may open its case and see the
document there (`sop.access`, the case page's rules); any other document answers as a missing one (404)."""

from __future__ import annotations

from urllib.parse import quote

from flask import g, make_response
from flask.views import MethodView
from flask_smorest import Blueprint

from engine.errors import NotFound
from sop import casefile
from sop.access import CaseAccess, may_open_document
from sop.models import Case, Document

from ..access import can_view_case
from ..auth import kurator
from .common import MAX_ID, audit, documented_errors, protect

blp = Blueprint("api_documents", __name__, url_prefix="/api/v1/documents", description="Documents")
protect(blp)

PDF = {"type": "string", "format": "binary"}


@blp.route(f"/<int(min=1, max={MAX_ID}):document_id>")
class DocumentFile(MethodView):
    @blp.response(200, PDF, content_type="application/pdf", description="The PDF (as an attachment)")
    @documented_errors(blp, 401, 404, 422)
    def get(self, document_id: int):
        """Download a document of a case file; the download is recorded in the audit log. 422: the PDF of a
        document written a moment ago could not be laid out (regenerate it)."""
        with kurator().db.session() as db:
            row = db.get(Document, document_id)
            visible = (row is not None and row.case_id is not None and can_view_case(db, g.user, row.case_id)
                       and may_open_document(db, CaseAccess.of(g.user, db.get(Case, row.case_id)), row))
            content = casefile.pdf_of(db, row) if visible else b""
        if not visible:
            raise NotFound("Документ не найден")
        audit("document_downloaded", "document", document_id, case_id=row.case_id, filename=row.filename)
        response = make_response(bytes(content))
        response.headers["Content-Type"] = "application/pdf"
        response.headers["Content-Disposition"] = attachment(row.filename)
        response.headers["Cache-Control"] = "private, no-store"
        return response


def attachment(filename: str) -> str:
    """A Content-Disposition for any file name: an ASCII fallback and the UTF-8 name (RFC 6266)."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename) or "document.pdf"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
