"""«Мои задачи» at scale: the scope on the task row, the capped count, the filter lists of the user's municipality."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, text, update

from engine.models import HumanTask, ProcessInstance, User
from sop.models import Case
from webapp.views import inbox

from .support import DIAGRAMS
from .test_sop_service import SIGNAL
from .test_web_tasks import app, signed_in  # noqa: F401 - the fixture

OTHER_SIGNAL = {**SIGNAL, "address": "г. Волжск, ул. Ленина, д. 3",
                "children": [{**SIGNAL["children"][0], "last_name": "Сидоров"}],
                "parents": [{**SIGNAL["parents"][0], "last_name": "Сидорова"}]}


def kurator(app):  # noqa: F811 - `app` is the fixture
    return app.extensions["kurator"]


def test_tasks_carry_the_municipality_of_their_case_from_the_first_one_on(app):  # noqa: F811
    engine = kurator(app)
    result = engine.sop.register_intake("school", SIGNAL)
    instance_id = result.instance_ids[0]
    with engine.db.session() as db:
        municipality = db.scalar(select(Case.municipality_id).where(Case.id == result.case_id))
        assert db.scalar(select(ProcessInstance.municipality_id).where(ProcessInstance.id == instance_id)) \
            == municipality
        # the first task was created by the engine before the domain scoped the instance
        first = db.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)).all()
        assert first and {t.municipality_id for t in first} == {municipality}
    check = next(t for t in engine.tasks.query(instance_id=instance_id) if t["element_id"] == "sop_check")
    engine.tasks.claim(check["id"], "secretary")
    with engine.db.session() as db:
        assert db.scalar(select(HumanTask.municipality_id).where(HumanTask.id == check["id"])) == municipality
    # a process outside any case or municipality (a methodologist's test run) has none: it carries no case data
    engine.repository.deploy([DIAGRAMS / "loop.bpmn"], deployed_by="methodologist")
    trial = engine.runtime.start("loop", {"rounds": 0}, business_key="trial")
    with engine.db.session() as db:
        assert db.scalar(select(ProcessInstance.municipality_id).where(ProcessInstance.id == trial)) is None
        assert set(db.scalars(select(HumanTask.municipality_id).where(HumanTask.instance_id == trial))) == {None}
    assert "Очередной круг" in signed_in(app, "secretary").get("/inbox").get_data(as_text=True)
    assert "Очередной круг" in signed_in(app, "vsecretary").get("/inbox").get_data(as_text=True)


def title_count(page: str) -> str:
    return re.search(r'<span class="count">([^<]*)</span>', page).group(1)


def test_the_title_counts_up_to_the_cap_then_says_more_than(app, monkeypatch):  # noqa: F811
    engine = kurator(app)
    for number in range(3):
        engine.sop.register_intake("school", {**SIGNAL, "address": f"г. Йошкар-Ола, ул. Мира, д. {number + 1}",
                                              "children": [{**SIGNAL["children"][0], "last_name": f"Петров{number}"}]})
    client = signed_in(app, "secretary")
    exact = int(title_count(client.get("/inbox").get_data(as_text=True)))
    assert exact >= 3
    monkeypatch.setattr(inbox, "COUNT_CAP", exact)
    assert title_count(client.get("/inbox").get_data(as_text=True)) == str(exact)
    monkeypatch.setattr(inbox, "COUNT_CAP", exact - 1)
    assert title_count(client.get("/inbox").get_data(as_text=True)) == f"более {exact - 1}"
    monkeypatch.setattr(inbox, "PAGE_SIZE", 1)
    monkeypatch.setattr(inbox, "COUNT_CAP", 1)
    page = client.get("/inbox").get_data(as_text=True)
    assert title_count(page) == "более 1"
    assert 'class="pager"' in page and "page=2" in page  # the next page stays reachable
    beyond = client.get(f"/inbox?page={exact + 1}").get_data(as_text=True)
    assert f"page={exact + 2}" not in beyond  # a page that is not full is the last one


def test_the_filter_lists_hold_only_the_stages_of_the_users_municipality(app):  # noqa: F811
    engine = kurator(app)
    engine.sop.register_intake("school", SIGNAL)
    other = engine.sop.register_intake("vsecretary", OTHER_SIGNAL)
    with engine.db.session() as db:  # a stage name that only the other municipality's tasks carry
        db.execute(update(HumanTask).where(HumanTask.instance_id.in_(other.instance_ids))
                   .values(name="Проверка — КДНиЗП Волжска"))
    mine = signed_in(app, "secretary").get("/inbox").get_data(as_text=True)
    assert "Проверка — КДНиЗП Волжска" not in mine and 'name="stage"' in mine
    theirs = signed_in(app, "vsecretary").get("/inbox").get_data(as_text=True)
    assert "Проверка — КДНиЗП Волжска" in theirs


def test_postgresql_knows_how_many_open_tasks_nobody_has_taken(database):
    """Migration 0014: statistics on (assignee, status), so that the planner walks the open tasks in due order for
    the offered ones instead of collecting and sorting every unassigned one (bench/RESULTS.md, 2026-12-05)."""
    if not database.is_postgresql:
        pytest.skip("extended statistics are PostgreSQL's")
    with database.engine.connect() as conn:
        kinds, columns = conn.execute(text(
            "SELECT s.stxkind::text, array_agg(a.attname::text ORDER BY a.attname) FROM pg_statistic_ext s "
            "JOIN pg_attribute a ON a.attrelid = s.stxrelid AND a.attnum = ANY(s.stxkeys) "
            "WHERE s.stxname = 'st_human_task_assignee_status' AND s.stxnamespace = current_schema()::regnamespace "
            "AND s.stxrelid = 'human_task'::regclass GROUP BY s.stxkind")).one()
    assert (kinds, columns) == ("{m}", ["assignee", "status"])


PARTIAL = ("ix_human_task_open_instance", "ix_human_task_open_order", "ix_human_task_open_municipality",
           "ix_human_task_open_lists")


def test_the_inbox_statements_say_open_in_the_sql_so_a_generic_plan_may_use_the_partial_indexes(app):  # noqa: F811
    """A prepared statement may run on a generic plan, made without the parameters' values: it cannot use an index
    on `WHERE status = 'open'` when the status is a parameter. The inbox's statements write it as a literal."""
    from sqlalchemy.dialects import postgresql

    from webapp.access import CurrentUser, inbox_query

    engine = kurator(app)
    engine.sop.register_intake("school", SIGNAL)
    with engine.db.session() as db:
        users = [CurrentUser.from_row(db.scalar(select(User).where(User.username == name)))
                 for name in ("secretary", "school")]
    for user in users:
        for scope in ("all", "candidate", "mine"):
            statement = inbox_query(user, scope=scope)
            sql = str(statement.compile(dialect=postgresql.dialect()))
            assert "human_task.status = 'open'" in sql, (user.username, scope)
            if not engine.db.is_postgresql:
                continue
            compiled = statement.compile(dialect=engine.db.engine.dialect,
                                         compile_kwargs={"render_postcompile": True})
            names = list(compiled.params)
            numbered = re.sub(r"%\((\w+)\)s", lambda m, names=names: f"${names.index(m.group(1)) + 1}",
                              compiled.string).replace("%%", "%")
            values = ", ".join("'" + str(compiled.params[name]).replace("'", "''") + "'" for name in names)
            with engine.db.engine.connect() as conn:
                raw = conn.connection.driver_connection  # no parameters: psycopg sends the text as it is
                raw.execute("SET plan_cache_mode = force_generic_plan")
                raw.execute("SET enable_seqscan = off")
                raw.execute(f"PREPARE inbox_generic AS {numbered}")
                plan = "\n".join(row[0] for row in raw.execute(f"EXPLAIN EXECUTE inbox_generic({values})"))
                raw.execute("DEALLOCATE inbox_generic")
                conn.rollback()
            assert any(index in plan for index in PARTIAL), (user.username, scope, plan)


