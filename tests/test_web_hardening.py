"""Headers and bodies no page or API call may get wrong: the Content-Security-Policy with a fresh nonce on every
response and no inline script without it on any page, `Allow` on every 405, and JSON bodies Python cannot parse
(a huge integer, deep nesting) answered 400 in the usual error shape, never 500."""

from __future__ import annotations

import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urldefrag, urlsplit

import pytest
from argon2 import PasswordHasher

from sop.migrations import BRANCH as SOP_MIGRATIONS
from webapp.api.common import ApiErrorSchema

from .modeler_support import modeler_app, signed_in, token
from .support import new_engine, open_database
from .test_api import PASSWORD, build_app, token_headers
from .test_sop_diagrams import CHECK
from .test_sop_service import SIGNAL

NONCE = re.compile(r"script-src 'self' 'nonce-([A-Za-z0-9_-]+)'")


def nonce_of(response) -> str:
    policy = response.headers.get("Content-Security-Policy", "")
    found = NONCE.search(policy)
    assert found, policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    return found.group(1)


class PageAudit(HTMLParser):
    """What a page has that the policy would block: inline scripts or style elements without the nonce, inline
    event handlers, `javascript:` URLs; and the same-site links to follow."""

    def __init__(self, nonce: str):
        super().__init__(convert_charrefs=True)
        self.nonce, self.problems, self.links = nonce, [], []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag in ("script", "style") and not values.get("src") and values.get("nonce") != self.nonce:
            self.problems.append(f"<{tag}> without this request's nonce: {values}")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"inline handler {name}= on <{tag}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    "javascript:"):
                self.problems.append(f"javascript: URL on <{tag}>")
        if tag == "a" and values.get("href", "").startswith("/") and not values["href"].startswith("//"):
            self.links.append(urldefrag(values["href"])[0])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The API test app on a database of its own, with a case (its check completed, so it has a document), an
    open task and users of the other roles; everyone's password is PASSWORD."""
    db = open_database(f"sqlite:///{tmp_path_factory.mktemp('csp') / 'csp.db'}")
    db.upgrade([SOP_MIGRATIONS])
    engine = new_engine(db)
    app = build_app(engine)
    app.config["WTF_CSRF_ENABLED"] = False
    password_hash = PasswordHasher().hash(PASSWORD)
    for username, role in (("method", "methodologist"), ("admin", "admin"), ("manager", "manager")):
        engine.identity.add_user(username, [role], agency="КДНиЗП Йошкар-Олы", password_hash=password_hash)
    client = app.test_client()
    school, secretary = token_headers(client, "school"), token_headers(client, "secretary")
    assert client.post("/api/v1/intake", json=SIGNAL, headers=school).status_code in (200, 201)
    task = client.get("/api/v1/tasks?scope=candidate", headers=secretary).get_json()[0]["id"]
    assert client.post(f"/api/v1/tasks/{task}/complete", json={"data": CHECK}, headers=secretary).status_code == 200
    client.post("/api/v1/intake", json={**SIGNAL, "new_family": True}, headers=school)
    yield app
    db.dispose()


def log_in(app, username: str):
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, username
    return client


def test_every_response_has_the_policy_with_a_fresh_nonce(site):
    client = site.test_client()
    first, second = client.get("/login"), client.get("/login")
    assert nonce_of(first) != nonce_of(second)
    assert len(nonce_of(first)) >= 22  # at least 128 random bits
    policy = first.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
                      "form-action 'self'"):
        assert directive in policy
    assert "Content-Security-Policy" in client.get("/api/openapi.json").headers


def test_the_nonce_is_the_one_on_the_pages_inline_data(site):
    client = log_in(site, "method")
    response = client.get("/modeler/edit?key=sop_case")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'nonce="{nonce_of(response)}" id="modeler-data"' in page


SKIP = re.compile(r"/(logout|download|export)|\.(pdf|xlsx|csv|bpmn|json|png|svg)(\?|$)|/documents/\d+")
MAX_PAGES = 60


@pytest.mark.parametrize("username", ["secretary", "chair", "school", "method", "manager", "admin"])
def test_no_page_has_inline_script_the_policy_would_block(site, username):
    """Every page a user of each role reaches by following links from the inbox (up to MAX_PAGES)."""
    client = log_in(site, username)
    seen, queue, problems, pages = set(), deque(["/inbox"]), [], 0
    while queue and pages < MAX_PAGES:
        path = queue.popleft()
        if path in seen or SKIP.search(path):
            continue
        seen.add(path)
        response = client.get(path)
        if response.mimetype != "text/html":
            continue
        pages += 1
        audit = PageAudit(nonce_of(response))
        audit.feed(response.get_data(as_text=True))
        problems.extend(f"{path}: {p}" for p in audit.problems)
        queue.extend(link for link in audit.links if urlsplit(link).path not in ("/logout",))
    assert pages >= 3, seen
    assert problems == []


def test_error_pages_carry_the_policy_too(site):
    client = site.test_client()
    for response in (client.get("/no-such-page"), client.delete("/login")):
        audit = PageAudit(nonce_of(response))
        audit.feed(response.get_data(as_text=True))
        assert audit.problems == []


# -- 405 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/login", {"GET", "POST"}),
    ("PUT", "/inbox", {"GET"}),
    ("POST", "/api/v1/tasks", {"GET"}),
    ("GET", "/api/v1/auth/token", {"POST"}),
    ("PATCH", "/modeler/validate", {"POST"}),
])
def test_a_405_says_which_methods_are_allowed(site, method, path, allowed):
    response = site.test_client().open(path, method=method)
    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


# -- JSON that Python cannot parse ---------------------------------------------------------------------------

HUGE_INTEGER = "9" * 5000
DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(("body", "said"), [
    ('{"xml": "<a/>", "limit": ' + HUGE_INTEGER + "}", "цифр"),
    ('{"xml": ' + DEEP + "}", "глубоко"),
    ('{"xml": "<a/>"', "JSON"),
])
def test_a_page_s_json_call_gets_a_400_with_the_usual_body(engine, body, said):
    client = signed_in(modeler_app(engine))
    response = client.post("/modeler/validate", data=body, content_type="application/json",
                           headers={"X-CSRFToken": token(client)})
    assert response.status_code == 400
    payload = response.get_json()
    assert ApiErrorSchema().validate(payload) == {} and said in payload["message"]


def test_json_within_the_bounds_still_passes(engine):
    from webapp.json_body import MAX_DEPTH, MAX_INTEGER_DIGITS, parse

    assert parse("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert parse("9" * MAX_INTEGER_DIGITS) == int("9" * MAX_INTEGER_DIGITS)
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # inside the body's object: MAX_DEPTH in all
    client = signed_in(modeler_app(engine))
    response = client.post("/modeler/validate", data='{"xml": "<a/>", "extra": ' + nested + "}",
                           content_type="application/json", headers={"X-CSRFToken": token(client)})
    assert response.status_code != 400 or "глубоко" not in response.get_json()["message"]


@pytest.mark.parametrize("target", ["/%0d%0aSet-Cookie:x=1", "/%0d/evil", "/%0a"])
def test_a_header_injection_in_next_is_never_a_500(site, target):
    client = site.test_client()
    assert client.get(f"/login?next={target}").status_code == 200
    response = client.post(f"/login?next={target}", data={"username": "secretary", "password": PASSWORD})
    assert response.status_code == 302 and "\r" not in response.headers["Location"]
    assert response.headers["Location"].endswith("/inbox")
