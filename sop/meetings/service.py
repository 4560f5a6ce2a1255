"""MeetingService: the commission decides collegially at its meetings (120-ФЗ art. 11; 004 §5.2, §5.3, §6.1).

- The commission's schedule gives the meeting days; `next_meeting(start)` (a function of the diagrams) is the first
  meeting after `start`: a planned or extraordinary meeting on record, or the next scheduled day. Without a schedule
  and without a planned meeting it falls back to 15 calendar days after `start`, as before meetings existed.
- The agenda builds itself from the municipality's open collegial decisions due by the meeting day, and from the
  emergency reports the guardianship sent since the previous meeting; the secretary reorders it, adds free items and
  postpones items to the next meeting with a reason.
- At the meeting: attendance and the quorum (at least half of the members); each decision with its votes completes
  the case's task in the same transaction. Resolution numbers are «<meeting number>/<item position>», the meeting
  number being the next of the commission's year when the meeting opens.
- Closing the meeting stores its minutes (протокол) as a document; every resolution of the meeting links to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.db import CURRENT_SESSION
from engine.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from engine.models import Agency, HumanTask, Municipality, ProcessInstance, User

from .. import casefile
from ..documents import labels
from ..documents.names import inflect_name
from ..models import Case, CaseAgency, Document, InstanceScope, Resolution
from ..task_context import form_answers
from .models import POSITIONS, Commission, CommissionMember, Meeting, MeetingItem, Notice
from .schedule import check_schedule, meeting_days

if TYPE_CHECKING:
    from ..service import SopService

SECRETARY_ROLE = "commission_secretary"
COMMISSION_ROLES = ("commission_secretary", "commission", "manager")
# the collegial decisions a meeting takes: form key -> the agenda's wording
DECISIONS = {
    "sop_recognition": "О признании семьи (несовершеннолетнего) находящейся в социально опасном положении",
    "sop_programme_approval": "Об утверждении индивидуальной программы",
    "sop_review": "О результатах контроля исполнения индивидуальной программы",
    "sop_closure_decision": "О снятии с учета",
    "sop_closure_proposal": "О предложении снять с учета в связи с достижением 18 лет",
}
EMERGENCY_REPORT = "em_inform_commission"
# the form fields a meeting fills itself (date, number, votes): not asked per item
MEETING_FIELDS = {
    "meeting_date": "date", "approval_date": "date", "closure_date": "date", "proposal_meeting_date": "date",
    "resolution_number": "number", "protocol_number": "protocol",
    "present": "present", "votes_for": "for", "votes_against": "against",
}


@dataclass
class Quorum:
    members: int
    present: int

    @property
    def reached(self) -> bool:
        return self.members > 0 and self.present * 2 >= self.members

    @property
    def needed(self) -> int:
        return (self.members + 1) // 2


class MeetingService:
    """The commission's meetings; installed as `SopService.meetings`."""

    def __init__(self, sop: SopService):
        self.sop = sop
        self.engine = sop.engine
        self.engine.add_functions(self._functions)

    # -- the commission ------------------------------------------------------------------------------------

    def set_up(self, municipality_id: int, full_name: str, place: str | None = None, weekday: int | None = None,
               weeks: list[int] | None = None, starts_at: str | None = None, by: str | None = None) -> int:
        """Create or change the municipality's commission and its schedule (None, None: no schedule)."""
        if not (full_name or "").strip():
            raise InvalidInput("full_name: the commission's full name is required",
                               {"full_name": "укажите полное наименование комиссии"})
        schedule = check_schedule(weekday, weeks, starts_at) if weekday is not None or weeks else (None, None, None)
        with self.engine.db.session() as session:
            if session.get(Municipality, municipality_id) is None:
                raise NotFound(f"No municipality {municipality_id}")
            _require_commission_editor(session, by, municipality_id)
            commission = _commission(session, municipality_id, required=False)
            if commission is None:
                agency_id = session.scalar(select(Agency.id).where(Agency.municipality_id == municipality_id,
                                                                   Agency.kind == "commission").limit(1))
                commission = Commission(municipality_id=municipality_id, agency_id=agency_id, full_name="")
                session.add(commission)
            commission.full_name, commission.place = full_name.strip(), (place or "").strip() or None
            commission.schedule_weekday, commission.schedule_weeks, commission.schedule_time = schedule
            session.flush()
            self._audit(by, "commission_set_up", "commission", commission.id, session=session)
            return commission.id

    def add_member(self, municipality_id: int, full_name: str, position: str = "member",
                   agency_id: int | None = None, username: str | None = None, job_title: str | None = None,
                   by: str | None = None) -> int:
        if not (full_name or "").strip():
            raise InvalidInput("full_name is required", {"full_name": "укажите фамилию, имя, отчество"})
        if position not in POSITIONS:
            raise InvalidInput(f"position: one of {', '.join(POSITIONS)}", {"position": "неизвестная должность"})
        with self.engine.db.session() as session:
            _require_commission_editor(session, by, municipality_id)
            commission = _commission(session, municipality_id)
            if position in ("chair", "secretary") and commission.member_in(position) is not None:
                raise InvalidInput(f"The commission already has a {position}: deactivate them first",
                                   {"position": f"в комиссии уже есть {POSITIONS[position]}"})
            if agency_id is not None and session.get(Agency, agency_id) is None:
                raise InvalidInput(f"agency_id: no agency {agency_id}", {"agency_id": "нет такого органа"})
            member = CommissionMember(commission_id=commission.id, full_name=full_name.strip(), position=position,
                                      agency_id=agency_id, username=username or None, job_title=job_title,
                                      active=True)
            session.add(member)
            session.flush()
            self._audit(by, "commission_member_added", "commission", commission.id,
                                     {"member_id": member.id}, session=session)
            return member.id

    def set_member_active(self, member_id: int, active: bool, by: str | None = None) -> None:
        with self.engine.db.session() as session:
            member = session.get(CommissionMember, member_id)
            if member is None:
                raise NotFound(f"No commission member {member_id}")
            _require_commission_editor(session, by, member.commission.municipality_id)
            member.active = bool(active)
            self._audit(by, "commission_member_active" if active else "commission_member_inactive",
                                     "commission", member.commission_id, {"member_id": member_id},
                                     session=session)

    def commission(self, municipality_id: int) -> dict[str, Any] | None:
        with self.engine.db.session() as session:
            commission = _commission(session, municipality_id, required=False)
            return _commission_dict(commission) if commission is not None else None

    # -- dates -----------------------------------------------------------------------------------------------

    def next_meeting_date(self, municipality_id: int | None, after: date,
                          session: Session | None = None) -> date | None:
        """The first meeting day after `after`: a planned meeting on record or the next scheduled day (None
        when the commission has neither). In the caller's transaction when `session` is given."""
        if municipality_id is None:
            return None
        with self.engine.db.session(join=session) as session:
            commission = _commission(session, municipality_id, required=False)
            if commission is None:
                return None
            return self._next_date(session, commission, after)

    def _next_date(self, session: Session, commission: Commission, after: date) -> date | None:
        planned = session.scalar(select(func.min(Meeting.held_on)).where(
            Meeting.commission_id == commission.id, Meeting.held_on > after,
            Meeting.status.in_(("planned", "open"))))
        scheduled = None
        if commission.schedule_weekday is not None and commission.schedule_weeks:
            # a scheduled day whose meeting was held or cancelled is no longer ahead
            cancelled = set(session.scalars(select(Meeting.held_on).where(
                Meeting.commission_id == commission.id, Meeting.held_on > after,
                Meeting.status.in_(("closed", "cancelled")))))
            calendar = self.engine.calendar.calendar
            scheduled = next((held for _, held in meeting_days(calendar, commission.schedule_weekday,
                                                               commission.schedule_weeks, after)
                              if held not in cancelled), None)
        candidates = [d for d in (planned, scheduled) if d is not None]
        return min(candidates) if candidates else None

    def _functions(self, variables: Mapping[str, Any], tz: str,
                   now: Callable[[], datetime] | None) -> dict[str, Callable[..., Any]]:
        """`next_meeting(start=None, municipality=None)` for diagram expressions, bound to the instance."""
        default_municipality = variables.get("municipality")
        zone = ZoneInfo(tz)

        def next_meeting(start: Any = None, municipality: Any = None) -> datetime:
            """End of the day of the commission's first meeting after `start` (default: today); the
            municipality defaults to the instance's `municipality`. Without a schedule: 15 calendar days."""
            current = (now or self.engine.clock.now)()
            functions = self.engine.calendar.functions(tz)
            begin = _start_day(start, current, zone)
            name = municipality if municipality is not None else default_municipality
            day = self._next_for_name(name, begin)
            if day is None:
                return functions["next_meeting"](begin)
            return datetime.combine(day, time(23, 59, 59), tzinfo=zone)

        return {"next_meeting": next_meeting}

    def _next_for_name(self, municipality: Any, after: date) -> date | None:
        if not municipality:
            return None
        # in the transaction of the change whose diagram asks, if any (no transaction of its own, and it reads
        # what that change wrote)
        with self.engine.db.session(join=CURRENT_SESSION.get()) as session, session.no_autoflush:
            commission = session.scalar(select(Commission)
                                        .join(Municipality, Municipality.id == Commission.municipality_id)
                                        .where(Municipality.name == str(municipality)))
            return self._next_date(session, commission, after) if commission is not None else None

    # -- meetings --------------------------------------------------------------------------------------------

    def upcoming(self, municipality_id: int, by: str) -> int:
        """The next meeting from today on (planned on demand from the schedule); its id."""
        with self.engine.db.session() as session:
            _require_secretary(session, by, municipality_id, "plans meetings")
            commission = _commission(session, municipality_id)
            today = self._today(session, municipality_id)
            meeting = session.scalar(select(Meeting).where(
                Meeting.commission_id == commission.id, Meeting.held_on >= today,
                Meeting.status.in_(("planned", "open"))).order_by(Meeting.held_on, Meeting.id).limit(1))
            if meeting is not None:
                return meeting.id
            day = self._next_date(session, commission, date.fromordinal(today.toordinal() - 1))
            if day is None:
                raise InvalidInput("The commission has no meeting schedule: set one or plan an extraordinary "
                                   "meeting", {"schedule": "график заседаний не установлен"})
            return self._create(session, commission, day, "regular", commission.schedule_time, commission.place,
                                by).id

    def create(self, municipality_id: int, held_on: Any, kind: str = "extraordinary", starts_at: str | None = None,
               place: str | None = None, by: str | None = None) -> int:
        """Plan a meeting on a given day (an extraordinary one, or a regular one moved by hand)."""
        day = _date(held_on, "held_on")
        if kind not in ("regular", "extraordinary"):
            raise InvalidInput("kind: regular or extraordinary", {"kind": "очередное или внеочередное"})
        if starts_at:
            check_schedule(0, [1], starts_at)
        with self.engine.db.session() as session:
            _require_secretary(session, by, municipality_id, "plans meetings")
            commission = _commission(session, municipality_id)
            if day < self._today(session, municipality_id):
                raise InvalidInput("held_on: a meeting is planned for today or later",
                                   {"held_on": "дата заседания не может быть в прошлом"})
            clash = session.scalar(select(Meeting.id).where(Meeting.commission_id == commission.id,
                                                            Meeting.held_on == day,
                                                            Meeting.status != "cancelled"))
            if clash is not None:
                raise InvalidInput(f"held_on: meeting {clash} is already planned on {day.isoformat()}",
                                   {"held_on": "на эту дату заседание уже назначено"})
            return self._create(session, commission, day, kind, starts_at or commission.schedule_time,
                                place or commission.place, by).id

    def _create(self, session: Session, commission: Commission, day: date, kind: str, starts_at: str | None,
                place: str | None, by: str | None) -> Meeting:
        meeting = Meeting(commission_id=commission.id, municipality_id=commission.municipality_id, held_on=day,
                          starts_at=starts_at, place=place, kind=kind, status="planned", year=day.year,
                          created_by=by, created_at=self.engine.clock.now())
        session.add(meeting)
        session.flush()
        self._audit(by, "meeting_planned", "meeting", meeting.id, {"held_on": day.isoformat(),
                                                                                "kind": kind}, session=session)
        return meeting

    def cancel(self, meeting_id: int, reason: str, by: str) -> None:
        if not (reason or "").strip():
            raise InvalidInput("reason is required", {"reason": "укажите причину отмены"})
        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, by, write=True)
            if meeting.status != "planned":
                raise Conflict("Only a planned meeting can be cancelled",
                               "Отменить можно только запланированное заседание")
            meeting.status = "cancelled"
            for item in meeting.items:
                if item.status == "planned":
                    item.status, item.postponed_reason = "postponed", f"Заседание отменено: {reason.strip()}"
            self._audit(by, "meeting_cancelled", "meeting", meeting_id, {"reason": reason},
                                     session=session)

    def meetings(self, municipality_id: int, year: int | None = None) -> list[dict[str, Any]]:
        with self.engine.db.session() as session:
            query = select(Meeting).where(Meeting.municipality_id == municipality_id)
            if year is not None:
                query = query.where(Meeting.year == year)
            meetings = session.scalars(query.order_by(Meeting.held_on.desc(), Meeting.id.desc())).all()
            return [_meeting_summary(m) for m in meetings]

    # -- the agenda ------------------------------------------------------------------------------------------

    def refresh_agenda(self, meeting_id: int, by: str) -> None:
        """Put on a planned meeting's agenda every open collegial decision of the municipality due by the
        meeting day (and not on another planned meeting's agenda), and every emergency report sent since the
        previous meeting; drop the decision items whose task was done without the meeting."""
        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, by, write=True)
            if meeting.status != "planned":
                return
            self._refresh(session, meeting)

    def _refresh(self, session: Session, meeting: Meeting) -> None:
        zone = ZoneInfo(self._timezone(session, meeting.municipality_id))
        until = datetime.combine(meeting.held_on, time(23, 59, 59), tzinfo=zone)
        for item in list(meeting.items):
            if item.kind == "decision" and item.status == "planned":
                status = session.scalar(select(HumanTask.status).where(HumanTask.id == item.task_id))
                if status != "open":
                    meeting.items.remove(item)
        _renumber(meeting)  # the page, the printed agenda and the resolutions' numbers count alike: 1, 2, 3…
        taken = set(session.scalars(select(MeetingItem.task_id).join(Meeting).where(
            MeetingItem.task_id.is_not(None), MeetingItem.status.in_(("planned", "decided")),
            Meeting.status.in_(("planned", "open", "closed")))))
        due = session.execute(
            select(HumanTask.id, HumanTask.form_key, HumanTask.name, InstanceScope.case_id)
            .join(InstanceScope, InstanceScope.instance_id == HumanTask.instance_id)
            .where(HumanTask.status == "open", HumanTask.form_key.in_(tuple(DECISIONS)),
                   HumanTask.municipality_id == meeting.municipality_id, HumanTask.created_at <= until,
                   (HumanTask.due.is_(None)) | (HumanTask.due <= until))
            .order_by(HumanTask.due, HumanTask.created_at, InstanceScope.case_id, HumanTask.id)).all()
        position = max((i.position for i in meeting.items), default=0)
        for row in due:
            if row.id in taken:
                continue
            position += 1
            meeting.items.append(MeetingItem(position=position, kind="decision", task_id=row.id,
                                             form_key=row.form_key, case_id=row.case_id,
                                             title=self._title(session, row.form_key, row.case_id),
                                             speaker=self._speaker(session, row.case_id), status="planned"))
        previous = session.scalar(select(func.max(Meeting.held_on)).where(
            Meeting.commission_id == meeting.commission_id, Meeting.status == "closed",
            Meeting.held_on < meeting.held_on))
        reports = select(HumanTask.id, InstanceScope.case_id).join(
            InstanceScope, InstanceScope.instance_id == HumanTask.instance_id).where(
            HumanTask.status == "completed", HumanTask.form_key == EMERGENCY_REPORT,
            HumanTask.municipality_id == meeting.municipality_id, HumanTask.completed_at <= until)
        if previous is not None:
            reports = reports.where(HumanTask.completed_at > datetime.combine(previous, time(23, 59, 59),
                                                                              tzinfo=zone))
        for row in session.execute(reports.order_by(HumanTask.completed_at)).all():
            if row.id in taken:
                continue
            position += 1
            family = self._family(session, row.case_id)
            meeting.items.append(MeetingItem(
                position=position, kind="report", task_id=row.id, form_key=EMERGENCY_REPORT, case_id=row.case_id,
                title="Информация органа опеки и попечительства о мерах по защите ребенка при непосредственной "
                      f"угрозе жизни или здоровью{f' ({_family_label(family)})' if family else ''}",
                speaker="Орган опеки и попечительства", status="planned"))
        session.flush()

    def add_item(self, meeting_id: int, title: str, speaker: str | None, by: str) -> int:
        """A free item (administrative cases, prevention questions…), decided by its text and votes."""
        if not (title or "").strip():
            raise InvalidInput("title is required", {"title": "сформулируйте вопрос повестки"})
        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, by, write=True)
            _require_status(meeting, "planned", "open")
            position = max((i.position for i in meeting.items), default=0) + 1
            item = MeetingItem(meeting_id=meeting.id, position=position, kind="free", title=title.strip()[:500],
                               speaker=(speaker or "").strip()[:300] or None, status="planned")
            session.add(item)
            session.flush()
            self._audit(by, "meeting_item_added", "meeting", meeting_id, {"item_id": item.id},
                                     session=session)
            return item.id

    def remove_item(self, item_id: int, by: str) -> None:
        """Remove a free item that was not decided (decision items are postponed instead)."""
        with self.engine.db.session() as session:
            item, meeting = self._item(session, item_id, by)
            if item.kind != "free" or item.status != "planned":
                raise Conflict("Only a free item that was not decided can be removed; postpone a case's question",
                               "Удалить можно только добавленный вручную вопрос без решения; вопрос по делу "
                               "можно перенести")
            meeting.items.remove(item)
            _renumber(meeting)
            self._audit(by, "meeting_item_removed", "meeting", meeting.id, {"item_id": item_id},
                                     session=session)

    def move_item(self, item_id: int, offset: int, by: str) -> None:
        """Move an item up (-1) or down (+1) on the agenda of a planned meeting."""
        with self.engine.db.session() as session:
            item, meeting = self._item(session, item_id, by)
            _require_status(meeting, "planned")
            items = sorted(meeting.items, key=lambda i: i.position)
            index = items.index(item)
            target = index + (1 if offset > 0 else -1)
            if 0 <= target < len(items):
                items[index], items[target] = items[target], items[index]
                for number, each in enumerate(items, start=1):
                    each.position = number
            self._audit(by, "meeting_item_moved", "meeting", meeting.id,
                                     {"item_id": item_id, "offset": offset}, session=session)

    def postpone(self, item_id: int, reason: str, by: str) -> None:
        """Move a question to the next meeting: the case's task stays open and goes on the next agenda."""
        if not (reason or "").strip():
            raise InvalidInput("reason is required", {"reason": "укажите причину переноса"})
        with self.engine.db.session() as session:
            item, meeting = self._item(session, item_id, by)
            _require_status(meeting, "planned", "open")
            if item.status != "planned":
                raise Conflict("The question was already decided or postponed",
                               "По вопросу уже принято решение или он перенесен")
            item.status, item.postponed_reason = "postponed", reason.strip()
            item.decided_by, item.decided_at = by, self.engine.clock.now()
            self._audit(by, "meeting_item_postponed", "meeting", meeting.id,
                                     {"item_id": item_id, "reason": reason.strip()}, session=session)

    def notify(self, meeting_id: int, by: str) -> int:
        """Tell the working-group agencies of the agenda's cases «ваш вопрос на заседании <date>»; returns the
        number of notices written (each agency once per case and meeting)."""
        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, by, write=True)
            _require_status(meeting, "planned")
            self._refresh(session, meeting)
            written = 0
            for item, agency_id in _not_notified(session, meeting):
                session.add(Notice(agency_id=agency_id, case_id=item.case_id, meeting_id=meeting.id,
                                   text=f"Ваш вопрос на заседании комиссии {meeting.held_on:%d.%m.%Y}"
                                        f"{f' в {meeting.starts_at}' if meeting.starts_at else ''}: {item.title}",
                                   created_at=self.engine.clock.now()))
                written += 1
            meeting.agenda_notified_at = self.engine.clock.now()
            self._audit(by, "meeting_agencies_notified", "meeting", meeting_id, {"notices": written},
                                     session=session)
            return written

    def notices(self, agency_id: int | None, limit: int = 20) -> list[dict[str, Any]]:
        """The agency's notices of upcoming meetings (at most `limit`), by meeting, the soonest first: each
        meeting's `held_on`, `starts_at` and `place`, and its `notices`. Besides the text it was sent with, a notice
        gives `subjects`: the case's questions on the agenda as it stands now (`title`, `status`), none when they
        left the agenda."""
        if agency_id is None:
            return []
        with self.engine.db.session() as session:
            rows = session.execute(select(Notice, Meeting).join(Meeting, Meeting.id == Notice.meeting_id)
                                   .where(Notice.agency_id == agency_id, Meeting.status.in_(("planned", "open")))
                                   .order_by(Meeting.held_on, Meeting.id, Notice.id).limit(limit)).all()
            meetings: dict[int, dict[str, Any]] = {}
            for notice, meeting in rows:  # the meetings' items come with them (selectin): no query per notice
                held = meetings.setdefault(meeting.id, {"meeting_id": meeting.id, "held_on": meeting.held_on,
                                                        "starts_at": meeting.starts_at, "place": meeting.place,
                                                        "notices": []})
                held["notices"].append({
                    "id": notice.id, "text": notice.text, "case_id": notice.case_id,
                    "subjects": [{"title": item.title, "status": item.status} for item in meeting.items
                                 if notice.case_id is not None and item.case_id == notice.case_id]})
            return list(meetings.values())

    # -- at the meeting ------------------------------------------------------------------------------------

    def set_attendance(self, meeting_id: int, present_member_ids: list[int], invited: list[dict[str, Any]] | None,
                       by: str) -> Quorum:
        """Mark who is present and who was invited; opens the meeting (numbering it) on its day or later."""
        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, by, write=True)
            _require_status(meeting, "planned", "open")
            if meeting.held_on > self._today(session, meeting.municipality_id):
                raise Conflict(f"The meeting is on {meeting.held_on:%d.%m.%Y}: attendance is marked on the day",
                               f"Заседание назначено на {meeting.held_on:%d.%m.%Y}: присутствие отмечается в день "
                               "заседания")
            members = {m.id for m in meeting.commission.active_members}
            wrong = [m for m in present_member_ids if m not in members]
            if wrong:
                raise InvalidInput(f"present: {wrong} are not members of the commission",
                                   {"present": "в списке есть не члены комиссии"})
            guests = []
            for guest in invited or []:
                name = str((guest or {}).get("name") or "").strip()
                if name:
                    guests.append({"name": name[:200], "position": str(guest.get("position") or "").strip()[:300]})
            meeting.present_member_ids = sorted(set(present_member_ids))
            meeting.invited = guests
            if meeting.status == "planned":
                self._refresh(session, meeting)
                meeting.status = "open"
                meeting.number = (session.scalar(select(func.max(Meeting.number)).where(
                    Meeting.commission_id == meeting.commission_id, Meeting.year == meeting.year)) or 0) + 1
            quorum = Quorum(len(members), len(meeting.present_member_ids))
            self._audit(by, "meeting_attendance", "meeting", meeting_id,
                                     {"present": meeting.present_member_ids, "invited": len(guests),
                                      "quorum": quorum.reached}, session=session)
            return quorum

    def decide(self, item_id: int, by: str, data: dict[str, Any] | None = None, votes_for: Any = None,
               votes_against: Any = None, votes_abstained: Any = None, family_appeared: Any = None,
               decision_text: str | None = None, casting_vote: Any = False, dissent: str | None = None
               ) -> dict[str, Any]:
        """Record the commission's decision on an item with its votes. For a case's question, the case's task is
        completed with the decision and the meeting's data in the same transaction; nothing is saved if the
        quorum is missing, the votes do not add up, or the form has errors.

        The decision needs a majority of the members present; when the votes «за» and «против» are equal, the
        presiding member's vote decides (`casting_vote`: they voted «за»). `dissent`: a member's dissenting
        opinion (особое мнение), attached to the minutes."""
        votes = {"for": _count(votes_for, "votes_for"), "against": _count(votes_against, "votes_against"),
                 "abstained": _count(votes_abstained, "votes_abstained")}
        with self.engine.db.session() as session:
            item, meeting = self._item(session, item_id, by)
            if meeting.status != "planned":
                _require_status(meeting, "open")
            else:
                raise Conflict("Mark the attendance first: decisions are taken at an open meeting",
                               "Решения принимаются на открытом заседании: сначала отметьте присутствующих")
            if item.status != "planned":
                raise Conflict(f"Question {item.position} was already {item.status}",
                               f"По вопросу {item.position} уже "
                               f"{'принято решение' if item.status == 'decided' else 'принято решение о переносе'}")
            present = len(meeting.present_member_ids or [])
            quorum = Quorum(len(meeting.commission.active_members), present)
            if not quorum.reached:
                raise InvalidInput(f"No quorum: {present} of {quorum.members} members present, {quorum.needed} "
                                   f"needed; decisions cannot be taken",
                                   {"quorum": f"нет кворума: присутствует {present} из {quorum.members}, "
                                              f"нужно не менее {quorum.needed}"})
            if sum(votes.values()) > present:
                raise InvalidInput(f"votes: {sum(votes.values())} votes but {present} members present",
                                   {"votes_for": "голосов больше, чем присутствующих членов комиссии"})
            tie = votes["for"] == votes["against"] > 0
            casting = bool(casting_vote) and tie
            if votes["for"] * 2 <= present and not casting:
                if tie:
                    raise InvalidInput(f"votes: a tie ({votes['for']} to {votes['against']}); the presiding "
                                       "member's vote decides",
                                       {"votes_for": "голоса разделились поровну: решающим является голос "
                                                     "председательствующего; отметьте, если он голосовал «за», "
                                                     "иначе решение не принято"})
                raise InvalidInput(f"votes: the decision needs a majority of the {present} members present "
                                   f"({votes['for']} for)",
                                   {"votes_for": "решение принимается большинством голосов присутствующих; "
                                                 "если предложение не набрало большинства, запишите другое "
                                                 "решение или перенесите вопрос"})
            number = f"{meeting.number}/{item.position}"
            officials = self._officials(meeting)
            item.votes_for, item.votes_against, item.votes_abstained = votes["for"], votes["against"], \
                votes["abstained"]
            item.family_appeared = None if family_appeared is None else bool(family_appeared)
            item.resolution_number = number
            item.decided_by, item.decided_at = by, self.engine.clock.now()
            if item.kind == "decision":
                completion = {**(data or {}), **self._meeting_data(meeting, number, present, votes, officials,
                                                                     item.form_key)}
                if item.form_key == "sop_review" and decision_text:
                    completion.setdefault("summary", decision_text)
                self.engine.tasks.complete(item.task_id, by, completion, session=session, authorised=True)
                item.data = completion
                item.decision_text = (decision_text or "").strip() or _decision_words(session, item.form_key,
                                                                                      completion)
                item.resolution_id = session.scalar(select(Resolution.id).where(
                    Resolution.meeting_id == meeting.id, Resolution.case_id == item.case_id)
                    .order_by(Resolution.id.desc()).limit(1))
            else:
                if not (decision_text or "").strip():
                    raise InvalidInput("decision_text is required", {"decision_text": "запишите решение"})
                item.decision_text = decision_text.strip()
                item.data = {"resolution_number": number, **{f"votes_{k}": v for k, v in votes.items()}}
            dissent = (dissent or "").strip()
            if casting or dissent:
                item.data = {**(item.data or {}), **({"casting_vote": True} if casting else {}),
                             **({"dissent": dissent[:5000]} if dissent else {})}
            item.status = "decided"
            self._audit(by, "meeting_item_decided", "meeting", meeting.id,
                                     {"item_id": item_id, "resolution_number": number, "case_id": item.case_id},
                                     session=session)
            return {"item_id": item.id, "resolution_number": number, "resolution_id": item.resolution_id}

    def close(self, meeting_id: int, by: str) -> int:
        """Close the meeting: every question decided or postponed; the minutes are rendered and stored."""
        from .documents import render_minutes

        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, by, write=True)
            _require_status(meeting, "open")
            open_items = [i.position for i in meeting.items if i.status == "planned"]
            if open_items:
                raise Conflict(f"Questions {', '.join(map(str, open_items))} are neither decided nor postponed",
                               f"По вопросам {', '.join(map(str, open_items))} нет ни решения, ни переноса")
            pdf = render_minutes(self._minutes_context(session, meeting))
            document = Document(case_id=None, agency_id=meeting.commission.agency_id, kind="meeting_minutes",
                                title=f"Протокол заседания комиссии № {meeting.number} от "
                                      f"{meeting.held_on:%d.%m.%Y}",
                                filename=f"protocol-{meeting.year}-{meeting.number}.pdf", content=pdf,
                                size=len(pdf), source_ref=f"meeting:{meeting.id}", created_by=by,
                                created_at=self.engine.clock.now())
            session.add(document)
            session.flush()
            meeting.minutes_document_id = document.id
            meeting.status, meeting.closed_at = "closed", self.engine.clock.now()
            self._audit(by, "meeting_closed", "meeting", meeting_id, {"minutes": document.id},
                                     session=session)
            return document.id

    # -- reading ---------------------------------------------------------------------------------------------

    def get(self, meeting_id: int, user: str) -> dict[str, Any]:
        """The meeting with its commission, attendance, quorum and items (the secretary, chair, manager and
        members of the commission of that municipality)."""
        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, user, write=False)
            return self._meeting_dict(session, meeting)

    def agenda_pdf(self, meeting_id: int, user: str) -> tuple[str, bytes]:
        from .documents import render_agenda

        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, user, write=False)
            context = self._minutes_context(session, meeting)
            self._audit(user, "meeting_agenda_printed", "meeting", meeting_id, session=session)
            return f"agenda-{meeting.held_on.isoformat()}.pdf", render_agenda(context)

    def minutes_pdf(self, meeting_id: int, user: str) -> tuple[str, bytes]:
        with self.engine.db.session() as session:
            meeting = self._meeting(session, meeting_id, user, write=False)
            if meeting.minutes_document_id is None:
                raise NotFound("The minutes are written when the meeting is closed")
            document = session.get(Document, meeting.minutes_document_id)
            self._audit(user, "meeting_minutes_read", "meeting", meeting_id, session=session)
            return document.filename, casefile.pdf_of(session, document)

    def meeting_of_resolution(self, session: Session, resolution: Resolution) -> dict[str, Any] | None:
        """The meeting that adopted a resolution, with its minutes, for the case file."""
        if resolution.meeting_id is None:
            return None
        meeting = session.get(Meeting, resolution.meeting_id)
        return {"id": meeting.id, "number": meeting.number, "held_on": meeting.held_on,
                "minutes_document_id": meeting.minutes_document_id} if meeting else None

    def may_view(self, user: str, municipality_id: int) -> bool:
        with self.engine.db.session() as session:
            return _may_view(session, user, municipality_id)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _audit(self, actor: str | None, action: str, object_type: str, object_id: Any,
               details: dict[str, Any] | None = None, session: Session | None = None) -> None:
        self.engine.audit.record(actor, action, object_type, object_id, details=details, session=session)

    def _meeting(self, session: Session, meeting_id: int, user: str, write: bool) -> Meeting:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None or not _may_view(session, user, meeting.municipality_id):
            raise NotFound(f"No meeting {meeting_id}")
        if write:
            _require_secretary(session, user, meeting.municipality_id, "prepares and records meetings")
        return meeting

    def _item(self, session: Session, item_id: int, by: str) -> tuple[MeetingItem, Meeting]:
        item = session.get(MeetingItem, item_id)
        if item is None:
            raise NotFound(f"No agenda item {item_id}")
        return item, self._meeting(session, item.meeting_id, by, write=True)

    def _today(self, session: Session, municipality_id: int) -> date:
        return self.engine.clock.now().astimezone(ZoneInfo(self._timezone(session, municipality_id))).date()

    @staticmethod
    def _timezone(session: Session, municipality_id: int) -> str:
        return session.scalar(select(Municipality.timezone).where(Municipality.id == municipality_id)) \
            or "Europe/Moscow"

    @staticmethod
    def _family(session: Session, case_id: int | None) -> str | None:
        if case_id is None:
            return None
        case = session.get(Case, case_id)
        return case.family.name if case is not None else None

    def _title(self, session: Session, form_key: str, case_id: int | None) -> str:
        case = session.get(Case, case_id) if case_id is not None else None
        if case is None:
            return DECISIONS[form_key]
        return f"{DECISIONS[form_key]}: {_family_label(case.family.name)}, дело № {case.number}"

    @staticmethod
    def _speaker(session: Session, case_id: int | None) -> str | None:
        case = session.get(Case, case_id) if case_id is not None else None
        if case is None or not case.curator:
            return "Ответственный секретарь комиссии"
        user = session.scalar(select(User).where(User.username == case.curator))
        return f"Куратор случая {user.full_name or user.username}" if user else None

    @staticmethod
    def _officials(meeting: Meeting) -> dict[str, Any]:
        commission = meeting.commission
        present = set(meeting.present_member_ids or [])
        by_position = {}
        for member in commission.active_members:
            by_position.setdefault(member.position, []).append(member)
        if not present:  # before the attendance is marked (the agenda): the commission's own officials
            present = {m.id for m in commission.active_members}
        chair = next((m for m in by_position.get("chair", []) if m.id in present), None) or next(
            (m for m in by_position.get("deputy_chair", []) if m.id in present), None)
        secretary = next((m for m in by_position.get("secretary", []) if m.id in present), None)
        return {"commission_name": commission.full_name, "chair_name": chair.full_name if chair else None,
                "chair_position": chair.position_label if chair else None,
                "secretary_name": secretary.full_name if secretary else None,
                "meeting_place": meeting.place or commission.place}

    @staticmethod
    def _meeting_data(meeting: Meeting, number: str, present: int, votes: dict[str, int],
                      officials: dict[str, Any], form_key: str | None) -> dict[str, Any]:
        values = {"date": meeting.held_on.isoformat(), "number": number, "protocol": str(meeting.number),
                  "present": present, "for": votes["for"], "against": votes["against"]}
        data = {key: values[kind] for key, kind in MEETING_FIELDS.items()}
        data.update({"meeting_id": meeting.id, "meeting_number": meeting.number,
                     "votes_abstained": votes["abstained"], **officials})
        return data

    def _meeting_dict(self, session: Session, meeting: Meeting) -> dict[str, Any]:
        commission = meeting.commission
        present = set(meeting.present_member_ids or [])
        quorum = Quorum(len(commission.active_members), len(present))
        postponed_from = {}
        task_ids = [i.task_id for i in meeting.items if i.task_id]
        if task_ids:
            for task_id, held_on, reason in session.execute(
                    select(MeetingItem.task_id, Meeting.held_on, MeetingItem.postponed_reason)
                    .join(Meeting, Meeting.id == MeetingItem.meeting_id)
                    .where(MeetingItem.task_id.in_(task_ids), MeetingItem.status == "postponed",
                           MeetingItem.meeting_id != meeting.id)).all():
                postponed_from[task_id] = {"held_on": held_on, "reason": reason}
        tasks = {t.id: t for t in session.scalars(select(HumanTask).where(HumanTask.id.in_(task_ids)))} \
            if task_ids else {}
        now = self.engine.clock.now()
        items = []
        for item in meeting.items:
            task = tasks.get(item.task_id)
            items.append({
                "id": item.id, "position": item.position, "kind": item.kind, "title": item.title,
                "speaker": item.speaker, "status": item.status, "task_id": item.task_id, "form_key": item.form_key,
                "case_id": item.case_id, "case_number": session.scalar(select(Case.number).where(
                    Case.id == item.case_id)) if item.case_id else None,
                "task_status": task.status if task else None, "due": task.due if task else None,
                # the step the item decides is past its term (at once, not only after the sweep marks it)
                "late": bool(task is not None and task.status == "open"
                             and (task.overdue or (task.due is not None and task.due < now))),
                "postponed_reason": item.postponed_reason, "postponed_from": postponed_from.get(item.task_id),
                "decision_text": item.decision_text, "data": item.data, "votes_for": item.votes_for,
                "votes_against": item.votes_against, "votes_abstained": item.votes_abstained,
                "family_appeared": item.family_appeared, "resolution_number": item.resolution_number,
                # members present who took no part in the vote (the votes counted fewer than those present)
                "not_voting": max(0, len(present) - sum(v or 0 for v in (item.votes_for, item.votes_against,
                                                                         item.votes_abstained)))
                if item.status == "decided" else 0,
                "resolution_id": item.resolution_id,
                "report": self._report(session, task) if item.kind == "report" and task is not None else None})
        return {**_meeting_summary(meeting), "commission": _commission_dict(commission),
                "present_member_ids": sorted(present), "invited": meeting.invited or [],
                "quorum": {"members": quorum.members, "present": quorum.present, "needed": quorum.needed,
                           "reached": quorum.reached},
                "agenda_notified_at": meeting.agenda_notified_at,
                # questions put on the agenda after the agencies were told, whose agencies are not told yet
                "not_notified_cases": sorted({i.case_id for i, _ in _not_notified(session, meeting)})
                if meeting.status == "planned" and meeting.agenda_notified_at is not None else [],
                "items": items}

    def _report(self, session: Session, task: HumanTask) -> dict[str, Any] | None:
        """What the agency reported (an emergency's information to the commission), as its form labels it, by whom
        and when: the commission hears it at the meeting."""
        if task.status != "completed":
            return None
        definition_id = session.scalar(select(ProcessInstance.definition_id)
                                       .where(ProcessInstance.id == task.instance_id))
        form = self.engine.repository.form(task.form_key, definition_id, session=session) if task.form_key else None
        author = session.scalar(select(User.full_name).where(User.username == task.completed_by)) \
            if task.completed_by else None
        agency = session.get(Agency, task.agency_id) if task.agency_id is not None else None
        rows = form_answers(form or {}, task.data or {})
        return {"rows": [{"label": label, "value": value} for label, value in rows],
                "author": author or task.completed_by, "agency": agency.name if agency is not None else None,
                "at": task.completed_at}

    def _minutes_context(self, session: Session, meeting: Meeting) -> dict[str, Any]:
        data = self._meeting_dict(session, meeting)
        members = {m["id"]: m for m in data["commission"]["members"]}
        data["present_members"] = [members[i] for i in data["present_member_ids"] if i in members]
        data["absent_members"] = [m for m in data["commission"]["members"]
                                  if m["active"] and m["id"] not in data["present_member_ids"]]
        data["officials"] = officials = self._officials(meeting)
        for item in data["items"]:
            item["heard"] = _heard(item["speaker"], officials.get("secretary_name"))
        return data


