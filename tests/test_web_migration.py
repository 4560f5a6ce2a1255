"""«Перенос экземпляров» in the web app: methodologists only, CSRF-protected JSON, dry run, batch steps, revert,
every action in the audit log."""

from __future__ import annotations

import pytest

from .modeler_support import audit, modeler_app, post_json, signed_in
from .support import DIAGRAMS
from .test_web_auth import login

KEY = "migration_demo"


@pytest.fixture
def app(engine):
    app = modeler_app(engine)
    engine.repository.deploy([DIAGRAMS / "migration_v1.bpmn"], deployed_by="method")
    return app


@pytest.fixture
def method(app):
    return signed_in(app)


def kurator(app):
    return app.extensions["kurator"]


def cases(app, count: int, past_check: int) -> list[int]:
    """`count` instances on version 1, the last `past_check` of them past the step version 2 removes; then v2."""
    engine = kurator(app)
    ids = [engine.runtime.start(KEY, {}, business_key=f"дело-{n}") for n in range(count)]
    for instance_id in ids[count - past_check:]:
        for user in ("secretary", "secretary"):
            task = engine.tasks.query(instance_id=instance_id)[0]
            engine.tasks.complete(task["id"], user, {})
    engine.repository.deploy([DIAGRAMS / "migration_v2.bpmn"], deployed_by="method")
    return ids


def test_secretary_is_refused(app):
    cases(app, 1, 0)
    client = app.test_client()
    login(client, "secretary")
    assert client.get(f"/modeler/migrations?key={KEY}").status_code == 403
    assert post_json(client, "/modeler/migrations/plan", {"key": KEY}).status_code == 403
    assert post_json(client, "/modeler/migrations/start", {"key": KEY}).status_code == 403
    assert post_json(client, "/modeler/migrations/revert/1").status_code == 403


def test_posts_need_the_csrf_token(app, method):
    cases(app, 1, 0)
    response = post_json(method, "/modeler/migrations/start", {"key": KEY}, with_token=False)
    assert response.status_code == 400
    assert kurator(app).migration.batches() == []


def test_page_offers_versions_and_stages(app, method):
    cases(app, 3, 1)
    page = method.get(f"/modeler/migrations?key={KEY}").get_data(as_text=True)
    assert "Перенос экземпляров «migration_demo»" in page
    assert "версия 1 <span class=\"muted\">— запущено: 3</span>" in page
    assert "Прием (intake) — 2" in page and "Решение (decide) — 1" in page
    assert "Проверить (пробный прогон)" in page
    assert method.get("/modeler/migrations?key=nope").status_code == 404
    index = method.get("/modeler").get_data(as_text=True)
    assert f'href="/modeler/migrations?key={KEY}"' in index


def test_dry_run_batch_and_revert(app, method):
    ids = cases(app, 5, 2)
    response = post_json(method, "/modeler/migrations/plan", {"key": KEY, "target_version": 2,
                                                               "from_versions": [1]})
    assert response.status_code == 200
    plan = response.get_json()
    assert (plan["total"], plan["movable"], plan["blocked"]) == (5, 3, 2)
    blocked = [i for i in plan["instances"] if not i["movable"]]
    assert {i["instance_id"] for i in blocked} == set(ids[3:])
    assert blocked[0]["reasons"] == ["выполненный шаг «Проверка» (check) удален в версии 2"]
    assert audit(app, "migration_planned")[0]["details"]["movable"] == 3
    assert kurator(app).runtime.instance(ids[0])["version"] == 1  # the dry run changed nothing

    response = post_json(method, "/modeler/migrations/start", {"key": KEY, "target_version": 2,
                                                                "comment": "переход"})
    assert response.status_code == 200
    batch_id = response.get_json()["batch_id"]
    assert response.get_json()["url"] == f"/modeler/migrations/{batch_id}"
    started = audit(app, "migration_started")[0]
    assert started["object_id"] == str(batch_id) and started["details"]["instances"] == 3
    page = method.get(f"/modeler/migrations/{batch_id}").get_data(as_text=True)
    assert 'data-status="running"' in page and "Обработано" in page

    result = post_json(method, f"/modeler/migrations/{batch_id}/step").get_json()
    while result["status"] == "running":
        result = post_json(method, f"/modeler/migrations/{batch_id}/step").get_json()
    assert (result["total"], result["done"], result["moved"], result["failed"]) == (3, 3, 3, 0)
    assert [i["instance_id"] for i in result["items"]] == ids[:3]
    assert audit(app, "migration_step")
    assert all(kurator(app).runtime.instance(i)["version"] == 2 for i in ids[:3])
    page = method.get(f"/modeler/migrations/{batch_id}").get_data(as_text=True)
    assert "Вернуть на версию 1" in page and "Перенос завершен." in page

    migration_id = result["items"][0]["id"]
    response = post_json(method, f"/modeler/migrations/revert/{migration_id}")
    assert response.status_code == 200 and response.get_json()["version"] == 1
    assert kurator(app).runtime.instance(ids[0])["version"] == 1
    assert audit(app, "migration_reverted")[0]["details"] == {"migration_id": migration_id, "version": 1}
    again = post_json(method, f"/modeler/migrations/revert/{migration_id}")
    assert again.status_code == 409 and "уже отменен" in again.get_json()["message"]
    assert post_json(method, "/modeler/migrations/revert/99999").status_code == 404

    # after a further step the revert button is disabled with the reason
    engine = kurator(app)
    task = engine.tasks.query(instance_id=ids[1])[0]
    engine.tasks.complete(task["id"], "secretary", {})
    page = method.get(f"/modeler/migrations/{batch_id}").get_data(as_text=True)
    assert "уже что-то произошло" in page
    second = result["items"][1]["id"]
    refused = post_json(method, f"/modeler/migrations/revert/{second}")
    assert refused.status_code == 409 and "уже что-то произошло" in refused.get_json()["message"]


