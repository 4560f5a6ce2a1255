"""Helpers shared by the web tests of the modeler's pages: users, the app, CSRF-protected JSON posts, audit rows."""

from __future__ import annotations

import json
import re

from webapp import create_app

from .test_web_auth import HASH, login

USERS = (("method", ["methodologist"]), ("secretary", ["commission_secretary"]), ("admin", ["admin"]),
         ("chair", ["commission"]))


def modeler_app(engine):
    """The web app on `engine`, with a methodologist and users of other roles in one commission (password HASH)."""
    engine.identity.add_agency("КДНиЗП", "Йошкар-Ола", kind="commission")
    for username, roles in USERS:
        engine.identity.add_user(username, roles, agency="КДНиЗП", password_hash=HASH, full_name=username.title())
    return create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)


def signed_in(app, username: str = "method"):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def token(client, path: str = "/modeler") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def post_json(client, path, body=None, with_token=True, token_page: str = "/modeler"):
    headers = {"X-CSRFToken": token(client, token_page)} if with_token else {}
    return client.post(path, data=json.dumps(body if body is not None else {}), content_type="application/json",
                       headers=headers)


def audit(app, action) -> list[dict]:
    return [e for e in app.extensions["kurator"].audit.events() if e["action"] == action]