# -- module helpers -------------------------------------------------------------------------------------------


def _not_notified(session: Session, meeting: Meeting) -> list[tuple[MeetingItem, int]]:
    """The planned case questions of the agenda with each working-group agency not yet told of them (not the
    commission itself, whose staff prepare and hold the meeting)."""
    missing = []
    for item in meeting.items:
        if item.case_id is None or item.status != "planned":
            continue
        agencies = session.scalars(select(CaseAgency.agency_id).join(Agency, Agency.id == CaseAgency.agency_id)
                                   .where(CaseAgency.case_id == item.case_id, CaseAgency.role != "commission",
                                          Agency.kind != "commission"))
        told = set(session.scalars(select(Notice.agency_id).where(Notice.meeting_id == meeting.id,
                                                                  Notice.case_id == item.case_id)))
        missing.extend((item, agency_id) for agency_id in agencies if agency_id not in told)
    return missing


def _commission(session: Session, municipality_id: int | None, required: bool = True) -> Commission | None:
    commission = session.scalar(select(Commission).where(Commission.municipality_id == municipality_id)) \
        if municipality_id is not None else None
    if commission is None and required:
        raise NotFound("The municipality has no commission set up: add its name, members and schedule first")
    return commission


def _commission_dict(commission: Commission) -> dict[str, Any]:
    from .schedule import describe

    return {"id": commission.id, "municipality_id": commission.municipality_id, "full_name": commission.full_name,
            "place": commission.place, "schedule_weekday": commission.schedule_weekday,
            "schedule_weeks": commission.schedule_weeks, "schedule_time": commission.schedule_time,
            "schedule": describe(commission.schedule_weekday, commission.schedule_weeks),
            "members": [{"id": m.id, "full_name": m.full_name, "position": m.position,
                         "position_label": m.position_label, "job_title": m.job_title,
                         "agency": m.agency.name if m.agency else None, "username": m.username,
                         "active": m.active} for m in commission.members]}


