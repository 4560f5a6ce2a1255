#!/usr/bin/env python
"""Kurator web benchmark: inbox latency on a large PostgreSQL data set, and task completions over HTTP.

Run from the repository root:

    .venv/bin/python bench/web_bench.py            # 100,000 open and 1,000,000 completed tasks
    .venv/bin/python bench/web_bench.py --quick    # 10,000 open and 100,000 completed (a few minutes)
    .venv/bin/python bench/web_bench.py --open 50000 --completed 500000 --requests 100 --workers 1,2

A private PostgreSQL schema gets the migrations, the roles, ten municipalities with their agencies and staff, the
deployed workflows and forms, and a two-step diagram of the benchmark's own. Instances of that diagram are started
through the engine (they are completed over HTTP later); everything else (cases, families, working groups,
instance scopes, process instances and human tasks) is bulk-loaded with COPY. The app then runs under gunicorn
against that schema. The schema is dropped at the end, also after a failure. Figures are printed as a table and
written as JSON to bench/out/web_bench.json; the query plans go to bench/out/web_bench_plans.txt and gunicorn's
error logs to bench/out/gunicorn-*.log. See bench/RESULTS.md.
"""

# The engine and the web app are imported after the repository root is put on sys.path.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import http.cookiejar
import json
import math
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg
from argon2 import PasswordHasher
from sqlalchemy import func, select, text

from engine import ProcessEngine, SystemClock
from engine.bpmn.validation import resolve_role
from engine.db import make_engine
from engine.executor import ADMIN_ROLE
from engine.models import Agency, HumanTask, ProcessDefinition, ProcessInstance, User
from engine.task_query import candidates_token
from sop.emergencies import refresh as refresh_open_emergencies
from sop.migrations import BRANCH as SOP_MIGRATIONS
from sop.migrations import backfill_instance_readers
from sop.models import Case, Family, InstanceReader, InstanceScope
from sop.roles import ROLES as SOP_ROLES
from tests.support import create_postgres_schema, drop_postgres_schema, open_database
from webapp.access import CurrentUser, task_scope
from webapp.views.inbox import PAGE_SIZE, counted_query, filter_list_query, inbox_query, rows_query

OUT_DIR = ROOT / "bench" / "out"
DEFAULT_OUTPUT = OUT_DIR / "web_bench.json"
PLANS_FILE = OUT_DIR / "web_bench_plans.txt"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

PASSWORD = "bench"
SEED = 20261126
BENCH_KEY = "bench_web_two_steps"
BENCH_ROLE = "commission_secretary"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"

# The organisation: ten municipalities of one region; the first (the regional capital) has 30 % of the cases.
MUNICIPALITIES = 10
CAPITAL_SHARE = 0.30
SCHOOLS = 8
CURATORS = 6
AGENCIES = [  # key, kind, name
    ("commission", "commission", "Commission for minors"),
    ("police", "police", "Police department, juvenile unit"),
    ("guardianship", "guardianship", "Guardianship office"),
    ("social", "social_protection", "Social services centre"),
    ("health", "health", "Children's hospital"),
    *[(f"school{n}", "education", f"Secondary school No. {n}") for n in range(1, SCHOOLS + 1)],
]
STAFF = [  # username suffix, roles, agency key
    ("secretary", ["commission_secretary"], "commission"),
    ("chair", ["commission"], "commission"),
    ("manager", ["manager"], "commission"),
    ("police", ["police", "agency_specialist"], "police"),
    ("guardian", ["guardianship", "agency_specialist"], "guardianship"),
    ("social", ["social_protection", "agency_specialist"], "social"),
    ("doctor", ["health", "agency_specialist"], "health"),
    *[(f"curator{n}", ["curator", "agency_specialist"], "social" if n % 2 else "guardianship")
      for n in range(1, CURATORS + 1)],
    *[(f"school{n}", ["education", "agency_specialist"], f"school{n}") for n in range(1, SCHOOLS + 1)],
]
# Who joins a case's working group besides the commission and the agency that reported it (probabilities).
MEMBERS = {"police": 0.6, "social": 0.7, "guardianship": 0.3, "health": 0.3, "school": 0.6}
INTAKE_AGENCIES = ["police", "social", "guardianship", "health", "school"]

# The two users whose inbox is timed: a municipality-wide scope and a participating-agency scope.
SECRETARY = "m01_secretary"
SCHOOL_SPECIALIST = "m01_school1"

# Shape of the loaded data (see load_bulk).
OPEN_PER_RUNNING_INSTANCE = 1.25   # parallel branches: some running instances wait on two tasks
COMPLETED_PER_FINISHED = 10        # one finished instance per this many completed tasks
EMERGENCY_SHARE = 0.05             # cases that also run the emergency process
CLAIMED_SHARE = 0.15               # open role tasks someone has claimed
NO_DUE_SHARE = 0.05                # open tasks whose diagram sets no deadline (besides tasks that never have one)
DUE_SPREAD_DAYS = 30               # open tasks are due within ±30 days of now
HISTORY_DAYS = 3 * 365             # completed tasks were created over the last three years
QUARTERS = 12                      # quarterly reconciliations per municipality (the latest is running)
STATE_PLACEHOLDER = '{"bench": "bulk-loaded instance: its inbox rows are real, its state is not"}'


# -- the diagrams: which user tasks exist, and the benchmark's own two-step process -----------------------------


@dataclass(frozen=True)
class Step:
    """A user task of a deployed diagram, as its inbox row would show it."""

    element_id: str
    name: str
    lane: str | None
    roles: tuple[str, ...]
    form_key: str | None
    has_due: bool
    assigned_to_curator: bool


def read_steps(paths: list[Path], role_titles: dict[str, str]) -> dict[str, list[Step]]:
    """Process key -> the user tasks its instances show in the inbox (including those of called processes)."""
    own: dict[str, list[Step]] = {}
    calls: dict[str, list[str]] = {}
    for path in paths:
        tree = ElementTree.parse(path)
        for process in tree.iter(f"{{{BPMN_NS}}}process"):
            key = process.get("id")
            lanes = {ref.text.strip(): lane.get("name") for lane in process.iter(f"{{{BPMN_NS}}}lane")
                     for ref in lane.findall(f"{{{BPMN_NS}}}flowNodeRef") if ref.text}
            steps = []
            for task in process.iter(f"{{{BPMN_NS}}}userTask"):
                element = task.get("id")
                groups = task.get(f"{{{CAMUNDA_NS}}}candidateGroups") or ""
                roles = [g.strip() for g in groups.split(",") if g.strip()] if "${" not in groups else []
                lane = lanes.get(element)
                if not roles and lane:
                    roles = [resolve_role(lane, role_titles) or lane.strip()]
                assignee = task.get(f"{{{CAMUNDA_NS}}}assignee")
                if not roles and not assignee:
                    roles = [ADMIN_ROLE]
                steps.append(Step(element, task.get("name") or element, lane, tuple(roles),
                                  task.get(f"{{{CAMUNDA_NS}}}formKey"), bool(task.get(f"{{{CAMUNDA_NS}}}dueDate")),
                                  bool(assignee and "curator" in assignee)))
            own[key] = steps
            calls[key] = [c.get("calledElement") for c in process.iter(f"{{{BPMN_NS}}}callActivity")]

    def collect(key: str, seen: set[str]) -> list[Step]:
        seen.add(key)
        found = list(own.get(key, []))
        for called in calls.get(key, []):
            if called and called not in seen:
                found += collect(called, seen)
        return found

    return {key: collect(key, set()) for key in own}


