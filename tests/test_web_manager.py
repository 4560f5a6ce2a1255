"""«Просроченные»: who may open it, what each manager sees, the ageing and the share of deadlines met, the XLSX."""

from __future__ import annotations

import io
import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

import sop
from engine.calendar import CalendarCoverageError
from engine.models import HumanTask
from webapp import create_app

from .test_sop_service import SIGNAL
from .test_web_auth import HASH, login

MSK = ZoneInfo("Europe/Moscow")
CHECK_STEP = "Проверка информации и заключение"


@pytest.fixture
def app(engine):
    sop.install(engine)
    for name, kind in (("КДНиЗП", "commission"), ("Школа № 5", "education"), ("ОМВД", "police")):
        engine.identity.add_agency(name, "Йошкар-Ола", kind=kind)
    engine.identity.add_agency("КДНиЗП Волжска", "Волжск", kind="commission")
    for username, roles, agency, full_name in (
            ("secretary", ["commission_secretary"], "КДНиЗП", "Смирнова Ольга Викторовна"),
            ("chair", ["commission"], "КДНиЗП", "Кузнецов Андрей Петрович"),
            ("manager", ["manager"], "КДНиЗП", "Федоров Павел Андреевич"),
            ("school", ["education", "agency_specialist"], "Школа № 5", "Лебедева Ирина Владимировна"),
            ("school_head", ["manager"], "Школа № 5", "Директор школы"),
            ("police_head", ["manager"], "ОМВД", "Начальник ОМВД"),
            ("vmanager", ["manager"], "КДНиЗП Волжска", "Руководитель в Волжске")):
        engine.identity.add_user(username, roles, agency=agency, password_hash=HASH, full_name=full_name)
    from .test_sop_diagrams import FORMS, WORKFLOWS

    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    return create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True}, engine=engine)


def client_for(app, username):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def late_check(app):
    """The school registers a signal; the commission's check (due 06.11.2025) is left undone until 13.11. The sweep
    also starts the quarter's reconciliation, whose two agency tasks were due on 15.10.2025 (29 days late)."""
    engine = app.extensions["kurator"]
    result = engine.sop.register_intake("school", SIGNAL)
    engine.clock.set("2025-11-13T10:00:00+03:00")
    engine.management.sweep()
    return result


@pytest.mark.parametrize("username,status", [("manager", 200), ("secretary", 200), ("chair", 200),
                                             ("school_head", 200), ("school", 403)])
def test_who_may_open_the_overdue_page(app, username, status):
    client = client_for(app, username)
    assert client.get("/manager/overdue").status_code == status
    assert client.get("/manager/overdue.xlsx").status_code == status


def test_a_login_is_needed(app):
    response = app.test_client().get("/manager/overdue")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_task_made_overdue_by_the_clock_is_shown_grouped_and_aged(app):
    late_check(app)
    page = client_for(app, "manager").get("/manager/overdue").get_data(as_text=True)
    assert CHECK_STEP in page and "№ 1/2025" in page
    assert '<span class="big">3</span><span>просрочено</span>' in page
    # grouped by agency (the commission answers for its secretary's task), by role and by person
    assert "КДНиЗП" in page and "Ответственный секретарь КДНиЗП" in page and "Не назначен" in page
    # 7 calendar days late (06.11 23:59 -> 13.11 10:00), 5 working days: aged as the table counts
    assert "<svg" in page and chart_counts(page)["2–5 раб. дн."] == 1 and chart_counts(page)["6–10 раб. дн."] == 0
    assert "Иванов" not in page  # no child or family data on this page
    # in working days of the production calendar (7-13.11.2025: 5), each task linked to its page, read-only
    assert "5&nbsp;раб.&nbsp;дн." in page
    # each task says which procedure it belongs to by the diagram's name, not the process key
    assert "Случай СОП: от проверки сигнала до снятия с учета" in page and ">sop_case<" not in page
    link = re.search(r'href="(/tasks/[0-9a-f-]{36})">' + re.escape(CHECK_STEP), page).group(1)
    task_page = client_for(app, "manager").get(link)
    assert task_page.status_code == 200
    assert "Вы можете только просматривать ее" in task_page.get_data(as_text=True)


def test_each_manager_sees_their_own_scope(app):
    late_check(app)
    # the case involves the commission and the school (which registered the signal), not the police
    assert "№ 1/2025" in client_for(app, "school_head").get("/manager/overdue").get_data(as_text=True)
    for outsider in ("police_head", "vmanager"):
        page = client_for(app, outsider).get("/manager/overdue").get_data(as_text=True)
        assert "№ 1/2025" not in page and CHECK_STEP not in page


