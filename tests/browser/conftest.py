"""Browser tests: the real app on a local port, driven by Playwright in Debian's Chromium.

They run on their own SQLite file (the CLI's `tick` in a subprocess must reach the same database), whatever
database the rest of the suite uses, and are skipped when Chromium or Playwright is missing (CI installs both).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from sqlalchemy import update

from engine import Database, FrozenClock
from engine.models import HumanTask
from sop import casefile
from sop.demo import seed
from webapp import build_engine, create_app

CHROMIUM = os.environ.get("KURATOR_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DEMO_NOW = "2026-11-26T09:00:00+03:00"

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
    pytest.skip(f"Chromium is not installed at {CHROMIUM}", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """The demo database and the web app serving it on 127.0.0.1 (one per test session)."""
    from werkzeug.serving import make_server

    path = tmp_path_factory.mktemp("browser") / "kurator.db"
    url = f"sqlite:///{path}"
    engine = build_engine(Database(url), FrozenClock(DEMO_NOW))
    seed(engine)
    while casefile.render_waiting(engine):  # what the scheduler does in the first minute of `make run`
        pass
    app = create_app({"SECRET_KEY": "browser-tests", "DATABASE_URL": url}, engine=engine)
    port = _free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"base": f"http://127.0.0.1:{port}", "url": url, "engine": engine}
    server.shutdown()
    engine.db.dispose()


@pytest.fixture(autouse=True)
def _demo_clock(request):
    """Every browser test starts at the demo's «now»: a test that moves the server's clock on (past a deadline, to a
    meeting day) must not move the next test's today with it."""
    yield
    if "live" in request.fixturenames:
        engine = request.getfixturevalue("live")["engine"]
        engine.clock.set(DEMO_NOW)
        # a task the moved clock marked overdue is not overdue at the demo's «now» (the scheduler only ever sets
        # the flag: the product's clock never goes back)
        with engine.db.session() as session:
            session.execute(update(HumanTask).where(HumanTask.status == "open", HumanTask.overdue.is_(True),
                                                    HumanTask.due >= engine.clock.now()).values(overdue=False))


@pytest.fixture(scope="session")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def watch_csp(context, violations: list[str]) -> None:
    """Collect what Chromium reports on the console when the Content-Security-Policy blocks something (an inline
    script or handler without the nonce, an eval, a resource from elsewhere) on any page of the context."""

    def watch(page):
        page.on("console", lambda message: violations.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text else None)

    context.on("page", watch)


@pytest.fixture
def login(browser, live):
    """Open a fresh browser context logged in as a demo user (a screen `width` px wide); returns its page. At the
    end, no page of the test may have had anything blocked by the Content-Security-Policy."""
    contexts = []
    violations: list[str] = []

    def _login(username: str, width: int = 1360):
        context = browser.new_context(viewport={"width": width, "height": 900}, locale="ru-RU")
        contexts.append(context)
        watch_csp(context, violations)
        page = context.new_page()
        page.goto(f"{live['base']}/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", "demo")
        page.click("button[type=submit]")
        page.wait_for_url("**/inbox")
        return page

    yield _login
    for context in contexts:
        context.close()
    assert violations == [], violations


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