def two_step_diagram() -> str:
    """Start → first step → second step → end, both in the commission secretary's lane (Camunda dialect)."""
    nodes = ["start", "first", "second", "end"]
    refs = "".join(f"        <bpmn:flowNodeRef>{node}</bpmn:flowNodeRef>\n" for node in nodes)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" xmlns:camunda="{CAMUNDA_NS}" id="bench_web_definitions" '
        'targetNamespace="http://kurator.example/bench">\n'
        '  <bpmn:collaboration id="bench_web_collaboration">\n'
        f'    <bpmn:participant id="bench_web_participant" name="Web benchmark" processRef="{BENCH_KEY}" />\n'
        "  </bpmn:collaboration>\n"
        f'  <bpmn:process id="{BENCH_KEY}" name="Web benchmark: two steps" isExecutable="true">\n'
        '    <bpmn:laneSet id="bench_web_lanes">\n'
        f'      <bpmn:lane id="bench_web_lane" name="{BENCH_ROLE}">\n{refs}      </bpmn:lane>\n'
        "    </bpmn:laneSet>\n"
        '    <bpmn:startEvent id="start" name="Start" />\n'
        '    <bpmn:sequenceFlow id="to_first" sourceRef="start" targetRef="first" />\n'
        '    <bpmn:userTask id="first" name="Benchmark: first step" camunda:dueDate="${working_days(5)}" />\n'
        '    <bpmn:sequenceFlow id="to_second" sourceRef="first" targetRef="second" />\n'
        '    <bpmn:userTask id="second" name="Benchmark: second step" camunda:dueDate="${working_days(5)}" />\n'
        '    <bpmn:sequenceFlow id="to_end" sourceRef="second" targetRef="end" />\n'
        '    <bpmn:endEvent id="end" name="Done" />\n'
        "  </bpmn:process>\n"
        "</bpmn:definitions>\n"
    )


# -- set-up -----------------------------------------------------------------------------------------------------


@dataclass
class Organisation:
    """Ids and user names of what the engine created: municipalities, agencies and staff."""

    municipalities: list[int] = field(default_factory=list)
    agencies: dict[tuple[int, str], int] = field(default_factory=dict)  # (municipality id, agency key) -> id
    staff: dict[tuple[int, str], list[str]] = field(default_factory=dict)  # (municipality id, role) -> users
    curators: dict[int, list[str]] = field(default_factory=dict)

    _people: dict[tuple[int, tuple[str, ...]], list[str]] = field(default_factory=dict)

    def somebody(self, municipality: int, roles: tuple[str, ...], rng: random.Random) -> str | None:
        """A member of staff of the municipality who holds one of the roles (None if nobody does)."""
        people = self._people.get((municipality, roles))
        if people is None:
            people = [u for role in roles for u in self.staff.get((municipality, role), [])]
            self._people[(municipality, roles)] = people
        return rng.choice(people) if people else None


def create_organisation(engine: ProcessEngine) -> Organisation:
    org = Organisation()
    password_hash = PasswordHasher().hash(PASSWORD)  # one hash for everybody: argon2 is slow on purpose
    for number in range(1, MUNICIPALITIES + 1):
        municipality = f"Municipality {number:02d}"
        ids = {key: engine.identity.add_agency(f"{name} ({municipality})", municipality, kind=kind)
               for key, kind, name in AGENCIES}
        with engine.db.session() as session:
            muni_id = session.get(Agency, ids["commission"]).municipality_id
        org.municipalities.append(muni_id)
        for key, agency_id in ids.items():
            org.agencies[(muni_id, key)] = agency_id
        for suffix, roles, agency in STAFF:
            username = f"m{number:02d}_{suffix}"
            engine.identity.add_user(username, roles, agency=ids[agency], full_name=f"{suffix.title()} {number}",
                                     password_hash=password_hash)
            for role in roles:
                org.staff.setdefault((muni_id, role), []).append(username)
        org.curators[muni_id] = [f"m{number:02d}_curator{n}" for n in range(1, CURATORS + 1)]
    return org


@dataclass
class Instance:
    id: int
    key: str
    municipality: int
    case_id: int | None
    running: bool
    started_at: datetime
    ended_at: datetime | None
    business_key: str | None
    scoped: bool = True


