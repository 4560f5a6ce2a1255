"""The half-year KPI campaign (seed 003) as the process `kpi_campaign` (workflows/kpi_campaign.bpmn): start it for
a municipality and half-year, keep what its tasks enter (the executors' values, the coordinator's consolidated
ones), and the task pages' context (the executors to return a report to, the sums to consolidate, the remarks).

Who is who in a municipality: the executors are its agencies of the system of prevention (not the commission);
the coordinator (003: ГБУ АО «Плесецкий ЦССУ», a social service centre) is its one `social_protection` agency; the
approver (003: отдел опеки и попечительства) its one `guardianship` agency. Without one of them the task goes to
the commission secretary (`agencyFallbackGroups`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from engine.errors import Conflict, InvalidInput, NotFound
from engine.models import Agency, Municipality

from ..models import InstanceScope
from . import catalogue
from .figures import Half, parse_value
from .models import KpiActual, KpiCampaign, KpiIndicator, KpiPlan

if TYPE_CHECKING:
    from engine import ProcessEngine

    from ..handlers import Context
    from ..service import SopService

PROCESS = "kpi_campaign"
NOT_EXECUTORS = ("commission", "regional_commission")
COORDINATOR_KIND = "social_protection"
APPROVER_KIND = "guardianship"


def _one_of_kind(agencies: list[Agency], kind: str) -> int | None:
    found = [a.id for a in agencies if a.kind == kind]
    return found[0] if len(found) == 1 else None


def start_campaign(engine: ProcessEngine, municipality_id: int, half: Half, by: str = "scheduler") -> KpiCampaign:
    """Start the campaign of a municipality for a half-year that is over. Refuses a half-year not yet over, a
    second campaign for the same half-year, and a municipality without agencies to report."""
    with engine.db.session() as session:
        municipality = session.get(Municipality, municipality_id)
        if municipality is None:
            raise NotFound(f"municipality {municipality_id} not found")
        today = engine.clock.now().astimezone(ZoneInfo(municipality.timezone)).date()
        if today <= half.end:
            raise InvalidInput(f"half: {half.key} is not over yet (it ends on {half.end.isoformat()}); the report "
                               f"is made after the half-year", {"half": "полугодие еще не окончено"})
        if session.scalar(select(KpiCampaign.id).where(KpiCampaign.municipality_id == municipality_id,
                                                       KpiCampaign.half == half.key)) is not None:
            raise Conflict(f"the KPI campaign of {municipality.name} for {half.key} is already started")
        agencies = session.scalars(select(Agency).where(Agency.municipality_id == municipality_id)
                                   .order_by(Agency.id)).unique().all()
        executors = [a for a in agencies if a.kind not in NOT_EXECUTORS]
        if not executors:
            raise InvalidInput(f"municipality {municipality.name} has no agencies to report on the KPIs",
                               {"municipality": "нет органов-исполнителей"})
        row = KpiCampaign(municipality_id=municipality_id, half=half.key, started_at=engine.clock.now(),
                          started_by=by)
        session.add(row)
        try:
            session.flush()  # the unique (municipality, half) claims the start for this process
        except IntegrityError:
            raise Conflict(f"the KPI campaign of {municipality.name} for {half.key} is already started") from None
        variables = {"municipality": municipality.name, "half": half.key, "half_end": half.end.isoformat(),
                     "year_end": half.number == 2,
                     "executors": [{"id": a.id, "name": a.name} for a in executors],
                     "coordinator": _one_of_kind(executors, COORDINATOR_KIND),
                     "approver": _one_of_kind(executors, APPROVER_KIND)}
        row.process_instance_id = engine.runtime.start(
            PROCESS, variables, business_key=f"kpi-{municipality_id}-{half.key}", started_by=by,
            timezone=municipality.timezone, session=session)
        session.add(InstanceScope(instance_id=row.process_instance_id, municipality_id=municipality_id))
        session.flush()
        session.expunge(row)
        return row


def start_due(service: SopService) -> int:
    """Scheduler job: once a half-year is over, start its campaign for every municipality that has a KPI plan for
    it and no campaign yet."""
    engine = service.engine
    try:
        engine.repository.definition(PROCESS)
    except NotFound:
        return 0
    with engine.db.session() as session:
        planned = session.execute(select(KpiPlan.municipality_id, KpiPlan.half).distinct()).all()
        started = {(m, h) for m, h in session.execute(select(KpiCampaign.municipality_id, KpiCampaign.half))}
        zones = dict(session.execute(select(Municipality.id, Municipality.timezone)).all())
    count = 0
    for municipality_id, key in sorted(planned):
        half = Half.parse(key)
        today = engine.clock.now().astimezone(ZoneInfo(zones[municipality_id])).date()
        # only the half-year just over: an old plan entered later does not start a campaign years afterwards
        if (municipality_id, key) in started or Half.of(today).previous() != half:
            continue
        try:
            start_campaign(engine, municipality_id, half)
            count += 1
        except (Conflict, InvalidInput):
            continue
    return count


# -- what the tasks enter ------------------------------------------------------------------------------------------

def _campaign(ctx: Context) -> KpiCampaign | None:
    if ctx.instance is None:
        return None
    return ctx.session.scalar(select(KpiCampaign).where(KpiCampaign.process_instance_id == ctx.instance.id))


def _values(ctx: Context) -> dict[int, float]:
    """The indicator values in the form data (indicator id → value); a bad one refuses the completion."""
    indicators = {catalogue.field_key(code): ident for code, ident in ctx.session.execute(
        select(KpiIndicator.code, KpiIndicator.id).where(KpiIndicator.source.is_(None)))}
    values, errors = {}, {}
    for key, ident in indicators.items():
        raw = ctx.data.get(key)
        if raw is None or raw == "":
            continue
        try:
            values[ident] = parse_value(str(raw))
        except ValueError:
            errors[key] = "неотрицательное число"
    if errors:
        raise InvalidInput(f"indicator values must be non-negative numbers: {', '.join(sorted(errors))}", errors)
    return values


def _store(ctx: Context, campaign: KpiCampaign, agency_id: int | None, values: dict[int, float]) -> None:
    """The values replace what the same agency (or the coordinator) entered before for the half-year."""
    if not values:
        return
    ctx.session.execute(delete(KpiActual).where(
        KpiActual.municipality_id == campaign.municipality_id, KpiActual.half == campaign.half,
        KpiActual.indicator_id.in_(list(values)),
        KpiActual.agency_id.is_(None) if agency_id is None else KpiActual.agency_id == agency_id))
    now = ctx.service.engine.clock.now()
    for ident, value in values.items():
        ctx.session.add(KpiActual(indicator_id=ident, municipality_id=campaign.municipality_id, half=campaign.half,
                                  agency_id=agency_id, value=value, task_id=ctx.task.id, entered_by=ctx.actor,
                                  entered_at=now))


def on_submit(ctx: Context) -> None:
    """An executor's report (or its reworked version): its values for its agency."""
    campaign = _campaign(ctx)
    if campaign is None:
        return
    values = _values(ctx)
    if ctx.task.agency_id is None and values:
        raise InvalidInput("the report is addressed to no agency: the coordinator enters the values in the "
                           "consolidated report", {"agency": "нет органа-исполнителя"})
    _store(ctx, campaign, ctx.task.agency_id, values)


