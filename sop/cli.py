"""The `kurator` command line of the product: the engine's commands plus the SOP domain's."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import click

from engine.cli import Context, emit, main, pass_ctx
from engine.errors import InvalidInput

from . import build_engine, casefile
from .documents.render import render_pdf

# the product's command line: every command's engine is the one the web app and the scheduler run on
Context.factory = build_engine


@main.group()
def podrostok() -> None:
    """Operation «Подросток» (seed 002): the summer reporting campaign."""


@podrostok.command("start")
@click.option("--year", type=int, required=True, help="The year of the operation.")
@click.option("--municipality", default=None, help="Only this municipality (default: every one with a commission).")
@click.option("--set", "settings", multiple=True, help="A term other than the default, e.g. final_due=2026-09-26.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def podrostok_start(ctx: Context, year, municipality, settings, as_json) -> None:
    """Start the year's campaign for each municipality that has none yet."""
    from .podrostok import start_campaigns

    overrides = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"'{item}' is not name=value", param_hint="--set")
        overrides[name.strip()] = value.strip()
    started = start_campaigns(ctx.engine().sop, year=year, municipality=municipality, overrides=overrides,
                              by="cli")
    emit({"started": started}, as_json, f"Started {len(started)} campaign(s): {started}")


@main.command()
@click.option("--user", required=True, help="Who registers it (their agency's journal).")
@click.option("--data", "data", required=True, help="The journal entry as JSON (see IntakeSchema).")
@click.option("--attach", "attach_to_case", type=int, default=None, help="Attach to this existing case.")
@click.option("--new-family", is_flag=True, help="Register even though a similar family is known.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def intake(ctx: Context, user, data, attach_to_case, new_family, as_json) -> None:
    """Register a signal (Appendix 1 journal entry): a new case, or a known case it joins."""
    try:
        values = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}", param_hint="--data") from exc
    result = ctx.engine().sop.register_intake(user, values, attach_to_case=attach_to_case, new_family=new_family)
    emit(result.to_dict(), as_json, f"Registered: journal entry {result.intake_id}, case "
                                    f"№ {result.case_number} ({'attached' if result.attached else 'new'})")


@main.command()
@click.argument("case_id", type=int)
@pass_ctx
def case(ctx: Context, case_id) -> None:
    """Show a case (JSON)."""
    emit(ctx.engine().sop.case(case_id), True)


@main.group()
def documents() -> None:
    """Documents of case files (PDF)."""


@documents.command("list")
@click.argument("case_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def documents_list(ctx: Context, case_id, as_json) -> None:
    """List the documents of a case."""
    rows = ctx.engine().sop.documents(case_id)
    def state(d: dict) -> str:
        return f"{d['size']} bytes" if d["pdf_state"] == "ready" else f"PDF {d['pdf_state']}"

    emit(rows, as_json, "\n".join(f"{d['id']}: {d['title']} ({d['created_at'][:10]}, {state(d)})"
                                   for d in rows) or "No documents.")


@documents.command("get")
@click.argument("document_id", type=int)
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
@pass_ctx
def documents_get(ctx: Context, document_id, out) -> None:
    """Write a stored document to a file."""
    filename, content = ctx.engine().sop.document(document_id)
    Path(out).write_bytes(content)
    click.echo(f"{out}: {filename}, {len(content)} bytes")


@documents.command("regenerate")
@click.argument("document_id", type=int)
@click.option("--user", default=None)
@pass_ctx
def documents_regenerate(ctx: Context, document_id, user) -> None:
    """Render a document again from the current case records (a new version is stored)."""
    new_id = casefile.regenerate(ctx.engine(), document_id, user)
    click.echo(f"Document {document_id} regenerated as {new_id}")


@main.command()
@click.argument("kind", type=click.Choice(["journal", "databank"]))
@click.option("--agency", type=int, help="Agency id (journal).")
@click.option("--municipality", type=int, help="Municipality id (databank).")
@click.option("--from", "period_from", default=None, help="YYYY-MM-DD (journal; default 1 January).")
@click.option("--to", "period_to", default=None, help="YYYY-MM-DD (default today).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
@pass_ctx
def register(ctx: Context, kind, agency, municipality, period_from, period_to, out) -> None:
    """Print a register to PDF: an agency's intake journal (Appendix 1) or the databank (Appendix 8)."""
    engine = ctx.engine()
    today = engine.clock.now().date()
    try:
        end = date.fromisoformat(period_to) if period_to else today
        start = date.fromisoformat(period_from) if period_from else date(end.year, 1, 1)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from/--to") from exc
    if kind == "journal":
        if agency is None:
            raise InvalidInput("--agency is required for the journal")
        pdf = render_pdf("intake_journal", casefile.journal_context(engine, agency, start, end))
    else:
        if municipality is None:
            raise InvalidInput("--municipality is required for the databank")
        pdf = render_pdf("databank", casefile.databank_context(engine, municipality, end))
    Path(out).write_bytes(pdf)
    click.echo(f"{out}: {len(pdf)} bytes")


@main.command()
@click.option("--reset", is_flag=True, help="Empty the database first (never in production).")
@pass_ctx
def demo(ctx: Context, reset) -> None:
    """Seed one municipality, one user per role (password 'demo') and a dozen cases at different stages."""
    if os.environ.get("KURATOR_ENV", "").lower() == "production":
        raise click.ClickException("kurator demo refuses to run when KURATOR_ENV=production")
    from .demo import seed

    summary = seed(ctx.engine(), reset=reset)
    click.echo(summary)


from .kpi import cli as _kpi_cli  # noqa: E402, F401 - `kurator kpi …`

if __name__ == "__main__":  # pragma: no cover
    main()
