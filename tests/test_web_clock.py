"""The web app reads the engine clock the CLI uses: with KURATOR_NOW it starts at that instant and runs on, and its
pages, deadlines and the scheduler's sweep agree (webapp.build_engine, engine.clock.ShiftedClock)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from engine.clock import ShiftedClock, parse_instant
from engine.errors import InvalidInput
from webapp import build_engine

from .support import clear
from .test_sop_service import SIGNAL
from .test_web_intake import FORM, submit
from .test_web_tasks import build_app, signed_in

DEMO = "2026-03-02T09:00:00+03:00"  # a Monday, long before the real today of these tests


@pytest.fixture
def app(database, monkeypatch):
    """The web app as production builds it (no clock given), with KURATOR_NOW set."""
    clear(database)
    monkeypatch.setenv("KURATOR_NOW", DEMO)
    monkeypatch.delenv("KURATOR_NOW_SINCE", raising=False)
    engine = build_engine(database)
    engine.identity.ensure_default_roles()
    return build_app(engine)


def test_the_web_app_starts_at_kurator_now_and_runs_on(app):
    clock = app.extensions["kurator"].clock
    assert isinstance(clock, ShiftedClock)
    assert timedelta(0) <= clock.now() - parse_instant(DEMO) < timedelta(minutes=1)
    page = signed_in(app, "school").get("/intake/new").get_data(as_text=True)
    assert 'name="received_on" value="2026-03-02" max="2026-03-02"' in page  # today by the engine clock


def test_pages_deadlines_and_the_sweep_follow_kurator_now(app):
    engine = app.extensions["kurator"]
    school = signed_in(app, "school")
    born_after_the_demo_day = {**FORM, "received_on": "2026-02-24", "children.0.birth_date": "2026-03-05"}
    page = submit(school, born_after_the_demo_day).get_data(as_text=True)
    assert "дата рождения не может быть в будущем" in page  # the future by the engine clock, not the wall clock
    assert submit(school, {**FORM, "received_on": "2026-02-24"}).status_code == 302
    engine.management.sweep()  # the scheduler's sweep, on the same clock
    inbox = signed_in(app, "secretary").get("/inbox").get_data(as_text=True)
    row = re.search(r"<tr[^>]*>\s*<td class=\"due\">.*?Проверка информации и заключение.*?</tr>", inbox, re.S).group(0)
    # due 5 working days from 24.02.2026 (23.02 off): 03.03.2026, a day after the demo's today, long before the
    # wall clock's: due soon, not overdue
    assert "03.03.2026" in row and "скоро срок" in row and "просрочено" not in row
    case_id = int(re.search(r'href="/cases/(\d+)"', inbox).group(1))
    case_page = signed_in(app, "secretary").get(f"/cases/{case_id}").get_data(as_text=True)
    assert re.search(r"02\.03\.2026 09:0\d", case_page)  # the timeline: the signal registered at the demo's now
    assert engine.sop.case(case_id)["received_on"] == "2026-02-24"


def test_an_intake_by_the_service_checks_birth_dates_by_the_engine_clock(app):
    engine = app.extensions["kurator"]
    child = {**SIGNAL["children"][0], "birth_date": "2026-06-01"}  # past by the wall clock, future on the demo day
    with pytest.raises(InvalidInput) as error:
        engine.sop.register_intake("school", {**SIGNAL, "received_on": "2026-03-01", "children": [child]})
    assert error.value.errors == {"children.0.birth_date": "дата рождения не может быть в будущем"}
