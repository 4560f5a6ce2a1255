"""Records of the KPI plan (seed 003): the indicators, the planned value of each per municipality and half-year,
the values entered in the half-year campaign (per executing agency and consolidated) and the campaigns started."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime

# how the figure of a half-year is formed (see sop/kpi/figures.py)
STOCK, CUMULATIVE, PERIOD = "stock", "cumulative", "period"
AGGREGATIONS = {STOCK: "на дату (конец полугодия)", CUMULATIVE: "с нарастающим итогом",
                PERIOD: "за полугодие"}


class KpiIndicator(Base):
    """An indicator of the programme: its number and name as in the programme's table, how a half-year's figure is
    formed (`aggregation`), and where the actual comes from: `source` names a figure of the case records, none means
    it is entered in the campaign. A cumulative indicator counts from `counted_from` (the programme's start)."""

    __tablename__ = "kpi_indicator"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(Text)
    section: Mapped[str | None] = mapped_column(String(300))
    unit: Mapped[str] = mapped_column(String(30), default="единиц")
    aggregation: Mapped[str] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(String(50))
    counted_from: Mapped[date] = mapped_column(Date)
    lower_is_better: Mapped[bool] = mapped_column(Boolean, default=False)  # the plan is a ceiling
    position: Mapped[int] = mapped_column(Integer, default=0)


class KpiPlan(Base):
    """The planned value of an indicator for one municipality and half-year («2026-H1»)."""

    __tablename__ = "kpi_plan"
    __table_args__ = (UniqueConstraint("indicator_id", "municipality_id", "half"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    indicator_id: Mapped[int] = mapped_column(ForeignKey("kpi_indicator.id", ondelete="CASCADE"))
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    half: Mapped[str] = mapped_column(String(7))
    value: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class KpiActual(Base):
    """A value entered in the campaign: an executing agency's (`agency_id`) or the coordinator's consolidated one
    (`agency_id` none). For a stock indicator it is the figure at the end of the half-year; otherwise what was done
    in the half-year (the cumulative figure is summed over the half-years)."""

    __tablename__ = "kpi_actual"
    __table_args__ = (Index("ix_kpi_actual_lookup", "municipality_id", "half", "indicator_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    indicator_id: Mapped[int] = mapped_column(ForeignKey("kpi_indicator.id", ondelete="CASCADE"))
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    half: Mapped[str] = mapped_column(String(7))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    value: Mapped[float] = mapped_column(Float)
    task_id: Mapped[str | None] = mapped_column(String(36))
    entered_by: Mapped[str | None] = mapped_column(String(100))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KpiCampaign(Base):
    """The half-year KPI campaign of a municipality (one per half-year)."""

    __tablename__ = "kpi_campaign"
    __table_args__ = (UniqueConstraint("municipality_id", "half"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    half: Mapped[str] = mapped_column(String(7))
    process_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instance.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_by: Mapped[str | None] = mapped_column(String(100))
