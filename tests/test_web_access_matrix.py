"""The role × page matrix on the demo data: every page answers each demo user as their role allows, and a case of
another municipality is never revealed (404), whatever URL is guessed."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine import Database, FrozenClock
from engine.models import User
from sop.demo import seed
from sop.models import Case, Document, Proposal
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
    "/reports": COMMISSION | {"regional", "manager"},  # the demo's manager works at the commission
    "/kpi": COMMISSION | {"regional", "manager"},
    "/kpi/report.xlsx": COMMISSION | {"regional", "manager"},
    "/kpi/report.pdf": COMMISSION | {"regional", "manager"},
    "/podrostok": COMMISSION | {"regional", "manager"},
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


# -- the API shows what the case page shows (sop.access) -------------------------------------------------------------

CASE_USERS = sorted(COMMISSION | AGENCY_STAFF | {"manager"})
FULL_VIEW = COMMISSION | {"manager", "curator"}  # the commission (a manager at the commission) and the curator


def api_headers(app, username: str) -> dict[str, str]:
    response = app.test_client().post("/api/v1/auth/token", json={"username": username, "password": "demo"})
    assert response.status_code == 200, username
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def programme_case(engine) -> int:
    """The demo case that went furthest (closed after two reviews): every kind of document, the agencies'
    proposals, and tasks completed by the commission, the curator and the agencies."""
    with engine.db.session() as db:
        return db.scalar(select(Proposal.case_id).order_by(Proposal.id.desc()).limit(1))


def case_documents(engine, case_id: int) -> dict[int, tuple[str, str | None]]:
    """Document id -> (kind, source_ref) of every version of a case's documents."""
    with engine.db.session() as db:
        return {row.id: (row.kind, row.source_ref) for row in db.execute(
            select(Document.id, Document.kind, Document.source_ref).where(Document.case_id == case_id))}


def proposal_documents(engine, case_id: int) -> dict[int, int | None]:
    """Document id -> the agency whose proposals it renders."""
    with engine.db.session() as db:
        owners = dict(db.execute(select(Proposal.id, Proposal.agency_id).where(Proposal.case_id == case_id)).all())
    return {i: owners[int(ref.removeprefix("proposal-"))] for i, (kind, ref) in case_documents(engine, case_id).items()
            if kind == "proposals"}


def agencies(engine) -> dict[str, int | None]:
    """User name -> agency id."""
    with engine.db.session() as db:
        return dict(db.execute(select(User.username, User.agency_id)).all())


def downloads_by(engine, username: str, document_id: int) -> list[dict]:
    return [e for e in engine.audit.events("document", document_id) if e["actor"] == username]


def opens(app, headers, case_id: int) -> bool:
    status = app.test_client().get(f"/api/v1/cases/{case_id}", headers=headers).status_code
    assert status in (OK, HIDDEN)
    return status == OK


@pytest.mark.parametrize("username", CASE_USERS)
def test_api_registration_card_is_for_the_full_view_only(demo, username):
    """Regression: an agency's specialist who may open the case downloaded the registration card (Appendix 3)
    through the API, and the API listed it. Now it answers as a missing document and leaves no audit trace."""
    app, engine = demo["app"], demo["engine"]
    case_id = programme_case(engine)
    card = max(i for i, (kind, _ref) in case_documents(engine, case_id).items() if kind == "registration_card")
    client, headers = app.test_client(), api_headers(app, username)
    response = client.get(f"/api/v1/documents/{card}", headers=headers)
    listed = client.get(f"/api/v1/cases/{case_id}/documents", headers=headers)
    if username in FULL_VIEW:
        assert response.status_code == OK and response.data.startswith(b"%PDF"), username
        assert card in {d["id"] for d in listed.get_json()}
        assert downloads_by(engine, username, card)
        return
    missing = client.get("/api/v1/documents/2147483647", headers=headers)
    assert response.status_code == HIDDEN, username
    assert response.get_json() == missing.get_json()  # the very answer of a document that does not exist
    assert downloads_by(engine, username, card) == []
    if username in {"police", "school"}:
        assert opens(app, headers, case_id)  # the working group of the demo's programmes
    if opens(app, headers, case_id):  # the list omits it; the documents every agency receives are there
        kinds = {d["kind"] for d in listed.get_json()}
        assert "registration_card" not in kinds and {"conclusion", "programme"} <= kinds, username
    else:
        assert listed.status_code == HIDDEN, username


