"""The triggers that keep `sop_instance_reader` in step with the rows it is derived from (migrations sop_0007 and
sop_0010), in each database's dialect.

Each trigger adds the readers a written row names to every instance of its case, or removes the readers it may have
taken away that nothing of the case still names (see sop_0007 for the rules). On PostgreSQL each is a PL/pgSQL
function; on SQLite the statements sit in the trigger itself.

Two transactions that change the readers of one case at once (PostgreSQL). Without a lock the table could end
wrong: a task addressed to agency 3 inserted by one transaction finds the row `agency:3` there and adds nothing,
while another transaction, taking agency 3 off the case's only other task, does not see that uncommitted task and
deletes the row; both commit and the agency's staff no longer see the new task. With `locked` (sop_0010), each
function first takes the case's transaction-level advisory lock (`sop.case_lock`), held until commit: the second
transaction waits for the first to commit, and since every statement of a PL/pgSQL function reads with a snapshot of
its own (READ COMMITTED), it then reads what the first wrote. SQLite has one writer at a time and needs none.

The statements written here must not change once a database holds them: a change is a new migration that replaces
the functions (as sop_0010 does).
"""

from __future__ import annotations

from sop.case_lock import CASE_LOCK_SPACE

TABLE = "sop_instance_reader"


def _case_of(instance: str) -> str:
    return f"(SELECT case_id FROM sop_instance_scope WHERE instance_id = {instance})"


def _case_readers(case: str) -> str:
    """The readers of a case, from the rows they are derived from."""
    tasks = (f"FROM sop_instance_scope rs JOIN human_task rt ON rt.instance_id = rs.instance_id "
             f"WHERE rs.case_id = {case}")
    return (f"SELECT 'agency:' || ra.agency_id AS reader FROM sop_case_agency ra WHERE ra.case_id = {case} "
            f"UNION SELECT 'user:' || rc.curator FROM sop_case rc WHERE rc.id = {case} AND rc.curator IS NOT NULL "
            f"UNION SELECT 'agency:' || rt.agency_id {tasks} AND rt.agency_id IS NOT NULL "
            f"UNION SELECT 'user:' || rt.assignee {tasks} AND rt.assignee IS NOT NULL "
            f"UNION SELECT 'user:' || rt.completed_by {tasks} AND rt.completed_by IS NOT NULL")


def _task_readers(row: str) -> str:
    """The readers a task row names (NULL for a column that is empty)."""
    return (f"SELECT 'agency:' || {row}.agency_id AS reader UNION SELECT 'user:' || {row}.assignee "
            f"UNION SELECT 'user:' || {row}.completed_by")


def _add(readers: str, case: str, dialect: str) -> str:
    """Rows for these readers on every instance of the case (those present stay)."""
    insert = "INSERT OR IGNORE INTO" if dialect == "sqlite" else "INSERT INTO"
    conflict = "" if dialect == "sqlite" else " ON CONFLICT DO NOTHING"
    return (f"{insert} {TABLE} (reader, instance_id, case_id, running) "
            f"SELECT nr.reader, ns.instance_id, ns.case_id, ni.status = 'running' "
            f"FROM sop_instance_scope ns JOIN process_instance ni ON ni.id = ns.instance_id "
            f"JOIN ({readers}) nr ON nr.reader IS NOT NULL WHERE ns.case_id = {case}{conflict}")


def _prune(case: str, readers: str | None = None) -> str:
    """Remove the case's rows of these readers (of any reader, without `readers`) that the case no longer names."""
    which = f" AND reader IN ({readers})" if readers else ""
    return f"DELETE FROM {TABLE} WHERE case_id = {case}{which} AND reader NOT IN ({_case_readers(case)})"