class Copier:
    """COPY rows into one table of the bench schema, counting them."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.counts: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, table: str, columns: list[str], rows: Iterator[tuple] | list[tuple]) -> None:
        began = time.perf_counter()
        with self.conn.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                self.counts[table] += 1
        self.seconds[table] = time.perf_counter() - began


def load_bulk(conn: psycopg.Connection, org: Organisation, steps: dict[str, list[Step]],
              definitions: dict[str, int], bench_instances: list[int], open_tasks: int, completed_tasks: int,
              now: datetime, rng: random.Random) -> dict[str, int]:
    """Families, cases, working groups, process instances, instance scopes and human tasks, with COPY.

    Every case runs a `sop_case` instance (its called processes' tasks carry the key `sop_case`, as the engine
    records them); a few also run `emergency_child_safety`. Each municipality has a reconciliation per quarter
    (no case: municipality scope), and a handful of `sop_programme` test runs belong to no case or municipality.
    The instances started through the engine for the throughput test join cases of the first municipality.

    The domain's triggers (who reads which case's instances, sop_0007) are off while the rows are copied, as for
    any bulk load: `set_up` fills their table afterwards in one statement (`backfill_instance_readers`), and the
    open emergencies of the cases as the domain would have kept them (`sop.emergencies.refresh`: open emergency steps
    without a stored run start count from their own opening).
    """
    copy = Copier(conn)
    with conn.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # no row triggers during COPY (superuser only)
        first_id = (cursor.execute("SELECT coalesce(max(id), 0) FROM process_instance").fetchone()[0]) + 1
    weights = [CAPITAL_SHARE] + [(1 - CAPITAL_SHARE) / (len(org.municipalities) - 1)] * (len(org.municipalities) - 1)
    running_wanted = max(1, math.ceil(open_tasks / OPEN_PER_RUNNING_INSTANCE))
    finished_wanted = max(1, completed_tasks // COMPLETED_PER_FINISHED)
    stories = running_wanted + finished_wanted
    instances: list[Instance] = []
    families, cases, participants = [], [], []
    next_id = first_id

    def add_instance(**values: Any) -> Instance:
        nonlocal next_id
        instance = Instance(id=next_id, **values)
        next_id += 1
        instances.append(instance)
        return instance

    for story in range(stories):
        case_id = story + 1
        municipality = rng.choices(org.municipalities, weights)[0]
        running = story >= finished_wanted  # the newest cases are the open ones
        started = now - timedelta(days=HISTORY_DAYS * (1 - story / stories) + rng.uniform(0, 5))
        ended = None if running else min(now - timedelta(hours=1), started + timedelta(days=rng.uniform(30, 300)))
        status = rng.choice(["check", "recognized", "recognized"]) if running else "closed"
        curator = rng.choice(org.curators[municipality]) if status != "check" else None
        families.append((case_id, municipality, f"Family {case_id}", f"street {case_id % 700}, house {case_id % 90}",
                         f"street {case_id % 700} house {case_id % 90}", started))
        main = add_instance(key="sop_case", municipality=municipality, case_id=case_id, running=running,
                            started_at=started, ended_at=ended, business_key=f"case-{case_id}")
        cases.append((case_id, f"{case_id}/{started.year}", municipality, case_id, status, curator, started.date(),
                      ended.date() if ended else None, main.id, started))
        participants.append((case_id, org.agencies[(municipality, "commission")], "commission", None))
        intake = rng.choice(INTAKE_AGENCIES)
        members = {intake} | {key for key, share in MEMBERS.items() if rng.random() < share}
        for key in sorted(members):
            agency_key = f"school{rng.randint(1, SCHOOLS)}" if key == "school" else key
            participants.append((case_id, org.agencies[(municipality, agency_key)],
                                 "intake" if key == intake else "member", None))
        if rng.random() < EMERGENCY_SHARE:
            add_instance(key="emergency_child_safety", municipality=municipality, case_id=case_id,
                         running=running and rng.random() < 0.5, started_at=started + timedelta(hours=2),
                         ended_at=ended or started + timedelta(days=7), business_key=f"case-{case_id}")
    for municipality in org.municipalities:
        for quarter in range(QUARTERS):
            started = now - timedelta(days=91 * (QUARTERS - quarter - 1) + 10)
            latest = quarter == QUARTERS - 1
            add_instance(key="quarterly_reconciliation", municipality=municipality, case_id=None, running=latest,
                         started_at=started, ended_at=None if latest else started + timedelta(days=40),
                         business_key=f"reconciliation-{municipality}-{quarter}")
    for trial in range(max(1, running_wanted // 2000)):  # a methodologist's test runs: no case, no municipality
        add_instance(key="sop_programme", municipality=org.municipalities[0], case_id=None, running=True,
                     started_at=now - timedelta(days=rng.uniform(1, 60)), ended_at=None,
                     business_key=f"trial-{trial}", scoped=False)

    copy("sop_family", ["id", "municipality_id", "name", "address_registered", "address_key", "created_at"],
         families)
    copy("process_instance", ["id", "definition_id", "process_key", "business_key", "status", "state", "revision",
                              "timezone", "started_at", "started_by", "ended_at", "municipality_id"],
         ((i.id, definitions[i.key], i.key, i.business_key, "running" if i.running else "completed",
           STATE_PLACEHOLDER, 1, "Europe/Moscow", i.started_at, "bench", i.ended_at,
           i.municipality if i.scoped else None) for i in instances))
    copy("sop_case", ["id", "number", "municipality_id", "family_id", "status", "curator", "received_on",
                      "closed_on", "process_instance_id", "created_at"], cases)
    copy("sop_case_agency", ["case_id", "agency_id", "role", "responsible"], participants)
    capital_cases = [c[0] for c in cases if c[2] == org.municipalities[0]]
    scopes = [(i.id, i.case_id, i.municipality) for i in instances if i.scoped]
    scopes += [(instance_id, rng.choice(capital_cases), org.municipalities[0]) for instance_id in bench_instances]
    copy("sop_instance_scope", ["instance_id", "case_id", "municipality_id"], scopes)
    with conn.cursor() as cursor:  # what the domain's scope stamps on an instance it starts (sop.models)
        cursor.execute("UPDATE process_instance SET municipality_id = %s WHERE id = ANY(%s)",
                       (org.municipalities[0], bench_instances))
        cursor.execute("UPDATE human_task SET municipality_id = %s WHERE instance_id = ANY(%s)",
                       (org.municipalities[0], bench_instances))

    running = [i for i in instances if i.running]
    owners = running[:open_tasks] + [rng.choice(running) for _ in range(max(0, open_tasks - len(running)))]
    curator_of = {c[0]: c[5] for c in cases}
    columns = ["id", "instance_id", "process_key", "element_id", "name", "lane", "candidate_roles",
               "candidate_users", "candidates", "assignee", "form_key", "due", "overdue", "status", "created_at",
               "completed_at", "completed_by", "data", "municipality_id"]

    # the columns a step always fills the same way, computed once per step
    fixed = {key: [(step, (step.element_id, step.name, step.lane, json.dumps(list(step.roles)), "[]",
                           candidates_token(list(step.roles), []))) for step in process_steps]
             for key, process_steps in steps.items()}
    outcomes = ["agreed", "sent", "checked", "noted"]

    def task_row(instance: Instance, is_open: bool, position: float) -> tuple:
        step, columns = rng.choice(fixed[instance.key])
        municipality = instance.municipality if instance.scoped else None
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        assignee = None
        if step.assigned_to_curator:
            assignee = curator_of.get(instance.case_id) or rng.choice(org.curators[instance.municipality])
        elif is_open and rng.random() < CLAIMED_SHARE:
            assignee = org.somebody(instance.municipality, step.roles, rng)
        if is_open:
            due = None
            if step.has_due and rng.random() >= NO_DUE_SHARE:
                due = now + timedelta(days=rng.uniform(-DUE_SPREAD_DAYS, DUE_SPREAD_DAYS))
            created = min(now - timedelta(minutes=5), (due or now) - timedelta(days=rng.uniform(3, 20)))
            return (task_id, instance.id, instance.key, *columns, assignee, step.form_key, due,
                    due is not None and due < now, "open", created, None, None, None, municipality)
        created = now - timedelta(days=HISTORY_DAYS * (1 - position) + rng.uniform(0, 3))
        done = created + timedelta(days=rng.uniform(0.05, 20))
        due = created + timedelta(days=rng.uniform(5, 15)) if step.has_due else None
        by = assignee or org.somebody(instance.municipality, step.roles, rng) or SECRETARY
        data = (f'{{"comment": "Done: {step.element_id}", "decided_on": "{done.date().isoformat()}", '
                f'"outcome": "{rng.choice(outcomes)}"}}')
        return (task_id, instance.id, instance.key, *columns, by, step.form_key, due,
                due is not None and done > due, "completed", created, done, by, data, municipality)

    def all_tasks() -> Iterator[tuple]:
        """Completed tasks in the order they were created; the open ones are mixed into the newest rows (the last
        3 × open positions), each remaining position taking an open task with probability open left / slots left."""
        total = completed_tasks + len(owners)
        tail_start = total - min(total, 3 * len(owners))
        remaining_open = list(owners)
        rng.shuffle(remaining_open)
        for position in range(total):
            if position >= tail_start and rng.random() < len(remaining_open) / (total - position):
                yield task_row(remaining_open.pop(), True, position / total)
            else:
                yield task_row(rng.choice(instances), False, position / total)

    copy("human_task", columns, all_tasks())
    with conn.cursor() as cursor:
        cursor.execute("SET session_replication_role = DEFAULT")
        for table in ("process_instance", "sop_case", "sop_family"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    conn.commit()
    return {"rows": dict(copy.counts), "seconds": copy.seconds}


def start_bench_instances(engine: ProcessEngine, count: int) -> tuple[list[int], float]:
    """Instances of the two-step diagram, started through the engine (real state, real inbox rows)."""
    ids = []
    began = time.perf_counter()
    for number in range(count):
        ids.append(engine.runtime.start(BENCH_KEY, {"bench_no": number}, business_key=f"bench-{number}",
                                        started_by=SECRETARY, timezone="Europe/Moscow"))
        if (number + 1) % 1000 == 0:
            print(f"    {number + 1} of {count} started", flush=True)
    return ids, time.perf_counter() - began


BENCH_TABLES = ["municipality", "agency", "app_user", "user_role", "process_definition", "process_instance",
                "human_task", "history_event", "sop_family", "sop_case", "sop_case_agency", "sop_instance_scope",
                "sop_instance_reader", "sop_emergency_run", "sop_case_emergency"]


def warmup_tasks(args: argparse.Namespace) -> int:
    """Completions before each timed completion run: two per client thread (they load the spec and the calendar
    in every worker and open the database connections)."""
    return 2 * args.clients


def set_up(url: str, schema: str, args: argparse.Namespace) -> dict[str, Any]:
    """Everything before the server starts; returns the timings and row counts."""
    rng = random.Random(SEED)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    db = open_database(url, schema)
    try:
        engine = ProcessEngine(db, SystemClock())
        mark = time.perf_counter()
        db.upgrade([SOP_MIGRATIONS])  # the engine's chain and the domain's branch
        engine.identity.ensure_default_roles()
        engine.identity.ensure_roles(SOP_ROLES)  # the domain's roles, used by its diagrams
        timings["migrations_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        org = create_organisation(engine)
        timings["organisation_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        bpmn = sorted((ROOT / "workflows").glob("*.bpmn"))
        engine.repository.deploy([*bpmn, *sorted((ROOT / "forms").glob("*.json"))], deployed_by="bench")
        engine.repository.deploy([(f"{BENCH_KEY}.bpmn", two_step_diagram())], deployed_by="bench")
        timings["deploy_s"] = time.perf_counter() - mark
        steps = read_steps(bpmn, engine.role_titles())
        with db.session() as session:
            definitions = dict(session.execute(select(ProcessDefinition.key, func.max(ProcessDefinition.id))
                                               .group_by(ProcessDefinition.key)).all())
        missing = {"sop_case", "emergency_child_safety", "quarterly_reconciliation", "sop_programme"} - set(steps)
        if missing:
            raise RuntimeError(f"workflows/ no longer has the processes {sorted(missing)}: update the bench")
        bench_count = (args.tasks + warmup_tasks(args)) * len(args.workers)
        print(f"  starting {bench_count} instances of {BENCH_KEY} through the engine…", flush=True)
        bench_ids, start_s = start_bench_instances(engine, bench_count)
        timings["engine_starts_s"] = start_s
        bulk_open = args.open - bench_count
        mark = time.perf_counter()
        print(f"  bulk-loading {bulk_open:,} open and {args.completed:,} completed tasks (COPY)…", flush=True)
        with psycopg.connect(url, options=f"-csearch_path={schema}") as conn:
            loaded = load_bulk(conn, org, steps, definitions, bench_ids, bulk_open, args.completed,
                               datetime.now(timezone.utc), rng)
            timings["copy_s"] = time.perf_counter() - mark
            timings["copy_by_table_s"] = loaded["seconds"]
            mark = time.perf_counter()
            with db.engine.begin() as connection:  # what the triggers and the domain would have written row by row
                backfill_instance_readers(connection)
            with db.session() as session:
                refresh_open_emergencies(session)
            timings["readers_s"] = time.perf_counter() - mark
            mark = time.perf_counter()
            conn.autocommit = True
            for table in BENCH_TABLES:  # VACUUM too: a long-lived database has its visibility map set
                conn.execute(f"VACUUM (ANALYZE) {table}")
            timings["analyze_s"] = time.perf_counter() - mark
            sizes = {row[0]: row[1] for row in conn.execute(
                "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (schema,))}
        with db.session() as session:
            tally = dict(session.execute(select(HumanTask.status, func.count()).group_by(HumanTask.status)).all())
            instances = session.scalar(select(func.count()).select_from(ProcessInstance))
            case_count = session.scalar(select(func.count()).select_from(Case))
            scope_count = session.scalar(select(func.count()).select_from(InstanceScope))
            reader_count = session.scalar(select(func.count()).select_from(InstanceReader))
            family_count = session.scalar(select(func.count()).select_from(Family))
        timings["total_s"] = time.perf_counter() - began
        return {
            "timings": timings,
            "engine_starts_per_s": bench_count / start_s if start_s else None,
            "bench_instances": bench_ids,
            "rows": {"human_task_open": tally.get("open", 0), "human_task_completed": tally.get("completed", 0),
                     "process_instance": instances, "sop_case": case_count, "sop_family": family_count,
                     "sop_instance_scope": scope_count, "sop_case_agency": loaded["rows"].get("sop_case_agency", 0),
                     "sop_instance_reader": reader_count},
            "table_bytes": {"human_task": sizes.get("human_task"), "process_instance": sizes.get("process_instance")},
            "municipalities": len(org.municipalities),
        }
    finally:
        db.dispose()


# -- the server -------------------------------------------------------------------------------------------------


def app_database_url(url: str, schema: str) -> str:
    """The URL the app gets: libpq's `options` puts the bench schema on the search path of every connection."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={urllib.parse.quote(f'-csearch_path={schema}', safe='')}"


