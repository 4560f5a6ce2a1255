#!/usr/bin/env python
"""Reports benchmark: the statistics of one municipality and of the whole region over generated case data.

Run from the repository root:

    .venv/bin/python bench/reports_bench.py                   # 100,000 cases in 10 municipalities (SQLite)
    .venv/bin/python bench/reports_bench.py --quick           # 10,000 cases (seconds)
    .venv/bin/python bench/reports_bench.py --cases 50000 --municipalities 5 --repeat 5
    .venv/bin/python bench/reports_bench.py --database-url postgresql://…/db   # an empty database of your own

A fresh database (a temporary SQLite file unless --database-url names another, which must be empty) gets the
migrations, the roles, the municipalities with their agencies and curators, and then — bulk-inserted, not driven
through the processes — families with one to three children, cases recognised over 2022–2026 (a share still in check,
half of the rest removed on some grounds), working groups, and per case a few completed steps with a due date and,
for some, an emergency inspection (a removal for a third of them). The municipal report (the first municipality)
and the regional one (all of them, with the table by municipality) are then built `--repeat` times; the median and
the worst time are printed with the report's main figures, and the median CPU time of the benchmark's process
(on a busy machine the wall clock also counts waiting for a core).
"""

# The engine is imported after the repository root is put on sys.path.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select

from engine import Database, FrozenClock, ProcessEngine
from engine.models import HumanTask, Municipality, ProcessDefinition, ProcessInstance
from sop.documents import labels
from sop.migrations import BRANCH as SOP_MIGRATIONS
from sop.models import Case, CaseAgency, Family, InstanceScope, Person
from sop.reports import Period, build_report
from sop.roles import ROLES as SOP_ROLES

TZ = ZoneInfo("Europe/Moscow")
AS_OF = date(2026, 6, 30)
PERIOD = Period(date(2026, 1, 1), date(2026, 6, 30))
FIRST_DAY, LAST_DAY = date(2022, 1, 1), date(2026, 6, 30)
AGENCY_KINDS = ("commission", "police", "guardianship", "social_protection", "education", "health")
STEPS = (("sop_check", "Проверка информации и заключение"), ("sop_recognition", "Признание в СОП"),
         ("sop_programme_draft", "Разработать проект программы"), ("sop_review", "Оценка исполнения программы"))
CHUNK = 10_000


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def chunks(rows: list[dict], size: int = CHUNK):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def generate(engine: ProcessEngine, cases: int, municipalities: int, tasks_per_case: int, seed: int) -> list[int]:
    """Bulk-insert the data set; returns the municipality ids."""
    rng = random.Random(seed)
    identity = engine.identity
    municipality_names = [f"Муниципальное образование {n + 1:02d}" for n in range(municipalities)]
    agencies: dict[str, list[int]] = {}
    for name in municipality_names:
        agencies[name] = [identity.add_agency(f"{kind} — {name}", name, kind=kind) for kind in AGENCY_KINDS]
        for n in range(20):
            identity.add_user(f"curator{municipality_names.index(name)}_{n}", ["curator"], agency=agencies[name][3],
                              full_name=f"Куратор {n + 1} ({name})")
    engine.repository.deploy([ROOT / "tests" / "diagrams" / "lifecycle.bpmn",
                              ROOT / "tests" / "diagrams" / "check_form.json"], deployed_by="bench")
    with engine.db.session() as db:
        definition_id = db.scalar(select(func.max(ProcessDefinition.id)))
        municipality_ids = dict(db.execute(select(Municipality.name, Municipality.id)
                                           .where(Municipality.name.in_(municipality_names))).all())

    now = datetime(2026, 7, 1, tzinfo=timezone.utc)
    grounds = list(labels.CLOSURE_GROUNDS)
    per_municipality = cases // municipalities
    family_id = person_id = case_id = instance_id = 0
    with engine.db.engine.begin() as conn:
        for m_index, name in enumerate(municipality_names):
            m_id = municipality_ids[name]
            families, persons, case_rows, groups, instances, scopes, tasks = [], [], [], [], [], [], []
            for _ in range(per_municipality):
                family_id += 1
                case_id += 1
                instance_id += 1
                families.append({"id": family_id, "municipality_id": m_id, "name": f"Семья {family_id}",
                                 "address_key": "", "created_at": now})
                for c in range(rng.randint(1, 3)):
                    person_id += 1
                    born = FIRST_DAY - timedelta(days=rng.randint(0, 17 * 365)) + timedelta(days=4 * 365)
                    persons.append({"id": person_id, "family_id": family_id, "kind": "child",
                                    "last_name": f"Фамилия{family_id}", "first_name": f"Ребенок{c}",
                                    "birth_date": born, "name_key": f"фамилия{family_id} ребенок{c}"})
                person_id += 1
                persons.append({"id": person_id, "family_id": family_id, "kind": "parent",
                                "last_name": f"Фамилия{family_id}", "first_name": "Мать",
                                "birth_date": date(1985, 1, 1), "name_key": f"фамилия{family_id} мать"})
                received = FIRST_DAY + timedelta(days=rng.randint(0, (LAST_DAY - FIRST_DAY).days))
                recognized = received + timedelta(days=rng.randint(5, 30)) if rng.random() < 0.85 else None
                closed = None
                if recognized is not None and recognized > LAST_DAY:
                    recognized = None
                if recognized is not None and rng.random() < 0.5:
                    closed = recognized + timedelta(days=rng.randint(30, 900))
                    closed = closed if closed <= LAST_DAY else None
                status = "closed" if closed else "recognized" if recognized else "check"
                case_rows.append({"id": case_id, "number": f"{case_id}/B", "municipality_id": m_id,
                                  "family_id": family_id, "status": status, "received_on": received,
                                  "recognized_on": recognized, "closed_on": closed,
                                  "closure_grounds": rng.choice(grounds) if closed else None,
                                  "curator": f"curator{m_index}_{rng.randrange(20)}" if recognized else None,
                                  "process_instance_id": instance_id, "created_at": now})
                for agency_id in rng.sample(agencies[name][1:], rng.randint(2, 4)):
                    groups.append({"case_id": case_id, "agency_id": agency_id, "role": "member"})
                instances.append({"id": instance_id, "definition_id": definition_id, "process_key": "lifecycle",
                                  "status": "running", "state": "{}", "revision": 1, "timezone": "Europe/Moscow",
                                  "started_at": now, "municipality_id": m_id})
                scopes.append({"instance_id": instance_id, "case_id": case_id, "municipality_id": m_id})
                start = datetime.combine(received, datetime.min.time(), tzinfo=TZ)
                for step in range(tasks_per_case):
                    form, title = STEPS[step % len(STEPS)]
                    due = start + timedelta(days=7 * (step + 1))
                    done = due + timedelta(hours=rng.choice((-72, -24, -2, 5, 30)))
                    tasks.append(_task(instance_id, m_id, form, title, due, done, None))
                if rng.random() < 0.03:
                    removed = rng.random() < 0.33
                    visit = received + timedelta(days=rng.randint(0, 60))
                    tasks.append(_task(instance_id, m_id, "em_inspection", "Выезд и обследование",
                                       datetime.combine(visit, datetime.min.time(), tzinfo=TZ) + timedelta(hours=4),
                                       datetime.combine(visit, datetime.min.time(), tzinfo=TZ) + timedelta(hours=3),
                                       {"visit_date": visit.isoformat(), "threat_confirmed": removed,
                                        "removed": removed, "removal_date": visit.isoformat() if removed else ""}))
            for table, rows in ((Family, families), (Person, persons), (ProcessInstance, instances),
                                (Case, case_rows), (CaseAgency, groups), (HumanTask, tasks)):
                for part in chunks(rows):
                    conn.execute(insert(table), part)
            # the scope rows without the ORM's listener (the instances and tasks carry the municipality already)
            for part in chunks(scopes):
                conn.execute(insert(InstanceScope.__table__), part)
            progress(f"{name}: {per_municipality} cases, {len(persons)} persons, {len(tasks)} tasks")
    return [municipality_ids[name] for name in municipality_names]


