"""The `kurator` command line: database set-up, deployment, instances, tasks, time travel, identity."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import click

from . import ProcessEngine
from .clock import Clock, FrozenClock, configured_clock, parse_instant
from .db import Database, database_url
from .errors import KuratorError, ValidationFailed
from .tasks import TASK_FIELDS


class Context:
    """What every command shares: the database URL, the clock, and the engine built from them.

    `factory` builds the engine; an application layer (the SOP domain, the web app) replaces it to install
    its listeners and jobs, so that every command runs with them.

    `clock` is a one-shot command's clock (standing at `--now`); `running_clock()` is the clock of a long-running
    process (`scheduler`, `serve`, `run`): it starts at `--now` and moves on in real time (see `engine.clock`).
    """

    factory: Callable[[Database, Clock], ProcessEngine] = ProcessEngine

    def __init__(self, url: str | None, now: datetime | str | None = None, since: datetime | str | None = None):
        self.url = database_url(url)
        self.now = parse_instant(now) if now else None
        self.since = parse_instant(since) if since and self.now is not None else None
        self.clock = configured_clock(self.now, self.since, one_shot=True)
        self._running_clock: Clock | None = None
        self._engine: ProcessEngine | None = None

    def running_clock(self) -> Clock:
        if self._running_clock is None:
            self._running_clock = configured_clock(self.now, self.since)
        return self._running_clock

    def engine(self, clock=None) -> ProcessEngine:
        if self._engine is None or clock is not None:
            self._engine = type(self).factory(Database(self.url), clock or self.clock)
        return self._engine


pass_ctx = click.make_pass_decorator(Context)
CLI_ACTOR = "cli"  # the audit log's actor of an identity change made from the command line


def emit(value: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))
    elif text is not None:
        click.echo(text)


def parse_var(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise click.BadParameter(f"'{text}' must be name=value", param_hint="--var")
    name, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


class KuratorGroup(click.Group):
    """Turns engine errors into a message and exit code 1 (never a traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ValidationFailed as exc:
            click.echo(exc.message, err=True)
            warnings = [p for p in exc.problems if p.severity == "warning"]
            for problem in warnings:
                click.echo(f"  - {problem}", err=True)
            sys.exit(1)
        except KuratorError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            sys.exit(1)


@click.group(cls=KuratorGroup)
@click.option("--database-url", envvar="KURATOR_DATABASE_URL", default=None,
              help="Database URL (default: KURATOR_DATABASE_URL, else sqlite:///instance/kurator.db).")
@click.option("--now", envvar="KURATOR_NOW", default=None,
              help="Act as if it were this ISO 8601 instant (time travel for demos and tests); the web app and the "
                   "scheduler start at it and run on in real time.")
@click.option("--now-since", "now_since", envvar="KURATOR_NOW_SINCE", default=None,
              help="The real ISO 8601 instant at which --now held: every process then runs on one shifted timeline.")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, now: str | None, now_since: str | None) -> None:
    """Kurator: the СОП case workflow engine."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "spiff", "fontTools", "weasyprint"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    instants = {}
    for hint, value in (("--now", now), ("--now-since", now_since)):
        try:
            instants[hint] = parse_instant(value) if value else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from exc
    ctx.obj = Context(database_url, instants["--now"], instants["--now-since"])


@main.command("init-db")
@pass_ctx
def init_db(ctx: Context) -> None:
    """Create or upgrade the database schema and seed the roles."""
    ctx.engine().init_db()
    click.echo(f"Database ready: {ctx.url}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--by", "deployed_by", default=None, help="Who deploys (recorded in history).")
@click.option("--comment", default=None)
@click.option("--lint", is_flag=True, help="Also apply the bpmnlint recommended rules (as the modeler does).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def deploy(ctx: Context, files, deployed_by, comment, lint, as_json) -> None:
    """Validate and deploy BPMN diagrams and form definitions."""
    result = ctx.engine().repository.deploy(list(files), deployed_by=deployed_by, comment=comment, lint=lint)
    lines = [f"{i.kind} {i.key} version {i.version} ({'new' if i.created else 'unchanged'})" for i in result.items]
    lines += [f"  - {w}" for w in result.warnings]
    emit(result.to_dict(), as_json, "\n".join(lines))


@main.command()
@click.argument("key")
@click.option("--var", "variables", multiple=True, help="name=value (value read as JSON when it parses).")
@click.option("--business-key", default=None)
@click.option("--version", type=int, default=None)
@click.option("--user", default=None, help="Who starts it (their agency's time zone applies).")
@click.option("--timezone", default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def start(ctx: Context, key, variables, business_key, version, user, timezone, as_json) -> None:
    """Start an instance of process KEY."""
    values = dict(parse_var(v) for v in variables)
    instance_id = ctx.engine().runtime.start(key, values, business_key=business_key, version=version,
                                             started_by=user, timezone=timezone)
    emit({"instance_id": instance_id}, as_json, f"Started instance {instance_id}")


@main.command()
@click.option("--user", default=None)
@click.option("--role", default=None)
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--overdue", is_flag=True, default=False)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def tasks(ctx: Context, user, role, instance_id, overdue, as_json) -> None:
    """List open tasks."""
    rows = ctx.engine().tasks.query(user=user, role=role, instance_id=instance_id, overdue=True if overdue else None)
    if as_json:
        emit([{k: r[k] for k in TASK_FIELDS} for r in rows], True)
        return
    for r in rows:
        flag = " OVERDUE" if r["overdue"] else ""
        who = r["assignee"] or ",".join(r["candidate_roles"])
        click.echo(f"{r['id']}  #{r['instance_id']} {r['process_key']}: {r['name']} [{who}] "
                   f"due {r['due'] or '—'}{flag}")
    if not rows:
        click.echo("No tasks.")


@main.command()
@click.argument("task_id")
@click.option("--user", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def claim(ctx: Context, task_id, user, as_json) -> None:
    """Claim a task."""
    emit(ctx.engine().tasks.claim(task_id, user), as_json, f"Task {task_id} claimed by {user}")


@main.command()
@click.argument("task_id")
@click.option("--user", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def unclaim(ctx: Context, task_id, user, as_json) -> None:
    """Give a claimed task back to its candidates."""
    emit(ctx.engine().tasks.unclaim(task_id, user), as_json, f"Task {task_id} released by {user}")


@main.command()
@click.argument("task_id")
@click.option("--user", required=True)
@click.option("--data", default=None, help="Form data as a JSON object.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def complete(ctx: Context, task_id, user, data, as_json) -> None:
    """Complete a task with form data."""
    try:
        values = json.loads(data) if data else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}", param_hint="--data") from exc
    emit(ctx.engine().tasks.complete(task_id, user, values), as_json, f"Task {task_id} completed by {user}")


@main.command()
@click.option("--at", "at", default=None,
              help="Run the sweep as of this ISO 8601 instant (time travel for this command only: a running web app "
                   "and scheduler keep their own clock, see KURATOR_NOW).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def tick(ctx: Context, at, as_json) -> None:
    """Run one scheduler sweep: fire due timers, mark overdue tasks."""
    try:
        clock = FrozenClock(parse_instant(at)) if at else ctx.clock
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    result = ctx.engine(clock).management.sweep()
    emit(result.to_dict(), as_json, f"As of {clock.now().isoformat()}: {result.instances} instance(s) moved, "
                                    f"{result.timers_fired} timer(s) fired, {result.overdue_marked} task(s) "
                                    f"became overdue, {len(result.incidents)} incident(s)")


@main.command()
@click.argument("instance_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def history(ctx: Context, instance_id, as_json) -> None:
    """Show the history of an instance."""
    events = ctx.engine().history.for_instance(instance_id)
    emit(events, as_json, "\n".join(f"{e['at']}  {e['type']:<18} {e['actor'] or '':<12} "
                                    f"{json.dumps(e['data'], ensure_ascii=False) if e['data'] else ''}"
                                    for e in events) or "No history.")


@main.command()
@click.argument("instance_id", type=int)
@pass_ctx
def instance(ctx: Context, instance_id) -> None:
    """Show an instance: status, variables, open tasks (JSON)."""
    emit(ctx.engine().runtime.instance(instance_id), True)


@main.command()
@click.argument("name")
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--business-key", default=None)
@click.option("--var", "variables", multiple=True)
@click.option("--user", default=None)
@pass_ctx
def signal(ctx: Context, name, instance_id, business_key, variables, user) -> None:
    """Send a signal (e.g. a threat to life) to waiting instances."""
    payload = dict(parse_var(v) for v in variables)
    ids = ctx.engine().runtime.send_signal(name, payload, business_key=business_key, instance_id=instance_id,
                                           actor=user)
    click.echo(f"Signal '{name}' received by {len(ids)} instance(s): {', '.join(map(str, ids)) or '—'}")


@main.command()
@click.argument("name")
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--business-key", default=None)
@click.option("--payload", default=None, help="JSON payload.")
@click.option("--user", default=None)
@pass_ctx
def message(ctx: Context, name, instance_id, business_key, payload, user) -> None:
    """Correlate a message to the instance(s) waiting for it."""
    value = json.loads(payload) if payload else None
    ids = ctx.engine().runtime.correlate_message(name, value, business_key=business_key, instance_id=instance_id,
                                                 actor=user)
    click.echo(f"Message '{name}' received by instance(s) {', '.join(map(str, ids))}")


@main.group()
def users() -> None:
    """Users."""


@users.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True)
@click.option("--agency", default=None, help="Agency name or id.")
@click.option("--full-name", default=None)
@click.option("--password", "with_password", is_flag=True,
              help="Ask for a password (hidden, twice); without it the user cannot log in until one is set.")
@pass_ctx
def users_add(ctx: Context, name, roles, agency, full_name, with_password) -> None:
    """Add a user with one or more roles."""
    password = _ask_password() if with_password else None
    engine = ctx.engine()
    user_id = engine.identity.add_user(name, list(roles), agency=agency, full_name=full_name, password=password)
    engine.audit.record(CLI_ACTOR, "user_created", "user", user_id,
                        details={"username": name, "roles": sorted(set(roles)), "full_name": full_name})
    click.echo(f"User {name} created (id {user_id}, roles {', '.join(roles)})")


def _ask_password() -> str:
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("password")
@click.argument("name")
@pass_ctx
def users_password(ctx: Context, name) -> None:
    """Set a user's password (asked twice, hidden): every session and API token of the user ends."""
    password = _ask_password()
    engine = ctx.engine()
    user_id = engine.identity.user_id(name)
    ended = engine.identity.set_password(user_id, password)
    engine.audit.record(CLI_ACTOR, "password_reset", "user", user_id,
                        details={"username": name, "sessions_ended": ended["sessions"],
                                 "tokens_revoked": ended["tokens"]})
    click.echo(f"Password of {name} set; sessions ended: {ended['sessions']}, tokens revoked: {ended['tokens']}")


