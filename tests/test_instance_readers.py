"""Who reads which case's instances (`sop_instance_reader`, migration sop_0007): the database's triggers keep the
table in step with the working group, the curator, the instances of the case and the work on its tasks, and the data
scope of an agency's staff (`webapp.access`) read from it is the rule of docs/domain.md §2, step by step.

The rule is also written out here the way it was computed before the table (from the working groups, the curators
and the whole task history in every statement): after every step the cases and tasks each user sees must be the
same by both, and the table must hold what a fill from scratch (`backfill_instance_readers`) gives.
"""

from __future__ import annotations

import hashlib
import inspect as inspect_module
import threading
import time

import pytest
from alembic import command
from sqlalchemy import delete, inspect, or_, select, text, update

import sop
from engine import FrozenClock, task_query
from engine.db import migration_config
from engine.models import Agency, HumanTask, ProcessInstance, User
from sop.case_lock import CASE_LOCK_SPACE
from sop.migrations import BRANCH, backfill_instance_readers, reader_triggers
from sop.migrations.reader_triggers import TRIGGERS
from sop.models import Case, CaseAgency, InstanceReader, InstanceScope
from webapp.access import CurrentUser, task_scope, visible_cases

from .support import DIAGRAMS, clear
from .test_schema_migrations import AT, blank  # noqa: F401 - the fixture
from .test_sop_service import SIGNAL
from .test_web_tasks import app, signed_in  # noqa: F401 - the fixture

USERS = ("secretary", "school", "police", "guardian", "curator1", "specialist", "vsecretary")


def kurator(app):  # noqa: F811 - `app` is the fixture
    return app.extensions["kurator"]


def current(db, username: str) -> CurrentUser:
    return CurrentUser.from_row(db.scalar(select(User).where(User.username == username)))


def rule_cases(user: CurrentUser):
    """The cases an agency's staff member may open, computed from the rows the rule names (no reader table)."""
    query = select(Case.id).where(Case.municipality_id == user.municipality_id)
    if user.municipality_wide:
        return query
    participating = select(CaseAgency.case_id).where(CaseAgency.agency_id == user.agency_id)
    worked = (select(InstanceScope.case_id).join(HumanTask, HumanTask.instance_id == InstanceScope.instance_id)
              .where(InstanceScope.case_id.is_not(None),
                     or_(HumanTask.agency_id == user.agency_id, HumanTask.assignee == user.username,
                         HumanTask.completed_by == user.username)))
    return query.where(or_(Case.id.in_(participating), Case.curator == user.username, Case.id.in_(worked)))


def rule_tasks(user: CurrentUser):
    """The tasks in the user's scope by the same rule (as `task_scope` computed it before the reader table)."""
    query = select(HumanTask.id)
    unscoped = HumanTask.municipality_id.is_(None)
    if user.municipality_wide:
        return query.where(or_(HumanTask.municipality_id == user.municipality_id, unscoped))
    scoped = select(InstanceScope.instance_id).where(
        InstanceScope.municipality_id == user.municipality_id,
        or_(InstanceScope.case_id.in_(rule_cases(user)), InstanceScope.case_id.is_(None)))
    return query.where(or_((HumanTask.municipality_id == user.municipality_id) & HumanTask.instance_id.in_(scoped),
                           unscoped), task_query.not_another_agencys(user))


def seen(engine, username: str) -> tuple[set[int], set[str]]:
    """The cases and the tasks the user sees, as the web app asks (and checked against the rule)."""
    with engine.db.session() as db:
        user = current(db, username)
        cases = set(db.scalars(visible_cases(user)))
        tasks = set(db.scalars(task_scope(select(HumanTask.id), user)))
        assert cases == set(db.scalars(rule_cases(user))), username
        assert tasks == set(db.scalars(rule_tasks(user))), username
        # the inbox's form: open tasks only, read through the running instances
        open_tasks = set(db.scalars(task_scope(select(HumanTask.id).where(task_query.is_open()), user,
                                               open_tasks=True)))
        assert open_tasks == set(db.scalars(rule_tasks(user).where(HumanTask.status == "open"))), username
    return cases, tasks


def rows(engine) -> set[tuple[str, int, int, bool]]:
    with engine.db.session() as db:
        return set(db.execute(select(InstanceReader.reader, InstanceReader.instance_id, InstanceReader.case_id,
                                     InstanceReader.running)))


