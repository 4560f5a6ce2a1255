"""Rules of fact the data of a completed task must keep, by form key: what the form schema alone cannot say.

A date that records something that already happened (a visit, an act, a meeting, a dispatch) cannot be later
than the municipality's today, nor earlier than the case's signal; a dispatch cannot precede the resolution it
sends; and the ticks of a form must agree with each other (a removed child was removed from a confirmed threat, on
a day, to somewhere). The rules run inside the transaction that completes the task, before the task's handler
(`sop.handlers`): a rule that fails raises `InvalidInput` with a Russian message per field, the completion is
refused and nothing is saved. They hold for every way of completing a task (the web page, the REST API, a meeting).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import InvalidInput
from engine.models import HumanTask, Municipality, ProcessInstance

from .models import Case, Resolution

DEFAULT_ZONE = "Europe/Moscow"


class Facts:
    """The submitted data of a task with what the rules compare it to: today, the case, its resolutions."""

    def __init__(self, session: Session, task: HumanTask, case: Case | None, now: datetime,
                 data: dict[str, Any]):
        self.session, self.task, self.case, self.now, self.data = session, task, case, now, data
        self.errors: dict[str, str] = {}

    @cached_property
    def today(self) -> date:
        """Today by the engine clock in the municipality's time zone (read only when a date is to be checked;
        `session.get` finds the task's municipality among the rows the completion has already read)."""
        municipality_id = self.task.municipality_id or (self.case.municipality_id if self.case else None)
        municipality = self.session.get(Municipality, municipality_id) if municipality_id is not None else None
        return self.now.astimezone(ZoneInfo(municipality.timezone if municipality else DEFAULT_ZONE)).date()

    def date(self, name: str) -> date | None:
        """The day a date field holds (None when empty or not a date: the form's own check reports that)."""
        return _day(self.data.get(name))

    def flag(self, name: str) -> bool:
        return self.data.get(name) is True

    def filled(self, name: str) -> bool:
        value = self.data.get(name)
        return value not in (None, "", []) and not (isinstance(value, str) and not value.strip())

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def happened(self, name: str, since_signal: bool = True) -> date | None:
        """A date of something that already happened: not after today and, where the case is known and
        `since_signal`, not before the case's signal."""
        day = self.date(name)
        if day is not None:
            self._check_day(name, day, since_signal)
        return day

    def _check_day(self, name: str, day: date, since_signal: bool, row: str = "") -> None:
        if day > self.today:
            self.fail(name, f"{row}дата не может быть позже сегодняшнего дня ({self.today:%d.%m.%Y})")
        elif since_signal and self.case is not None and self.case.received_on and day < self.case.received_on:
            self.fail(name, f"{row}дата не может быть раньше поступления сигнала ({self.case.received_on:%d.%m.%Y})")

    def not_before(self, name: str, day: date | None, earlier: date | None, what: str) -> None:
        if day is not None and earlier is not None and day < earlier and name not in self.errors:
            self.fail(name, f"дата не может быть раньше {what} ({earlier:%d.%m.%Y})")

    def resolution_date(self, kind: str) -> date | None:
        """The day of the case's latest resolution of a kind (`approval`, `closure`)."""
        if self.case is None:
            return None
        return self.session.scalar(select(Resolution.adopted_on)
                                   .where(Resolution.case_id == self.case.id, Resolution.kind == kind)
                                   .order_by(Resolution.id.desc()).limit(1))


def check(session: Session, task: HumanTask, instance_id: int | None, now: datetime, data: dict[str, Any]) -> None:
    """Refuse the completion of `task` with `data` when the data breaks a rule of its form (`InvalidInput`)."""
    rule = RULES.get(task.form_key or "")
    if rule is None:
        return
    facts = Facts(session, task, _case_of(session, instance_id), now, data or {})
    rule(facts)
    if facts.errors:
        fields = ", ".join(f"{key} ({message})" for key, message in facts.errors.items())
        raise InvalidInput(f"{task.form_key}: the data breaks the form's rules: {fields}", facts.errors)


def _case_of(session: Session, instance_id: int | None) -> Case | None:
    """The case of the instance's business key `case-<id>` (the instance and the case are rows the completion
    and its handler read anyway)."""
    instance = session.get(ProcessInstance, instance_id) if instance_id is not None else None
    key = instance.business_key if instance is not None else None
    if key and key.startswith("case-") and key[5:].isdigit():
        return session.get(Case, int(key[5:]))
    return None


def _day(value: Any) -> date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


# -- the SOP case -----------------------------------------------------------------------------------------------

def sop_check(f: Facts) -> None:
    f.happened("conclusion_date")
    if f.flag("sop_confirmed") and not f.filled("family_criteria"):
        f.fail("family_criteria", "отметьте хотя бы один критерий СОП: без него положение не подтверждено")


def sop_recognition(f: Facts) -> None:
    f.happened("meeting_date")


def sop_registration_card(f: Facts) -> None:
    f.happened("detection_date", since_signal=False)  # the family is detected before the signal is sent