def triggers(dialect: str) -> list[tuple[str, str, str, str | None, list[str], list[str]]]:
    """(name, table, event, condition, statements, cases) of every trigger: `cases` are the expressions of the
    case (or cases) whose readers its statements change."""
    differs = (lambda a, b: f"{a} IS NOT {b}") if dialect == "sqlite" else (lambda a, b: f"{a} IS DISTINCT FROM {b}")
    task_columns = ("instance_id", "agency_id", "assignee", "completed_by")
    named = " OR ".join(f"NEW.{c} IS NOT NULL" for c in task_columns[1:])
    changed = " OR ".join(differs(f"OLD.{c}", f"NEW.{c}") for c in task_columns)
    lost = " OR ".join([differs("OLD.instance_id", "NEW.instance_id")]
                       + [f"(OLD.{c} IS NOT NULL AND {differs(f'OLD.{c}', f'NEW.{c}')})" for c in task_columns[1:]])
    old_named = " OR ".join(f"OLD.{c} IS NOT NULL" for c in task_columns[1:])
    new_case, old_case = _case_of("NEW.instance_id"), _case_of("OLD.instance_id")
    return [
        ("sop_reader_task_insert", "human_task", "INSERT", named,
         [_add(_task_readers("NEW"), new_case, dialect)], [new_case]),
        ("sop_reader_task_gain", "human_task", "UPDATE OF " + ", ".join(task_columns), f"({changed}) AND ({named})",
         [_add(_task_readers("NEW"), new_case, dialect)], [new_case]),
        ("sop_reader_task_loss", "human_task", "UPDATE OF " + ", ".join(task_columns), lost,
         [_prune(old_case, _task_readers("OLD"))], [old_case]),
        ("sop_reader_task_delete", "human_task", "DELETE", old_named,
         [_prune(old_case, _task_readers("OLD"))], [old_case]),
        ("sop_reader_scope_insert", "sop_instance_scope", "INSERT", "NEW.case_id IS NOT NULL",
         [_add(_case_readers("NEW.case_id"), "NEW.case_id", dialect)], ["NEW.case_id"]),
        ("sop_reader_scope_update", "sop_instance_scope", "UPDATE OF instance_id, case_id",
         f"{differs('OLD.instance_id', 'NEW.instance_id')} OR {differs('OLD.case_id', 'NEW.case_id')}",
         [f"DELETE FROM {TABLE} WHERE instance_id = OLD.instance_id", _prune("OLD.case_id"),
          _add(_case_readers("NEW.case_id"), "NEW.case_id", dialect)], ["OLD.case_id", "NEW.case_id"]),
        ("sop_reader_scope_delete", "sop_instance_scope", "DELETE", "OLD.case_id IS NOT NULL",
         [f"DELETE FROM {TABLE} WHERE instance_id = OLD.instance_id", _prune("OLD.case_id")], ["OLD.case_id"]),
        ("sop_reader_agency_insert", "sop_case_agency", "INSERT", None,
         [_add("SELECT 'agency:' || NEW.agency_id AS reader", "NEW.case_id", dialect)], ["NEW.case_id"]),
        ("sop_reader_agency_update", "sop_case_agency", "UPDATE OF case_id, agency_id",
         f"{differs('OLD.case_id', 'NEW.case_id')} OR {differs('OLD.agency_id', 'NEW.agency_id')}",
         [_prune("OLD.case_id", "SELECT 'agency:' || OLD.agency_id AS reader"),
          _add("SELECT 'agency:' || NEW.agency_id AS reader", "NEW.case_id", dialect)], ["OLD.case_id", "NEW.case_id"]),
        ("sop_reader_agency_delete", "sop_case_agency", "DELETE", None,
         [_prune("OLD.case_id", "SELECT 'agency:' || OLD.agency_id AS reader")], ["OLD.case_id"]),
        ("sop_reader_curator", "sop_case", "UPDATE OF curator", differs("OLD.curator", "NEW.curator"),
         [_prune("OLD.id", "SELECT 'user:' || OLD.curator AS reader"),
          _add("SELECT 'user:' || NEW.curator AS reader", "NEW.id", dialect)], ["NEW.id"]),
        # every save of an instance sets its status; only a change of it reaches the readers' rows
        ("sop_reader_instance_status", "process_instance", "UPDATE OF status", differs("OLD.status", "NEW.status"),
         [f"UPDATE {TABLE} SET running = (NEW.status = 'running') WHERE instance_id = NEW.id"], [_case_of("NEW.id")]),
    ]


TRIGGERS = [name for name, *_rest in triggers("sqlite")]


def _lock(cases: list[str]) -> list[str]:
    """The statements that take the advisory lock of each of these cases, the lower case id first (two
    transactions then never wait for each other crosswise over the two cases of one row); a NULL case takes none."""
    if len(cases) == 1:
        return [f"PERFORM pg_advisory_xact_lock({CASE_LOCK_SPACE}, {cases[0]})"]
    joined = ", ".join(cases)
    return [f"PERFORM pg_advisory_xact_lock({CASE_LOCK_SPACE}, least({joined}))",
            f"PERFORM pg_advisory_xact_lock({CASE_LOCK_SPACE}, greatest({joined}))"]


def postgresql_function(name: str, statements: list[str], cases: list[str], locked: bool) -> str:
    """CREATE OR REPLACE FUNCTION of a trigger's PL/pgSQL function (with the case lock first when `locked`)."""
    body = "".join(f"  {statement};\n" for statement in (_lock(cases) if locked else []) + statements)
    return f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}" \
           f"  RETURN NULL;\nEND\n$$"