@users.command("deactivate")
@click.argument("name")
@pass_ctx
def users_deactivate(ctx: Context, name) -> None:
    """Deactivate a user: no login, every session and API token ends."""
    _set_active(ctx, name, False)


@users.command("activate")
@click.argument("name")
@pass_ctx
def users_activate(ctx: Context, name) -> None:
    """Activate a deactivated user again."""
    _set_active(ctx, name, True)


def _set_active(ctx: Context, name: str, active: bool) -> None:
    engine = ctx.engine()
    user_id = engine.identity.user_id(name)
    if not engine.identity.set_active(user_id, active):
        click.echo(f"User {name} is already {'active' if active else 'inactive'}")
        return
    engine.audit.record(CLI_ACTOR, "user_activated" if active else "user_deactivated", "user", user_id,
                        details={"username": name})
    click.echo(f"User {name} {'activated' if active else 'deactivated'}")


@users.command("update")
@click.argument("name")
@click.option("--role", "roles", multiple=True, help="The user's roles (all of them; replaces the current ones).")
@click.option("--agency", default=None, help="Agency name or id; 'none' for no agency.")
@click.option("--full-name", default=None)
@pass_ctx
def users_update(ctx: Context, name, roles, agency, full_name) -> None:
    """Change a user's roles, agency or full name (what is not given stays)."""
    engine = ctx.engine()
    identity = engine.identity
    user_id = identity.user_id(name)
    current = identity.user_record(user_id)
    agency_id = current["agency_id"]
    if agency is not None:
        agency_id = None if agency.lower() == "none" else identity.agency_id(agency)
    changes = identity.update_user(user_id, current["full_name"] if full_name is None else full_name,
                                   list(roles) or current["roles"], agency_id)
    if changes:
        engine.audit.record(CLI_ACTOR, "user_updated", "user", user_id, details={"username": name, "changes": changes})
    click.echo(f"User {name}: " + (", ".join(sorted(changes)) + " changed" if changes else "nothing changed"))


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def users_list(ctx: Context, as_json) -> None:
    rows = [u.to_dict() for u in ctx.engine().identity.users()]
    emit(rows, as_json, "\n".join(f"{u['username']}: {', '.join(u['roles'])} ({u['agency'] or '—'})" for u in rows))