def _meeting_summary(meeting: Meeting) -> dict[str, Any]:
    decided = sum(1 for i in meeting.items if i.status == "decided")
    return {"id": meeting.id, "held_on": meeting.held_on, "starts_at": meeting.starts_at, "place": meeting.place,
            "kind": meeting.kind, "status": meeting.status, "number": meeting.number, "year": meeting.year,
            "items_count": len(meeting.items), "decided_count": decided,
            "minutes_document_id": meeting.minutes_document_id, "municipality_id": meeting.municipality_id}


def _may_view(session: Session, username: str, municipality_id: int) -> bool:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        return False
    if "regional_secretary" in user.roles:
        return True
    if user.agency is None or user.agency.municipality_id != municipality_id:
        return False
    if any(role in user.roles for role in COMMISSION_ROLES):
        return True
    member = session.scalar(select(CommissionMember.id).join(Commission).where(
        Commission.municipality_id == municipality_id, CommissionMember.username == username,
        CommissionMember.active.is_(True)))
    return member is not None


def _require_secretary(session: Session, username: str | None, municipality_id: int, what: str) -> None:
    user = session.scalar(select(User).where(User.username == username)) if username else None
    if (user is None or not user.is_active or SECRETARY_ROLE not in user.roles or user.agency is None
            or user.agency.municipality_id != municipality_id):
        raise PermissionDenied(f"Only the commission's secretary of the municipality {what}")