def readers(engine) -> set[tuple[str, int, int]]:
    """(reader, instance, case) of every row."""
    return {row[:3] for row in rows(engine)}


def check_all(engine) -> dict[str, tuple[set[int], set[str]]]:
    """What every user sees (each checked against the rule), after the table was compared with a fill from
    scratch."""
    kept = rows(engine)
    with engine.db.engine.begin() as connection:
        backfill_instance_readers(connection)
    assert rows(engine) == kept
    return {username: seen(engine, username) for username in USERS}


def agency_id(engine, name: str) -> int:
    with engine.db.session() as db:
        return db.scalar(select(Agency.id).where(Agency.name == name))


SCHOOL, GUARDIANSHIP = "МБОУ СОШ № 5", "Отдел опеки и попечительства"


def test_the_working_group_and_the_curator_give_and_take_the_case(app):  # noqa: F811
    engine = kurator(app)
    result = engine.sop.register_intake("police", SIGNAL)
    case_id = result.case_id
    view = check_all(engine)
    assert case_id in view["police"][0] and case_id in view["secretary"][0]
    assert case_id not in view["school"][0] and not view["school"][1]
    school = signed_in(app, "school")
    assert school.get(f"/cases/{case_id}").status_code == 404

    with engine.db.session() as db:  # the school joins the working group
        db.add(CaseAgency(case_id=case_id, agency_id=agency_id(engine, SCHOOL), role="member"))
    view = check_all(engine)
    assert case_id in view["school"][0] and view["school"][1]
    assert school.get(f"/cases/{case_id}").status_code == 200

    with engine.db.session() as db:  # and leaves it
        db.execute(delete(CaseAgency).where(CaseAgency.case_id == case_id,
                                            CaseAgency.agency_id == agency_id(engine, SCHOOL)))
    view = check_all(engine)
    assert case_id not in view["school"][0] and not view["school"][1]
    assert school.get(f"/cases/{case_id}").status_code == 404

    for curator, others in (("curator1", ()), ("specialist", ("curator1",)), (None, ("curator1", "specialist"))):
        with engine.db.session() as db:
            db.get(Case, case_id).curator = curator
        view = check_all(engine)
        if curator:
            assert case_id in view[curator][0]
        for other in others:
            assert case_id not in view[other][0], other


def test_the_scope_follows_the_work_on_the_cases_tasks(app):  # noqa: F811
    engine = kurator(app)
    case_id = engine.sop.register_intake("police", SIGNAL).case_id
    check = next(t for t in engine.tasks.query() if t["element_id"] == "sop_check")

    # addressed to the school, the task brings the case into the school's scope; sent on to guardianship, out again
    engine.tasks.address(check["id"], agency_id(engine, SCHOOL), ["education"], by="secretary")
    view = check_all(engine)
    assert case_id in view["school"][0] and check["id"] in view["school"][1]
    assert case_id not in view["guardian"][0]
    engine.tasks.address(check["id"], agency_id(engine, GUARDIANSHIP), ["guardianship"], by="secretary")
    view = check_all(engine)
    assert case_id not in view["school"][0] and case_id in view["guardian"][0]

    # the engine's claim and its giving back: the user reads the case while holding the task, not after (the
    # guardian keeps the case through the task addressed to the agency)
    engine.tasks.claim(check["id"], "guardian")
    check_all(engine)
    assert ("user:guardian", check["instance_id"], case_id) in readers(engine)
    engine.tasks.unclaim(check["id"], "guardian")
    view = check_all(engine)
    assert ("user:guardian", check["instance_id"], case_id) not in readers(engine)
    assert case_id in view["guardian"][0]

    with engine.db.session() as db:  # a task for the specialist by name
        db.execute(update(HumanTask).where(HumanTask.id == check["id"])
                   .values(assignee="specialist"))
    view = check_all(engine)
    assert case_id in view["specialist"][0]
    with engine.db.session() as db:
        db.execute(update(HumanTask).where(HumanTask.id == check["id"]).values(assignee=None))
    view = check_all(engine)
    assert case_id not in view["specialist"][0]

    # completed by a user: the case stays in their scope
    with engine.db.session() as db:
        db.execute(update(HumanTask).where(HumanTask.id == check["id"])
                   .values(assignee="specialist", completed_by="specialist"))
        db.execute(update(HumanTask).where(HumanTask.id == check["id"]).values(assignee=None))
    view = check_all(engine)
    assert case_id in view["specialist"][0]
    with engine.db.session() as db:  # a task open again (a migration back) is nobody's completed work any more
        db.execute(update(HumanTask).where(HumanTask.id == check["id"]).values(completed_by=None))
    view = check_all(engine)
    assert case_id not in view["specialist"][0]