def on_consolidate(ctx: Context) -> None:
    campaign = _campaign(ctx)
    if campaign is None:
        return
    if ctx.data.get("decision") == "return":
        executors = {str(a) for a in ctx.session.scalars(select(Agency.id).where(
            Agency.municipality_id == campaign.municipality_id, Agency.kind.not_in(NOT_EXECUTORS)))}
        errors = {}
        if str(ctx.data.get("return_agency") or "") not in executors:
            errors["return_agency"] = "выберите исполнителя, которому вернуть отчет"
        if not str(ctx.data.get("return_comment") or "").strip():
            errors["return_comment"] = "укажите, что доработать"
        if errors:
            raise InvalidInput("a report returned for rework needs the executor and a comment", errors)
        return
    _store(ctx, campaign, None, _values(ctx))


def on_approve(ctx: Context) -> None:
    if ctx.data.get("approval") == "rework" and not str(ctx.data.get("approval_comment") or "").strip():
        raise InvalidInput("a consolidated report returned for rework needs the remarks",
                           {"approval_comment": "укажите замечания"})


HANDLERS = {"kpi_submit": on_submit, "kpi_rework": on_submit, "kpi_consolidate": on_consolidate,
            "kpi_approve": on_approve}


# -- the task pages ----------------------------------------------------------------------------------------------

def _variables(scope) -> dict[str, Any]:
    try:
        return scope.engine.runtime.instance(scope.task.instance_id).get("variables") or {}
    except NotFound:
        return {}


def consolidate_context(scope, context) -> None:
    """The executors to return a report to, and the executors' sums as the consolidated values' defaults."""
    variables = _variables(scope)
    context.options["executor_options"] = [{"value": str(e["id"]), "label": e["name"]}
                                           for e in variables.get("executors", [])]
    campaign = scope.session.scalar(select(KpiCampaign).where(
        KpiCampaign.process_instance_id == scope.task.instance_id))
    if campaign is None:
        return
    sums: dict[str, float] = {}
    for code, value in scope.session.execute(
            select(KpiIndicator.code, KpiActual.value).join(KpiActual, KpiActual.indicator_id == KpiIndicator.id)
            .where(KpiActual.municipality_id == campaign.municipality_id, KpiActual.half == campaign.half,
                   KpiActual.agency_id.is_not(None), KpiIndicator.unit != "%")):
        key = catalogue.field_key(code)
        sums[key] = sums.get(key, 0.0) + value
    context.defaults.update({k: int(v) if float(v).is_integer() else v for k, v in sums.items()})


def rework_context(scope, context) -> None:
    from ..task_context import Panel

    comment = _variables(scope).get("return_comment")
    if comment:
        panel = Panel("kpi_return", "Замечания координатора")
        panel.row("Что доработать", comment)
        context.panels.append(panel)


def approve_context(scope, context) -> None:
    """The consolidated values beside the plan, for the approver."""
    from ..task_context import Panel
    from .figures import plan_vs_actual

    campaign = scope.session.scalar(select(KpiCampaign).where(
        KpiCampaign.process_instance_id == scope.task.instance_id))
    if campaign is None:
        return
    municipality = scope.session.get(Municipality, campaign.municipality_id)
    rows = plan_vs_actual(scope.session, campaign.municipality_id, Half.parse(campaign.half),
                          ZoneInfo(municipality.timezone))
    panel = Panel("kpi_plan", f"Показатели: план и факт, {Half.parse(campaign.half).label}")
    panel.columns = ["№", "Показатель", "План", "Факт"]
    panel.table = [[r.code, r.name, _num(r.plan), _num(r.actual)] for r in rows]
    context.panels.append(panel)


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return str(int(value)) if float(value).is_integer() else str(value).replace(".", ",")


CONTEXT_BUILDERS = {"kpi_consolidate": consolidate_context, "kpi_rework": rework_context,
                    "kpi_approve": approve_context}