@pytest.mark.parametrize("username", CASE_USERS)
def test_api_proposals_of_another_agency_are_hidden(demo, username):
    """Regression: the school read the police's proposals to the programme through the API. An agency sees the
    proposals it made; the commission and the curator see all of them."""
    app, engine = demo["app"], demo["engine"]
    case_id = programme_case(engine)
    proposals, agency = proposal_documents(engine, case_id), agencies(engine)[username]
    assert {owner for owner in proposals.values()} >= {agencies(engine)["police"]}
    client, headers = app.test_client(), api_headers(app, username)
    listed = client.get(f"/api/v1/cases/{case_id}/documents", headers=headers)
    listed_ids = {d["id"] for d in listed.get_json()} if listed.status_code == OK else set()
    opened = opens(app, headers, case_id)
    hidden = 0
    for document_id, owner in proposals.items():
        sees = opened and (username in FULL_VIEW or owner == agency)
        hidden += opened and not sees
        status = client.get(f"/api/v1/documents/{document_id}", headers=headers).status_code
        assert status == (OK if sees else HIDDEN), (username, document_id)
        assert (document_id in listed_ids) == sees, (username, document_id)
        assert bool(downloads_by(engine, username, document_id)) == sees, (username, document_id)
    if username == "school":
        assert hidden, "the police's proposals must be hidden from the school"


@pytest.mark.parametrize("username", CASE_USERS)
def test_api_history_carries_only_the_own_agencys_form_data(demo, username):
    """Regression: agency staff read every form of the case (the commission's check, the curator's card, other
    agencies' proposals) in the API's history. Entries of another agency (or of the commission) keep their type,
    time, task and step, without the data; the user's own agency's entries keep theirs."""
    app, engine = demo["app"], demo["engine"]
    case_id = programme_case(engine)
    headers = api_headers(app, username)
    response = app.test_client().get(f"/api/v1/cases/{case_id}/history", headers=headers)
    if not opens(app, headers, case_id):
        assert response.status_code == HIDDEN
        return
    events = response.get_json()
    agency = agencies(engine)

    def own(actor: str | None) -> bool:
        return username in FULL_VIEW or (actor is not None and agency.get(actor) == agency[username])

    completed = [e for e in events if e["type"] == "task_completed"]
    assert {"secretary", "chair", "curator", "police"} <= {e["actor"] for e in completed}
    for event in completed:
        assert event["at"] and event["task_name"] and event["task_id"], event
        if own(event["actor"]):
            assert event["data"] is not None, (username, event)
        else:
            assert event["data"] is None, (username, event)
    check = completed[0]  # the commission's check of the information, the first task of every case
    assert check["actor"] == "secretary" and (check["data"] is not None) == (username in FULL_VIEW), username
    assert check["data"] is None or check["data"]["danger_level"] == "medium"
    proposals = [e for e in completed if "proposal_situation" in (e["data"] or {})]
    assert all(own(e["actor"]) for e in proposals), username
    assert bool(proposals) or username not in FULL_VIEW | {"police"}, username  # the police made some
    doers = {e["task_id"]: e["actor"] for e in completed}
    for event in events:  # a task of another agency is named, not described (no roles, assignee, due date)
        if event["type"] == "task_created" and event["task_id"] in doers:
            if own(doers[event["task_id"]]):
                assert "candidate_roles" in event["data"], (username, event)
            else:
                assert set(event["data"]) == {"element", "name"}, (username, event)
    started = events[0]
    assert started["type"] == "instance_started" and started["process_key"] == "sop_case"
    if own(started["actor"]):  # e.g. the school that registered the case
        assert "variables" in started["data"], username
    else:
        assert set(started["data"]) == {"key", "version"} and started["data"]["key"] == "sop_case", username


@pytest.mark.parametrize("username", CASE_USERS)
def test_case_page_and_api_agree_on_visible_documents(demo, username):
    """For every case of the municipality and every document: the case page links and serves exactly what the API
    lists and serves (the page shows the newest version of each document, the API every version)."""
    app, engine = demo["app"], demo["engine"]
    page_client, headers = client_for(app, username), api_headers(app, username)
    api_client = app.test_client()
    with engine.db.session() as db:
        foreign = db.get(Case, demo["foreign"]).municipality_id
        cases = list(db.scalars(select(Case.id).where(Case.municipality_id != foreign)))
    seen = 0
    for case_id in cases:
        documents = case_documents(engine, case_id)
        page = page_client.get(f"/cases/{case_id}")
        listed = api_client.get(f"/api/v1/cases/{case_id}/documents", headers=headers)
        assert page.status_code == listed.status_code, (username, case_id)
        if page.status_code != OK:
            continue
        linked = {int(i) for i in re.findall(rf'href="/cases/{case_id}/documents/(\d+)"', page.get_data(as_text=True))}
        api_ids = {d["id"] for d in listed.get_json()}
        assert api_ids <= set(documents)
        newest = {max(i for i in api_ids if documents[i] == group) for group in {documents[i] for i in api_ids}}
        assert linked == newest, (username, case_id)
        for document_id in documents:
            on_page = page_client.get(f"/cases/{case_id}/documents/{document_id}").status_code
            via_api = api_client.get(f"/api/v1/documents/{document_id}", headers=headers).status_code
            assert on_page == via_api == (OK if document_id in api_ids else HIDDEN), (username, document_id)
        seen += len(api_ids)
    assert seen or username in {"guardian", "doctor"}, username