def test_a_new_instance_of_a_case_has_its_readers_and_brings_its_own(app):  # noqa: F811
    engine = kurator(app)
    case_id = engine.sop.register_intake("police", SIGNAL).case_id
    engine.repository.deploy([DIAGRAMS / "loop.bpmn"], deployed_by="methodologist")
    instance_id = engine.runtime.start("loop", {"rounds": 0}, business_key=f"case-{case_id}")
    view = check_all(engine)
    loop_tasks = {t["id"] for t in engine.tasks.query(instance_id=instance_id)}
    assert loop_tasks and loop_tasks <= view["school"][1]  # no municipality yet: in everybody's scope
    with engine.db.session() as db:
        municipality = db.get(Case, case_id).municipality_id
        db.execute(update(HumanTask).where(HumanTask.instance_id == instance_id).values(assignee="school"))
        db.add(InstanceScope(instance_id=instance_id, case_id=case_id, municipality_id=municipality))
    view = check_all(engine)
    # the school holds a task of the new instance: it reads the case, its first instance included
    assert case_id in view["school"][0]
    with engine.db.session() as db:
        first = db.get(Case, case_id).process_instance_id
        assert {("user:school", first, case_id), ("user:school", instance_id, case_id)} <= readers(engine)
        assert ("agency:" + str(agency_id(engine, "ОМВД России по г. Йошкар-Оле")), instance_id, case_id) \
            in readers(engine)  # the working group's agency reads the new instance too

    # the inbox reads only the running instances: an instance that ends is marked on its rows
    assert {row[3] for row in rows(engine) if row[1] == instance_id} == {True}
    with engine.db.session() as db:  # as the engine ends an instance: no task of it stays open
        db.execute(update(HumanTask).where(HumanTask.instance_id == instance_id).values(status="cancelled"))
        db.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id).values(status="completed"))
    check_all(engine)
    assert {row[3] for row in rows(engine) if row[1] == instance_id} == {False}
    with engine.db.session() as db:
        db.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id).values(status="running"))
        db.execute(update(HumanTask).where(HumanTask.instance_id == instance_id).values(status="open"))
    check_all(engine)
    assert {row[3] for row in rows(engine) if row[1] == instance_id} == {True}

    with engine.db.session() as db:  # the instance leaves the case: so does the school (it held nothing else)
        db.execute(delete(InstanceScope).where(InstanceScope.instance_id == instance_id))
    view = check_all(engine)
    assert case_id not in view["school"][0]
    with engine.db.session() as db:  # back in the case, then deleted: the instance takes its rows along
        db.add(InstanceScope(instance_id=instance_id, case_id=case_id, municipality_id=municipality))
    assert {row for row in readers(engine) if row[1] == instance_id}
    with engine.db.session() as db:
        db.execute(delete(ProcessInstance).where(ProcessInstance.id == instance_id))
    assert not {row for row in readers(engine) if row[1] == instance_id}
    check_all(engine)


@pytest.mark.parametrize("column", ["agency_id", "assignee", "completed_by"])
def test_a_task_row_written_in_bulk_is_counted_too(app, column):  # noqa: F811
    """The engine writes new task rows in one statement for many instances (the timer sweep): the triggers see
    those rows as they see any other."""
    engine = kurator(app)
    case_id = engine.sop.register_intake("police", SIGNAL).case_id
    check = next(t for t in engine.tasks.query() if t["element_id"] == "sop_check")
    value = agency_id(engine, SCHOOL) if column == "agency_id" else "school"
    with engine.db.session() as db:
        row = {c.key: getattr(db.get(HumanTask, check["id"]), c.key) for c in HumanTask.__table__.columns}
        db.execute(HumanTask.__table__.insert(), [{**row, "id": f"bulk-{n}", column: value if n else None}
                                                   for n in range(2)])
    view = check_all(engine)
    assert case_id in view["school"][0]