def _require_commission_editor(session: Session, username: str | None, municipality_id: int) -> None:
    """The commission's name, schedule and members are kept by an administrator or the municipality's secretary;
    `None` is the system itself (the command line, the demo seed)."""
    if username is None:
        return
    user = session.scalar(select(User).where(User.username == username))
    if user is not None and user.is_active and "admin" in user.roles:
        return
    _require_secretary(session, username, municipality_id, "keeps the commission's members and schedule")


def _require_status(meeting: Meeting, *statuses: str) -> None:
    if meeting.status not in statuses:
        words = {"planned": "еще не открыто", "open": "уже идет", "closed": "уже закрыто", "cancelled": "отменено"}
        raise Conflict(f"The meeting is {meeting.status}: not possible now",
                       f"Заседание {words.get(meeting.status, meeting.status)}: действие сейчас невозможно")


def _renumber(meeting: Meeting) -> None:
    for number, item in enumerate(sorted(meeting.items, key=lambda i: i.position), start=1):
        item.position = number


def _family_label(name: str) -> str:
    """«Семья Соболева» as the records name it; a bare surname gets the word «семья»."""
    return name if name.lower().startswith("семья") else f"семья {name}"


def _count(value: Any, field: str) -> int:
    if value is None or value == "":
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field}: a whole number", {field: "целое число"}) from None
    if isinstance(value, bool) or number < 0 or number > 1000:
        raise InvalidInput(f"{field}: a whole number from 0", {field: "целое число не меньше 0"})
    return number


