"""Logging in and the inbox, in a real browser."""

from __future__ import annotations

from .conftest import screenshot


def test_wrong_password_then_login_and_inbox(browser, live, login):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live['base']}/login")
    screenshot(page, "login")
    page.fill("input[name=username]", "secretary")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "Неверное имя пользователя или пароль" in page.content()
    context.close()

    page = login("secretary")
    assert page.locator("h1").inner_text().startswith("Мои задачи")
    assert page.locator("text=просрочено").count() >= 1
    # at the demo's «now» (26.11.2026) only what was due before it is overdue, whatever an earlier test's clock did
    for due in page.locator("tr.overdue td.due").all_inner_texts():
        day, month, year = due.split()[0].split(".")
        assert (int(year), int(month), int(day)) < (2026, 11, 26), due
    screenshot(page, "inbox")
