"""`kurator kpi …`: the KPI catalogue and plan, the half-year campaign, plan vs actual."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import click
from sqlalchemy import select

from engine.cli import Context, emit, main, pass_ctx
from engine.errors import InvalidInput, NotFound
from engine.models import Agency, Municipality

from .campaign import start_campaign
from .figures import Half, plan_vs_actual, seed_plans


def _half(text: str) -> Half:
    try:
        return Half.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--half") from None


def _municipalities(engine, name: str | None) -> list[tuple[int, str, str]]:
    """The municipality named, or every municipality with a commission."""
    with engine.db.session() as session:
        query = select(Municipality.id, Municipality.name, Municipality.timezone).order_by(Municipality.name)
        if name:
            rows = session.execute(query.where(Municipality.name == name)).all()
            if not rows:
                raise NotFound(f"municipality '{name}' not found")
        else:
            rows = session.execute(query.where(Municipality.id.in_(
                select(Agency.municipality_id).where(Agency.kind == "commission")))).all()
    if not rows:
        raise InvalidInput("no municipality with a commission: name one with --municipality")
    return [tuple(r) for r in rows]


@main.group()
def kpi() -> None:
    """Key performance indicators (seed 003): plan, half-year campaign, plan vs actual."""


@kpi.command("seed")
@click.option("--municipality", default=None, help="Municipality name (default: every one with a commission).")
@click.option("--user", default="admin", help="Recorded as who set the plan.")
@pass_ctx
def kpi_seed(ctx: Context, municipality, user) -> None:
    """Load the programme's indicators and targets (2025-H2 … 2026-H2) as the plan, where there is none."""
    engine = ctx.engine()
    for municipality_id, name, _tz in _municipalities(engine, municipality):
        with engine.db.session() as session:
            added = seed_plans(session, municipality_id, user, engine.clock.now())
        click.echo(f"{name}: {added} planned values added")


@kpi.command("start")
@click.option("--half", "half_text", required=True, help="The half-year that is over, e.g. 2026-H1.")
@click.option("--municipality", default=None, help="Municipality name (default: every one with a commission).")
@click.option("--user", default="scheduler", help="Recorded as who started it.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def kpi_start(ctx: Context, half_text, municipality, user, as_json) -> None:
    """Start the half-year KPI campaign (executors → coordinator → approval → administration)."""
    half = _half(half_text)
    engine = ctx.engine()
    started = []
    for municipality_id, name, _tz in _municipalities(engine, municipality):
        row = start_campaign(engine, municipality_id, half, by=user)
        started.append({"municipality": name, "half": half.key, "instance_id": row.process_instance_id})
    emit(started, as_json, "\n".join(f"{s['municipality']}: campaign {s['half']} started, instance "
                                     f"{s['instance_id']}" for s in started))


@kpi.command("report")
@click.option("--half", "half_text", required=True, help="e.g. 2026-H1")
@click.option("--municipality", required=True, help="Municipality name.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def kpi_report(ctx: Context, half_text, municipality, as_json) -> None:
    """Plan vs actual of a municipality for a half-year."""
    half = _half(half_text)
    engine = ctx.engine()
    (municipality_id, _name, tz), = _municipalities(engine, municipality)
    with engine.db.session() as session:
        rows = plan_vs_actual(session, municipality_id, half, ZoneInfo(tz))
    data = [{"code": r.code, "name": r.name, "aggregation": r.aggregation, "plan": r.plan, "actual": r.actual,
             "deviation": r.deviation, "percent_of_plan": r.percent_of_plan, "met": r.met, "source": r.source}
            for r in rows]
    emit(data, as_json, "\n".join(f"{d['code']:>5} plan {d['plan']!s:>6} actual {d['actual']!s:>6}  {d['name']}"
                                  for d in data))