def _date(value: Any, field: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value or "")[:10])
    except ValueError:
        raise InvalidInput(f"{field}: a date YYYY-MM-DD", {field: "дата в формате ГГГГ-ММ-ДД"}) from None


def _start_day(start: Any, now: datetime, zone: ZoneInfo) -> date:
    if start is None or start == "":
        return now.astimezone(zone).date() if now.tzinfo else now.date()
    if isinstance(start, datetime):
        return start.astimezone(zone).date() if start.tzinfo else start.date()
    if isinstance(start, date):
        return start
    try:
        text = str(start).strip().replace("Z", "+00:00")
        return _start_day(datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text[:10]), now,
                          zone)
    except ValueError:
        raise ValueError(f"next_meeting(): start {start!r} is not an ISO 8601 date or date-time") from None


_WORDS = {
    ("sop_recognition", "recognize"): "Признать семью (несовершеннолетнего) находящейся в социально опасном "
                                      "положении, организовать индивидуальную профилактическую работу",
    ("sop_recognition", "reject"): "Не признавать семью (несовершеннолетнего) находящейся в социально опасном "
                                   "положении",
    ("sop_programme_approval", "approve"): "Утвердить индивидуальную программу",
    ("sop_programme_approval", "rework"): "Направить индивидуальную программу на доработку",
    ("sop_review", "continue"): "Продолжить индивидуальную профилактическую работу",
    ("sop_review", "close"): "Внести вопрос о снятии с учета",
    ("sop_closure_decision", "close"): "Снять с учета",
    ("sop_closure_decision", "continue"): "Продолжить индивидуальную профилактическую работу",
}


