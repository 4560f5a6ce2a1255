"""The Content-Security-Policy in a real browser: an inline script without the request's nonce does not run, and
the console reports it (which the `login` fixture turns into a failure of every other browser test)."""

from __future__ import annotations

from playwright.sync_api import Error

from .conftest import watch_csp


def test_an_inline_script_without_the_nonce_is_blocked_and_reported(browser, live):
    context = browser.new_context(locale="ru-RU")
    violations: list[str] = []
    watch_csp(context, violations)
    page = context.new_page()
    try:
        page.goto(f"{live['base']}/login")
        with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
            try:
                page.add_script_tag(content="window.injected = 1;")
            except Error:
                pass  # Playwright may also report the blocked script as an error of its own
        assert page.evaluate("window.injected === undefined")
        assert violations and all("Content Security Policy" in v for v in violations)
    finally:
        context.close()