# a municipality, three agencies, a running and a completed instance of one case (working group: the commission
# and the school) and a completed task of the second addressed to guardianship: the rows the reader triggers read
CASE_ROWS = (
    "INSERT INTO municipality (id, name, timezone) VALUES (1, 'Йошкар-Ола', 'Europe/Moscow')",
    "INSERT INTO agency (id, name, kind, municipality_id, timezone) VALUES (1, 'КДН', 'commission', 1, "
    "'Europe/Moscow'), (2, 'Школа', 'education', 1, 'Europe/Moscow'), (3, 'Опека', 'guardianship', 1, "
    "'Europe/Moscow')",
    "INSERT INTO resource (id, name, kind, content_hash, content, created_at) "
    "VALUES (1, 'p.bpmn', 'bpmn', 'h', '<x/>', '2026-01-01 00:00:00')",
    "INSERT INTO process_definition (id, key, version, content_hash, resource_id, spec_json, warnings, "
    "deployed_at) VALUES (1, 'p', 1, 'h', 1, '{}', '[]', '2026-01-01 00:00:00')",
    "INSERT INTO process_instance (id, definition_id, process_key, status, state, revision, timezone, "
    "started_at, municipality_id) VALUES (1, 1, 'p', 'running', '{}', 1, 'Europe/Moscow', "
    "'2026-01-01 00:00:00', 1), (2, 1, 'p', 'completed', '{}', 1, 'Europe/Moscow', "
    "'2026-01-01 00:00:00', 1)",
    "INSERT INTO sop_family (id, municipality_id, name, address_key, created_at) "
    "VALUES (1, 1, 'Ивановы', 'k', '2026-01-01 00:00:00')",
    "INSERT INTO sop_case (id, number, municipality_id, family_id, status, curator, received_on, "
    "created_at) VALUES (1, '1/2026', 1, 1, 'recognized', 'curator1', '2026-01-01', "
    "'2026-01-01 00:00:00')",
    "INSERT INTO sop_case_agency (case_id, agency_id, role) VALUES (1, 1, 'commission'), "
    "(1, 2, 'member')",
    "INSERT INTO sop_instance_scope (instance_id, case_id, municipality_id) VALUES (1, 1, 1), (2, 1, 1)",
    "INSERT INTO human_task (id, instance_id, process_key, element_id, name, candidate_roles, "
    "candidate_users, candidates, agency_id, assignee, completed_by, overdue, status, created_at, "
    "municipality_id) VALUES ('t1', 2, 'p', 'e', 'Шаг', '[]', '[]', '', 3, 'guardian', 'guardian', "
    "false, 'completed', '2026-01-01 00:00:00', 1)")


def test_the_migration_fills_the_table_from_the_rows_already_there(blank):  # noqa: F811 - the fixture
    """sop_0007 on a database with cases: the readers of the existing cases are filled in, and the triggers work
    from then on."""
    db = blank()
    engine = sop.build_engine(db, FrozenClock(AT), jobs=False)
    engine.init_db()
    config = migration_config([BRANCH])
    with db.engine.begin() as connection:  # back to the domain's revision before the table
        config.attributes["connection"] = connection
        command.downgrade(config, "sop_0006")
    with db.engine.begin() as connection:
        assert "sop_instance_reader" not in inspect(connection).get_table_names()
        for statement in CASE_ROWS:
            connection.execute(text(statement))
    engine.init_db()
    with db.engine.connect() as connection:
        found = set(connection.execute(text("SELECT reader, instance_id, case_id, running FROM sop_instance_reader")))
    expected = {(reader, instance, 1, instance == 1) for reader in ("agency:1", "agency:2", "agency:3",
                                                                     "user:curator1", "user:guardian")
                for instance in (1, 2)}
    assert {(r, i, c, bool(running)) for r, i, c, running in found} == expected
    with db.engine.begin() as connection:  # the triggers are there: the school leaves the working group
        connection.execute(text("DELETE FROM sop_case_agency WHERE agency_id = 2"))
        assert not connection.scalar(text("SELECT count(*) FROM sop_instance_reader WHERE reader = 'agency:2'"))