def check_search_path(app_url: str, schema: str) -> str:
    """Connect the way the app will and read the search path back (it must be the bench schema)."""
    engine = make_engine(app_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SHOW search_path")).scalar()
            users = conn.execute(text("SELECT count(*) FROM app_user")).scalar()
    finally:
        engine.dispose()
    if found.strip('"') != schema:
        raise RuntimeError(f"the app's URL gives search_path={found!r}, not {schema!r}")
    return f"search_path={found} ({users} users visible)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    base: str
    workers: int
    log: Path
    process: subprocess.Popen


@contextmanager
def gunicorn(app_url: str, workers: int, label: str) -> Iterator[Server]:
    """`gunicorn -w N 'webapp:create_app()'` on a free port, until the block ends."""
    port = free_port()
    log = OUT_DIR / f"gunicorn-{label}.log"
    env = dict(os.environ, KURATOR_DATABASE_URL=app_url, KURATOR_SECRET_KEY=secrets.token_hex(32),
               PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "300",
               "--graceful-timeout", "10", "webapp:create_app()"]
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", workers, log, process)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{server.base}/login", timeout=10) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def server_errors(log: Path) -> list[str]:
    """Tracebacks and unhandled-error lines gunicorn's workers wrote (the app logs every 500 with its path)."""
    found, block = [], []
    for line in log.read_text(errors="replace").splitlines():
        if "unhandled error on" in line or line.startswith("Traceback"):
            if block:
                found.append("\n".join(block))
            block = [line]
        elif block and (line.startswith(" ") or (line and not line.startswith("["))):
            block.append(line)
        elif block:
            found.append("\n".join(block))
            block = []
    if block:
        found.append("\n".join(block))
    return found


