"""Demo data: one municipality with its commission and agencies, one user per role (password `demo`) and a
dozen cases at different stages, driven through the real processes with a moving clock so that every record,
task, deadline and document is what the product itself would have produced."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from engine import FrozenClock, ProcessEngine, task_query
from engine.db import Base
from engine.errors import NotFound
from engine.identity import hash_password
from engine.models import Municipality, User

from . import PLUGIN, build_engine, casefile, install
from . import jobs as periodic
from . import podrostok as podrostok_campaign
from .kpi import demo as kpi_demo
from .meetings.schedule import meeting_days
from .models import Person, Reconciliation
from .reports.podrostok import age_on

ROOT = Path(__file__).resolve().parents[1]
MUNICIPALITY = "Йошкар-Ола"
TZ = ZoneInfo("Europe/Moscow")
DEMO_PASSWORD = "demo"

AGENCIES = {
    "commission": ("КДНиЗП городского округа «Город Йошкар-Ола»", "commission"),
    "police": ("ОМВД России по г. Йошкар-Оле", "police"),
    "guardianship": ("Отдел опеки и попечительства администрации г. Йошкар-Олы", "guardianship"),
    "social": ("ГБУ РМЭ «КЦСОН в г. Йошкар-Оле»", "social_protection"),
    "school": ("МБОУ «Средняя школа № 5 г. Йошкар-Олы»", "education"),
    "health": ("ГБУ РМЭ «Детская городская больница»", "health"),
}
REGIONAL = ("КДНиЗП при Правительстве Республики Марий Эл", "Республика Марий Эл")

# username: (full name, roles, agency)
USERS = {
    "secretary": ("Смирнова Ольга Викторовна", ["commission_secretary"], "commission"),
    "chair": ("Кузнецов Андрей Петрович", ["commission"], "commission"),
    "curator": ("Васильева Елена Николаевна", ["curator", "agency_specialist"], "social"),
    "police": ("Орлов Дмитрий Сергеевич", ["police", "agency_specialist"], "police"),
    "guardian": ("Попова Наталья Ивановна", ["guardianship", "agency_specialist"], "guardianship"),
    "social": ("Морозова Татьяна Алексеевна", ["social_protection", "agency_specialist"], "social"),
    "school": ("Лебедева Ирина Владимировна", ["education", "agency_specialist"], "school"),
    "doctor": ("Соколов Игорь Михайлович", ["health", "agency_specialist"], "health"),
    "methodologist": ("Новикова Анна Юрьевна", ["methodologist"], "commission"),
    "manager": ("Федоров Павел Андреевич", ["manager"], "commission"),
    "admin": ("Администратор системы", ["admin"], "commission"),
    "regional": ("Михайлова Светлана Олеговна", ["regional_secretary"], None),
}

FAMILIES = [
    # (last name of the family, mother, child first names with birth dates, street)
    ("Иванов", "Анна Сергеевна", [("Петр", "Андреевич", "2012-03-12")], "ул. Пушкина, д. 12, кв. 4"),
    ("Сидоров", "Марина Олеговна", [("Кирилл", "Игоревич", "2014-07-01"), ("Дарья", "Игоревна", "2017-02-20")],
     "ул. Строителей, д. 3, кв. 61"),
    ("Кравцов", "Юлия Павловна", [("Максим", "Денисович", "2010-11-05")], "ул. Панфилова, д. 30, кв. 8"),
    ("Горбунов", "Оксана Викторовна", [("Артем", "Сергеевич", "2011-01-17")], "ул. Красноармейская, д. 98, кв. 15"),
    ("Белов", "Светлана Андреевна", [("Егор", "Алексеевич", "2013-05-09")], "ул. Эшкинина, д. 7, кв. 22"),
    ("Зайцев", "Наталья Ивановна", [("София", "Романовна", "2015-09-14")], "ул. Первомайская, д. 141, кв. 3"),
    ("Павлов", "Людмила Сергеевна", [("Никита", "Олегович", "2009-04-02")], "ул. Волкова, д. 54, кв. 10"),
    ("Соболев", "Ксения Игоревна", [("Полина", "Андреевна", "2016-12-25")], "ул. Героев Сталинградской битвы, "
                                                                             "д. 11, кв. 47"),
    ("Тихонов", "Валентина Петровна", [("Илья", "Викторович", "2012-08-30")], "ул. Машиностроителей, д. 2, кв. 5"),
    ("Ефимов", "Ирина Николаевна", [("Алина", "Дмитриевна", "2008-12-08")], "ул. Чехова, д. 19, кв. 33"),
    ("Лазарев", "Екатерина Юрьевна", [("Тимофей", "Артемович", "2014-03-03")], "ул. Комсомольская, д. 80, кв. 12"),
    ("Мельников", "Ольга Степановна", [("Ангелина", "Ивановна", "2019-06-21"), ("Матвей", "Иванович",
                                                                              "2021-10-10")],
     "ул. Дружбы, д. 69, кв. 101"),
    ("Воронцов", "Елена Викторовна", [("Даниил", "Сергеевич", "2013-09-19")], "ул. Петрова, д. 5, кв. 17"),
    ("Гусев", "Татьяна Олеговна", [("Вероника", "Павловна", "2011-06-02")], "ул. Красноармейская, д. 44, кв. 9"),
    ("Никитин", "Марина Алексеевна", [("Степан", "Олегович", "2012-02-14")], "ул. Луначарского, д. 20, кв. 7"),
]

COMMISSION = ("Комиссия по делам несовершеннолетних и защите их прав городского округа «Город Йошкар-Ола»",
              "г. Йошкар-Ола, Ленинский проспект, д. 27, зал заседаний")
SCHEDULE = (2, [2, 4], "10:00")  # the 2nd and 4th Wednesday of the month at 10:00
# full name, position, agency key, username
MEMBERS = [
    ("Кузнецов Андрей Петрович", "chair", "commission", "chair"),
    ("Григорьева Марина Львовна", "deputy_chair", "commission", None),
    ("Смирнова Ольга Викторовна", "secretary", "commission", "secretary"),
    ("Орлов Дмитрий Сергеевич", "member", "police", "police"),
    ("Попова Наталья Ивановна", "member", "guardianship", "guardian"),
    ("Морозова Татьяна Алексеевна", "member", "social", "social"),
    ("Лебедева Ирина Владимировна", "member", "school", "school"),
    ("Соколов Игорь Михайлович", "member", "health", "doctor"),
]

CHECK = {"living_conditions": "Квартира требует ремонта, у ребенка нет места для занятий",
         "family_criteria": ["c1", "c2"], "danger_level": "medium", "sop_confirmed": True,
         "conclusion": "Семья находится в социально опасном положении, требуется индивидуальная "
                       "профилактическая работа", "head_name": "Кузнецов А. П."}
CARD = {"detected_by": "МБОУ «Средняя школа № 5 г. Йошкар-Олы»", "parents_characteristic": "incompetent",
        "sop_kind": ["evasion", "evasion_addiction"], "family_category": ["single_parent", "one_unemployed"],
        "school": "СОШ № 5", "police_district": "Участковый пункт полиции № 3"}
PROPOSAL = {"proposal_situation": "Мать злоупотребляет алкоголем, ребенок пропускает занятия",
            "proposal_tasks": "Стабилизировать обстановку в семье", "proposal_activities":
            "Профилактические беседы, контроль посещаемости", "proposal_term": "в течение полугода"}
DRAFT = {"consilium_conclusion": "Реабилитационный потенциал семьи средний",
         "goal": "Вывести семью из социально опасного положения",
         "programme_activities": "Профилактическая беседа с матерью; разъяснение ответственности; ПДН ОМВД\n"
                                 "Контроль посещаемости занятий; еженедельно; СОШ № 5\n"
                                 "Социальный патронаж семьи; ежемесячные посещения; КЦСОН",
         "patronage_kind": "periodic", "rehabilitation_potential": "medium", "family_reaction": "passive"}
REPORT = {"report_agency": "ПДН ОМВД", "activities_done": "Проведены две профилактические беседы"}
SUMMARY = {"execution_summary": "Наметилась положительная динамика", "curator_proposal": "continue"}


def seed(engine: ProcessEngine, reset: bool = False, workflows: Path | None = None) -> str:
    """Seed the demo; returns a summary to print. Refuses an already seeded database unless `reset`.
    `workflows` is the folder of diagrams to run the stories on (default: the repository's `workflows/`)."""
    # the schema (the domain's branch too) and the roles, also when `engine` came without the domain attached
    (engine if engine.plugin(PLUGIN) else build_engine(engine.db, engine.clock, jobs=False)).init_db()
    engine.forget_role_titles()
    if reset:
        with engine.db.engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name not in ("role", "alembic_version"):
                    connection.execute(table.delete())
        engine.calendar.reload()
    with engine.db.session() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return "The database already has users: demo data not added (use 'kurator demo --reset' to start over)"
    # the PDFs of the demo's documents are laid out afterwards, by the scheduler's `render_documents` job, or at
    # once when someone opens one: laying out some fifty of them here took most of the seeding time
    token = casefile.defer_rendering()
    try:
        return _seed(engine, workflows)
    finally:
        casefile.deferred_documents(token)


def _seed(engine: ProcessEngine, workflows: Path | None) -> str:
    now = engine.clock.now()
    # periodic jobs run once, at the real now, at the end
    driver = build_engine(engine.db, FrozenClock(now - timedelta(days=400)), jobs=False)
    diagrams = sorted(Path(workflows or ROOT / "workflows").glob("*.bpmn"))
    driver.repository.deploy([*diagrams, *sorted((ROOT / "forms").glob("*.json"))],
                             deployed_by="methodologist", comment="Демонстрационная установка")
    _organisation(driver)
    stories = _Stories(driver, now)
    stories.run()
    stories.meetings()
    _Reconciliation(driver, now).run()
    _Podrostok(driver, now).run()
    kpi_demo.run(driver, MUNICIPALITY, now)
    install(engine).engine.management.sweep()
    return (f"Demo data ready: municipality {MUNICIPALITY}, {len(USERS)} users (password '{DEMO_PASSWORD}': "
            f"{', '.join(USERS)}), {stories.count} cases.")


def fire_due_timers(engine: ProcessEngine, instance_id: int) -> list[str]:
    """What the scheduler's sweep does, for one instance only: fire its timers that are due on the engine clock.
    The demo (and a browser test) moves one process through time without moving every other demo process with
    it. Returns the element ids of the timers that fired."""
    with engine.executor.operation(instance_id, "scheduler", what="timer") as loaded:
        return engine.executor.fire_due_timers(loaded)


def _worker(engine: ProcessEngine, task: dict) -> str:
    """The demo user who does a task: its assignee, a user of the agency it is addressed to, or of its role."""
    if task["assignee"]:
        return task["assignee"]
    if task["agency_id"] is not None:  # whoever the engine offers it to
        return next(u.username for u in engine.identity.users() if task_query.is_candidate(task, u))
    return {"commission_secretary": "secretary", "commission": "chair", "agency_specialist": "police",
            "curator": "curator", "guardianship": "guardian", "regional_secretary": "regional"}[
        task["candidate_roles"][0]]


def _organisation(engine: ProcessEngine) -> None:
    identity = engine.identity
    ids = {key: identity.add_agency(name, MUNICIPALITY, kind=kind) for key, (name, kind) in AGENCIES.items()}
    regional = identity.add_agency(REGIONAL[0], REGIONAL[1], kind="regional_commission")
    for username, (full_name, roles, agency) in USERS.items():
        identity.add_user(username, roles, agency=ids[agency] if agency else regional, full_name=full_name,
                          password_hash=hash_password(DEMO_PASSWORD))
    meetings = engine.sop.meetings
    municipality = _municipality_id(engine)
    meetings.set_up(municipality, *COMMISSION, *SCHEDULE, by="admin")
    for full_name, position, agency, username in MEMBERS:
        meetings.add_member(municipality, full_name, position, agency_id=ids[agency], username=username, by="admin")


def _municipality_id(engine: ProcessEngine) -> int:
    with engine.db.session() as session:
        return session.scalar(select(Municipality.id).where(Municipality.name == MUNICIPALITY))


class _Stories:
    """Thirteen cases, each stopped at its own stage, with dates counted back from now."""

    def __init__(self, engine: ProcessEngine, now: datetime):
        self.engine = engine
        self.now = now
        self.count = 0
        self.names: dict[int, dict[str, str]] = {}  # instance id -> names the check and the card repeat

    def at(self, days_ago: float) -> None:
        self.engine.clock.set(self.now - timedelta(days=days_ago))

    def register(self, family: int, days_ago: float, by: str = "school", threat: bool = False) -> tuple[int, int]:
        last, mother, children, street = FAMILIES[family]
        self.at(days_ago)
        received = self.engine.clock.now().astimezone(TZ).date().isoformat()
        feminine = last + "а"
        data = {"received_on": received, "source": AGENCIES[by if by in AGENCIES else "school"][0],
                "children": [{"last_name": last if patronymic.endswith("ич") else feminine, "first_name": first,
                              "patronymic": patronymic, "birth_date": born} for first, patronymic, born in children],
                "parents": [{"last_name": feminine, "first_name": mother.split()[0],
                             "patronymic": mother.split()[1], "occupation": "не работает"}],
                "address": f"г. Йошкар-Ола, {street}", "threat_to_life": threat,
                "problem": "Ребенок систематически пропускает занятия, мать злоупотребляет алкоголем"}
        result = self.engine.sop.register_intake(by, data, new_family=True)
        self.count += 1
        child = data["children"][0]
        self.names[result.instance_ids[0]] = {
            "minor_name": f"{child['last_name']} {child['first_name']} {child['patronymic']}, "
                          f"{date.fromisoformat(child['birth_date']).strftime('%d.%m.%Y')}",  # as the check offers it
            "parents_names": f"{feminine} {mother}"}
        return result.case_id, result.instance_ids[0]

    def complete(self, instance_id: int, element: str, data: dict, days_ago: float, user: str | None = None) -> None:
        self.at(days_ago)
        task = next(t for t in self.engine.tasks.query(instance_id=instance_id) if t["element_id"] == element)
        user = user or self.worker(task)
        if element == "sop_check":  # what the check's page offers from the signal (addresses, the family), as kept
            data = {**self.engine.sop.task_context(task["id"], user).defaults, **self.names.get(instance_id, {}),
                    **data}
        elif element == "sop_registration_card":
            data = {**self.names.get(instance_id, {}), **data}
        self.engine.tasks.complete(task["id"], user, data)

    def worker(self, task: dict) -> str:
        return _worker(self.engine, task)

    def day(self, days_ago: float) -> str:
        return (self.now - timedelta(days=days_ago)).astimezone(TZ).date().isoformat()

    def recognized(self, family: int, start: float) -> int:
        """A case taken through check and recognition; returns its instance id."""
        _, iid = self.register(family, start)
        self.complete(iid, "sop_check", CHECK, start - 3)
        meeting = self.day(start - 10)
        self.complete(iid, "sop_recognition", {"decision": "recognize", "meeting_date": meeting,
                                               "resolution_number": f"{family + 10}/{meeting[5:7]}",
                                               "curator": "curator", "working_group": ["police", "education"],
                                               "consent_obtained": True, "ipr_term_months": 6}, start - 10)
        return iid

    def programme(self, iid: int, start: float, stop: str | None = None, card: dict | None = None) -> None:
        self.complete(iid, "sop_registration_card", dict(card or CARD, detection_date=self.day(start)), start - 12)
        for task in [t for t in self.engine.tasks.query(instance_id=iid) if t["element_id"] == "sop_proposals"]:
            self.at(start - 14)
            self.engine.tasks.complete(task["id"], self.worker(task),
                                       dict(PROPOSAL, agency_name=task["agency_name"] or AGENCIES["police"][0]))
        if stop == "draft":
            return
        self.complete(iid, "sop_programme_draft", DRAFT, start - 20)
        if stop == "approval":
            return
        self.complete(iid, "sop_programme_approval", {"decision": "approve", "protocol_number": "7",
                                                      "approval_date": self.day(start - 24)}, start - 24)
        self.complete(iid, "sop_programme_dispatch", {"programme_sent": True,
                                                      "programme_sent_date": self.day(start - 26)}, start - 26)

    def run(self) -> None:
        self.register(0, 1)                                    # 1. just registered: the check is due
        self.register(1, 12, by="police")                      # 2. the check is overdue (escalated)
        _, iid = self.register(2, 40)                          # 3. not confirmed: the information is closed
        self.complete(iid, "sop_check", dict(CHECK, sop_confirmed=False, danger_level="low",
                                             conclusion="Факты не подтвердились"), 37)
        _, iid = self.register(3, 9)                           # 4. awaiting the commission's meeting
        self.complete(iid, "sop_check", CHECK, 6)
        self.recognized(4, 13)                                 # 5. registration card due (curator)
        iid = self.recognized(5, 25)                           # 6. proposals of the agencies due
        self.complete(iid, "sop_registration_card", dict(CARD, detection_date=self.day(25)), 14)
        iid = self.recognized(6, 45)                           # 7. programme drafting overdue (14 days)
        self.programme(iid, 45, stop="draft")
        iid = self.recognized(7, 40)                           # 8. programme awaits approval
        self.programme(iid, 40, stop="approval")
        iid = self.recognized(8, 90)                           # 9. programme being executed
        self.programme(iid, 90)
        self.report(iid, 50, only="police")                   #    the police reported, the school not yet
        iid = self.recognized(9, 200)                          # 10. six-month review; the minor turns 18 soon
        self.programme(iid, 200, card=dict(CARD, sop_kind=["evasion_addiction", "minor_alcohol"]))  # her own drinking
        self.report(iid, 150)
        self.complete(iid, "sop_curator_summary", SUMMARY, 148)
        iid = self.recognized(10, 395)                         # 11. closed after two reviews
        self.programme(iid, 395)
        for decision in ("continue", "close"):
            self.report(iid, self.ago() - 20)
            self.complete(iid, "sop_curator_summary", SUMMARY, self.ago() - 1)
            self.review(iid, decision)
        self.complete(iid, "sop_closure_decision", {"decision": "close", "grounds": "improved", "present": 9,
                                                    "votes_for": 8, "votes_against": 0, "result": "full",
                                                    "resolution_number": "120/11",
                                                    "closure_date": self.day(self.ago())}, self.ago())
        self.register(11, 0.1, by="police", threat=True)       # 12. threat to life: guardianship goes now
        iid = self.recognized(14, 215)                         # 13. the control proposes closing: the commission
        self.programme(iid, 215)                               #     decides on it at its next meeting
        self.report(iid, self.ago() - 20)
        self.complete(iid, "sop_curator_summary", dict(SUMMARY, curator_proposal="close"), self.ago() - 1)
        self.review(iid, "close")

    def meetings(self) -> None:
        """The last two regular meetings held, each recognising one new family, with their minutes; the next
        meeting planned with its agenda and the agencies notified."""
        service = self.engine.sop.meetings
        municipality = _municipality_id(self.engine)
        today = self.now.astimezone(TZ).date()
        held = [day for _, day in meeting_days(self.engine.calendar.calendar, SCHEDULE[0], SCHEDULE[1],
                                               today - timedelta(days=70), months=4) if day < today][-2:]
        members = [m["id"] for m in service.commission(municipality)["members"]]
        for family, day in zip((12, 13), held, strict=True):
            ago = (today - day).days
            _, iid = self.register(family, ago + 9)
            self.complete(iid, "sop_check", CHECK, ago + 6)
            self.engine.clock.set(datetime.combine(day, time(10, 0), TZ))
            meeting_id = service.upcoming(municipality, "secretary")
            service.refresh_agenda(meeting_id, "secretary")
            service.add_item(meeting_id, "О состоянии работы по профилактике безнадзорности и правонарушений "
                                         "несовершеннолетних в летний период", "Начальник ПДН ОМВД", "secretary")
            last, mother = FAMILIES[family][0], FAMILIES[family][1]
            service.set_attendance(meeting_id, members[:-1], [{"name": f"{last}а {mother}", "position": "мать"}],
                                   "secretary")
            for item in service.get(meeting_id, "secretary")["items"]:
                if item["kind"] == "free":
                    service.decide(item["id"], "secretary", votes_for=7, decision_text="Информацию принять к "
                                   "сведению; органам системы профилактики усилить контроль за занятостью детей")
                elif item["task_id"] in {t["id"] for t in self.engine.tasks.query(instance_id=iid)}:
                    service.decide(item["id"], "secretary", {
                        "decision": "recognize", "curator": "curator", "working_group": ["police", "education"],
                        "consent_obtained": True, "ipr_term_months": 6,
                        "recognition_notes": "Мать уклоняется от воспитания, ребенок пропускает занятия"},
                        votes_for=6, votes_abstained=1, family_appeared=True)
                else:
                    service.postpone(item["id"], "Материалы не подготовлены к заседанию", "secretary")
            service.close(meeting_id, "secretary")
        self.engine.clock.set(self.now)
        upcoming = service.upcoming(municipality, "secretary")
        service.notify(upcoming, "secretary")

    def report(self, iid: int, days_ago: float, only: str | None = None) -> None:
        """The working group's agencies report on the round, each from its own task (or only the agency of the
        demo user `only`)."""
        self.at(days_ago)
        for task in [t for t in self.engine.tasks.query(instance_id=iid) if t["element_id"] == "sop_execution_report"]:
            user = self.worker(task)
            if only is None or user == only:
                agency = task["agency_name"] or REPORT["report_agency"]
                self.engine.tasks.complete(task["id"], user, dict(REPORT, report_agency=agency,
                                                                  report_date=self.day(days_ago)))

    def ago(self) -> float:
        """How many days before now the driving clock stands."""
        return (self.now - self.engine.clock.now()).total_seconds() / 86400

    def review(self, iid: int, decision: str) -> None:
        """Let the six-month timer fire, then record the review."""
        wakeup = datetime.fromisoformat(self.engine.runtime.instance(iid)["next_wakeup"])
        self.engine.clock.set(wakeup + timedelta(hours=10))
        self.engine.management.sweep()
        self.complete(iid, "sop_review", {"summary": "Программа исполняется", "decision": decision},
                      self.ago() - 0.05)



class _Reconciliation:
    """The quarterly reconciliation of the quarter of now, started on the quarter's first day as the scheduler starts
    it (started by the final sweep at now instead, its steps would open already past their deadlines, counted from
    the quarter's start), and driven as far as the clock allows: the agencies reconcile their lists in the first
    two weeks, on time, except the children's hospital, which stays silent (its step is overdue once the deadline
    has passed), so the round waits for it."""

    OPENED = time(0, 5)  # the scheduler's first sweep of the quarter's first day
    # agency kind: (working days after the quarter's start it reconciles on, the demo user, the findings)
    DONE = {"police": (3, "police", "Один несовершеннолетний снят с учета ПДН в прошлом квартале: в банке данных "
                                    "КДНиЗП отметка внесена"),
            "guardianship": (5, "guardian", ""), "social_protection": (6, "social", ""), "education": (8, "school", "")}

    def __init__(self, engine: ProcessEngine, now: datetime):
        self.engine = engine
        self.now = now

    def run(self) -> None:
        try:
            self.engine.repository.definition(periodic.RECONCILIATION_PROCESS)
        except NotFound:
            return  # diagrams without the reconciliation
        quarter, first = periodic.quarter_of(self.now.astimezone(TZ).date())
        if not self.at(first, self.OPENED) or not periodic.start_quarterly(self.engine.sop):
            return
        with self.engine.db.session() as session:
            iid = session.scalar(select(Reconciliation.process_instance_id).where(Reconciliation.quarter == quarter))
        calendar = self.engine.calendar.calendar
        kinds = {a["id"]: a["kind"] for a in self.engine.identity.agencies()}
        tasks = [t for t in self.engine.tasks.query(instance_id=iid)
                 if t["element_id"] == "rec_agency" and kinds.get(t["agency_id"]) in self.DONE]
        for task in sorted(tasks, key=lambda t: self.DONE[kinds[t["agency_id"]]][0]):
            days, user, differences = self.DONE[kinds[task["agency_id"]]]
            if not self.at(calendar.add_working_days(first, days), time(11, 0)):
                return
            self.engine.tasks.complete(task["id"], user, {
                "differences": differences, "missing_in_commission": "", "missing_in_agency": "", "confirmed": True})

    def at(self, day: date, when: time) -> bool:
        """Move the driving clock to that moment; False when it is not past yet."""
        moment = datetime.combine(day, when, TZ)
        if moment >= self.now:
            return False
        self.engine.clock.set(moment)
        return True


class _Podrostok:
    """Operation «Подросток» of the demo clock's year (of the year before when the clock is before 2 May), driven as
    far as the clock allows: started on 1 May, the preparatory stage done, then each summer month's round — the
    agencies' App. 2 on the children on the register (the school's activities for the younger ones, the social
    protection centre's temporary jobs for the teenagers), the June information of the centre returned for
    correction and resubmitted, the children's hospital silent in August — and the monthly reports, App. 4 and
    App. 5 sent; the regional commission's consolidation stays open."""

    PLAN = {"reconciliation_done": True, "plan_number": "5/2",
            "preliminary_notes": "Предварительная занятость детей, состоящих на учете, согласована с органами системы "
                                 "профилактики (приложение 1)"}
    # per reported month: (form, organisation, first day, last day) for the younger children and for the teenagers
    YOUNGER = {6: ("3.8", "Лагерь дневного пребывания при МБОУ «Средняя школа № 5»", 1, 21),
               7: ("3.4", "Дворовая площадка «Солнечный двор»", 1, 31),
               8: ("3.12", "Туристический поход «Марийская тропа»", 10, 14)}
    TEENS = {6: ("3.2", "ГКУ РМЭ «Центр занятости населения г. Йошкар-Олы»", 8, 30),
             7: ("3.2", "ГКУ РМЭ «Центр занятости населения г. Йошкар-Олы»", 1, 31)}
    # per reported month: the day of the next month the agencies send App. 2, and the day the secretary accepts
    # the round and sends App. 3 (in August after the round's deadline: the hospital is silent)
    DAYS = {6: (2, 6), 7: (3, 5), 8: (2, 7)}
    RETURN = "Укажите реквизиты срочного трудового договора и приложите его копию"
    CONTRACT = " (срочный трудовой договор № 14 от 05.06)"

    def __init__(self, engine: ProcessEngine, now: datetime):
        self.engine = engine
        self.now = now
        today = now.astimezone(TZ).date()
        self.year = today.year if today >= date(today.year, 5, 2) else today.year - 1
        self.iid = 0
        self.kinds: dict[int, str] = {}

    def at(self, month: int, day: int, hour: int = 10) -> bool:
        """Move the driving clock to that day of the campaign's year; False when it is not past yet."""
        moment = datetime(self.year, month, day, hour, tzinfo=TZ)
        if moment >= self.now:
            return False
        self.engine.clock.set(moment)
        return True

    def tasks(self, element: str) -> list[dict]:
        return [t for t in self.engine.tasks.query(instance_id=self.iid) if t["element_id"] == element]

    def complete(self, task: dict | str, data: dict) -> None:
        task = self.tasks(task)[0] if isinstance(task, str) else task
        self.engine.tasks.complete(task["id"], _worker(self.engine, task), data)

    def run(self) -> None:
        try:
            self.engine.repository.definition(podrostok_campaign.PROCESS)
        except NotFound:
            return  # diagrams without the campaign
        if not self.at(5, 1, 0):
            return
        started = podrostok_campaign.start_campaigns(self.engine.sop, year=self.year, municipality=MUNICIPALITY)
        if not started:
            return
        self.iid = started[0]
        self.kinds = {a["id"]: a["kind"] for a in self.engine.identity.agencies()}
        if not self.at(5, 20):
            return
        self.complete("pod_plan", dict(self.PLAN, plan_date=f"{self.year}-05-20"))
        if not all(self.round(month) for month in podrostok_campaign.SUMMER_MONTHS):
            return
        if not self.at(9, 9):
            return
        self.complete("pod_summer_summary", {"summary_sent_date": f"{self.year}-09-09"})
        if not self.at(9, 24):
            return
        self.complete("pod_final_report", {
            "final_rows": [{"row": "1.1", "value": "18"}, {"row": "1.2", "value": "6"},
                           {"row": "1.2.3", "value": "6"}, {"row": "2.1", "value": "4"}],
            "final_summary": "Операция проведена по плану; занятость детей, состоящих на учете, обеспечена",
            "final_meeting_date": f"{self.year}-09-23", "final_sent_date": f"{self.year}-09-24"})

    def round(self, month: int) -> bool:
        """The month's round, from its opening on the 1st of the next month to the monthly report; False when the
        clock stops it on the way."""
        sent_on, accepted_on = self.DAYS[month]
        if not self.at(month + 1, 1, 9):
            return False
        fire_due_timers(self.engine, self.iid)  # the month is over: the round opens
        if not self.at(month + 1, sent_on):
            return False
        key = f"{self.year}-{month:02d}"
        for task in self.tasks("pod_agency_report"):
            kind = self.kinds.get(task["agency_id"])
            if not (kind == "health" and month == 8):  # the hospital never sends its August information
                self.complete(task, self.entries(kind, key))
        if month == 6:  # the centre's June information goes back for correction, and comes back the same day
            social = next(a for a, kind in self.kinds.items() if kind == "social_protection")
            if not self.at(month + 1, sent_on + 1, 9):
                return False
            self.complete("pod_review", {"review_decision": "return", "returned_agencies": [str(social)],
                                         "return_comment": self.RETURN})
            if not self.at(month + 1, sent_on + 1, 15):
                return False
            self.complete("pod_agency_report", self.entries("social_protection", key, self.CONTRACT))
        if not self.at(month + 1, accepted_on, 11):
            return False
        fire_due_timers(self.engine, self.iid)  # the round's deadline, when an agency was silent
        self.complete("pod_review", {"review_decision": "accept"})
        self.complete("pod_monthly_report", {"report_sent_date": f"{self.year}-{month + 1:02d}-{accepted_on:02d}"})
        return True

    def entries(self, kind: str | None, month: str, note: str = "") -> dict:
        """An agency's App. 2 for the month: the school employs the younger children; the social protection centre
        the teenagers (14 and over), who in August are away; the other agencies have nothing to add."""
        first = podrostok_campaign.month_period(month).start
        number = first.month
        with self.engine.db.session() as session:
            campaign = podrostok_campaign.campaign_of_instance(session, self.iid)
            ids = [int(o["value"]) for o in podrostok_campaign.children_options(session, campaign, month)]
            births = dict(session.execute(select(Person.id, Person.birth_date).where(Person.id.in_(ids))).all())
        teens = [i for i in ids if births.get(i) and age_on(births[i], first) >= 14]
        younger = [i for i in ids if i not in teens]

        def line(child: int, plan: tuple[str, str, int, int]) -> dict:
            form, provider, start, end = plan
            return {"child": str(child), "form": form, "provider": provider + note,
                    "date_from": first.replace(day=start).isoformat(), "date_to": first.replace(day=end).isoformat()}

        employment, excused = [], []
        if kind == "education":
            employment = [line(child, self.YOUNGER[number]) for child in younger]
        elif kind == "social_protection" and number in self.TEENS:
            employment = [line(child, self.TEENS[number]) for child in teens]
        elif kind == "social_protection":
            excused = [{"excused_child": str(child), "reason": "away",
                        "comment": "у родственников в другом регионе (справка)"} for child in teens]
        return {"employment": employment, "excused": excused}
