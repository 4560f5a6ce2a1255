"""Official PDF documents of a СОП case: forms of the Порядок's appendices, resolutions, the removal act."""

from .render import BLANK, DOCUMENT_KINDS, REQUIRED_KEYS, render_html, render_pdf

__all__ = ["BLANK", "DOCUMENT_KINDS", "REQUIRED_KEYS", "render_html", "render_pdf"]
