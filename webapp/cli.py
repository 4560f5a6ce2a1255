"""The full `kurator` command: the engine's and the SOP domain's commands plus `serve` and `run`."""

from __future__ import annotations

import subprocess
import sys

import click

from engine.cli import Context, main, pass_ctx
from sop.cli import build_engine  # noqa: F401 - installs the SOP domain into every command's engine


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@pass_ctx
def serve(ctx: Context, host, port) -> None:
    """Run the web application alone (development server; see the README for gunicorn in production)."""
    from . import create_app

    app = create_app({"DATABASE_URL": ctx.url})
    click.echo(f"Kurator: http://{host}:{port}/")
    app.run(host=host, port=port, debug=False, use_reloader=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@pass_ctx
def run(ctx: Context, host, port) -> None:
    """Run the web application and the scheduler together (the README's run command)."""
    from sop.demo import USERS

    scheduler = subprocess.Popen([sys.executable, "-m", "webapp.cli", "--database-url", ctx.url, "scheduler"])
    click.echo(f"Kurator: http://{host}:{port}/  — demo users ({', '.join(USERS)}), password 'demo'")
    try:
        from . import create_app

        create_app({"DATABASE_URL": ctx.url}).run(host=host, port=port, debug=False, use_reloader=False)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=10)


if __name__ == "__main__":  # pragma: no cover
    main()
