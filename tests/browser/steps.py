"""Steps a user takes in the browser that several journeys share: the inbox of one case, opening a task from
it, completing a task's form, following a link of the top bar."""

from __future__ import annotations


def inbox_rows(page, base: str, number: str, name: str | None = None):
    """The user's inbox narrowed to the case: the rows of the task (by the start of its name), or all rows."""
    page.goto(f"{base}/inbox?case={number}")
    rows = page.locator("table.list tbody tr")
    return rows.filter(has_text=name) if name else rows


def open_task(page, base: str, number: str, name: str) -> str:
    """From the inbox: take the task in hand (if nobody has) and open it; returns the task's address."""
    row = inbox_rows(page, base, number, name)
    assert row.count() == 1, f"{name!r} of case {number} is not (once) in the inbox: {row.all_inner_texts()}"
    return claim_and_open(page, row, name)


def claim_and_open(page, row, name: str) -> str:
    """Take the task of an inbox row in hand (if nobody has) and open it; returns the task's address."""
    claim = row.locator("button", has_text="Взять в работу")
    if claim.count():
        claim.click()
        page.wait_for_load_state()
        row = page.locator("table.list tbody tr", has_text=name)
    row.locator("a", has_text=name).click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text().startswith(name), page.locator("h1").inner_text()
    return page.url


def finish(page) -> None:
    """Press «Завершить»; the form must be accepted."""
    page.locator("form.task-form button.primary", has_text="Завершить").click()
    page.wait_for_load_state()
    errors = page.locator(".error-summary, .field-error")
    assert errors.count() == 0, errors.all_inner_texts()
    assert "завершена" in page.locator(".flash").first.inner_text()


def follow_menu(page, label: str) -> None:
    """Follow the top bar's link `label`, opening the menu it is in first (the reports are under «Отчеты»)."""
    link = page.locator("header nav").get_by_role("link", name=label, exact=True)
    if not link.is_visible():
        # a closed menu's links are hidden, out of reach of role queries: its summary is found by their text
        page.locator("header nav details.menu", has=page.locator(f"a:text-is('{label}')")).locator("summary").click()
    link.click()
    page.wait_for_load_state()
