"""`kurator demo`: a municipality, one user per role and a dozen cases at different stages."""

from __future__ import annotations

from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import func, select

import sop
from engine.models import User
from sop.demo import USERS, seed
from sop.meetings.models import Meeting, Notice
from sop.models import Case, Document, Resolution

from .support import ROOT


def test_demo_seeds_users_and_cases_at_every_stage(engine):
    engine.clock.set("2026-11-26T09:00:00+03:00")
    summary = seed(engine)
    assert "14 cases" in summary
    with engine.db.session() as session:
        users = {u.username: u for u in session.scalars(select(User)).unique()}
        statuses = [c.status for c in session.scalars(select(Case))]
        documents = len(session.scalars(select(Document.id)).all())
    assert set(users) == set(USERS) == {"secretary", "chair", "curator", "police", "guardian", "social", "school",
                                        "doctor", "methodologist", "manager", "admin", "regional"}
    assert PasswordHasher().verify(users["school"].password_hash, "demo")
    assert users["secretary"].roles == ["commission_secretary"]
    assert sorted(set(statuses)) == ["check", "closed", "recognized", "rejected"] and len(statuses) == 14
    assert documents > 20
    open_steps = {t["element_id"] for t in engine.tasks.query()}
    assert {"sop_check", "sop_recognition", "sop_registration_card", "sop_proposals", "sop_programme_draft",
            "sop_programme_approval", "sop_review", "em_inspection", "rec_agency"} <= open_steps
    assert engine.tasks.query(overdue=True), "some deadlines of the demo are already missed"
    assert sop.install(engine).escalations()
    assert "already has users" in seed(engine)


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
        ' "sop_confirmed": true, "conclusion": "СОП подтверждено"}')
    listing = run("documents", "list", "1")
    document_id = listing.split(":")[0]
    run("documents", "get", document_id, "--out", str(tmp_path / "c.pdf"))
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    assert "regenerated" in run("documents", "regenerate", document_id)
    run("register", "journal", "--agency", "1", "--out", str(tmp_path / "j.pdf"))
    assert (tmp_path / "j.pdf").read_bytes().startswith(b"%PDF")