def test_a_manager_sees_tasks_done_by_their_staff_outside_their_cases(app):
    engine = app.extensions["kurator"]
    result = late_check(app)
    with engine.db.session() as db:
        db.add(HumanTask(id=str(uuid.uuid4()), instance_id=result.instance_ids[0], process_key="sop_case",
                         element_id="help", name="Помощь коллегам", candidates="|", candidate_roles=[],
                         assignee="police", due=engine.clock.now() - timedelta(days=3), overdue=True,
                         status="open", created_at=engine.clock.now() - timedelta(days=10)))
    engine.identity.add_user("police", ["police"], agency="ОМВД", password_hash=HASH)
    page = client_for(app, "police_head").get("/manager/overdue").get_data(as_text=True)
    assert "Помощь коллегам" in page and CHECK_STEP not in page


def _task(instance_id, name, due, status="completed", completed=None, created=None):
    return HumanTask(id=str(uuid.uuid4()), instance_id=instance_id, process_key="sop_case", element_id="step",
                     name=name, candidates="|role:commission_secretary|", candidate_roles=["commission_secretary"],
                     due=due, status=status, completed_at=completed, completed_by="secretary" if completed else None,
                     created_at=created or (due - timedelta(days=5) if due else datetime(2025, 10, 1, tzinfo=MSK)))


def test_share_of_deadlines_met_per_step(app):
    engine = app.extensions["kurator"]
    result = late_check(app)
    instance = result.instance_ids[0]
    day = datetime(2025, 11, 3, 23, 59, 59, tzinfo=MSK)
    with engine.db.session() as db:
        db.add_all([
            _task(instance, "Тестовый этап", day, completed=day - timedelta(days=1)),  # met
            _task(instance, "Тестовый этап", day, completed=day),  # met: on the due moment itself
            _task(instance, "Тестовый этап", day, completed=day - timedelta(hours=2)),  # met
            _task(instance, "Тестовый этап", day, completed=day + timedelta(hours=1)),  # missed
            _task(instance, "Тестовый этап", day, status="open"),  # still open past due: missed
            _task(instance, "Тестовый этап", day - timedelta(days=60),
                  completed=day - timedelta(days=60)),  # completed before the period: not counted
            _task(instance, "Тестовый этап", None, completed=day),  # no due date: not counted
            _task(instance, "Тестовый этап", day, status="cancelled"),  # cancelled: not counted
        ])
    page = client_for(app, "manager").get("/manager/overdue?from=2025-10-15&to=2025-11-30").get_data(as_text=True)
    assert "Тестовый этап — в срок 60\u00a0% (3 из 5)" in page
    assert f"{CHECK_STEP} — в срок 0\u00a0% (0 из 1)" in page  # the real check, still open and late

    bad = client_for(app, "manager").get("/manager/overdue?from=2025-13-01")
    assert bad.status_code == 200 and "ГГГГ-ММ-ДД" in bad.get_data(as_text=True)


def test_xlsx_export_has_the_tables_no_child_data_and_is_audited(app):
    engine = app.extensions["kurator"]
    late_check(app)
    response = client_for(app, "manager").get("/manager/overdue.xlsx?from=2025-10-01&to=2025-11-30")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(response.data))
    assert book.sheetnames == ["Сводка", "По органам", "По ролям", "По исполнителям", "Давность просрочки",
                               "Соблюдение сроков", "Просроченные задачи"]
    tasks = list(book["Просроченные задачи"].iter_rows(values_only=True))
    assert tasks[0][:5] == ("Задача", "№ дела", "Орган", "Роль", "Ответственный")
    assert tasks[0][8] == "Рабочих дней просрочки"
    assert {r[7] for r in tasks[1:]} == {"Ежеквартальная сверка списков и банк данных",
                                         "Случай СОП: от проверки сигнала до снятия с учета"}
    # 29 calendar days late (due 15.10.2025, now 13.11.2025): 20 working days (4.11 is a holiday)
    assert [r[8] for r in tasks[1:3]] == [20, 20]
    # each agency's reconciliation is addressed to it, so the delay is that agency's
    assert sorted((r[0], r[1], r[2], r[3], r[4], r[6]) for r in tasks[1:3]) == [
        (f"Сверка списков СОП с КДНиЗП — {agency}", None, agency, "Специалист органа системы профилактики",
         "Не назначен", 29) for agency in ("ОМВД", "Школа № 5")]
    assert (tasks[3][0], tasks[3][1], tasks[3][2], tasks[3][3], tasks[3][4], tasks[3][6]) == (
        CHECK_STEP, "1/2025", "КДНиЗП", "Ответственный секретарь КДНиЗП", "Не назначен", 7)
    ageing = dict(list(book["Давность просрочки"].iter_rows(values_only=True))[1:])
    assert ageing == {"до 1 раб. дн.": 0, "2–5 раб. дн.": 1, "6–10 раб. дн.": 0, "более 10 раб. дн.": 2}
    assert book["Давность просрочки"]["A1"].value == "Просрочено на (рабочих дней)"
    agencies = {r[0]: r[2:] for r in list(book["По органам"].iter_rows(values_only=True))[1:]}
    assert agencies == {"ОМВД": (1, 0), "Школа № 5": (1, 0), "КДНиЗП": (1, 0)}
    roles = list(book["По ролям"].iter_rows(values_only=True))  # people read it: titles, no role codes
    assert roles[0] == ("Роль", "Просрочено", "Срок в ближайшие 2 дня")
    assert {r[0]: r[1:] for r in roles[1:]} == {"Специалист органа системы профилактики": (2, 0),
                                                "Ответственный секретарь КДНиЗП": (1, 0)}
    everything = " ".join(str(value) for sheet in book for row in sheet.iter_rows(values_only=True)
                          for value in row if value is not None)
    assert "Иванов" not in everything and "Пушкина" not in everything  # no child, family or address
    events = [e for e in engine.audit.events() if e["action"] == "report_exported"]
    assert len(events) == 1 and events[0]["actor"] == "manager" and events[0]["details"]["overdue_tasks"] == 3


