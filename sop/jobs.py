"""Periodic domain work run at the end of every scheduler sweep (idempotent, safe in parallel schedulers)."""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine.errors import KuratorError, NotFound
from engine.models import Agency, HumanTask, Municipality

from .models import Case, InstanceScope, Person, Reconciliation

if TYPE_CHECKING:
    from .service import SopService

log = logging.getLogger(__name__)

RECONCILIATION_PROCESS = "quarterly_reconciliation"
# The commission reconciles its lists with the agencies of the system of prevention, not with itself.
NOT_RECONCILED = ("commission", "regional_commission")


def quarter_of(day: date) -> tuple[str, date]:
    quarter = (day.month - 1) // 3 + 1
    return f"{day.year}-Q{quarter}", date(day.year, 3 * (quarter - 1) + 1, 1)


def quarter_start(name: str) -> date:
    """The first day of the quarter `quarter_of` names `name` ("2026-Q1")."""
    year, quarter = name.split("-Q")
    return date(int(year), 3 * (int(quarter) - 1) + 1, 1)


def start_quarterly(service: SopService) -> int:
    """Start the quarter's reconciliation for every municipality that has not got one yet (P7)."""
    engine = service.engine
    try:
        engine.repository.definition(RECONCILIATION_PROCESS)
    except NotFound:
        return 0
    started = 0
    with engine.db.session() as session:
        municipalities = session.scalars(select(Municipality).order_by(Municipality.id)).all()
        known = {(r.municipality_id, r.quarter) for r in session.scalars(select(Reconciliation))}
    for municipality in municipalities:
        today = engine.clock.now().astimezone(ZoneInfo(municipality.timezone)).date()
        quarter, quarter_start = quarter_of(today)
        if (municipality.id, quarter) in known:
            continue
        try:
            with engine.db.session() as session:
                agencies = session.scalars(select(Agency).where(Agency.municipality_id == municipality.id,
                                                                Agency.kind.not_in(NOT_RECONCILED))
                                           .order_by(Agency.id)).unique().all()
                if not agencies:
                    continue
                row = Reconciliation(municipality_id=municipality.id, quarter=quarter,
                                     started_at=engine.clock.now(), results={})
                session.add(row)
                session.flush()  # the unique (municipality, quarter) claims the start for this process
                variables = {"municipality": municipality.name, "quarter": quarter,
                             "quarter_start": quarter_start.isoformat(),
                             "agencies": [{"id": a.id, "name": a.name} for a in agencies]}
                row.process_instance_id = engine.runtime.start(
                    RECONCILIATION_PROCESS, variables, business_key=f"reconciliation-{municipality.id}-{quarter}",
                    started_by="scheduler", timezone=municipality.timezone, session=session)
                session.add(InstanceScope(instance_id=row.process_instance_id, municipality_id=municipality.id))
                started += 1
        except IntegrityError:
            continue  # another scheduler process started it first
    return started


# the forms of a case's closure question before the commission
CLOSURE_QUESTIONS = ("sop_closure_decision", "sop_closure_proposal")


def propose_closure_at_18(service: SopService) -> int:
    """On the day a minor of an open case turns 18, the case receives `minor_turned_18` (a closure proposal).

    Not while the case's closure is already before the commission (an open closure decision or proposal): the
    commission decides the closure anyway, and a second question on the same agenda would only repeat it. The
    minor stays unproposed, so that the proposal follows on the next run if the commission continues the work."""
    engine = service.engine
    proposed = 0
    closing = select(HumanTask.instance_id).where(HumanTask.status == "open",
                                                  HumanTask.form_key.in_(CLOSURE_QUESTIONS))
    with engine.db.session() as session:
        rows = session.execute(
            select(Person.id, Person.birth_date, Case.id, Case.process_instance_id, Municipality.timezone)
            .join(Case, Case.family_id == Person.family_id)
            .join(Municipality, Municipality.id == Case.municipality_id)
            .where(Person.kind == "child", Person.age18_proposed_on.is_(None), Person.birth_date.is_not(None),
                   Case.status == "recognized", Case.process_instance_id.is_not(None),
                   Case.process_instance_id.not_in(closing))
        ).all()
    for person_id, birth_date, case_id, instance_id, tz in rows:
        today = engine.clock.now().astimezone(ZoneInfo(tz)).date()
        if today < eighteenth_birthday(birth_date):
            continue
        try:
            with engine.db.session() as session:
                claimed = session.execute(update(Person).where(Person.id == person_id,
                                                               Person.age18_proposed_on.is_(None))
                                          .values(age18_proposed_on=today)
                                          .execution_options(synchronize_session=False)).rowcount
                if claimed != 1:
                    continue
                engine.runtime.correlate_message("minor_turned_18", {"person_id": person_id},
                                                 instance_id=instance_id, actor="scheduler", session=session)
                proposed += 1
        except KuratorError as exc:
            log.warning("case %s: closure proposal at 18 not delivered: %s", case_id, exc.message)
    return proposed


def eighteenth_birthday(born: date) -> date:
    try:
        return born.replace(year=born.year + 18)
    except ValueError:  # born on 29 February: of age on 1 March
        return date(born.year + 18, 3, 1)