def test_bad_input_is_a_clear_error(app, method):
    cases(app, 1, 1)
    assert post_json(method, "/modeler/migrations/plan", {}).status_code == 400
    bad = post_json(method, "/modeler/migrations/plan", {"key": KEY, "from_versions": ["x"]})
    assert bad.status_code == 400 and "from_versions" in bad.get_json()["message"]
    missing = post_json(method, "/modeler/migrations/plan", {"key": KEY, "target_version": 9})
    assert missing.status_code == 404 and "версия 9" in missing.get_json()["message"]
    nothing = post_json(method, "/modeler/migrations/start", {"key": KEY})
    assert nothing.status_code == 422 and "Нет экземпляров" in nothing.get_json()["message"]
    assert kurator(app).migration.batches() == []


def test_a_large_dry_run_is_paged_and_the_batch_takes_the_movable_ids_it_found(app, method):
    ids = cases(app, 7, 2)
    seen, movable, after = [], [], None
    while True:
        page = post_json(method, "/modeler/migrations/plan", {"key": KEY, "target_version": 2, "from_versions": [1],
                                                              "after_id": after, "limit": 3}).get_json()
        assert page["selected"] == 7 and page["total"] <= 3
        seen += [i["instance_id"] for i in page["instances"]]
        movable += [i["instance_id"] for i in page["instances"] if i["movable"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == ids and movable == ids[:5]
    too_big = post_json(method, "/modeler/migrations/plan", {"key": KEY, "limit": 100_000})
    assert too_big.status_code == 400 and "limit" in too_big.get_json()["message"]

    # ids that are not (or no longer) movable candidates are refused, and nothing is stored
    stale = post_json(method, "/modeler/migrations/start", {"key": KEY, "target_version": 2,
                                                            "movable_ids": [*movable, 999_999]})
    assert stale.status_code == 422 and "999999" in stale.get_json()["message"]
    assert kurator(app).migration.batches() == []

    response = post_json(method, "/modeler/migrations/start", {"key": KEY, "target_version": 2,
                                                               "movable_ids": movable, "comment": "по страницам"})
    assert response.status_code == 200
    batch_id = response.get_json()["batch_id"]
    result = post_json(method, f"/modeler/migrations/{batch_id}/step").get_json()
    while result["status"] == "running":
        result = post_json(method, f"/modeler/migrations/{batch_id}/step").get_json()
    assert (result["total"], result["moved"], result["failed"]) == (5, 5, 0)
    assert audit(app, "migration_started")[0]["details"]["instances"] == 5


def test_a_string_is_not_a_list_of_ids(app, method):
    cases(app, 2, 0)
    for body in ({"key": KEY, "instance_ids": "12"}, {"key": KEY, "from_versions": [1.5]},
                 {"key": KEY, "movable_ids": [True]}):
        response = post_json(method, "/modeler/migrations/plan", body)
        assert response.status_code == 400 and "Поле" in response.get_json()["message"], body
