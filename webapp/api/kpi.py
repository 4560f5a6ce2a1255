"""The KPI plan vs actual over the API: `GET /api/v1/kpi?half=2026-H1&municipality=…`.

The same access rules as the «Показатели» page (`webapp.access.report_scope`): the commission reads its own
municipality; the regional secretary any municipality of the region with a commission, and without `municipality`
the region (the municipalities summed; percentages are not summed); anyone else gets 403, a municipality outside
the user's scope 404. Every read is audited as `kpi_viewed`, as the page's are.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate

from sop.kpi.figures import Half

from ..access import REPORT_ROLES, report_scope
from ..auth import kurator
from ..views.kpi import figures
from .common import MAX_ID, IsoDate, audit, documented_errors, protect, roles_allowed

blp = Blueprint("api_kpi", __name__, url_prefix="/api/v1/kpi", description="KPI plan vs actual")
protect(blp)


def _half(value: str) -> None:
    try:
        Half.parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class KpiQuerySchema(Schema):
    half = fields.String(validate=[validate.Length(max=20), _half], metadata={
        "description": "The half-year, «2026-H1» or «2026-H2»; default: the last half-year that is over"})
    municipality = fields.Integer(validate=validate.Range(min=1, max=MAX_ID), metadata={
        "description": "The municipality's id; default: the user's own (the regional secretary: the region)"})


class MunicipalityRefSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class KpiRowSchema(Schema):
    code = fields.String(required=True, metadata={"description": "The indicator's number, e.g. 1.3"})
    section = fields.String(allow_none=True)
    name = fields.String(required=True)
    unit = fields.String(required=True, metadata={"description": "«единиц» or «%»"})
    aggregation = fields.String(required=True, metadata={"description": "stock, period or cumulative"})
    aggregation_label = fields.String(required=True)
    plan = fields.Float(allow_none=True)
    actual = fields.Float(allow_none=True)
    deviation = fields.Float(allow_none=True, metadata={"description": "actual − plan"})
    percent_of_plan = fields.Float(allow_none=True, metadata={"description": "actual × 100 / plan"})
    met = fields.Boolean(allow_none=True, metadata={
        "description": "Whether the plan is met (actual ≤ plan where lower is better); null without both"})
    lower_is_better = fields.Boolean(required=True, metadata={"description": "The plan is a ceiling"})
    preliminary = fields.Boolean(required=True, metadata={
        "description": "The actual is the executors' sum before the coordinator's consolidated report"})
    source = fields.String(required=True, metadata={"description": "Where the actual comes from"})


class KpiReportSchema(Schema):
    half = fields.String(required=True)
    label = fields.String(required=True, metadata={"description": "e.g. «I полугодие 2026 года»"})
    start = IsoDate(required=True, data_key="from")
    end = IsoDate(required=True, data_key="to")
    region = fields.Boolean(required=True, metadata={"description": "The region: the municipalities summed"})
    scope = fields.String(required=True, metadata={"description": "The municipality's name, or the region"})
    municipality = fields.Nested(MunicipalityRefSchema, allow_none=True)
    municipalities = fields.List(fields.Nested(MunicipalityRefSchema), required=True, metadata={
        "description": "The municipalities counted"})
    rows = fields.List(fields.Nested(KpiRowSchema), required=True)


@blp.route("")
class KpiReport(MethodView):
    @roles_allowed(*REPORT_ROLES)
    @blp.arguments(KpiQuerySchema, location="query")
    @blp.response(200, KpiReportSchema)
    @documented_errors(blp, 401, 403, 404, 422)
    def get(self, query):
        """Plan vs actual of a municipality (or the region) for a half-year, indicator by indicator."""
        engine = kurator()
        tz = ZoneInfo(g.user.timezone)
        half = Half.parse(query["half"]) if query.get("half") else \
            Half.of(engine.clock.now().astimezone(tz).date()).previous()
        with engine.db.session() as db:
            scope = report_scope(db, g.user, query.get("municipality"))
            rows = figures(db, scope, half, tz)
        names = dict(scope.options)
        audit("kpi_viewed", "kpi", scope.key, municipality=scope.municipality_id, municipalities=scope.ids,
              half=half.key, api=True)
        return {"half": half.key, "label": half.label, "start": half.start, "end": half.end, "region": scope.region,
                "scope": scope.name,
                "municipality": None if scope.region else {"id": scope.municipality_id, "name": scope.name},
                "municipalities": [{"id": m, "name": names[m]} for m in scope.ids],
                "rows": [{"code": r.code, "section": r.section, "name": r.name, "unit": r.unit,
                          "aggregation": r.aggregation, "aggregation_label": r.aggregation_label, "plan": r.plan,
                          "actual": r.actual, "deviation": r.deviation, "percent_of_plan": r.percent_of_plan,
                          "met": r.met, "lower_is_better": r.lower_is_better, "preliminary": r.preliminary,
                          "source": r.source} for r in rows]}
