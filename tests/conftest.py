"""Test fixtures: the suite runs on SQLite by default and on PostgreSQL when KURATOR_TEST_DATABASE_URL is set."""

from __future__ import annotations

import os

# every live workflow the executor keeps between changes is compared with the stored state before it is used
os.environ.setdefault("KURATOR_INSTANCE_CACHE_CHECK", "1")

import pytest  # noqa: E402

from engine import ProcessEngine  # noqa: E402
from sop.migrations import BRANCH as SOP_MIGRATIONS  # noqa: E402

from .support import (  # noqa: E402
    DIAGRAMS,
    clear,
    create_postgres_schema,
    drop_postgres_schema,
    new_engine,
    open_database,
    postgres_url,
)


@pytest.fixture(scope="session")
def database(tmp_path_factory):
    """One migrated database for the session: a private PostgreSQL schema or an SQLite file."""
    url = postgres_url()
    if url:
        schema = create_postgres_schema(url)
        db = open_database(url, schema)
        db.test_schema = schema
        db.upgrade([SOP_MIGRATIONS])  # the engine's chain and the domain's branch
        yield db
        db.dispose()
        drop_postgres_schema(url, schema)
    else:
        path = tmp_path_factory.mktemp("db") / "kurator-test.db"
        db = open_database(f"sqlite:///{path}")
        db.test_schema = None
        db.upgrade([SOP_MIGRATIONS])  # the engine's chain and the domain's branch
        yield db
        db.dispose()


@pytest.fixture
def engine(database) -> ProcessEngine:
    """An engine on an empty database, its clock frozen at 30.10.2025 09:00 Moscow time."""
    clear(database)
    return new_engine(database)


@pytest.fixture
def deployed(engine) -> ProcessEngine:
    """The engine with the test lifecycle diagram, its form and users of each role."""
    engine.repository.deploy([DIAGRAMS / "lifecycle.bpmn", DIAGRAMS / "check_form.json"], deployed_by="tester")
    engine.identity.add_agency("КДН г. Йошкар-Олы", "Йошкар-Ола", kind="commission")
    engine.identity.add_user("secretary", ["commission_secretary"], agency="КДН г. Йошкар-Олы")
    engine.identity.add_user("secretary2", ["commission_secretary"], agency="КДН г. Йошкар-Олы")
    engine.identity.add_user("chair", ["commission"], agency="КДН г. Йошкар-Олы")
    engine.identity.add_user("curator", ["curator"])
    engine.identity.add_user("guardian", ["guardianship"])
    engine.identity.add_user("manager", ["manager"])
    engine.identity.add_user("school", ["education"])
    return engine