def test_every_reader_trigger_is_there_after_all_migrations(blank):  # noqa: F811 - the fixture
    """The table is only right while its triggers exist. A later migration that rebuilds a table they hang on (on
    SQLite an Alembic batch operation copies `human_task` or `sop_case` into a new table) would drop them without a
    word; after every migration of the engine and the domain they must all be there, and on PostgreSQL each of
    their functions takes the case's lock first (sop_0010)."""
    db = blank()
    sop.build_engine(db, FrozenClock(AT), jobs=False).init_db()
    with db.engine.connect() as connection:
        if db.is_postgresql:
            found = connection.scalars(text(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND NOT t.tgisinternal")).all()
            sources = dict(connection.execute(text(
                "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = current_schema() AND p.proname LIKE 'sop_reader_%'")).all())
            assert sorted(sources) == sorted(TRIGGERS)
            first = f"BEGIN\n  PERFORM pg_advisory_xact_lock({CASE_LOCK_SPACE}, "
            assert [name for name, source in sources.items() if not source.lstrip().startswith(first)] == []
        else:
            found = connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all()
    assert len(TRIGGERS) >= 10
    assert sorted(set(TRIGGERS) - set(found)) == []


def _open_task(task_id: str, agency: str) -> str:
    return ("INSERT INTO human_task (id, instance_id, process_key, element_id, name, candidate_roles, candidate_users, "
            "candidates, agency_id, overdue, status, created_at, municipality_id) "
            f"VALUES ('{task_id}', 1, 'p', 'e', 'Шаг', '[]', '[]', '', {agency}, false, 'open', "
            "'2026-01-01 00:00:00', 1)")


def test_two_changes_of_one_case_at_once_keep_every_reader(database):
    """PostgreSQL, two transactions on one case. B opens a task for guardianship while guardianship already reads
    the case (through its other task, t1, so B's trigger adds nothing); A meanwhile takes guardianship off t1, and
    A's trigger does not see B's uncommitted task. Without the case's lock A deleted `agency:3` and both committed:
    guardianship lost B's task from its inbox. With it A waits for B's commit and then sees the task."""
    if not database.is_postgresql:
        pytest.skip("SQLite has one writer at a time")
    clear(database)
    with database.engine.begin() as connection:
        for statement in CASE_ROWS[:-1] + (_open_task("t1", "3"),):
            connection.execute(text(statement))

    def guardianship_reads() -> bool:
        with database.engine.connect() as connection:
            return bool(connection.scalar(text(
                "SELECT count(*) FROM sop_instance_reader WHERE reader = 'agency:3' AND instance_id = 1")))

    assert guardianship_reads()
    backend, done, failed = [], threading.Event(), []

    def take_agency_off_t1() -> None:
        try:
            with database.engine.begin() as connection:
                backend.append(connection.scalar(text("SELECT pg_backend_pid()")))
                connection.execute(text("UPDATE human_task SET agency_id = NULL WHERE id = 't1'"))
        except Exception as exc:  # reported below, in the test's thread
            failed.append(exc)
        finally:
            done.set()

    with database.engine.connect() as b:
        b.begin()
        b.execute(text(_open_task("t2", "3")))
        a = threading.Thread(target=take_agency_off_t1)
        a.start()
        deadline, waited = time.monotonic() + 20, False
        while not done.is_set() and time.monotonic() < deadline:  # until A is through, or waits for B
            if backend:
                with database.engine.connect() as watcher:
                    waited = bool(watcher.scalar(text(
                        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend[0]}))
                    if waited:
                        break
            time.sleep(0.02)
        b.commit()
    a.join(30)
    assert not failed and done.is_set()
    assert waited  # A's trigger waited for B's case lock: the race was run, not missed
    assert guardianship_reads()
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT id, agency_id FROM human_task ORDER BY id")).all() == \
            [("t1", None), ("t2", 3)]


def test_the_sql_the_reader_migrations_run_never_changes():
    """sop_0007 and sop_0010 build their triggers from `sop.migrations.reader_triggers` and fill the table with
    `backfill_instance_readers`: a database upgraded later must get exactly what the databases upgraded before got.
    When this fails, keep those as they were and write a new migration that replaces the functions (as sop_0010 did),
    with definitions of its own."""
    parts = [reader_triggers.TABLE, str(CASE_LOCK_SPACE), inspect_module.getsource(backfill_instance_readers)]
    for dialect in ("postgresql", "sqlite"):
        for name, table, event, condition, statements, cases in reader_triggers.triggers(dialect):
            parts.append(repr((name, table, event, condition, statements, cases)))
            if dialect == "postgresql":
                parts += [reader_triggers.postgresql_function(name, statements, cases, locked=locked)
                          for locked in (False, True)]
    assert hashlib.sha256("\n".join(parts).encode()).hexdigest() == MIGRATED_READER_SQL, "a migration would change"


MIGRATED_READER_SQL = "dc9412641daa544fb07cbb868058ac05fe0ce0c784a2d592348efa5d91debff7"
