"""The role × page matrix on the demo data: every page answers each demo user as their role allows, and a case of
another municipality is never revealed (404), whatever URL is guessed."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine import Database, FrozenClock
from sop.demo import seed
from sop.models import Case, Document
from webapp import build_engine, create_app

OK, FORBIDDEN, HIDDEN = 200, 403, 404
COMMISSION = {"secretary", "chair"}
AGENCY_STAFF = {"curator", "police", "guardian", "social", "school", "doctor"}
PAGES = {  # path -> users that get 200; everyone else gets 403
    "/inbox": COMMISSION | AGENCY_STAFF | {"methodologist", "manager", "admin", "regional"},
    "/intake/new": {"secretary"} | AGENCY_STAFF,
    "/cases": COMMISSION | AGENCY_STAFF | {"manager"},
    "/registers": COMMISSION | AGENCY_STAFF | {"manager", "regional"},
    "/manager/overdue": COMMISSION | {"manager"},
    "/modeler": {"methodologist"},
    "/admin": {"admin"},
    "/admin/users": {"admin"},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('matrix') / 'demo.db'}"
    engine = build_engine(Database(url), FrozenClock("2026-11-26T09:00:00+03:00"))
    seed(engine)
    # a second municipality with its own case
    engine.identity.add_agency("КДНиЗП г. Волжска", "Волжск", kind="commission")
    engine.identity.add_agency("Школа № 2 г. Волжска", "Волжск", kind="education")
    engine.identity.add_user("volzhsk", ["commission_secretary"], agency="КДНиЗП г. Волжска",
                             password_hash=_hash())
    engine.identity.add_user("volzhsk_school", ["education", "agency_specialist"], agency="Школа № 2 г. Волжска",
                             password_hash=_hash())
    foreign = engine.sop.register_intake("volzhsk_school", {
        "received_on": "2026-11-25", "source": "Школа", "address": "г. Волжск, ул. Ленина, 1",
        "problem": "Пропуски занятий", "children": [{"last_name": "Орлов", "first_name": "Иван",
                                                      "birth_date": "2014-02-02"}]})
    app = create_app({"TESTING": True, "SECRET_KEY": "matrix", "WTF_CSRF_ENABLED": False}, engine=engine)
    with engine.db.session() as db:  # a case of the demo municipality that has documents
        local = db.scalar(select(Document.case_id).join(Case, Case.id == Document.case_id)
                          .where(Case.municipality_id != _muni(foreign, engine)).limit(1))
    yield {"app": app, "engine": engine, "foreign": foreign.case_id, "local": local}
    engine.db.dispose()


def _hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash("demo")


def _muni(result, engine) -> int:
    with engine.db.session() as db:
        return db.get(Case, result.case_id).municipality_id


def client_for(app, username):
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": "demo"})
    assert response.status_code == 302, username
    return client


USERS = sorted(COMMISSION | AGENCY_STAFF | {"methodologist", "manager", "admin", "regional"})


@pytest.mark.parametrize("username", USERS)
def test_every_page_answers_as_the_role_allows(demo, username):
    client = client_for(demo["app"], username)
    for path, allowed in PAGES.items():
        expected = OK if username in allowed else FORBIDDEN
        assert client.get(path).status_code == expected, (username, path)


@pytest.mark.parametrize("username", USERS + ["volzhsk_school"])
def test_another_municipalitys_case_is_never_revealed(demo, username):
    client = client_for(demo["app"], username)
    foreign = demo["foreign"]
    for path in (f"/cases/{foreign}", f"/cases/{foreign}/documents/1", f"/cases/{foreign}/diagram/1.bpmn",
                 f"/cases/{foreign}/diagram/1/state.json"):
        status = client.get(path).status_code
        if username == "volzhsk_school" and path == f"/cases/{foreign}":
            assert status == OK  # the school that reported it takes part in it
        else:
            assert status in (HIDDEN, FORBIDDEN), (username, path, status)
            if status == FORBIDDEN:  # only roles that see no case files at all get 403, for every case alike
                assert client.get(f"/cases/{demo['local']}").status_code == FORBIDDEN


def test_case_views_and_downloads_are_audited(demo):
    client = client_for(demo["app"], "secretary")
    page = client.get(f"/cases/{demo['local']}").get_data(as_text=True)
    link = re.search(r'href="(/cases/\d+/documents/\d+)"', page).group(1)
    assert client.get(link).headers["Content-Type"] == "application/pdf"
    actions = {(e["actor"], e["action"]) for e in demo["engine"].audit.events(limit=50)}
    assert {("secretary", "case_viewed"), ("secretary", "document_downloaded")} <= actions
