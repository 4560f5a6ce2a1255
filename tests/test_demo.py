"""`kurator demo`: a municipality, one user per role and a dozen cases at different stages."""

from __future__ import annotations

from datetime import datetime, timezone

from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import func, select

import sop
from engine.models import HumanTask, User
from sop import casefile, podrostok
from sop.demo import USERS, seed
from sop.kpi.models import KpiActual, KpiPlan
from sop.meetings.models import Meeting, Notice
from sop.models import Case, Document, PodrostokCampaign, PodrostokEntry, Reconciliation, Resolution

from .support import ROOT


def test_demo_seeds_users_and_cases_at_every_stage(engine):
    engine.clock.set("2026-11-26T09:00:00+03:00")
    summary = seed(engine)
    assert "15 cases" in summary
    with engine.db.session() as session:
        users = {u.username: u for u in session.scalars(select(User)).unique()}
        statuses = [c.status for c in session.scalars(select(Case))]
        documents = len(session.scalars(select(Document.id)).all())
    assert set(users) == set(USERS) == {"secretary", "chair", "curator", "police", "guardian", "social", "school",
                                        "doctor", "methodologist", "manager", "admin", "regional"}
    assert PasswordHasher().verify(users["school"].password_hash, "demo")
    assert users["secretary"].roles == ["commission_secretary"]
    assert sorted(set(statuses)) == ["check", "closed", "recognized", "rejected"] and len(statuses) == 15
    assert documents > 20
    open_steps = {t["element_id"] for t in engine.tasks.query()}
    assert {"sop_check", "sop_recognition", "sop_registration_card", "sop_proposals", "sop_programme_draft",
            "sop_programme_approval", "sop_review", "sop_closure_decision", "em_inspection",
            "rec_agency"} <= open_steps
    assert engine.tasks.query(overdue=True), "some deadlines of the demo are already missed"
    assert sop.install(engine).escalations()
    assert_podrostok_campaign(engine)
    assert_kpi_plan_and_values(engine)
    assert_reconciliation(engine)
    assert_documents_left_to_the_scheduler(engine)
    assert "already has users" in seed(engine)


def assert_documents_left_to_the_scheduler(engine):
    """The demo writes its documents' HTML and leaves their PDFs to the scheduler's job (laying out some fifty of
    them made up most of the seeding time) and to their first reader."""
    with engine.db.session() as session:
        waiting = session.scalars(select(Document.id).where(Document.pending_html.is_not(None))).all()
    assert len(waiting) > 20
    laid_out = 0
    while batch := casefile.render_waiting(engine):
        laid_out += batch
    assert laid_out == len(waiting)
    with engine.db.session() as session:
        assert not session.scalars(select(Document.id).where(Document.pending_html.is_not(None))).all()
        assert all(pdf.startswith(b"%PDF") for pdf in session.scalars(select(Document.content)))


def assert_reconciliation(engine):
    """No step of the demo opens already past its deadline. The reconciliation of the quarter (2026-Q4) started on
    its first day, as the scheduler starts it; four agencies reconciled within the 10 working days, the children's
    hospital did not: its step is overdue and escalated, the round waits for it."""
    with engine.db.session() as session:
        born_late = [(t.name, t.created_at, t.due) for t in session.scalars(
            select(HumanTask).where(HumanTask.due.is_not(None), HumanTask.created_at > HumanTask.due))]
        reconciliation = session.scalar(select(Reconciliation))
        steps = session.scalars(select(HumanTask).where(
            HumanTask.instance_id == reconciliation.process_instance_id).order_by(HumanTask.created_at)).all()
        done = {t.name.split(" — ")[1]: (t.completed_by, t.completed_at <= t.due) for t in steps
                if t.status == "completed"}
        late = [(t.name, t.status, t.overdue) for t in steps if t.status == "open"]
    assert born_late == []
    assert reconciliation.quarter == "2026-Q4"
    assert reconciliation.started_at == datetime(2026, 9, 30, 21, 5, tzinfo=timezone.utc)  # 1.10 00:05 MSK
    assert done == {"ОМВД России по г. Йошкар-Оле": ("police", True),
                    "Отдел опеки и попечительства администрации г. Йошкар-Олы": ("guardian", True),
                    "ГБУ РМЭ «КЦСОН в г. Йошкар-Оле»": ("social", True),
                    "МБОУ «Средняя школа № 5 г. Йошкар-Олы»": ("school", True)}
    assert late == [("Сверка списков СОП с КДНиЗП — ГБУ РМЭ «Детская городская больница»", "open", True)]
    assert "Сверка списков СОП с КДНиЗП — ГБУ РМЭ «Детская городская больница»" in {
        e["task_name"] for e in sop.install(engine).escalations()}