def _late_task(instance_id, name, due):
    return HumanTask(id=str(uuid.uuid4()), instance_id=instance_id, process_key="sop_case", element_id="step",
                     name=name, candidates="|role:commission_secretary|", candidate_roles=["commission_secretary"],
                     due=due, status="open", overdue=True, created_at=due - timedelta(days=5))


def chart_counts(page: str) -> dict[str, int]:
    """The ageing chart's bars: label -> count."""
    return {label: int(count) for label, count in re.findall(
        r">Просрочено ([^<]+)</text>.*?<text class=\"value\"[^>]*>(\d+)</text>", page, re.S)}


def test_the_ageing_counts_the_working_days_the_table_shows(app):
    """A task 8 working days late (due 31.10.2025, 13 calendar days: 1.11 a working Saturday, 3–4.11 days off) is
    aged «6–10 раб. дн.», not «более 10»: the chart and the XLSX count as the table. Every task due on each of the
    last 30 days lands in the bucket of the working days its row shows."""
    engine = app.extensions["kurator"]
    result = late_check(app)  # now 13.11.2025 10:00
    instance = result.instance_ids[0]
    with engine.db.session() as db:
        db.add(_late_task(instance, "Восемь рабочих дней", datetime(2025, 10, 31, 23, 59, 59, tzinfo=MSK)))
    client = client_for(app, "manager")
    page = client.get("/manager/overdue").get_data(as_text=True)
    assert re.search(r'title="13 календарных дн\.">8&nbsp;раб\.&nbsp;дн\.</td>\s*<td><a [^>]+>Восемь рабочих дней',
                     page)
    assert chart_counts(page) == {"до 1 раб. дн.": 0, "2–5 раб. дн.": 1, "6–10 раб. дн.": 1, "более 10 раб. дн.": 2}
    assert "В рабочих днях по производственному календарю" in page
    book = load_workbook(io.BytesIO(client.get("/manager/overdue.xlsx").data))
    ageing = dict(list(book["Давность просрочки"].iter_rows(values_only=True))[1:])
    assert ageing == {"до 1 раб. дн.": 0, "2–5 раб. дн.": 1, "6–10 раб. дн.": 1, "более 10 раб. дн.": 2}

    with engine.db.session() as db:
        db.add_all([_late_task(instance, f"День {k}", datetime(2025, 11, 13, 9, 0, tzinfo=MSK) - timedelta(days=k))
                    for k in range(30)])
    book = load_workbook(io.BytesIO(client.get("/manager/overdue.xlsx").data))
    ageing = dict(list(book["Давность просрочки"].iter_rows(values_only=True))[1:])
    rows = list(book["Просроченные задачи"].iter_rows(values_only=True))[1:]
    counted = {"до 1 раб. дн.": 0, "2–5 раб. дн.": 0, "6–10 раб. дн.": 0, "более 10 раб. дн.": 0}
    for working_days in (r[8] for r in rows):
        label = ("до 1 раб. дн." if working_days <= 1 else "2–5 раб. дн." if working_days <= 5
                 else "6–10 раб. дн." if working_days <= 10 else "более 10 раб. дн.")
        counted[label] += 1
    assert ageing == counted and sum(counted.values()) == 34


def test_the_ageing_falls_back_to_calendar_days_without_the_production_calendar(app, monkeypatch):
    engine = app.extensions["kurator"]
    late_check(app)

    def uncovered(day):
        raise CalendarCoverageError(day.year)

    monkeypatch.setattr(engine.calendar.calendar, "is_working_day", uncovered)
    monkeypatch.setattr(engine.calendar.calendar, "working_days_between", lambda a, b: uncovered(b))
    client = client_for(app, "manager")
    page = client.get("/manager/overdue").get_data(as_text=True)
    assert chart_counts(page) == {"до 1 дня": 0, "2–5 дней": 0, "6–10 дней": 1, "более 10 дней": 2}
    assert "В календарных днях" in page and "7&nbsp;дн." in page
    book = load_workbook(io.BytesIO(client.get("/manager/overdue.xlsx").data))
    ageing = dict(list(book["Давность просрочки"].iter_rows(values_only=True))[1:])
    assert ageing == {"до 1 дня": 0, "2–5 дней": 0, "6–10 дней": 1, "более 10 дней": 2}
