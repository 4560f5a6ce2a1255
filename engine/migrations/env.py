"""Alembic environment: runs on the connection handed over by `Database.upgrade`, or on a URL.

The revisions are found in the version locations the configuration lists: the engine's chain, plus the branches
of the plugins `Database.upgrade` was given (`MigrationBranch`). Running migrations needs no metadata; the target
metadata (for comparing, e.g. autogenerate) is the shared declarative Base with the engine's tables, plus whatever
tables the running process has registered on it (a domain's, once its models are imported).
"""

from alembic import context

from engine import models  # noqa: F401 - registers the engine's tables
from engine.db import Base, database_url, make_engine

target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url(config.get_main_option("sqlalchemy.url")))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
