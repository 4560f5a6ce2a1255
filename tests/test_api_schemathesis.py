"""Property-based run of the OpenAPI document against the app (schemathesis): no input makes the API answer 5xx,
and what it answers matches the document (response schemas, content types).

Generated requests go to the WSGI app with a real bearer token of the commission secretary, over data that has a
case with a completed task and its PDF, a task claimed by someone else, an open task and an emergency case.
Generated ids are swapped for those real ones about half of the time, so that the fuzzing gets past the 404s.
Bounded: at most `MAX_EXAMPLES` generated requests per operation and phase, no deadline; the data is built once
for the module.
"""

from __future__ import annotations

import re

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")

from hypothesis import HealthCheck, settings  # noqa: E402 - hypothesis comes with schemathesis
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from webapp.api.common import ApiErrorSchema  # noqa: E402

from .support import clear, new_engine  # noqa: E402
from .test_api import PASSWORD, build_app, token_headers  # noqa: E402
from .test_sop_diagrams import CHECK  # noqa: E402
from .test_sop_service import SIGNAL  # noqa: E402

MAX_EXAMPLES = 25


def spec_app():
    """An app to read the OpenAPI document from (it needs no database); the requests go to `fuzzed`."""
    from engine import Database
    from webapp import build_engine, create_app

    return create_app({"TESTING": True, "SECRET_KEY": "openapi"}, engine=build_engine(Database("sqlite://")))


schema = schemathesis.openapi.from_wsgi("/api/openapi.json", spec_app())


@pytest.fixture(scope="module")
def fuzzed(database):
    """The app under test and the real objects for the generated requests (built once for the module)."""
    clear(database)
    app = build_app(new_engine(database))
    client = app.test_client()
    school, police = token_headers(client, "school"), token_headers(client, "police")
    secretary, secretary2 = token_headers(client, "secretary"), token_headers(client, "secretary2")

    first = client.post("/api/v1/intake", json=SIGNAL, headers=school).get_json()
    completed = client.get("/api/v1/tasks?scope=candidate", headers=secretary).get_json()[0]["id"]
    done = client.post(f"/api/v1/tasks/{completed}/complete", json={"data": CHECK}, headers=secretary)
    assert done.status_code == 200, done.get_json()
    second = client.post("/api/v1/intake", json={**SIGNAL, "new_family": True, "threat_to_life": True},
                         headers=police).get_json()
    claimed = client.get("/api/v1/tasks?scope=candidate", headers=secretary2).get_json()[0]["id"]
    assert client.post(f"/api/v1/tasks/{claimed}/claim", headers=secretary2).status_code == 200
    client.post("/api/v1/intake", json={**SIGNAL, "new_family": True}, headers=school)
    open_task = client.get("/api/v1/tasks?scope=candidate", headers=secretary).get_json()[0]["id"]
    document = client.get(f"/api/v1/cases/{first['case_id']}/documents", headers=secretary).get_json()[0]
    meeting, items = meeting_on_its_day(app, client, secretary)
    secretary = token_headers(client, "secretary")  # the clock moved to the meeting's day
    ids = {"case_id": [first["case_id"], second["case_id"]], "task_id": [completed, claimed, open_task],
           "document_id": [document["id"]], "meeting_id": [meeting], "item_id": items}
    yield app, secretary, ids
    clear(database)


