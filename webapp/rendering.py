"""A case document a request writes is laid out as PDF after the person has the answer.

The change that writes a document commits its HTML (`sop.casefile.generate`); laying the PDF out takes WeasyPrint
200-600 ms. During a request those documents are only listed (`sop.casefile.defer_rendering`), and the worker lays
them out once the response is sent (the WSGI server closes it). A request that fails leaves its documents to their
first reader and to the scheduler (`render_documents`), which lay out any document still waiting.
"""

from __future__ import annotations

from functools import partial

from flask import Flask, g

from sop import casefile

_TOKEN = "documents_deferred"  # g: the deferral's token while the request lasts


def register(app: Flask) -> None:
    @app.before_request
    def _defer_documents():
        if _TOKEN not in g:  # once per request, however often the hooks run in one application context
            setattr(g, _TOKEN, casefile.defer_rendering())

    @app.after_request
    def _render_documents_once_answered(response):
        token = g.pop(_TOKEN, None)
        if token is not None:
            written = casefile.deferred_documents(token)
            if written:
                response.call_on_close(partial(casefile.render_pending, app.extensions["kurator"], written))
        return response

    @app.teardown_request
    def _end_deferral(_exc):
        token = g.pop(_TOKEN, None)
        if token is not None:  # no response went out: the documents wait for their first reader or the scheduler
            casefile.deferred_documents(token)