def _task(instance_id: int, municipality_id: int, form: str, name: str, due: datetime, done: datetime,
          data: dict | None) -> dict:
    return {"id": str(uuid.uuid4()), "instance_id": instance_id, "process_key": "lifecycle", "element_id": form,
            "name": name, "candidate_roles": [], "candidate_users": [], "candidates": "|", "form_key": form,
            "due": due, "overdue": False, "status": "completed", "created_at": due - timedelta(days=7),
            "completed_at": done, "completed_by": "bench", "data": data, "municipality_id": municipality_id}


def timed(engine: ProcessEngine, ids: list[int], repeat: int, regional: bool):
    """Wall-clock times, this process's CPU times (on a busy machine the wall clock also counts the time spent
    waiting for a core; the CPU time does not include the database server's work on PostgreSQL) and the report."""
    times, cpu, report = [], [], None
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        with engine.db.session() as db:
            report = build_report(db, ids, AS_OF, PERIOD, TZ, "bench", by_municipality=regional)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return times, cpu, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--municipalities", type=int, default=10)
    parser.add_argument("--tasks-per-case", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="10,000 cases")
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    if args.quick:
        args.cases = 10_000
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'reports-bench.db'}"
        db = Database(url)
        engine = ProcessEngine(db, FrozenClock("2026-07-01T09:00:00+03:00"))
        db.upgrade([SOP_MIGRATIONS])  # the engine's chain and the domain's branch
        engine.identity.ensure_default_roles()
        engine.identity.ensure_roles(SOP_ROLES)  # the domain's roles (curator…) the generated cases use
        started = time.perf_counter()
        ids = generate(engine, args.cases, args.municipalities, args.tasks_per_case, args.seed)
        progress(f"generated in {time.perf_counter() - started:.1f} s")
        print(f"Reports over {args.cases} cases in {args.municipalities} municipalities "
              f"({db.engine.dialect.name}); at {AS_OF:%d.%m.%Y}, period {PERIOD.start:%d.%m.%Y}–"
              f"{PERIOD.end:%d.%m.%Y}, {args.repeat} runs each")
        for label, scope, regional in (("municipal", ids[:1], False), ("regional", ids, True)):
            times, cpu, report = timed(engine, scope, args.repeat, regional)
            figures = ", ".join(f"{key} {now} (АППГ {then})" for key, (now, then) in report.figures.items())
            print(f"  {label:9} median {statistics.median(times):6.2f} s, worst {max(times):6.2f} s "
                  f"(CPU of this process: median {statistics.median(cpu):6.2f} s)")
            print(f"            {figures}")
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