def sop_programme_approval(f: Facts) -> None:
    f.happened("approval_date")


def sop_programme_dispatch(f: Facts) -> None:
    sent = f.happened("programme_sent_date")
    f.not_before("programme_sent_date", sent, f.resolution_date("approval"), "утверждения программы")


def sop_execution_report(f: Facts) -> None:
    f.happened("report_date")
    rows = f.data.get("activity_reports")
    for number, row in enumerate(rows if isinstance(rows, list) else [], start=1):
        day = _day(row.get("status_date")) if isinstance(row, dict) else None
        if day is not None and "activity_reports" not in f.errors:
            f._check_day("activity_reports", day, True, row=f"строка {number}: ")


def sop_materials(f: Facts) -> None:
    f.happened("materials_date")


def sop_closure_decision(f: Facts) -> None:
    f.happened("closure_date")


def sop_closure_dispatch(f: Facts) -> None:
    sent = f.happened("copies_sent_date")
    f.not_before("copies_sent_date", sent, f.resolution_date("closure"), "постановления о снятии с учета")


# -- the emergency (004 §7) -------------------------------------------------------------------------------------

def em_inspection(f: Facts) -> None:
    visit = f.happened("visit_date")
    removal = f.happened("removal_date")
    if not f.flag("removed"):
        return
    if not f.flag("threat_confirmed"):
        f.fail("threat_confirmed", "ребенок отбирается только при подтвержденной угрозе жизни или здоровью")
    if removal is None:
        f.fail("removal_date", "укажите дату акта об отобрании")
    if "visit_date" not in f.errors:
        f.not_before("removal_date", removal, visit, "выезда")
    placement = f.data.get("placement")
    if not placement:
        f.fail("placement", "укажите, куда передан отобранный ребенок")
    elif placement == "not_removed":
        f.fail("placement", "ребенок отобран: укажите, куда он передан")


def em_removal_act(f: Facts) -> None:
    f.happened("removal_act_date")
    if not f.flag("removal_act_signed"):  # §7.1 3) а): the act is signed by the head of the municipality
        f.fail("removal_act_signed", "акт об отобрании подписывается главой городского округа "
                                     "(муниципального района)")


def em_police_report(f: Facts) -> None:
    f.happened("police_report_date")
    if not f.flag("guardianship_informed"):  # §7.2 1): the police inform guardianship immediately
        f.fail("guardianship_informed", "орган внутренних дел незамедлительно информирует орган опеки")
    if f.data.get("child_outcome") == "delivered_institution" and not f.flag("police_social_informed"):
        f.fail("police_social_informed", "о доставлении ребенка незамедлительно информируется орган "
                                         "социальной защиты")  # §7.2 3) г)


def em_social_inspection(f: Facts) -> None:
    inspected = f.happened("social_inspection_date")
    reported = f.happened("social_report_date")
    if "social_inspection_date" not in f.errors:
        f.not_before("social_report_date", reported, inspected, "обследования")


def em_prosecutor_notice(f: Facts) -> None:
    f.happened("prosecutor_notice_date")


def em_orphan_journal(f: Facts) -> None:
    f.happened("orphan_journal_date")


def em_court_claim(f: Facts) -> None:
    f.happened("claim_date")


def em_inform_commission(f: Facts) -> None:
    f.happened("inform_date")


# -- the quarterly reconciliation, the KPI campaign ---------------------------------------------------------------

RECONCILIATION_DIFFERENCES = ("differences", "missing_in_commission", "missing_in_agency")


def rec_agency(f: Facts) -> None:
    if not f.flag("confirmed") and not any(f.filled(name) for name in RECONCILIATION_DIFFERENCES):
        f.fail("confirmed", "отметьте, что сверка проведена и списки подтверждены, или укажите расхождения")


def rec_send_databank(f: Facts) -> None:
    f.happened("databank_sent_date")


def rec_regional_receive(f: Facts) -> None:
    f.happened("databank_received_date")


def kpi_send(f: Facts) -> None:
    f.happened("sent_on")


RULES: dict[str, Callable[[Facts], None]] = {
    "sop_check": sop_check,
    "sop_recognition": sop_recognition,
    "sop_registration_card": sop_registration_card,
    "sop_programme_approval": sop_programme_approval,
    "sop_programme_dispatch": sop_programme_dispatch,
    "sop_execution_report": sop_execution_report,
    "sop_materials": sop_materials,
    "sop_closure_decision": sop_closure_decision,
    "sop_closure_dispatch": sop_closure_dispatch,
    "em_inspection": em_inspection,
    "em_removal_act": em_removal_act,
    "em_police_report": em_police_report,
    "em_social_inspection": em_social_inspection,
    "em_prosecutor_notice": em_prosecutor_notice,
    "em_orphan_journal": em_orphan_journal,
    "em_court_claim": em_court_claim,
    "em_inform_commission": em_inform_commission,
    "rec_agency": rec_agency,
    "rec_send_databank": rec_send_databank,
    "rec_regional_receive": rec_regional_receive,
    "kpi_send": kpi_send,
}
