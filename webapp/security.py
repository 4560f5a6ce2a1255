"""The Content-Security-Policy of every response, with a fresh nonce per request.

The policy allows scripts and style sheets from this site only (`'self'`): the pages' code lives in
`webapp/static`, including the bpmn-js and form-js bundles. No inline event handlers (`onclick=`, `onsubmit=`)
and no `javascript:` URLs: give the element a `data-` attribute and bind the handler in a static file
(`static/kurator.js` does `data-confirm` for every page).

Nonce convention for templates: an inline `<script>` or `<style>` element runs only with this request's nonce,

    <script nonce="{{ csp_nonce() }}">…</script>       <style nonce="{{ csp_nonce() }}">…</style>

and data blocks carry it too (`<script type="application/json" nonce="{{ csp_nonce() }}" id="…">`), so that
every inline script element of a page is accounted for. Prefer a file in `webapp/static` to inline code. The
nonce is the same for every call within one request and new for each request.

Style *attributes* (`style="…"`) stay allowed (`style-src-attr 'unsafe-inline'`): diagram-js builds its menus
from HTML with style attributes, and an attribute cannot run script or load anything the policy does not allow.
"""

from __future__ import annotations

import secrets

from flask import Flask, g


def csp_nonce() -> str:
    """This request's CSP nonce (a Jinja global: `{{ csp_nonce() }}`)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


def content_security_policy(nonce: str) -> str:
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' 'nonce-{nonce}'",
        "style-src": f"'self' 'nonce-{nonce}'",
        "style-src-attr": "'unsafe-inline'",
        "img-src": "'self' data: blob:",  # the diagrams' icons and the bpmn.io logo are data: URIs
        "font-src": "'self' data:",  # bpmn-font, embedded in its style sheet
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def register(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _content_security_policy(response):
        response.headers.setdefault("Content-Security-Policy", content_security_policy(csp_nonce()))
        return response
