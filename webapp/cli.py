"""The full `kurator` command: the engine's and the SOP domain's commands plus `serve` and `run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import click

from engine.cli import Context, pass_ctx
from sop.cli import main  # the engine's and the SOP domain's commands, on the product's engine (sop.build_engine)


def _app(ctx: Context):
    """The web app on the command's database and its running clock (with --now: from that instant on)."""
    from . import create_app

    return create_app({"DATABASE_URL": ctx.url}, engine=ctx.engine(ctx.running_clock()))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@pass_ctx
def serve(ctx: Context, host, port) -> None:
    """Run the web application alone (development server; see the README for gunicorn in production)."""
    app = _app(ctx)
    click.echo(f"Kurator: http://{host}:{port}/")
    app.run(host=host, port=port, debug=False, use_reloader=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@pass_ctx
def run(ctx: Context, host, port) -> None:
    """Run the web application and the scheduler together (the README's run command)."""
    from sop.demo import USERS

    app = _app(ctx)
    env = dict(os.environ)
    clock = ctx.running_clock()
    if ctx.now is not None:  # the scheduler runs on the web app's timeline: the same instant at the same moment
        env["KURATOR_NOW"], env["KURATOR_NOW_SINCE"] = ctx.now.isoformat(), clock.since.isoformat()
        click.echo(f"Engine clock: {clock.now().isoformat(timespec='seconds')} (KURATOR_NOW), running on")
    else:
        env.pop("KURATOR_NOW_SINCE", None)
    scheduler = subprocess.Popen([sys.executable, "-m", "webapp.cli", "--database-url", ctx.url, "scheduler"],
                                 env=env)
    click.echo(f"Kurator: http://{host}:{port}/  — demo users ({', '.join(USERS)}), password 'demo'")
    # stopped with SIGTERM (kill, systemd, docker stop) as with Ctrl+C: the scheduler it started stops with it
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app.run(host=host, port=port, debug=False, use_reloader=False)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=10)


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