# -- HTTP clients -----------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - keep the 302 for the caller
        return None


class Client:
    """One user's HTTP client (standard library only): a cookie jar for the web pages, a bearer token for the API."""

    def __init__(self, base: str):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect())
        self.token: str | None = None

    def call(self, method: str, path: str, form: dict | None = None, body: Any = None) -> tuple[int, bytes]:
        headers = {"Accept": "application/json" if path.startswith("/api/") else "text/html"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token and path.startswith("/api/"):
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=600) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def web_login(self, username: str) -> None:
        status, page = self.call("GET", "/login")
        match = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        if status != 200 or match is None:
            raise RuntimeError(f"GET /login gave {status} without a csrf token")
        status, _ = self.call("POST", "/login", form={"username": username, "password": PASSWORD,
                                                      "csrf_token": match.group(1).decode()})
        if status != 302:
            raise RuntimeError(f"POST /login as {username} gave {status}, not a redirect")

    def api_login(self, username: str) -> None:
        status, body = self.call("POST", "/api/v1/auth/token", body={"username": username, "password": PASSWORD})
        if status != 200:
            raise RuntimeError(f"POST /api/v1/auth/token as {username} gave {status}: {body[:300]!r}")
        self.token = json.loads(body)["token"]


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 200 values is the 190th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summarise(times_ms: list[float]) -> dict[str, Any]:
    if not times_ms:
        return {"n": 0}
    return {"n": len(times_ms), "median_ms": statistics.median(times_ms), "p95_ms": percentile(times_ms, 0.95),
            "mean_ms": statistics.fmean(times_ms), "min_ms": min(times_ms), "max_ms": max(times_ms)}


def time_get(client: Client, path: str, count: int, warmup: int) -> dict[str, Any]:
    """`count` sequential GETs of one URL after `warmup` untimed ones; median and p95 of the wall time."""
    statuses: Counter[int] = Counter()
    times, size, items = [], 0, None
    for index in range(warmup + count):
        began = time.perf_counter()
        status, body = client.call("GET", path)
        elapsed = (time.perf_counter() - began) * 1000
        statuses[status] += 1
        if index >= warmup:
            times.append(elapsed)
        size = len(body)
        if status == 200 and path.startswith("/api/"):
            items = len(json.loads(body))
        elif status == 200:
            items = len(set(re.findall(rb"/tasks/([0-9a-f-]{36})", body)))
    result = summarise(times)
    result.update(url=path, statuses={str(k): v for k, v in sorted(statuses.items())}, bytes=size, items=items)
    return result


USERS = {"secretary": SECRETARY, "school": SCHOOL_SPECIALIST}
ENDPOINTS = {"inbox": "/inbox", "api": "/api/v1/tasks?scope=candidate&limit=50"}