def meeting_on_its_day(app, client, secretary) -> tuple[int, list[int]]:
    """The commission of Йошкар-Ола with four members, its next meeting with the agenda (the recognition of the first
    case and a free item), the clock on the meeting's day: the fuzzing can mark attendance, decide and close."""
    from sqlalchemy import select

    from engine.models import Municipality

    from .test_sop_diagrams import at

    engine = app.extensions["kurator"]
    with engine.db.session() as session:
        municipality = session.scalar(select(Municipality.id).where(Municipality.name == "Йошкар-Ола"))
    meetings = engine.sop.meetings
    meetings.set_up(municipality, "КДНиЗП г. Йошкар-Олы", "Ленинский пр., 27", 1, [1, 3], "10:00")
    for name, position, username in (("Кузнецов А. П.", "chair", "chair"), ("Смирнова О. В.", "secretary",
                                                                               "secretary"),
                                     ("Орлов Д. С.", "member", None), ("Попова Н. И.", "member", None)):
        meetings.add_member(municipality, name, position, username=username)
    meeting = client.post("/api/v1/meetings", json={"next": True}, headers=secretary).get_json()
    free = client.post(f"/api/v1/meetings/{meeting['id']}/items", json={"title": "О профилактике"},
                       headers=secretary).get_json()
    at(engine, f"{meeting['held_on']} 10:00:00")
    return meeting["id"], [*(item["id"] for item in meeting["items"]), free["id"]]


def fresh_token(app) -> tuple[dict[str, str], int]:
    """A token of its own for a generated `DELETE /api/v1/auth/tokens/{id}`, so that revoking never touches the
    token the other requests use (from an address of its own: the fuzzing of POST /auth/token backs off)."""
    response = app.test_client().post("/api/v1/auth/token", json={"username": "secretary2", "password": PASSWORD},
                                      environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert response.status_code == 200, response.get_json()
    token = response.get_json()
    return {"Authorization": f"Bearer {token['token']}"}, token["id"]


def test_openapi_document_is_valid():
    schema.validate()  # against the OpenAPI 3.0 meta-schema; raises with the offending part


def use_real_ids(case, ids) -> None:
    """Swap a generated path id for a real one when its last character's code is even."""
    for name, value in list((case.path_parameters or {}).items()):
        if name in ids:
            code = ord(str(value)[-1]) if str(value) else 0
            if code % 2 == 0:
                case.path_parameters[name] = ids[name][code % len(ids[name])]


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_input_makes_a_server_error(case, fuzzed):
    app, headers, ids = fuzzed
    use_real_ids(case, ids)
    if case.method.upper() == "DELETE" and case.path.startswith("/api/v1/auth/tokens/"):
        headers, token_id = fresh_token(app)
        use_real_ids(case, {"token_id": [token_id]})
    case.call_and_validate(app=app, headers=headers,
                           checks=[not_a_server_error, response_schema_conformance, content_type_conformance])


# bodies the generated requests never contain: more digits than Python converts, and nesting past its recursion
# limit; every operation with a JSON body answers them 400 with the API's error body, and changes nothing
UNREADABLE_BODIES = {
    "an integer of 5,000 digits": '{"data": {"x": ' + "9" * 5000 + "}}",
    "arrays nested 10,000 deep": "[" * 10_000 + "]" * 10_000,
    "objects nested 10,000 deep": '{"data": ' * 10_000 + "1" + "}" * 10_000,
}


def operations_with_a_body() -> list[tuple[str, str]]:
    document = spec_app().test_client().get("/api/openapi.json").get_json()
    return [(method.upper(), path) for path, item in document["paths"].items()
            for method, operation in item.items() if isinstance(operation, dict) and "requestBody" in operation]


def test_bodies_python_cannot_parse_get_a_400_on_every_operation(fuzzed):
    app, headers, ids = fuzzed
    client = app.test_client()
    operations = operations_with_a_body()
    assert ("POST", "/api/v1/tasks/{task_id}/complete") in operations
    before = client.get("/api/v1/tasks?scope=all", headers=headers).get_json()
    for method, path in operations:
        url = re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), [1])[-1]), path)
        for name, body in UNREADABLE_BODIES.items():
            response = client.open(url, method=method, data=body, content_type="application/json", headers=headers)
            assert response.status_code == 400, (method, url, name, response.status_code)
            payload = response.get_json()
            assert ApiErrorSchema().validate(payload) == {} and payload["message"], (method, url, name, payload)
    assert client.get("/api/v1/tasks?scope=all", headers=headers).get_json() == before