def stage_options(page: str) -> list[str]:
    select_ = re.search(r'<select name="stage"[^>]*>(.*?)</select>', page, re.S).group(1)
    return [name for _value, name in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select_)][1:]


def test_an_agency_user_is_offered_only_the_stages_of_the_tasks_they_can_see(app):  # noqa: F811
    """The quarter's reconciliation addresses a task to each agency, named after it: the school's «Все этапы» list
    holds its own, not the police's or the hospital's (`task_scope`), while the commission sees them all."""
    engine = kurator(app)
    engine.sop.register_intake("school", SIGNAL)
    engine.clock.set("2025-11-13T10:00:00+03:00")
    engine.management.sweep()  # starts the quarter's reconciliation
    names = {t["agency_name"]: t["name"] for t in engine.tasks.query() if t["element_id"] == "rec_agency"}
    assert {"МБОУ СОШ № 5", "ОМВД России по г. Йошкар-Оле"} <= set(names)
    school = stage_options(signed_in(app, "school").get("/inbox").get_data(as_text=True))
    assert names["МБОУ СОШ № 5"] in school
    assert not [n for agency, n in names.items() if agency != "МБОУ СОШ № 5" and n in school], school
    secretary = stage_options(signed_in(app, "secretary").get("/inbox").get_data(as_text=True))
    assert set(names.values()) <= set(secretary)