def measure_latency(server: Server, requests: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, username in USERS.items():
        web, api = Client(server.base), Client(server.base)
        web.web_login(username)
        api.api_login(username)
        for endpoint, path in ENDPOINTS.items():
            figures = time_get(web if endpoint == "inbox" else api, path, requests, warmup=max(3, requests // 20))
            results[f"{label}.{endpoint}"] = figures
            print(f"    {username:<16} GET {path:<42} median {figures['median_ms']:8.1f} ms   "
                  f"p95 {figures['p95_ms']:8.1f} ms   statuses {figures['statuses']}", flush=True)
    return results


# -- query plans ------------------------------------------------------------------------------------------------


def inbox_statements(user: CurrentUser, session) -> dict[str, Any]:
    """The statements behind the timed pages, built the way `/inbox` and `GET /api/v1/tasks` build them: the first
    page of `/inbox` reads the ids of the first COUNT_CAP + 1 tasks in order (their number is the count), then the
    page's rows by id (the ids are read here with `session`)."""
    query = inbox_query(user)
    count = counted_query(query)
    page = rows_query(session.scalars(count).all()[:PAGE_SIZE])
    api = (inbox_query(user, scope="candidate")
           .order_by(HumanTask.due.is_(None), HumanTask.due, HumanTask.created_at, HumanTask.id).limit(50).offset(0))
    return {"inbox_count": count, "inbox_page": page, "api_candidate": api}


def visible_count_statement(user: CurrentUser):
    """The exact number of open tasks in the user's inbox (the page counts only up to COUNT_CAP)."""
    return select(func.count()).select_from(inbox_query(user).subquery())


def task_detail_statement(user: CurrentUser, task_id: str):
    """The scope check of one task, as `POST /api/v1/tasks/{id}/complete` runs it before and after completing."""
    return (task_scope(select(HumanTask).where(HumanTask.id == task_id), user)
            .add_columns(Case.id, Case.number)
            .outerjoin(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
            .outerjoin(Case, Case.id == InstanceScope.case_id))


def filter_list_statements(user: CurrentUser) -> dict[str, Any]:
    """The lists of the inbox's filter form: one query of the stages and processes of the user's municipality
    (the same for both timed users, of the first municipality)."""
    return {"inbox_stages": filter_list_query(user)}


def literal_sql(statement, dialect) -> str:
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    return sql.replace("%%", "%")  # the pyformat driver escapes % in literals; no parameters are sent here


def describe_plan(plan: dict) -> dict[str, Any]:
    """Execution time, how human_task is read, and the node that takes the most time of its own.

    A node's own time is its total time minus its children's. Times are per loop and multiplied by the loops,
    except under a Gather, where the loops are parallel workers running at the same time.
    """
    task_scans, own_times = [], []

    def walk(node: dict, parallel: bool) -> None:
        parallel = parallel or node["Node Type"].startswith("Gather")

        def elapsed(item: dict) -> float:
            loops = 1 if parallel else (item.get("Actual Loops", 1) or 1)
            return item.get("Actual Total Time", 0.0) * loops

        label = node["Node Type"] + (f" on {node['Relation Name']}" if node.get("Relation Name") else "") + (
            f" using {node['Index Name']}" if node.get("Index Name") else "")
        own_times.append((max(0.0, elapsed(node) - sum(elapsed(c) for c in node.get("Plans", []))), label))
        index = node.get("Index Name", "")
        if node.get("Relation Name") == "human_task" or "human_task" in index or index.startswith("bench_ix_"):
            loops = node.get("Actual Loops", 1) or 1
            task_scans.append({"node": label, "rows": round(node.get("Actual Rows", 0) * loops),
                               "removed_by_filter": round(node.get("Rows Removed by Filter", 0) * loops),
                               "estimated_rows": node.get("Plan Rows"),
                               "buffers": node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)})
        for child in node.get("Plans", []):
            walk(child, parallel)

    walk(plan["Plan"], False)
    own_times.sort(reverse=True)
    return {"execution_ms": plan.get("Execution Time"), "planning_ms": plan.get("Planning Time"),
            "human_task_access": task_scans,
            "seq_scan_on_human_task": any(s["node"].startswith("Seq Scan on human_task") for s in task_scans),
            "heaviest_nodes": [{"node": label, "own_ms": round(ms, 1)} for ms, label in own_times[:3]]}


def explain_all(url: str, schema: str, label: str, plans_log: list[str]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement, with literal values, after one untimed run of each."""
    db = open_database(url, schema)
    results: dict[str, Any] = {}
    try:
        with db.session() as session:
            users = {key: CurrentUser.from_row(session.scalar(select(User).where(User.username == name)))
                     for key, name in USERS.items()}
            statements = [(f"{key}.{name}", USERS[key], statement) for key, user in users.items()
                          for name, statement in inbox_statements(user, session).items()]
        dialect = db.engine.dialect
        statements += [(f"any.{name}", "any user", statement)
                       for name, statement in filter_list_statements(users["secretary"]).items()]
        with psycopg.connect(url, options=f"-csearch_path={schema}") as conn:
            row = conn.execute("SELECT id FROM human_task WHERE process_key = %s AND status = 'open' LIMIT 1",
                               (BENCH_KEY,)).fetchone()
        if row is not None:
            statements.append(("secretary.task_detail", SECRETARY, task_detail_statement(users["secretary"], row[0])))
        with psycopg.connect(url, options=f"-csearch_path={schema}", autocommit=True) as conn:
            for key, who, statement in statements:
                sql = literal_sql(statement, dialect)
                conn.execute(sql).fetchall()  # warm the cache the way the timed requests find it
                plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}").fetchone()[0][0]
                summary = describe_plan(plan)
                if key.endswith("inbox_count"):
                    exact = literal_sql(visible_count_statement(users[key.split(".")[0]]), dialect)
                    summary["visible_tasks"] = conn.execute(exact).fetchone()[0]
                results[key] = summary
                lines = [row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")]
                plans_log.append(f"==== {label}: {who} / {key}\n{sql}\n\n" + "\n".join(lines) + "\n")
                scans = "; ".join(f"{s['node']} ({s['rows']:,} rows, est. {s['estimated_rows']:,}, "
                                  f"{s['removed_by_filter']:,} filtered out)" for s in summary["human_task_access"])
                print(f"    {key:<26} {summary['execution_ms']:8.1f} ms   human_task: {scans}", flush=True)
    finally:
        db.dispose()
    return results


@dataclass(frozen=True)
class Extra:
    """A schema object tried in the bench schema only: its CREATE and DROP statements."""

    create: str
    drop: str


OPEN_ORDER = Extra("CREATE INDEX bench_ix_open_order ON human_task ((due IS NULL), due, created_at, id) "
                   "WHERE status = 'open'", "DROP INDEX IF EXISTS bench_ix_open_order")
OPEN_TRGM = Extra("CREATE INDEX bench_ix_open_candidates_trgm ON human_task USING gin (candidates {trgm}.gin_trgm_ops) "
                  "WHERE status = 'open'", "DROP INDEX IF EXISTS bench_ix_open_candidates_trgm")
ASSIGNEE_STATS = Extra("CREATE STATISTICS bench_st_assignee_status (mcv) ON assignee, status FROM human_task",
                       "DROP STATISTICS IF EXISTS bench_st_assignee_status")
OPEN_LISTS = Extra("CREATE INDEX bench_ix_open_lists ON human_task (process_key, element_id, name) "
                   "WHERE status = 'open'", "DROP INDEX IF EXISTS bench_ix_open_lists")

# Variants after the engine's own indexes, each cumulative; `timed` ones are also timed over HTTP. The last one
# drops them all and measures the engine's indexes again.
VARIANTS: list[tuple[str, list[Extra], bool]] = [
    ("+trgm only", [OPEN_TRGM], False),
    ("+order", [OPEN_ORDER], True),
    ("+order+trgm+stats", [OPEN_ORDER, OPEN_TRGM, ASSIGNEE_STATS], True),
    ("+order+trgm+stats+lists", [OPEN_ORDER, OPEN_TRGM, ASSIGNEE_STATS, OPEN_LISTS], True),
    ("engine indexes again", [], True),  # a control: did the machine's load change while the variants ran?
]


@contextmanager
def extra_objects(url: str, schema: str, extras: list[Extra]) -> Iterator[float]:
    """Create the extra indexes and statistics, analyse, and drop them again when the block ends."""
    with psycopg.connect(url, options=f"-csearch_path={schema}", autocommit=True) as conn:
        began = time.perf_counter()
        trgm = None
        if any("{trgm}" in extra.create for extra in extras):
            # an extension exists once per database: put it in the bench schema (dropped with it) unless some
            # other schema has it already, and name its operator class with the schema it is in
            conn.execute(f'CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA "{schema}"')
            trgm = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                "WHERE extname = 'pg_trgm'").fetchone()[0]
        for extra in extras:
            conn.execute(extra.create.format(trgm=trgm))
        conn.execute("ANALYZE human_task")
        built = time.perf_counter() - began
    try:
        yield built
    finally:
        with psycopg.connect(url, options=f"-csearch_path={schema}", autocommit=True) as conn:
            for extra in extras:
                conn.execute(extra.drop)
            conn.execute("ANALYZE human_task")


# -- completions over HTTP --------------------------------------------------------------------------------------


def complete_endpoint_available(server: Server) -> bool:
    status, body = Client(server.base).call("GET", "/api/openapi.json")
    return status == 200 and "/api/v1/tasks/{task_id}/complete" in json.loads(body).get("paths", {})


def open_first_steps(url: str, schema: str, count: int) -> list[str]:
    with psycopg.connect(url, options=f"-csearch_path={schema}") as conn:
        rows = conn.execute("SELECT id FROM human_task WHERE process_key = %s AND element_id = 'first' "
                            "AND status = 'open' ORDER BY instance_id LIMIT %s", (BENCH_KEY, count)).fetchall()
    return [row[0] for row in rows]


def completion_run(server: Server, task_ids: list[str], clients: int) -> dict[str, Any]:
    """Each client thread completes its own share of the tasks, one POST after another."""
    token_client = Client(server.base)
    token_client.api_login(SECRETARY)
    shares = [task_ids[n::clients] for n in range(clients)]
    statuses: Counter[int] = Counter()
    times: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients + 1)

    def work(share: list[str], number: int) -> None:
        client = Client(server.base)
        client.token = token_client.token
        mine: list[float] = []
        seen: Counter[int] = Counter()
        gate.wait()
        for index, task_id in enumerate(share):
            began = time.perf_counter()
            status, body = client.call("POST", f"/api/v1/tasks/{task_id}/complete",
                                       body={"data": {"answer": "checked", "note": f"client {number}, task {index}"}})
            mine.append((time.perf_counter() - began) * 1000)
            seen[status] += 1
            if status != 200 and len(failures) < 20:
                with lock:
                    failures.append(f"POST /api/v1/tasks/{task_id}/complete -> {status}: {body[:300]!r}")
        with lock:
            times.extend(mine)
            statuses.update(seen)

    threads = [threading.Thread(target=work, args=(share, n)) for n, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ok = statuses.get(200, 0)
    result = {"workers": server.workers, "clients": clients, "tasks": len(task_ids), "completed": ok,
              "wall_s": wall, "per_s": ok / wall if wall else None,
              "statuses": {str(k): v for k, v in sorted(statuses.items())},
              "conflicts_409": statuses.get(409, 0), "errors": sum(v for k, v in statuses.items() if k != 200),
              "failures": failures}
    result.update({f"latency_{k}": v for k, v in summarise(times).items() if k != "n"})
    return result


def check_completions(url: str, schema: str, task_ids: list[str]) -> dict[str, int]:
    """What the database says after a run: completed tasks, and the second steps they opened."""
    with psycopg.connect(url, options=f"-csearch_path={schema}") as conn:
        completed = conn.execute("SELECT count(*) FROM human_task WHERE id = ANY(%s) AND status = 'completed'",
                                 (task_ids,)).fetchone()[0]
        seconds = conn.execute(
            "SELECT count(*) FROM human_task s JOIN human_task f ON f.instance_id = s.instance_id "
            "WHERE f.id = ANY(%s) AND s.element_id = 'second' AND s.status = 'open'", (task_ids,)).fetchone()[0]
    return {"completed_in_db": completed, "second_steps_open": seconds}


# -- report -----------------------------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count()}
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), None)
        info["cpu_model"] = model
        memory = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["memory_gib"] = round(int(memory.split()[1]) / 1024 / 1024, 1)
        info["load_average"] = os.getloadavg()
    except (OSError, StopIteration):
        pass
    return info


def server_settings(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("server_version", "shared_buffers", "work_mem", "effective_cache_size",
                             "random_page_cost", "synchronous_commit", "jit")}


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return str(value)


def render_table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[fmt(c) for c in row] for row in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                               for i, c in enumerate(row)))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plan_cell(summary: dict[str, Any]) -> str:
    """'265.3 (assignee)': execution ms and the indexes (or seq scan) that read human_task."""
    ways = []
    for scan in summary["human_task_access"]:
        node = scan["node"]
        if " using " in node:
            name = node.split(" using ", 1)[1].removeprefix("ix_human_task_").removeprefix("bench_ix_")
            ways.append(name.removeprefix("open_candidates_").replace("pkey", "pk"))
        elif node.startswith("Seq Scan"):
            ways.append("seq scan")
    return f"{summary['execution_ms']:,.1f} ({'+'.join(sorted(set(ways))) or '-'})"


def report(results: dict[str, Any]) -> str:
    parts = []
    latency = results.get("latency", {})
    variants = list(latency)
    if variants:
        header = ["Request (median / p95 ms)", *variants]
        rows = []
        for key in latency[variants[0]]:
            user, endpoint = key.split(".")
            label = f"{USERS[user]} {ENDPOINTS[endpoint].split('?')[0]}"
            rows.append([label, *[f"{fmt(latency[v][key].get('median_ms'))} / {fmt(latency[v][key].get('p95_ms'))}"
                                  for v in variants]])
        loads = results.get("load_average_before", {})
        rows.append(["load average (1, 5, 15 min) before", *[loads.get(f"latency {v}", "—") for v in variants]])
        parts.append(render_table(header, rows))
    plans = results.get("plans", {})
    if plans:
        header = ["EXPLAIN ANALYZE ms (how human_task is read)", *plans]
        keys = list(plans[next(iter(plans))])
        rows = [[key, *[plan_cell(plans[v][key]) if key in plans[v] else "—" for v in plans]] for key in keys]
        for user in USERS:
            parts_of_page = [f"{user}.inbox_count", f"{user}.inbox_page", "any.inbox_stages", "any.inbox_processes"]
            totals = [sum(plans[v][k]["execution_ms"] for k in parts_of_page if k in plans[v]) for v in plans]
            rows.append([f"{user}: all SQL of one /inbox", *[fmt(total) for total in totals]])
        parts.append(render_table(header, rows))
        visible = {user: plans[next(iter(plans))][f"{user}.inbox_count"].get("visible_tasks") for user in USERS}
        parts.append("Open tasks in the inbox: " + ", ".join(f"{USERS[u]} {fmt(n)}" for u, n in visible.items()))
    runs = results.get("throughput", {}).get("runs", [])
    if runs:
        rows = [[r["workers"], r["clients"], r["completed"], r["per_s"], r.get("latency_median_ms"),
                 r.get("latency_p95_ms"), r["conflicts_409"], r["errors"]] for r in runs]
        parts.append(render_table(["gunicorn workers", "clients", "completed", "completions/s", "median ms",
                                   "p95 ms", "409", "errors"], rows))
    table = "\n\n".join(parts)
    print(table)
    return table


# -- main -------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10,000 open / 100,000 completed tasks, 50 requests, 300 completions per "
                             "worker setting, unless given explicitly")
    parser.add_argument("--open", type=int, default=None, help="open tasks in total (default 100,000)")
    parser.add_argument("--completed", type=int, default=None, help="completed tasks (default 1,000,000)")
    parser.add_argument("--requests", type=int, default=None, help="timed GETs per URL and user (default 200)")
    parser.add_argument("--workers", default="1,2,4", help="gunicorn worker counts for the completion runs")
    parser.add_argument("--latency-workers", type=int, default=2, help="gunicorn workers for the latency runs")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads completing tasks")
    parser.add_argument("--tasks", type=int, default=None,
                        help="tasks completed per worker setting (default 2,000; --quick 300)")
    parser.add_argument("--no-index-variants", action="store_true",
                        help="skip the experiment with bench-only indexes (only the engine's own are measured)")
    parser.add_argument("--postgres-url", default=os.environ.get("KURATOR_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    quick = args.quick
    args.open = args.open if args.open is not None else (10_000 if quick else 100_000)
    args.completed = args.completed if args.completed is not None else (100_000 if quick else 1_000_000)
    args.requests = args.requests if args.requests is not None else (50 if quick else 200)
    args.tasks = args.tasks if args.tasks is not None else (300 if quick else 2_000)
    args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    if args.open <= args.tasks * len(args.workers):
        parser.error("--open must exceed --tasks × the number of --workers settings (those tasks are part of it)")
    if min(args.workers + [args.clients, args.requests, args.tasks, args.latency_workers]) < 1 or args.completed < 0:
        parser.error("counts must be positive")
    return args


def run(args: argparse.Namespace, url: str, schema: str, results: dict[str, Any]) -> None:
    print(f"Set-up in schema {schema}", flush=True)
    setup = set_up(url, schema, args)
    results["setup"] = {k: v for k, v in setup.items() if k != "bench_instances"}
    t = setup["timings"]
    print(f"  set-up took {t['total_s']:.1f} s: migrations {t['migrations_s']:.1f} s, organisation "
          f"{t['organisation_s']:.1f} s, deploy {t['deploy_s']:.1f} s, engine starts {t['engine_starts_s']:.1f} s "
          f"({setup['engine_starts_per_s']:.0f}/s), COPY {t['copy_s']:.1f} s, readers {t['readers_s']:.1f} s, "
          f"VACUUM ANALYZE {t['analyze_s']:.1f} s",
          flush=True)
    print(f"  rows: {json.dumps(setup['rows'])}", flush=True)
    app_url = app_database_url(url, schema)
    results["search_path_check"] = check_search_path(app_url, schema)
    print(f"  app URL check: {results['search_path_check']}", flush=True)

    plans_log: list[str] = []
    results["plans"], results["latency"], results["index_build_s"] = {}, {}, {}
    variants = [("engine indexes", [], True)] + ([] if args.no_index_variants else VARIANTS)
    for label, extras, timed in variants:
        with extra_objects(url, schema, extras) as built:
            if extras:
                results["index_build_s"][label] = built
                print(f"Bench-only objects {label}: {', '.join(e.create.split(' ON ')[0] for e in extras)} "
                      f"(built and analysed in {built:.1f} s)", flush=True)
            print(f"EXPLAIN ANALYZE [{label}]", flush=True)
            results["plans"][label] = explain_all(url, schema, label, plans_log)
            if not timed:
                continue
            results.setdefault("load_average_before", {})[f"latency {label}"] = load_average()
            print(f"Latency [{label}], gunicorn -w {args.latency_workers}, {args.requests} requests per URL, "
                  f"load average {load_average()}", flush=True)
            with gunicorn(app_url, args.latency_workers, f"latency-{len(results['latency'])}") as server:
                results["latency"][label] = measure_latency(server, args.requests)
            results.setdefault("load_average_after", {})[f"latency {label}"] = load_average()
            results.setdefault("server_errors", {})[f"latency {label}"] = server_errors(server.log)
    PLANS_FILE.write_text("\n".join(plans_log), encoding="utf-8")

    throughput: dict[str, Any] = {"runs": []}
    results["throughput"] = throughput
    for workers in args.workers:
        with gunicorn(app_url, workers, f"complete-w{workers}") as server:
            if not complete_endpoint_available(server):
                throughput["blocked"] = "POST /api/v1/tasks/{id}/complete is not in the OpenAPI document"
                print(f"  {throughput['blocked']}: completions not measured", flush=True)
                break
            warm_ids = open_first_steps(url, schema, warmup_tasks(args))
            warm = completion_run(server, warm_ids, args.clients)
            task_ids = open_first_steps(url, schema, args.tasks)
            results.setdefault("load_average_before", {})[f"complete w{workers}"] = load_average()
            print(f"Completions: gunicorn -w {workers}, {args.clients} clients, {len(task_ids)} tasks (after "
                  f"{warm['completed']} untimed warm-up completions), load average {load_average()}", flush=True)
            outcome = completion_run(server, task_ids, args.clients)
            outcome["warmup_statuses"] = warm["statuses"]
            outcome["load_average_after"] = load_average()
        outcome.update(check_completions(url, schema, task_ids))
        results.setdefault("server_errors", {})[f"complete w{workers}"] = server_errors(server.log)
        throughput["runs"].append(outcome)
        print(f"    {outcome['per_s']:.1f} completions/s, median {outcome.get('latency_median_ms', 0):.0f} ms, "
              f"p95 {outcome.get('latency_p95_ms', 0):.0f} ms, statuses {outcome['statuses']}, "
              f"in the database: {outcome['completed_in_db']} completed, {outcome['second_steps_open']} second "
              f"steps open", flush=True)
        for failure in outcome["failures"][:5]:
            print(f"      {failure}", flush=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Set up a private schema, measure, drop the schema; the results (with "error" if a step raised)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    url = args.postgres_url
    results: dict[str, Any] = {
        "date": date.today().isoformat(), "machine": machine(), "postgres": server_settings(url),
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    began = time.perf_counter()
    schema = create_postgres_schema(url)
    try:
        run(args, url, schema, results)
    except Exception:
        results["error"] = traceback.format_exc()
        print(results["error"], file=sys.stderr)
    finally:
        drop_postgres_schema(url, schema)
        print(f"Schema {schema} dropped.", flush=True)
    results["wall_s"] = time.perf_counter() - began
    return results


def issue_keys(results: dict[str, Any]) -> dict[str, Any]:
    """The web figures of issue 13: the worse p95 of the two users for the API list and for `/inbox` (engine
    indexes only), and completions/s with 2 gunicorn workers (None where not measured)."""
    latency = results.get("latency", {}).get("engine indexes", {})

    def worst(endpoint: str) -> float | None:
        values = [latency[f"{user}.{endpoint}"].get("p95_ms") for user in USERS if f"{user}.{endpoint}" in latency]
        return max(values) if values and None not in values else None

    runs = [r for r in results.get("throughput", {}).get("runs", []) if r["workers"] == 2]
    return {"inbox_api_p95_ms": worst("api"), "inbox_page_p95_ms": worst("inbox"),
            "http_completions_per_s": runs[0]["per_s"] if runs else None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = measure(args)
    results["issue_13"] = issue_keys(results)
    failed = "error" in results
    print()
    results["table"] = report(results)
    errors = {k: v for k, v in results.get("server_errors", {}).items() if v}
    if errors:
        print("\nServer-side errors (gunicorn logs):")
        for where, blocks in errors.items():
            for block in blocks[:3]:
                print(f"--- {where}\n{block}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    print(f"\nIssue 13 ({args.open:,} open / {args.completed:,} completed tasks): {json.dumps(results['issue_13'])}")
    print(f"JSON: {args.output}   plans: {PLANS_FILE}   wall time {results['wall_s'] / 60:.1f} min")
    if failed:
        print("BENCHMARK FAILED (see the traceback above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
