"""The schema's migrations (issue 12, "A domain-free engine"): the engine's chain holds only the engine's tables, the
SOP domain has its own Alembic branch (`sop/migrations/versions`), and `kurator init-db` applies both.

Databases made before the split are built here by the released revisions themselves: `tests/data/legacy_migrations`
is the engine's chain as it was released before the split (revisions 0001-0013 holding the domain's tables too),
kept unchanged, run with Alembic to the revision a test needs. Each test runs on SQLite, and on PostgreSQL in a
private schema when KURATOR_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import inspect, text

import sop
import sop.kpi.models  # noqa: F401 - every table of the domain is on the metadata
import sop.meetings.models  # noqa: F401
import sop.models  # noqa: F401
from engine import Database, FrozenClock, KuratorError, ProcessEngine
from engine.db import ENGINE_VERSIONS, Base, migration_config
from sop.migrations import BRANCH, VERSIONS

from .support import ROOT, create_postgres_schema, drop_postgres_schema, open_database, postgres_url

# SQLite's reflection skips expression indexes with a warning; `schema` reads every index's definition itself
pytestmark = pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")

LEGACY = Path(__file__).parent / "data" / "legacy_migrations"
RELEASED = "5831c83"  # the last commit with the domain's tables in the engine's chain
AT = "2026-01-12T09:00:00+03:00"
ENGINE_HEAD = ScriptDirectory.from_config(migration_config()).get_current_head()
HEADS = set(ScriptDirectory.from_config(migration_config([BRANCH])).get_heads())
SOP_HEAD = ScriptDirectory.from_config(migration_config([BRANCH])).get_revision("sop@head").revision
# the domain's tables that its branch created after the split (no released revision has them)
AFTER_SPLIT = {"sop_emergency_run", "sop_instance_reader", "sop_case_emergency"}
# columns and indexes the domain added to its older tables (sop_0011)
AFTER_SPLIT_COLUMNS = {"sop_document": {"pending_html", "render_failed_at"}}
AFTER_SPLIT_INDEXES = {"ix_sop_document_pending"}
DOMAIN_TABLES = {mapper.local_table.name for mapper in Base.registry.mappers
                 if mapper.class_.__module__.split(".")[0] == "sop"}
ENGINE_TABLES = {mapper.local_table.name for mapper in Base.registry.mappers
                 if mapper.class_.__module__.split(".")[0] == "engine"}


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if postgres_url() else ["sqlite"]


@pytest.fixture(params=_backends())
def blank(request, tmp_path) -> Iterator[Callable[[], Database]]:
    """A factory of empty databases on the backend of the run (SQLite files, private PostgreSQL schemas)."""
    made: list[tuple[Database, str | None]] = []

    def make() -> Database:
        if request.param == "postgresql":
            schema = create_postgres_schema(postgres_url())
            db = open_database(postgres_url(), schema)
            db.cli_url = f"{postgres_url()}?options=-csearch_path%3D{schema}"
        else:
            path = tmp_path / f"db{len(made)}.db"
            schema, db = None, open_database(f"sqlite:///{path}")
            db.cli_url = f"sqlite:///{path}"
        made.append((db, schema))
        return db

    yield make
    for db, schema in made:
        db.dispose()
        if schema:
            drop_postgres_schema(postgres_url(), schema)


def legacy(db: Database, revision: str) -> Database:
    """`db` brought to `revision` by the released chain from before the split (domain tables in the engine's chain)."""
    config = migration_config()
    config.set_main_option("version_locations", str(LEGACY))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return db


def versions(db: Database) -> set[str]:
    with db.engine.connect() as connection:
        return set(connection.scalars(text("SELECT version_num FROM alembic_version")))


def schema(db: Database) -> dict:
    """Tables with their columns, indexes (with their definitions), foreign keys, unique constraints, primary keys."""
    with db.engine.connect() as connection:
        inspector = inspect(connection)
        tables = {}
        for table in inspector.get_table_names():
            tables[table] = {
                "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)),
                "indexes": sorted((i["name"], tuple(str(n) for n in i["column_names"]), bool(i["unique"]))
                                  for i in inspector.get_indexes(table)),
                "foreign_keys": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                                        tuple(f["referred_columns"]), str(f["options"].get("ondelete")))
                                       for f in inspector.get_foreign_keys(table)),
                "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            }
        if db.is_postgresql:  # the full definition of every index, partial and expression ones included
            rows = connection.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                           "WHERE schemaname = current_schema()"))
            definitions = {name: re.sub(r" ON \S+\.", " ON ", definition) for name, definition in rows}
        else:
            rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
            definitions = {name: sql for name, sql in rows if not name.startswith("sqlite_autoindex")}
    return {"tables": tables, "index_definitions": definitions}


