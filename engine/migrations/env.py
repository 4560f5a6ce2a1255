"""Alembic environment: runs on the connection handed over by `Database.upgrade`, or on a URL."""

from alembic import context

from engine import models  # noqa: F401 - registers the tables
from engine.db import Base, database_url, make_engine
from sop import models as sop_models  # noqa: F401 - the SOP domain's tables share the schema

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