@main.group()
def agencies() -> None:
    """Agencies and municipalities."""


@agencies.command("add")
@click.argument("name")
@click.option("--municipality", required=True)
@click.option("--kind", default=None, help="commission, police, guardianship, social_protection, education, …")
@click.option("--timezone", default=None, help="IANA time zone (default: the municipality's, else Europe/Moscow).")
@pass_ctx
def agencies_add(ctx: Context, name, municipality, kind, timezone) -> None:
    """Add an agency (its municipality is created on first mention)."""
    agency_id = ctx.engine().identity.add_agency(name, municipality, kind=kind, timezone=timezone)
    click.echo(f"Agency {name} created (id {agency_id}) in {municipality}")


@main.group()
def municipalities() -> None:
    """Municipalities."""


@municipalities.command("timezone")
@click.argument("name")
@click.argument("timezone")
@click.option("--with-agencies", is_flag=True, help="Also move the municipality's agencies that kept the old zone.")
@pass_ctx
def municipalities_timezone(ctx: Context, name, timezone, with_agencies) -> None:
    """Change a municipality's time zone (running processes keep the zone they started with)."""
    engine = ctx.engine()
    municipality_id = engine.identity.municipality_id(name)
    old, moved = engine.identity.set_municipality_timezone(municipality_id, timezone, with_agencies=with_agencies)
    engine.audit.record(CLI_ACTOR, "municipality_timezone_changed", "municipality", municipality_id,
                        details={"municipality": name, "old": old, "new": timezone, "agencies_updated": moved})
    click.echo(f"{name}: {old} -> {timezone} (agencies moved: {moved})")