def assert_podrostok_campaign(engine):
    """«Подросток» of the demo's year ran through the summer: every month's App. 2 of the agencies (one returned
    and resubmitted, the hospital silent in August), the monthly reports, App. 4 and App. 5 sent; the region's
    consolidation is open, so the campaign still runs."""
    with engine.db.session() as session:
        campaign = session.scalar(select(PodrostokCampaign))
        assert campaign.year == 2026 and campaign.municipality.name == "Йошкар-Ола"
        reports = campaign.reports
        entries = [(e.month, e.kind, e.form or e.reason) for e in session.scalars(
            select(PodrostokEntry).where(PodrostokEntry.campaign_id == campaign.id).order_by(PodrostokEntry.id))]
        iid = campaign.process_instance_id
        regional = {t.element_id for t in session.scalars(select(HumanTask).where(
            HumanTask.instance_id == iid, HumanTask.status == "open"))}
        june = podrostok.submissions(session, campaign, "2026-06", engine.clock.now())
        august = podrostok.submissions(session, campaign, "2026-08", engine.clock.now())
    assert engine.runtime.instance(iid)["status"] == "running" and regional == {"pod_regional"}
    assert sorted(reports["months"]) == ["2026-06", "2026-07", "2026-08"]
    assert {"summer", "final"} <= set(reports)
    assert [r["comment"] for r in reports["returns"]] == [
        "Укажите реквизиты срочного трудового договора и приложите его копию"]
    # the school's activities for Лазарев Тимофей (12), the social centre's jobs for Ефимова Алина (17) and Никитин
    # Степан (14)
    assert sorted(entries) == sorted([("2026-06", "employment", "3.8"), ("2026-06", "employment", "3.2"),
                                      ("2026-06", "employment", "3.2"),
                                      ("2026-07", "employment", "3.2"), ("2026-07", "employment", "3.2"),
                                      ("2026-07", "employment", "3.4"),
                                      ("2026-08", "employment", "3.12"), ("2026-08", "excuse", "away"),
                                      ("2026-08", "excuse", "away")])
    assert {s["state"] for s in june} == {"submitted"}
    assert [s["agency"] for s in august if s["state"] != "submitted"] == ["ГБУ РМЭ «Детская городская больница»"]
    # Ефимова Алина's card names her own drinking: she is in both columns of App. 3
    june_form = reports["months"]["2026-06"]["rows"]
    assert june_form["ipr"]["1"] == 1 and june_form["sop"]["1"] == 3 and june_form["sop"]["3"] == 3
    assert [june_form["sop"][row] for row in ("1.4", "1.5", "1.6")] == [1, 1, 1]  # 12, 14 and 17 years old


def assert_kpi_plan_and_values(engine):
    """The KPI plan of seed 003 for every half-year of the programme, and the consolidated values of the last
    half-year that is over (2026-H1 on 26 November 2026)."""
    with engine.db.session() as session:
        halves = set(session.scalars(select(KpiPlan.half)))
        actual = set(session.scalars(select(KpiActual.half).where(KpiActual.agency_id.is_(None))))
    assert halves == {"2025-H2", "2026-H1", "2026-H2"}
    assert actual == {"2026-H1"}


def test_demo_runs_through_meetings(engine):
    """A schedule, members, two past meetings with minutes and the next one planned with its agenda."""
    engine.clock.set("2026-12-04T09:00:00+03:00")
    seed(engine)
    with engine.db.session() as session:
        meetings = session.scalars(select(Meeting).order_by(Meeting.held_on)).all()
        assert [(m.held_on.isoformat(), m.status, m.number) for m in meetings] == [
            ("2026-11-11", "closed", 1), ("2026-11-25", "closed", 2), ("2026-12-09", "planned", None)]
        assert all(m.minutes_document_id for m in meetings[:2])
        resolutions = session.scalars(select(Resolution).where(Resolution.meeting_id.is_not(None))).all()
        # the two recognitions, numbered «meeting / question»
        assert sorted(r.number.split("/")[0] for r in resolutions) == ["1", "2"]
        assert all(r.data["chair_name"] == "Кузнецов Андрей Петрович" for r in resolutions)
        upcoming = meetings[2]
        assert upcoming.agenda_notified_at is not None
        assert {i.form_key for i in upcoming.items} >= {"sop_recognition", "sop_programme_approval"}
        assert session.scalar(select(func.count()).select_from(Notice)) > 0


def test_demo_refuses_in_production(monkeypatch, tmp_path):
    from sop.cli import main

    monkeypatch.setenv("KURATOR_ENV", "production")
    result = CliRunner().invoke(main, ["--database-url", f"sqlite:///{tmp_path / 'p.db'}", "demo"])
    assert result.exit_code != 0 and "KURATOR_ENV=production" in result.output


def test_document_commands(tmp_path):
    from sop.cli import main

    url = f"sqlite:///{tmp_path / 'd.db'}"
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, ["--database-url", url, "--now", "2025-10-30T09:00:00+03:00", *args],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("init-db")
    run("agencies", "add", "КДН", "--municipality", "Йошкар-Ола", "--kind", "commission")
    run("users", "add", "secretary", "--role", "commission_secretary", "--agency", "КДН")
    run("deploy", *map(str, sorted((ROOT / "workflows").glob("*.bpmn"))), *map(str, sorted((ROOT / "forms")
                                                                                          .glob("*.json"))))
    signal = ('{"received_on": "2025-10-29", "source": "Школа", "address": "ул. Мира, 1", "problem": "Пропуски",'
              ' "children": [{"last_name": "Петров", "first_name": "Иван", "birth_date": "2013-01-02"}]}')
    assert "№ 1/2025" in run("intake", "--user", "secretary", "--data", signal)
    task = run("tasks", "--user", "secretary").split()[0]
    run("complete", task, "--user", "secretary", "--data",
        '{"minor_name": "Петров Иван", "parents_names": "—", "living_conditions": "удовл.", "danger_level": "low",'
        ' "family_criteria": ["c1"], "sop_confirmed": true, "conclusion": "СОП подтверждено"}')
    listing = run("documents", "list", "1")
    document_id = listing.split(":")[0]
    run("documents", "get", document_id, "--out", str(tmp_path / "c.pdf"))
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    assert "regenerated" in run("documents", "regenerate", document_id)
    run("register", "journal", "--agency", "1", "--out", str(tmp_path / "j.pdf"))
    assert (tmp_path / "j.pdf").read_bytes().startswith(b"%PDF")