# the speakers the agenda names (nominative), as the minutes' «СЛУШАЛИ:» puts them (accusative)
_HEARD = {"Куратор случая": "куратора случая", "Ответственный секретарь комиссии": "ответственного секретаря комиссии",
          "Орган опеки и попечительства": "представителя органа опеки и попечительства"}


def _heard(speaker: str | None, secretary: str | None) -> str:
    """«СЛУШАЛИ: куратора случая Петрову Анну Ивановну» from the agenda's «Куратор случая Петрова Анна Ивановна»;
    a speaker the secretary typed in is kept as typed."""
    speaker = (speaker or "Ответственный секретарь комиссии").strip()
    for nominative, accusative in _HEARD.items():
        if speaker == nominative or speaker.startswith(nominative + " "):
            name = speaker[len(nominative):].strip() or (secretary if nominative.startswith("Ответственный") else "")
            return f"{accusative} {inflect_name(name, 'accs')}".strip() if name else accusative
    return speaker


def _decision_words(session: Session, form_key: str | None, data: dict[str, Any]) -> str:
    """What the commission decided, as the minutes' «РЕШИЛИ:» says it: for a recognition with the curator and
    the programme's term, for a closure with its grounds."""
    decision = str(data.get("decision") or "")
    words = _WORDS.get((form_key or "", decision))
    if words and (form_key, decision) == ("sop_recognition", "recognize"):
        curator = str(data.get("curator") or "").strip()
        name = session.scalar(select(User.full_name).where(User.username == curator)) if curator else None
        months = data.get("ipr_term_months") or 6
        parts = [words, f"Куратором случая назначить {inflect_name(name or curator, 'accs')}" if curator else None,
                 f"Срок реализации индивидуальной программы — {months} мес"]
        return " ".join(f"{part}." for part in parts if part)[:-1]
    if words and (form_key, decision) == ("sop_closure_decision", "close") and data.get("grounds"):
        grounds = labels.CLOSURE_GROUNDS_SHORT.get(str(data["grounds"]), str(data["grounds"]))
        return f"{words}. Основание: {grounds}"
    if words:
        return words
    if form_key == "sop_closure_proposal":
        return str(data.get("closure_proposal") or "Принять предложение к рассмотрению")
    return "Принять к сведению"
