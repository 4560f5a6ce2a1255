"""Records of the commission's collegial work: the commission with its members and meeting schedule, its meetings,
and the items of each meeting's agenda with their decisions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime
from engine.models import Agency, JSONType, Municipality

POSITIONS = {"chair": "председатель комиссии", "deputy_chair": "заместитель председателя комиссии",
             "secretary": "ответственный секретарь комиссии", "member": "член комиссии"}
# what became of a question on the agenda (`MeetingItem.status`)
ITEM_STATUSES = {"planned": "к рассмотрению", "decided": "решение принято", "postponed": "перенесен"}


class Commission(Base):
    """The municipality's commission (КДНиЗП): full name, where it meets and its regular schedule.

    The schedule is «the n-th <weekday> of the month» for each n in `schedule_weeks` (-1 is the last one); a day off
    moves the meeting to the next working day of the production calendar.
    """

    __tablename__ = "sop_commission"
    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), unique=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    full_name: Mapped[str] = mapped_column(String(500))
    place: Mapped[str | None] = mapped_column(String(500))
    schedule_weekday: Mapped[int | None] = mapped_column(Integer)  # 0 = Monday … 6 = Sunday
    schedule_weeks: Mapped[list[int] | None] = mapped_column(JSONType)
    schedule_time: Mapped[str | None] = mapped_column(String(5))  # HH:MM, local time of the municipality
    municipality: Mapped[Municipality] = relationship(lazy="joined")
    agency: Mapped[Agency | None] = relationship(lazy="joined")
    members: Mapped[list[CommissionMember]] = relationship(
        lazy="selectin", order_by="CommissionMember.id", back_populates="commission")

    @property
    def active_members(self) -> list[CommissionMember]:
        return [m for m in self.members if m.active]

    def member_in(self, position: str) -> CommissionMember | None:
        return next((m for m in self.active_members if m.position == position), None)


class CommissionMember(Base):
    """A member of the commission: position, the agency represented, and the user account when there is one."""

    __tablename__ = "sop_commission_member"
    id: Mapped[int] = mapped_column(primary_key=True)
    commission_id: Mapped[int] = mapped_column(ForeignKey("sop_commission.id", ondelete="CASCADE"), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    position: Mapped[str] = mapped_column(String(20), default="member")  # chair | deputy_chair | secretary | member
    job_title: Mapped[str | None] = mapped_column(String(300))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    username: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    commission: Mapped[Commission] = relationship(back_populates="members")
    agency: Mapped[Agency | None] = relationship(lazy="joined")

    @property
    def position_label(self) -> str:
        return POSITIONS.get(self.position, self.position)


class Meeting(Base):
    """A meeting (заседание) of the commission. Its number is the next of the commission's year when it opens."""

    __tablename__ = "sop_meeting"
    __table_args__ = (UniqueConstraint("commission_id", "year", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    commission_id: Mapped[int] = mapped_column(ForeignKey("sop_commission.id", ondelete="CASCADE"), index=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    held_on: Mapped[date] = mapped_column(Date, index=True)
    starts_at: Mapped[str | None] = mapped_column(String(5))
    place: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20), default="regular")  # regular | extraordinary
    status: Mapped[str] = mapped_column(String(20), default="planned")  # planned | open | closed | cancelled
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int | None] = mapped_column(Integer)
    present_member_ids: Mapped[list[int] | None] = mapped_column(JSONType)
    invited: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)  # [{name, position}]
    minutes_document_id: Mapped[int | None] = mapped_column(ForeignKey("sop_document.id"))
    agenda_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    commission: Mapped[Commission] = relationship(lazy="joined")
    items: Mapped[list[MeetingItem]] = relationship(lazy="selectin", order_by="MeetingItem.position",
                                                    back_populates="meeting", cascade="all, delete-orphan")


class MeetingItem(Base):
    """A question of a meeting's agenda: a case's open collegial decision (its task) or a free item.

    `status`: planned → decided, or postponed (to the next meeting, with the reason). A decided item keeps the
    decision data, the votes and the resolution it produced.
    """

    __tablename__ = "sop_meeting_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("sop_meeting.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # decision | free
    title: Mapped[str] = mapped_column(String(500))
    task_id: Mapped[str | None] = mapped_column(String(36), index=True)
    form_key: Mapped[str | None] = mapped_column(String(100))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"), index=True)
    speaker: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="planned")  # planned | decided | postponed
    postponed_reason: Mapped[str | None] = mapped_column(Text)
    decision_text: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    votes_for: Mapped[int | None] = mapped_column(Integer)
    votes_against: Mapped[int | None] = mapped_column(Integer)
    votes_abstained: Mapped[int | None] = mapped_column(Integer)
    family_appeared: Mapped[bool | None] = mapped_column(Boolean)
    resolution_number: Mapped[str | None] = mapped_column(String(40))
    resolution_id: Mapped[int | None] = mapped_column(ForeignKey("sop_resolution.id"))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    meeting: Mapped[Meeting] = relationship(back_populates="items")


class Notice(Base):
    """A notice to an agency: its case's question is on a meeting's agenda («ваш вопрос на заседании …»)."""

    __tablename__ = "sop_notice"
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("sop_case.id", ondelete="CASCADE"))
    meeting_id: Mapped[int] = mapped_column(ForeignKey("sop_meeting.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