def _without(found: dict, tables: set[str], columns: dict[str, set[str]] | None = None,
             indexes: set[str] = frozenset()) -> dict:
    """A `schema` without the given tables and their indexes, and without the given columns and indexes of other
    tables."""
    def kept(name: str, table: dict) -> dict:
        dropped = (columns or {}).get(name, set())
        return {**table, "columns": [c for c in table["columns"] if c[0] not in dropped],
                "indexes": [i for i in table["indexes"] if i[0] not in indexes]}

    return {"tables": {name: kept(name, table) for name, table in found["tables"].items() if name not in tables},
            "index_definitions": {name: definition for name, definition in found["index_definitions"].items()
                                  if name not in indexes
                                  and not any(re.search(rf" ON (\S+\.)?\"?{table}\"? ", definition)
                                              for table in tables)}}


def product(db: Database) -> ProcessEngine:
    return sop.build_engine(db, FrozenClock(AT), jobs=False)


def test_the_legacy_chain_is_the_released_one():
    """The copy is byte for byte the engine's revisions of the last commit before the split."""
    names = sorted(path.name for path in LEGACY.glob("*.py"))
    assert len(names) == 13 and names[0].startswith("0001_") and names[-1].startswith("0013_")
    try:
        listed = subprocess.run(["git", "ls-tree", "--name-only", f"{RELEASED}:engine/migrations/versions"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
    except OSError:
        pytest.skip("git is not available")
    if listed.returncode != 0:
        pytest.skip("the repository history is not available")
    assert sorted(listed.stdout.split()) == names
    for name in names:
        released = subprocess.run(["git", "show", f"{RELEASED}:engine/migrations/versions/{name}"], cwd=ROOT,
                                  capture_output=True, timeout=60).stdout
        assert (LEGACY / name).read_bytes() == released, name


# -- the engine's chain knows no domain ---------------------------------------------------------------------------


def test_the_engine_migrations_name_no_domain_table_and_import_no_domain():
    assert DOMAIN_TABLES >= {"sop_family", "sop_case", "sop_meeting", "sop_podrostok_campaign", "kpi_indicator"}
    offending = []
    for path in sorted((ROOT / "engine" / "migrations").rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        where = path.relative_to(ROOT).as_posix()
        if "sop" in where.lower():
            offending.append(f"{where}: file name")
        content = path.read_text(encoding="utf-8")
        offending += [f"{where}: {word}" for word in sorted(DOMAIN_TABLES | {"sop", "kpi", "podrostok"})
                      if re.search(rf"\b{word}\b|{word}_", content, re.IGNORECASE)]
    assert offending == []


def test_upgrading_the_engine_alone_loads_no_domain_module(tmp_path):
    url = f"sqlite:///{tmp_path / 'alone.db'}"
    script = ("import sys\nfrom engine import Database\n"
              f"Database({url!r}).upgrade()\n"
              "print(sorted(m for m in sys.modules if m == 'sop' or m.startswith(('sop.', 'webapp'))))\n")
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_engine_alone_creates_only_its_own_tables(blank):
    db = blank()
    ProcessEngine(db, FrozenClock(AT)).init_db()
    tables = set(schema(db)["tables"])
    assert tables == ENGINE_TABLES | {"alembic_version"}
    assert not {t for t in tables if t.startswith(("sop_", "kpi_"))}
    assert versions(db) == {ENGINE_HEAD}


def test_the_domain_branch_depends_on_the_engine_tables_it_references():
    script = ScriptDirectory.from_config(migration_config([BRANCH]))
    ours = [rev for rev in script.walk_revisions() if Path(rev.path).parent == VERSIONS]
    first = [rev for rev in ours if rev.down_revision is None]
    assert [rev.revision for rev in first] == ["sop_0001"] and first[0].branch_labels == {"sop"}
    assert first[0].dependencies == "0001"  # municipality, agency, process_instance
    assert {rev.revision: rev.dependencies for rev in ours if rev.dependencies} == {"sop_0001": "0001",
                                                                                   "sop_0003": "0008"}
    assert {Path(rev.path).parent for rev in script.walk_revisions()} == {ENGINE_VERSIONS, VERSIONS}


# -- a fresh database: the same schema as the released chain gave -------------------------------------------------


def test_a_fresh_database_with_the_domain_has_the_schema_of_the_old_chain(blank):
    # the released chain ended at 0013 with the domain's tables in it; the engine's revisions after the split apply
    # to both databases alike, so the old one is brought to the same engine head (by the engine alone: it knows
    # nothing of the domain) before the two are compared. The domain's revisions after the split (sop_0007 on) are
    # applied by the domain only: what they add is left out of the comparison.
    fresh, old = blank(), legacy(blank(), "0013")
    product(fresh).init_db()
    assert versions(fresh) == HEADS == {ENGINE_HEAD, SOP_HEAD}
    assert versions(old) == {"0013"}
    old.upgrade()
    assert versions(old) == {ENGINE_HEAD}
    assert _without(schema(fresh), AFTER_SPLIT, AFTER_SPLIT_COLUMNS, AFTER_SPLIT_INDEXES) == schema(old)
    assert set(schema(fresh)["tables"]) == ENGINE_TABLES | DOMAIN_TABLES | {"alembic_version"}


def test_kurator_init_db_twice_changes_nothing(blank):
    from webapp.cli import main

    db = blank()
    seen = []
    for _ in range(2):
        result = CliRunner().invoke(main, ["--database-url", db.cli_url, "init-db"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        seen.append((versions(db), schema(db)))
    assert seen[0][0] == HEADS and seen[1] == seen[0]


# -- databases made by the released chain, at its head and before ------------------------------------------------


def _seed_scoped_instance(db: Database) -> None:
    """A municipality, a deployed definition, one instance with an open task scoped to the municipality, a family
    (columns every released revision from 0003 on has)."""
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO municipality (id, name, timezone) VALUES (1, 'Йошкар-Ола', 'Europe/Moscow')"))
        c.execute(text("INSERT INTO resource (id, name, kind, content_hash, content, created_at) "
                       "VALUES (1, 'p.bpmn', 'bpmn', 'h', '<x/>', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO process_definition (id, key, version, content_hash, resource_id, spec_json, "
                       "warnings, deployed_at) VALUES (1, 'p', 1, 'h', 1, '{}', '[]', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO process_instance (id, definition_id, process_key, status, state, revision, "
                       "timezone, started_at) VALUES (1, 1, 'p', 'running', '{}', 1, 'Europe/Moscow', "
                       "'2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO human_task (id, instance_id, process_key, element_id, name, candidate_roles, "
                       "candidate_users, candidates, overdue, status, created_at) VALUES ('t1', 1, 'p', 'e', 'Шаг', "
                       "'[]', '[]', '', false, 'open', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO sop_family (id, municipality_id, name, address_key, created_at) "
                       "VALUES (1, 1, 'Ивановы', 'k', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO sop_instance_scope (instance_id, case_id, municipality_id) VALUES (1, NULL, 1)"))


def _municipalities(db: Database) -> tuple:
    """The seeded rows, all still there: the instance's and the task's municipality, the family's name."""
    with db.engine.connect() as c:
        assert c.scalar(text("SELECT count(*) FROM sop_instance_scope")) == 1
        return (c.execute(text("SELECT municipality_id FROM process_instance WHERE id = 1")).scalar_one(),
                c.execute(text("SELECT municipality_id FROM human_task WHERE id = 't1'")).scalar_one(),
                c.execute(text("SELECT name FROM sop_family WHERE id = 1")).scalar_one())


@pytest.mark.parametrize("revision", ["0001", "0002", "0003", "0007", "0008", "0009", "0011", "0012", "0013"])
def test_a_database_of_the_released_chain_upgrades_in_place(blank, revision):
    """At its head (0013) or any revision before, with data in it: `init_db` with the domain stamps the domain's
    branch as far as the schema has it, creates the rest, and ends with the schema of a fresh database."""
    reference = blank()
    product(reference).init_db()
    db = legacy(blank(), revision)
    assert versions(db) == {revision}
    seeded = revision >= "0003"  # sop_instance_scope exists from the released 0003 on
    if seeded:
        _seed_scoped_instance(db)
    product(db).init_db()
    assert versions(db) == HEADS
    assert schema(db) == schema(reference)
    if seeded:  # the data stayed, and the scope's municipality is on the rows (filled by 0008 or by sop_0003)
        assert _municipalities(db) == (1, 1, "Ивановы")


def test_the_released_head_is_stamped_without_running_a_revision(blank, monkeypatch):
    from alembic.runtime.migration import MigrationContext

    db = legacy(blank(), "0013")
    _seed_scoped_instance(db)
    ran = []
    original = MigrationContext.run_migrations

    def spy(self, **kw):
        heads = self.get_current_heads()
        original(self, **kw)
        ran.append((set(heads), set(self.get_current_heads())))

    monkeypatch.setattr(MigrationContext, "run_migrations", spy)
    product(db).init_db()
    # stamped before the upgrade, which then ran only the engine's revisions after the split
    assert ran == [({"0013", "sop_0006"}, HEADS)]  # and the domain's revisions after the split
    assert versions(db) == HEADS and _municipalities(db) == (1, 1, "Ивановы")


def test_a_released_database_brought_on_by_the_engine_alone_is_adopted_later(blank):
    """The released chain at 0007 (scope rows, no municipality columns yet), then the engine alone to its head: the
    columns come without the domain's fill. Adopting the domain later fills them."""
    db = legacy(blank(), "0007")
    _seed_scoped_instance(db)
    ProcessEngine(db, FrozenClock(AT)).init_db()
    assert versions(db) == {ENGINE_HEAD}
    assert _municipalities(db) == (None, None, "Ивановы")
    product(db).init_db()
    assert versions(db) == HEADS
    assert _municipalities(db) == (1, 1, "Ивановы")


def test_an_engine_only_database_gets_the_domain_branch_from_its_start(blank):
    reference = blank()
    product(reference).init_db()
    db = blank()
    ProcessEngine(db, FrozenClock(AT)).init_db()
    product(db).init_db()
    assert versions(db) == HEADS and schema(db) == schema(reference)


def test_the_engine_alone_leaves_the_domain_branch_alone(blank):
    """On a database with the domain's branch, the engine alone has nothing to do when its chain is at its head,
    and refuses (naming the revision it does not know) when its chain is behind: Alembic cannot upgrade past it."""
    db = blank()
    product(db).init_db()
    before = schema(db)
    ProcessEngine(db, FrozenClock(AT)).init_db()
    assert versions(db) == HEADS and schema(db) == before

    previous = ScriptDirectory.from_config(migration_config()).get_revision(ENGINE_HEAD).down_revision
    config = migration_config([BRANCH])
    with db.engine.begin() as connection:  # the engine's last revision undone: the domain's branch stays
        config.attributes["connection"] = connection
        command.downgrade(config, previous)
    behind = schema(db)
    assert versions(db) == {previous, SOP_HEAD} and behind != before
    with pytest.raises(KuratorError, match=f"not among the migrations given: {SOP_HEAD}"):
        ProcessEngine(db, FrozenClock(AT)).init_db()
    assert versions(db) == {previous, SOP_HEAD} and schema(db) == behind
    product(db).init_db()
    assert versions(db) == HEADS and schema(db) == before


def test_a_schema_with_a_gap_is_refused_before_anything_changes(blank):
    db = legacy(blank(), "0009")
    with db.engine.begin() as c:
        c.execute(text("DROP TABLE sop_instance_scope"))
    with pytest.raises(KuratorError, match="sop_0004 but not all those before them"):
        product(db).init_db()
    assert versions(db) == {"0009"}


def test_sop_0008_stores_the_start_of_the_emergencies_open_at_the_upgrade(blank):
    """A database from before sop_0008 with an emergency open inside a case process (and a case without one): the
    upgrade writes the start of that emergency's run, as the flag read it from the history."""
    from .test_web_emergency import _called_threat
    from .test_web_tasks import build_app

    db = blank()
    engine = product(db)
    engine.init_db()
    build_app(engine)  # the municipality, its agencies and users, the diagrams and forms
    _case, instance_id = _called_threat(engine, 0)
    _called_threat(engine, 1)
    with db.engine.begin() as c:  # the second emergency is over: no row for it
        c.execute(text("UPDATE human_task SET status = 'completed', completed_at = created_at "
                       "WHERE instance_id <> :kept AND status = 'open'"), {"kept": instance_id})
        stored = c.execute(text("SELECT instance_id, started_at FROM sop_emergency_run WHERE instance_id = :i"),
                           {"i": instance_id}).all()
    assert len(stored) == 1
    config = migration_config([BRANCH])
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "sop_0006")
    assert "sop_emergency_run" not in schema(db)["tables"]
    product(db).init_db()
    with db.engine.connect() as c:
        assert c.execute(text("SELECT instance_id, started_at FROM sop_emergency_run")).all() == stored


def test_sop_0009_keeps_the_cases_with_an_emergency_open_at_the_upgrade(blank):
    """A database from before sop_0009 with an emergency called inside a case process, an emergency instance of its
    own and an emergency that is over: the upgrade writes one row per case with an open emergency, from when it
    began, as the flag worked it out."""
    from .test_web_emergency import _called_threat, _threats, finish_emergency
    from .test_web_tasks import HASH, build_app

    db = blank()
    engine = product(db)
    engine.init_db()
    build_app(engine)
    engine.identity.add_user("social", ["social_protection"], agency="КЦСОН г. Йошкар-Олы", password_hash=HASH)
    called_case, _instance = _called_threat(engine, 0)
    _over_case, over_instance = _called_threat(engine, 1)
    finish_emergency(engine, over_instance)
    [own_case] = _threats(engine, 1)
    with db.engine.connect() as c:
        stored = c.execute(text("SELECT case_id, municipality_id, since FROM sop_case_emergency "
                                "ORDER BY case_id")).all()
    assert [row[0] for row in stored] == sorted([called_case, own_case])
    config = migration_config([BRANCH])
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "sop_0008")
    assert "sop_case_emergency" not in schema(db)["tables"]
    product(db).init_db()
    with db.engine.connect() as c:
        assert c.execute(text("SELECT case_id, municipality_id, since FROM sop_case_emergency "
                              "ORDER BY case_id")).all() == stored
