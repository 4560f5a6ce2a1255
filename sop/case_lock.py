"""The lock of a case (PostgreSQL): a transaction-level advisory lock on (CASE_LOCK_SPACE, case id), held until
the transaction ends.

It serialises the changes of a case's derived rows that cannot be made right by one statement alone: the readers of
its instances (the triggers of `sop.migrations.reader_triggers` take it) and its open emergencies
(`sop.emergencies.refresh`). A transaction that holds it asks again without waiting, so a change that touched the
readers of a case then recomputes its emergencies at once. Several cases are locked in ascending order, so two
changes never wait for each other crosswise; where the order cannot be kept (a statement writing rows of several
cases, as the timer sweep does; or a user's completion, whose task write takes the case's lock before its instance
UPDATE, meeting the sweep, which holds that instance's row and then asks for the case's lock), PostgreSQL detects
the deadlock within a second and refuses one of the two, which the engine reports as a `Conflict` (the change is
tried again, by the user or the next sweep).

The key is in the database's trigger functions: it never changes.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

CASE_LOCK_SPACE = 0x534F5045  # "SOPE": the first key of the advisory lock of a case


def lock_cases(session: Session, case_ids: Iterable[int]) -> None:
    """Take the lock of each case (in ascending order) in the session's transaction; nothing on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for case_id in sorted(set(case_ids)):
        session.execute(select(func.pg_advisory_xact_lock(CASE_LOCK_SPACE, case_id)))
