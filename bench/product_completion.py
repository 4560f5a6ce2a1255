"""A case's steps completed with the SOP domain attached: what a user's completion costs in the product.

    .venv/bin/python bench/product_completion.py                       # PostgreSQL, 20 cases
    .venv/bin/python bench/product_completion.py --cases 40 --database sqlite
    .venv/bin/python bench/compare_revisions.py --bench product --before HEAD~1   # side by side with a revision

`engine_bench.py` measures the engine alone; here the domain listens too (`sop.install`): each completion also
runs the step's handler (case records, a generated document), keeps the reader and emergency tables, and
evaluates diagram functions such as `next_meeting()`. A municipality with its commission, agencies and users is set
up on a fresh schema, `--cases` signals each open a case, and every case goes through the path of the tests
(check, recognition at a meeting, registration card, the agencies' proposals, draft, approval, dispatch) through
`TaskService.complete`. Printed per step: median and p95 ms, SQL statements and transactions per completion; and
all steps together. The data come from the test suite's fixtures.

As in the web app (`webapp/rendering.py`), the PDF a step writes is laid out after the person has the answer: the
completion figures are the answer's; the lay-out that follows is printed apart ("then PDF"). A revision without
that deferral (`compare_revisions.py --before` an older one) lays the PDF out inside the completion.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and str(ROOT) not in sys.path:  # imported, it measures the tree its caller put first
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

import sop  # noqa: E402
from engine import FrozenClock, ProcessEngine  # noqa: E402
from sop import casefile  # noqa: E402
from tests.support import (  # noqa: E402
    SOP_ROLES,
    create_postgres_schema,
    drop_postgres_schema,
    open_database,
)
from tests.test_sop_diagrams import APPROVE, CARD, CHECK, DISPATCH, DRAFT, FORMS, PROPOSAL, RECOGNITION, WORKFLOWS  # noqa: E402
from tests.test_sop_service import SIGNAL  # noqa: E402

DEFAULT_POSTGRES_URL = os.environ.get("KURATOR_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START = "2025-10-30T09:00:00+03:00"
MEETING = "2025-12-23T10:00:00+03:00"  # the recognition is decided at the commission's meeting
APPROVAL = "2026-01-15T10:00:00+03:00"
AGENCIES = (("КДНиЗП г. Йошкар-Олы", "commission"), ("МБОУ СОШ № 5", "education"),
            ("ОМВД России по г. Йошкар-Оле", "police"), ("Отдел опеки и попечительства", "guardianship"),
            ("КЦСОН г. Йошкар-Олы", "social_protection"))
USERS = (("secretary", ["commission_secretary"], "КДНиЗП г. Йошкар-Олы"),
         ("chair", ["commission"], "КДНиЗП г. Йошкар-Олы"),
         ("school", ["education", "agency_specialist"], "МБОУ СОШ № 5"),
         ("police", ["police", "agency_specialist"], "ОМВД России по г. Йошкар-Оле"),
         ("guardian", ["guardianship", "agency_specialist"], "Отдел опеки и попечительства"),
         ("curator1", ["curator"], "КЦСОН г. Йошкар-Олы"),
         ("specialist", ["agency_specialist"], "КЦСОН г. Йошкар-Олы"))
# (element, user, data, clock before it); the proposals are one task per agency of the working group
PATH = (("sop_check", "secretary", CHECK, None), ("sop_recognition", "chair", RECOGNITION, MEETING),
        ("sop_registration_card", "curator1", CARD, None), ("sop_proposals", None, PROPOSAL, None),
        ("sop_programme_draft", "curator1", DRAFT, None), ("sop_programme_approval", "chair", APPROVE, APPROVAL),
        ("sop_programme_dispatch", "secretary", DISPATCH, None))


@contextmanager
def database(kind: str, url: str) -> Iterator[Any]:
    if kind == "sqlite":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="kurator-product-") as directory:
            db = open_database(f"sqlite:///{directory}/bench.db")
            try:
                yield db
            finally:
                db.dispose()
        return
    schema = create_postgres_schema(url)
    db = open_database(url, schema)
    try:
        yield db
    finally:
        db.dispose()
        drop_postgres_schema(url, schema)


def product(db) -> ProcessEngine:
    engine = ProcessEngine(db, FrozenClock(START))
    service = sop.install(engine)
    engine.init_db()
    engine.identity.ensure_default_roles()
    engine.identity.ensure_roles(SOP_ROLES)
    for name, kind in AGENCIES:
        engine.identity.add_agency(name, "Йошкар-Ола", kind=kind)
    for username, roles, agency in USERS:
        engine.identity.add_user(username, roles, agency=agency)
    engine.repository.deploy([*sorted(WORKFLOWS.glob("*.bpmn")), *sorted(FORMS.glob("*.json"))])
    engine.sop_service = service
    return engine


def agency_user(engine: ProcessEngine, task: dict[str, Any]) -> str:
    """The user of the agency a proposal task is addressed to."""
    kind = {a["id"]: a["kind"] for a in engine.identity.agencies()}.get(task.get("agency_id"))
    return {"police": "police", "education": "school", "guardianship": "guardian"}.get(kind, "specialist")


def measure(kind: str, url: str, cases: int) -> dict[str, Any]:
    """Per step: completion ms (median, p95), statements and transactions per completion; all steps together."""
    with database(kind, url) as db:
        engine = product(db)
        instances = [engine.sop_service.register_intake("school", SIGNAL, new_family=True).instance_ids[0]
                     for _ in range(cases)]
        statements: list[str] = []
        commits: list[Any] = []

        def sent(_conn, _cursor, statement, *_args):
            statements.append(statement)

        committed = commits.append
        event.listen(db.engine, "before_cursor_execute", sent)
        event.listen(db.engine, "commit", committed)
        steps: dict[str, dict[str, list[float]]] = {}
        defer = getattr(casefile, "defer_rendering", None)  # absent from the revisions before it
        try:
            for element, user, data, clock in PATH:
                if clock:
                    engine.clock.set(clock)
                figures = steps.setdefault(element, {"ms": [], "statements": [], "transactions": [],
                                                     "pdf_ms": []})
                for instance in instances:
                    for task in [t for t in engine.tasks.query(instance_id=instance) if t["element_id"] == element]:
                        who = user or agency_user(engine, task)
                        statements.clear()
                        commits.clear()
                        deferral = defer() if defer is not None else None
                        began = time.perf_counter()
                        engine.tasks.complete(task["id"], who, data)
                        figures["ms"].append((time.perf_counter() - began) * 1000)
                        figures["statements"].append(len(statements))
                        figures["transactions"].append(len(commits))
                        if deferral is not None:  # what the web worker does once the answer is sent
                            written = casefile.deferred_documents(deferral)
                            began = time.perf_counter()
                            casefile.render_pending(engine, written)
                            figures["pdf_ms"].append((time.perf_counter() - began) * 1000 if written else 0.0)
        finally:
            event.remove(db.engine, "before_cursor_execute", sent)
            event.remove(db.engine, "commit", committed)
    result: dict[str, Any] = {"steps": {}}
    every: dict[str, list[float]] = {"ms": [], "statements": [], "transactions": [], "pdf_ms": []}
    for element, figures in steps.items():
        result["steps"][element] = summary(figures)
        for key, values in figures.items():
            every[key].extend(values)
    result["all"] = summary(every)
    return result


def summary(figures: dict[str, list[float]]) -> dict[str, float]:
    ms = sorted(figures["ms"])
    pdf = figures["pdf_ms"]
    return {"completions": len(ms), "median_ms": statistics.median(ms),
            "p95_ms": ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
            "statements": statistics.mean(figures["statements"]),
            "transactions": statistics.mean(figures["transactions"]),
            "then_pdf_median_ms": statistics.median(pdf) if pdf else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    result = measure(args.database, args.postgres_url, args.cases)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.database}, {args.cases} cases; per completion: median / p95 ms, SQL statements, transactions")
    for element, figures in [*result["steps"].items(), ("all steps", result["all"])]:
        then = figures["then_pdf_median_ms"]
        print(f"{element:26} {figures['completions']:5} × {figures['median_ms']:7.2f} / {figures['p95_ms']:7.2f} ms"
              f"   {figures['statements']:5.1f} statements   {figures['transactions']:4.2f} transactions"
              + (f"   then PDF {then:6.1f} ms" if then is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