@agencies.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def agencies_list(ctx: Context, as_json) -> None:
    rows = ctx.engine().identity.agencies()
    emit(rows, as_json, "\n".join(f"{a['id']}: {a['name']} — {a['municipality']} ({a['timezone']})" for a in rows))


@main.group()
def calendar() -> None:
    """Production calendar overrides."""


@calendar.command("set")
@click.argument("day", type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--working/--day-off", required=True)
@click.option("--comment", default=None)
@pass_ctx
def calendar_set(ctx: Context, day, working, comment) -> None:
    """Mark DAY as a working day or a day off (regional decree)."""
    ctx.engine().calendar.set_override(day.date(), working, comment)
    click.echo(f"{day.date().isoformat()}: {'working day' if working else 'day off'}")


@calendar.command("check")
@click.argument("day", type=click.DateTime(formats=["%Y-%m-%d"]))
@pass_ctx
def calendar_check(ctx: Context, day) -> None:
    """Say whether DAY is a working day."""
    d: date = day.date()
    working = ctx.engine().calendar.calendar.is_working_day(d)
    click.echo(f"{d.isoformat()}: {'working day' if working else 'day off'}")


@main.command()
@click.option("--interval", type=float, default=15.0, help="Seconds between sweeps.")
@pass_ctx
def scheduler(ctx: Context, interval) -> None:
    """Run the scheduler: sweep timers and overdue tasks until stopped (with --now: from that instant on)."""
    from .scheduler import run_forever

    run_forever(ctx.engine(ctx.running_clock()), interval)



@main.command()
@click.argument("key")
@click.option("--to", "target_version", type=int, default=None, help="Target version (default: the latest).")
@click.option("--from-version", "from_versions", type=int, multiple=True, help="Only instances on this version.")
@click.option("--stage", "stages", multiple=True, help="Only instances with an open task of this element id.")
@click.option("--instance", "instance_ids", type=int, multiple=True, help="Only these instances.")
@click.option("--dry-run", is_flag=True, help="Only report which instances can move and why not.")
@click.option("--by", "actor", default=None, help="Who migrates (recorded in history).")
@click.option("--comment", default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def migrate(ctx: Context, key, target_version, from_versions, stages, instance_ids, dry_run, actor, comment,
            as_json) -> None:
    """Move running instances of process KEY to another version (a dry run first with --dry-run)."""
    service = ctx.engine().migration
    filters = {"from_versions": list(from_versions), "stages": list(stages), "instance_ids": list(instance_ids)}
    if dry_run:
        plan = service.plan(key, target_version, **filters)
        lines = [f"#{i.instance_id} v{i.version}: " + ("можно перенести" if i.movable else
                                                        "нельзя: " + "; ".join(i.reasons))
                 for i in plan.instances]
        lines.append(f"Всего {len(plan.instances)}, можно перенести {len(plan.movable)}, "
                     f"нельзя {len(plan.blocked)} (на версию {plan.target_version})")
        emit(plan.to_dict(), as_json, "\n".join(lines))
        return
    result = service.migrate(key, target_version, actor=actor, comment=comment, **filters)
    lines = [f"#{i['instance_id']}: " + (f"перенесен (перенос {i['id']})" if i["status"] == "moved"
                                         else f"не перенесен: {i['reason']}") for i in result["items"]]
    lines.append(f"Пакет {result['id']}: перенесено {result['moved']} из {result['total']}, "
                 f"не удалось {result['failed']} (на версию {result['target_version']})")
    emit(result, as_json, "\n".join(lines))


@main.command("migrate-revert")
@click.argument("migration_id", type=int)
@click.option("--by", "actor", default=None, help="Who reverts (recorded in history).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def migrate_revert(ctx: Context, migration_id, actor, as_json) -> None:
    """Put an instance back on the version it had before migration MIGRATION_ID."""
    result = ctx.engine().migration.revert(migration_id, actor=actor)
    emit(result, as_json, f"Экземпляр {result['instance_id']} возвращен на версию {result['version']}")


if __name__ == "__main__":  # pragma: no cover
    main()
