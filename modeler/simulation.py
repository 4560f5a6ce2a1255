"""Simulation of a draft diagram: run it against a scripted scenario in a throw-away engine.

A methodologist asks "if a signal comes on 28 December, which tasks open, for whom, and when are they due?". The
simulation answers by running the draft for real, but in an engine of its own: a temporary SQLite database that is
created, migrated and deleted for every run. Real cases, tasks, history and audit are never touched. The real
engine only lends what the run depends on: roles, the production calendar's overrides and declared years, the
latest deployed forms, and the latest deployed versions of the processes the draft calls. Deadlines, time zones
and working days are therefore exactly those of a real case.

    result = simulate(engine, xml, {"start": "2026-12-28T09:00", "variables": {"received": "2026-12-28"},
                                    "steps": [{"complete": "sop_check"}, {"advance": {"day": 15}}]})

Scenario (JSON):

    {
      "start": "2026-12-28T09:00",    local date and time of the start (in "timezone"); default: now
      "timezone": "Europe/Moscow",    IANA name; default: the municipality's time zone, else Europe/Moscow
      "municipality": "Йошкар-Ола",   optional: take the time zone of this municipality
      "process": "sop_case",          optional: which process of the file to start (default: the first executable)
      "user": "method",               optional: who starts the case and completes tasks (default: the caller)
      "variables": {...},             the start variables, as a real start receives them (received, case_id…)
      "choices": {"<gateway id>": "<outgoing flow id>"},   take this flow whatever the data say
      "steps": [
        {"complete": "<element id of an open task>", "data": {...}, "user": "..."},
        {"advance": "P15D"} | {"advance": {"days": 15, "hours": 2}} | {"advance": {"to": "2027-01-12T09:00"}}
          | {"advance": {"day": 15}},          day N = N calendar days after the start, at the start's time
        {"message": "<name>", "data": ...},    correlate a message (e.g. minor_turned_18)
        {"signal": "<name>", "data": {...}}    broadcast a signal (e.g. threat_to_life)
      ]
    }

How it runs:

* Gateway choices are applied in the throw-away engine only: after the draft is deployed there, the stored spec of
  each chosen gateway is rewritten so that the chosen flow's condition is `True` and every other flow's is `False`
  (the default flow included). The gateway then takes exactly that flow, whatever the data, and its real
  conditions are not evaluated (so a variable they read may be missing).
* `complete` completes the oldest open task of that element (as the inbox would) through the engine's own task
  service, so form validation applies. Required form fields missing from `data` are filled with plausible values
  (text "(симуляция)", the first option, the simulated date, the smallest allowed number); the step lists them in
  `filled`. The task is completed by its assignee when it has one, else by `user`, who holds every role.
* `advance` moves the clock. Timers fire at their own due time, one after another (as the scheduler would within
  a minute), so a timer that opens a task whose own timer is due before the target fires too. Tasks past their
  due date are then marked overdue.
* Any failure in a step (an unknown task, an expression that fails, a form the data do not satisfy) ends the run
  with that step's `error`, tied to the element when there is one. `simulate()` never raises.

Result: {"ok", "process_key", "timezone", "problems": [{severity, message, message_ru, element_id}],
"gateways": [{id, name, kind, flows: [{id, name, condition, default, target, target_name}]}],
"steps": [{"index", "kind", "action" (Russian),
"at" (ISO, local), "day", "opened", "open", "closed", "timers_waiting", "timers_fired", "completed_elements",
"ended", "filled", "error"}]}. A task in `opened`/`open` is {task_id, element_id, name, roles, role_titles,
assignee, candidate_users, due (ISO, local), due_text, overdue, form_key, path (the call activities and
subprocesses it sits in, outermost first), defaults (the data a completion without `data` would send)}.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select, update
from sqlalchemy.orm import undefer

from engine.bpmn.pruning import completed_elements
from engine.clock import FrozenClock
from engine.db import Database, make_engine
from engine.errors import ExecutionError, InvalidInput, KuratorError, Problem, ValidationFailed
from engine.forms import input_fields
from engine.identity import DEFAULT_TIMEZONE, check_timezone
from engine.models import (
    CalendarOverride,
    CalendarYear,
    FormDefinition,
    HumanTask,
    Municipality,
    ProcessDefinition,
    ProcessInstance,
    Resource,
    Role,
)
from engine.runtime import check_variables

if TYPE_CHECKING:
    from engine import ProcessEngine

log = logging.getLogger(__name__)

MAX_STEPS = 200
MAX_TIMER_FIRINGS = 500
MAX_ADVANCE = timedelta(days=366 * 10)
FILLER_TEXT = "(симуляция)"
DEFAULT_USER = "simulation"

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)
_DURATION = re.compile(r"^P(?!$)(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?)?$", re.I)
_WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")


# -- the scenario -------------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One normalized scenario step."""

    kind: str  # complete, advance, message, signal
    target: str | None = None  # element id (complete) or event name (message, signal)
    data: Any = None
    user: str | None = None
    advance: tuple[str, Any] | None = None  # ("delta", timedelta) | ("to", datetime) | ("day", int)


@dataclass
class Scenario:
    """A checked scenario: an aware start, a time zone, start variables, steps and gateway choices."""

    start: datetime
    timezone: str
    variables: dict[str, Any]
    steps: list[Step]
    choices: dict[str, str]
    process: str | None = None
    user: str | None = None
    municipality: str | None = None


def _bad(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field_name}: {message}", {field_name: message})


def _local_datetime(value: Any, tz: ZoneInfo, field_name: str) -> datetime:
    """An aware datetime from 'YYYY-MM-DD[THH:MM[:SS]][offset]'; without an offset it is local time in `tz`."""
    if not isinstance(value, str) or not value.strip():
        raise _bad(field_name, "нужна дата и время в формате ГГГГ-ММ-ДДTЧЧ:ММ, например 2026-12-28T09:00")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(field_name, f"«{value}» не дата и время; нужен формат ГГГГ-ММ-ДДTЧЧ:ММ, например "
                               f"2026-12-28T09:00") from None
    if not 1991 <= parsed.year <= 2200:
        raise _bad(field_name, f"год {parsed.year} вне допустимого диапазона")
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def _parse_advance(value: Any, tz: ZoneInfo, field_name: str) -> tuple[str, Any]:
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            raise _bad(field_name, f"«{value}» не продолжительность ISO 8601; используйте недели, дни, часы и "
                                   f"минуты, например P15D или PT4H")
        weeks, days, hours, minutes = (int(g or 0) for g in match.groups())
        delta = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)
        if delta > MAX_ADVANCE:
            raise _bad(field_name, "слишком большой перевод часов (не больше 10 лет)")
        return ("delta", delta)
    if isinstance(value, dict) and value:
        unknown = set(value) - {"days", "hours", "minutes", "to", "day"}
        if unknown:
            raise _bad(field_name, f"неизвестные ключи {', '.join(sorted(map(str, unknown)))}; допустимы days, "
                                   f"hours, minutes, to или day")
        if "to" in value:
            if len(value) > 1:
                raise _bad(field_name, "«to» задается без других ключей")
            return ("to", _local_datetime(value["to"], tz, f"{field_name}.to"))
        if "day" in value:
            if len(value) > 1:
                raise _bad(field_name, "«day» задается без других ключей")
            day = value["day"]
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 3660:
                raise _bad(f"{field_name}.day", "номер дня: целое число от 0 до 3660")
            return ("day", day)
        amounts = {}
        for key in ("days", "hours", "minutes"):
            if key in value:
                amount = value[key]
                if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                    raise _bad(f"{field_name}.{key}", "нужно целое неотрицательное число")
                amounts[key] = amount
        delta = timedelta(**amounts)
        if delta > MAX_ADVANCE:
            raise _bad(field_name, "слишком большой перевод часов (не больше 10 лет)")
        return ("delta", delta)
    raise _bad(field_name, "нужно «P15D», {\"days\": 15}, {\"day\": 15} или {\"to\": \"2027-01-12T09:00\"}")


def _name(value: Any, field_name: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise _bad(field_name, f"нужен {what} (непустая строка до 200 символов)")
    return value.strip()


def _optional_user(value: Any, field_name: str) -> str | None:
    if value is None or value == "":
        return None
    return _name(value, field_name, "логин пользователя")


def check_scenario(scenario: Any, now: datetime, timezones: Callable[[str], str | None] | None = None) -> Scenario:
    """Check and normalize a scenario; raises `InvalidInput` whose `errors` name the field (`scenario.steps[2]…`).

    `now` is the default start; `timezones(municipality)` returns a municipality's time zone (None if unknown).
    """
    if scenario is None:
        scenario = {}
    if not isinstance(scenario, dict):
        raise _bad("scenario", "сценарий должен быть JSON-объектом")
    known = {"start", "timezone", "municipality", "process", "user", "variables", "choices", "steps"}
    unknown = sorted(str(k) for k in set(scenario) - known)
    if unknown:
        raise _bad(f"scenario.{unknown[0]}", f"неизвестное поле; допустимы {', '.join(sorted(known))}")
    municipality = scenario.get("municipality")
    tz_name = scenario.get("timezone")
    if municipality not in (None, ""):
        municipality = _name(municipality, "scenario.municipality", "муниципалитет")
        found = timezones(municipality) if timezones else None
        if found is None:
            raise _bad("scenario.municipality", f"муниципалитет «{municipality}» не найден")
        tz_name = tz_name or found
    else:
        municipality = None
    tz_name = tz_name or DEFAULT_TIMEZONE
    if not isinstance(tz_name, str):
        raise _bad("scenario.timezone", "нужно имя часового пояса, например Europe/Moscow")
    try:
        tz_name = check_timezone(tz_name.strip())
    except InvalidInput:
        raise _bad("scenario.timezone", f"неизвестный часовой пояс «{tz_name}»; используйте имя IANA, например "
                                        f"Europe/Moscow") from None
    tz = ZoneInfo(tz_name)
    start = (_local_datetime(scenario["start"], tz, "scenario.start") if scenario.get("start") not in (None, "")
             else now.astimezone(tz))
    try:
        variables = check_variables(scenario.get("variables"), "variables")
    except InvalidInput as exc:
        raise _bad("scenario.variables", exc.message) from None
    choices = scenario.get("choices") or {}
    if not isinstance(choices, dict):
        raise _bad("scenario.choices", "нужен объект {\"id шлюза\": \"id потока\"}")
    for gateway, flow in choices.items():
        if not isinstance(flow, str) or not flow.strip():
            raise _bad(f"scenario.choices.{gateway}", "нужен id исходящего потока шлюза")
    choices = {str(k): v.strip() for k, v in choices.items()}
    raw_steps = scenario.get("steps") or []
    if not isinstance(raw_steps, list):
        raise _bad("scenario.steps", "нужен список шагов")
    if len(raw_steps) > MAX_STEPS:
        raise _bad("scenario.steps", f"слишком много шагов (не больше {MAX_STEPS})")
    steps = [_check_step(raw, index, tz) for index, raw in enumerate(raw_steps)]
    process = scenario.get("process")
    process = _name(process, "scenario.process", "ключ процесса") if process not in (None, "") else None
    return Scenario(start=start, timezone=tz_name, variables=variables, steps=steps, choices=choices,
                    process=process, user=_optional_user(scenario.get("user"), "scenario.user"),
                    municipality=municipality)


def _check_step(raw: Any, index: int, tz: ZoneInfo) -> Step:
    where = f"scenario.steps[{index}]"
    if not isinstance(raw, dict):
        raise _bad(where, "шаг должен быть объектом: complete, advance, message или signal")
    kinds = [k for k in ("complete", "advance", "message", "signal") if k in raw]
    if len(kinds) != 1:
        raise _bad(where, "в шаге должно быть ровно одно из действий: complete, advance, message, signal")
    kind = kinds[0]
    allowed = {"complete": {"complete", "data", "user"}, "advance": {"advance"},
               "message": {"message", "data", "user"}, "signal": {"signal", "data", "user"}}[kind]
    extra = sorted(str(k) for k in set(raw) - allowed)
    if extra:
        raise _bad(f"{where}.{extra[0]}", f"лишнее поле для шага {kind}")
    if kind == "advance":
        return Step("advance", advance=_parse_advance(raw["advance"], tz, f"{where}.advance"))
    user = _optional_user(raw.get("user"), f"{where}.user")
    data = raw.get("data")
    if kind == "complete":
        if data is not None:
            try:
                data = check_variables(data, "data")
            except InvalidInput as exc:
                raise _bad(f"{where}.data", exc.message) from None
        return Step("complete", target=_name(raw["complete"], f"{where}.complete", "id элемента задачи"),
                    data=data, user=user)
    if kind == "signal" and data is not None:
        try:
            data = check_variables(data, "data")
        except InvalidInput as exc:
            raise _bad(f"{where}.data", exc.message) from None
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        raise _bad(f"{where}.data", "данные должны быть JSON") from None
    return Step(kind, target=_name(raw[kind], f"{where}.{kind}", "имя события"), data=data, user=user)


# -- the draft ----------------------------------------------------------------------------------------------------


def _parse(xml: str):
    try:
        root = etree.fromstring(xml.encode("utf-8"), _XML_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    return root if etree.QName(root).localname == "definitions" else None


def executable_processes(xml: str) -> list[str]:
    """Ids of the executable processes of a BPMN file, in document order."""
    root = _parse(xml)
    return _executable(root) if root is not None else []


def _executable(root) -> list[str]:
    return [p.get("id") for p in root.findall(f"{{{BPMN_NS}}}process")
            if p.get("id") and p.get("isExecutable", "true").lower() != "false"]


def _called_keys(root) -> set[str]:
    return {(n.get("calledElement") or "").strip() for n in root.iter(f"{{{BPMN_NS}}}callActivity")} - {""}


def gateways(xml: str) -> list[dict[str, Any]]:
    """The exclusive and inclusive gateways of the draft that split the flow, with their outgoing flows."""
    root = _parse(xml)
    if root is None:
        return []
    names = {n.get("id"): (n.get("name") or "").strip() for n in root.iter() if isinstance(n.tag, str) and n.get("id")}
    flows: dict[str, list] = {}
    for flow in root.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        flows.setdefault(flow.get("sourceRef"), []).append(flow)
    result = []
    for node in root.iter(f"{{{BPMN_NS}}}exclusiveGateway", f"{{{BPMN_NS}}}inclusiveGateway"):
        outgoing = flows.get(node.get("id"), [])
        if len(outgoing) < 2:
            continue
        default = node.get("default")
        items = []
        for flow in outgoing:
            condition = flow.find(f"{{{BPMN_NS}}}conditionExpression")
            text = (condition.text or "").strip() if condition is not None else ""
            target = flow.get("targetRef")
            items.append({"id": flow.get("id"), "name": (flow.get("name") or "").strip(),
                          "condition": text or None, "default": flow.get("id") == default,
                          "target": target, "target_name": names.get(target) or target})
        kind = "exclusive" if etree.QName(node).localname == "exclusiveGateway" else "inclusive"
        result.append({"id": node.get("id"), "name": names.get(node.get("id")) or "", "kind": kind,
                       "flows": items})
    return result


def _check_choices(choices: dict[str, str], found: list[dict[str, Any]]) -> list[Problem]:
    by_id = {g["id"]: g for g in found}
    problems = []
    for gateway, flow in choices.items():
        if gateway not in by_id:
            problems.append(Problem("error", f"Выбор пути: шлюза «{gateway}» с несколькими исходящими потоками нет "
                                             f"на схеме", element_id=gateway))
        elif flow not in {f["id"] for f in by_id[gateway]["flows"]}:
            problems.append(Problem("error", f"Выбор пути: поток «{flow}» не выходит из шлюза «{gateway}»",
                                    element_id=gateway))
    return problems


# -- form defaults ------------------------------------------------------------------------------------------------


def form_defaults(schema: dict[str, Any] | None, today: date, now_local: datetime) -> dict[str, Any]:
    """The data a completion without data sends: the form's own defaults and plausible values for required fields."""
    if not schema:
        return {}
    data: dict[str, Any] = {}
    for key, component in input_fields(schema).items():
        kind = component.get("type", "textfield")
        if kind == "hidden":
            continue
        if component.get("defaultValue") not in (None, ""):
            data[key] = component["defaultValue"]
        elif kind == "checkbox":
            data[key] = False
        elif (component.get("validate") or {}).get("required"):
            data[key] = _plausible(component, today, now_local)
    return data


def _plausible(component: dict[str, Any], today: date, now_local: datetime) -> Any:
    kind = component.get("type", "textfield")
    rules = component.get("validate") or {}
    options = [v.get("value") for v in component.get("values") or [] if isinstance(v, dict)]
    if kind == "number":
        low, high = rules.get("min"), rules.get("max")
        value = low if low is not None else 1
        return min(value, high) if high is not None else value
    if kind in ("select", "radio"):
        return options[0] if options else FILLER_TEXT
    if kind in ("checklist", "taglist"):
        return options[:1] if options else [FILLER_TEXT]
    if kind in ("datetime", "date"):
        if kind == "date" or component.get("subtype", "date") == "date":
            return today.isoformat()
        return now_local.replace(second=0, microsecond=0, tzinfo=None).isoformat()
    if kind == "dynamiclist":
        row_fields = input_fields({"components": component.get("components") or []})
        return [{key: _plausible(sub, today, now_local) for key, sub in row_fields.items()
                 if (sub.get("validate") or {}).get("required")}]
    text = FILLER_TEXT
    if rules.get("minLength"):
        text = text.ljust(int(rules["minLength"]), ".")
    return text


# -- the run ------------------------------------------------------------------------------------------------------


def _problem(message: str, element_id: str | None = None) -> dict[str, Any]:
    return {"severity": "error", "message": message, "message_ru": message, "element_id": element_id}


def _problems(problems: list[Problem]) -> list[dict[str, Any]]:
    """Problems for the page: the engine's message and its Russian wording when there is one."""
    return [{"severity": p.severity, "message": p.message, "message_ru": p.message_ru or p.message,
             "element_id": p.element_id} for p in problems]


def simulate(engine: ProcessEngine, xml: str, scenario: Any, actor: str | None = None) -> dict[str, Any]:
    """Run a draft diagram against a scenario in a throw-away engine; see the module docstring. Never raises."""
    found = gateways(xml) if isinstance(xml, str) else []
    result: dict[str, Any] = {"ok": False, "process_key": None, "timezone": None, "problems": [],
                              "gateways": found, "steps": []}
    if not isinstance(xml, str) or not xml.strip():
        result["problems"] = [_problem("Нет схемы для симуляции")]
        return result
    try:
        checked = check_scenario(scenario, engine.clock.now(), lambda name: municipality_timezone(engine, name))
    except InvalidInput as exc:
        field_name, message = next(iter(exc.errors.items()), ("scenario", exc.message))
        result["problems"] = [{**_problem(message), "field": field_name}]
        return result
    result["timezone"] = checked.timezone
    try:
        with Simulator(engine, checked, actor) as simulator:
            simulator.run(xml, result)
    except Exception as exc:  # the simulation must answer, whatever the draft does
        log.exception("simulation failed")
        result["ok"] = False
        result["problems"].append(_problem(f"Симуляция прервана: {exc}"))
    return result


def municipality_timezone(engine: ProcessEngine, name: str) -> str | None:
    with engine.db.session() as session:
        return session.scalar(select(Municipality.timezone).where(Municipality.name == name))


@dataclass
class _Snapshot:
    """The state of the simulated instance after a step."""

    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    timers: list[dict[str, Any]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    ended: bool = False
    closed_rows: dict[str, tuple[str, str | None]] = field(default_factory=dict)


class Simulator:
    """One simulation: a throw-away engine on a temporary SQLite file, deleted on exit."""

    def __init__(self, real: ProcessEngine, scenario: Scenario, actor: str | None = None):
        self.real = real
        self.scenario = scenario
        self.tz = ZoneInfo(scenario.timezone)
        self.user = scenario.user or actor or DEFAULT_USER
        self.clock = FrozenClock(scenario.start)
        self._dir: str | None = None
        self.sim: ProcessEngine | None = None
        self.instance_id: int | None = None
        self._users: set[str] = set()

    def __enter__(self) -> Simulator:
        from engine import ProcessEngine

        self._dir = tempfile.mkdtemp(prefix="kurator-simulation-")
        url = f"sqlite:///{self._dir}/simulation.db"
        db = Database(url, engine=make_engine(url))
        db.upgrade()
        self.sim = ProcessEngine(db, self.clock)
        for provider in self.real.function_providers:  # a domain's functions read the real reference data
            self.sim.add_functions(provider)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.sim is not None:
            self.sim.db.dispose()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- set-up -------------------------------------------------------------------------------------------------

    def _copy_reference_data(self, draft_root) -> None:
        """Roles, calendar, latest forms and the latest versions of the processes the draft calls (transitively)."""
        with self.real.db.session() as real:
            roles = [(r.code, r.title) for r in real.scalars(select(Role))]
            overrides = [(r.day, r.is_working, r.comment) for r in real.scalars(select(CalendarOverride))]
            years = [(r.year, r.comment) for r in real.scalars(select(CalendarYear))]
            latest = (select(FormDefinition.key, func.max(FormDefinition.version).label("version"))
                      .group_by(FormDefinition.key).subquery())
            forms = real.scalars(select(FormDefinition).join(
                latest, (FormDefinition.key == latest.c.key) & (FormDefinition.version == latest.c.version))).all()
            forms = [(f.key, f.version, f.content_hash, f.schema, f.deployed_at, f.deployed_by) for f in forms]
            own = set(_executable(draft_root))
            wanted = sorted(_called_keys(draft_root) - own)
            processes: list[tuple] = []
            seen: set[str] = set(own)
            while wanted:
                key = wanted.pop()
                if key in seen:
                    continue
                seen.add(key)
                row = real.scalar(select(ProcessDefinition).options(undefer(ProcessDefinition.spec_json))
                                  .where(ProcessDefinition.key == key)
                                  .order_by(ProcessDefinition.version.desc()).limit(1))
                if row is None:
                    continue  # the deployment reports the missing called process
                resource = row.resource
                processes.append((row.key, row.version, row.name, row.content_hash, row.spec_json, row.warnings,
                                  row.deployed_at, row.deployed_by, row.comment, resource.name, resource.kind,
                                  resource.content_hash, resource.content, resource.created_at))
                called_root = _parse(resource.content)
                if called_root is not None:
                    wanted.extend(k for k in _called_keys(called_root) if k not in seen)
        with self.sim.db.session() as sim:
            sim.add_all(Role(code=code, title=title) for code, title in roles)
            sim.add_all(CalendarOverride(day=day, is_working=working, comment=comment)
                        for day, working, comment in overrides)
            sim.add_all(CalendarYear(year=year, comment=comment) for year, comment in years)
            sim.add_all(FormDefinition(key=key, version=version, content_hash=digest, schema=schema,
                                       deployed_at=at, deployed_by=by)
                        for key, version, digest, schema, at, by in forms)
            resources: dict[str, Resource] = {}
            for (key, version, name, digest, spec_json, warnings, at, by, comment, r_name, r_kind, r_digest,
                 r_content, r_at) in processes:
                resource = resources.get(r_digest)
                if resource is None:
                    resource = Resource(name=r_name, kind=r_kind, content_hash=r_digest, content=r_content,
                                        created_at=r_at)
                    sim.add(resource)
                    sim.flush()
                    resources[r_digest] = resource
                sim.add(ProcessDefinition(key=key, version=version, name=name, content_hash=digest,
                                          resource_id=resource.id, spec_json=spec_json, warnings=warnings,
                                          deployed_at=at, deployed_by=by, comment=comment))
        self.sim.forget_role_titles()
        self.sim.calendar.reload()

    def _apply_choices(self, key: str, found: list[dict[str, Any]]) -> None:
        """Rewrite the chosen gateways' conditions in the throw-away engine's stored spec: chosen flow True,
        every other flow False."""
        if not self.scenario.choices:
            return
        targets = {g["id"]: {f["id"]: f["target"] for f in g["flows"]} for g in found}
        chosen = {gateway: targets[gateway][flow] for gateway, flow in self.scenario.choices.items()}
        definition = self.sim.repository.definition(key)
        specs = json.loads(definition.spec_json)
        for process in [specs["spec"], *specs["subprocess_specs"].values()]:
            task_specs = process.get("task_specs", {})
            for spec in task_specs.values():
                target = chosen.get(spec.get("bpmn_id"))
                if target is None or "cond_task_specs" not in spec:
                    continue
                for item in spec["cond_task_specs"]:
                    name = item["task_spec"]
                    bpmn_id = task_specs.get(name, {}).get("bpmn_id")
                    hit = bpmn_id == target or name == target or name.startswith(f"{target}.")
                    item["condition"] = "True" if hit else "False"
        with self.sim.db.session() as sim:
            sim.execute(update(ProcessDefinition).where(ProcessDefinition.id == definition.id)
                        .values(spec_json=json.dumps(specs, separators=(",", ":"))))

    def _ensure_user(self, username: str, all_roles: bool = True) -> None:
        if username in self._users:
            return
        roles = sorted(self.sim.role_titles()) if all_roles else []
        try:
            self.sim.identity.add_user(username, roles, full_name="Пользователь симуляции")
        except InvalidInput:
            pass  # exists already
        self._users.add(username)

    # -- the run ------------------------------------------------------------------------------------------------

    def run(self, xml: str, result: dict[str, Any]) -> None:
        root = _parse(xml)
        found = result["gateways"]
        problems = _check_choices(self.scenario.choices, found)
        keys = executable_processes(xml)
        key = self.scenario.process or (keys[0] if keys else None)
        if self.scenario.process and self.scenario.process not in keys:
            problems.append(Problem("error", f"Процесса «{self.scenario.process}» нет в схеме; есть: "
                                             f"{', '.join(keys) or 'нет исполняемых процессов'}"))
        if root is not None:
            self._copy_reference_data(root)
        try:
            deployed = self.sim.repository.deploy([(f"{key or 'diagram'}.bpmn", xml)], deployed_by=self.user,
                                                  comment="симуляция")
            problems.extend(deployed.warnings)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
        result["problems"] = _problems(problems)
        result["process_key"] = key
        if key is None and not any(p.severity == "error" for p in problems):
            problems.append(Problem("error", "В схеме нет исполняемого процесса: отметьте процесс как "
                                             "исполняемый (isExecutable)"))
            result["problems"] = _problems(problems)
        if any(p.severity == "error" for p in problems):
            return
        self._apply_choices(key, found)
        self._ensure_user(self.user)
        steps = result["steps"]
        snapshot = _Snapshot()
        step, snapshot = self._record(0, "start", f"Старт {self._text(self.clock.now())}", snapshot,
                                      lambda: self._start(key))
        steps.append(step)
        for index, item in enumerate(self.scenario.steps, start=1):
            if step["error"] is not None or step["ended"] and item.kind != "advance":
                if step["error"] is None:
                    step = self._stopped(index, item, snapshot)
                    steps.append(step)
                break
            step, snapshot = self._run_step(index, item, snapshot)
            steps.append(step)
        result["ok"] = all(s["error"] is None for s in steps)

    def _stopped(self, index: int, item: Step, snapshot: _Snapshot) -> dict[str, Any]:
        step = self._state(index, item.kind, "Шаг не выполнен: процесс уже завершен", snapshot, snapshot, [])
        step["error"] = {"message": "Процесс уже завершен: после его окончания можно только переводить часы",
                         "element_id": item.target if item.kind == "complete" else None}
        return step

    def _start(self, key: str) -> dict[str, Any]:
        # like a real start, the instance knows its municipality (expressions look agencies up by it)
        variables = {"municipality": self.scenario.municipality, **self.scenario.variables}
        self.instance_id = self.sim.runtime.start(key, variables, business_key="simulation",
                                                  started_by=self.user, timezone=self.scenario.timezone)
        return {}

    def _run_step(self, index: int, item: Step, snapshot: _Snapshot):
        if item.kind == "complete":
            name = self._task_name(item.target, snapshot)
            return self._record(index, "complete", f"Выполнена задача «{name}»", snapshot,
                                lambda: self._complete(item, snapshot))
        if item.kind == "advance":
            target = self._advance_target(item.advance)
            day = (target.astimezone(self.tz).date() - self.scenario.start.astimezone(self.tz).date()).days
            text = f"Часы переведены на день {day} ({self._text(target)})"
            return self._record(index, "advance", text, snapshot, lambda: self._advance(target))
        if item.kind == "message":
            return self._record(index, "message", f"Получено сообщение «{item.target}»", snapshot,
                                lambda: self._message(item))
        return self._record(index, "signal", f"Получен сигнал «{item.target}»", snapshot, lambda: self._signal(item))

    def _record(self, index: int, kind: str, action: str, before: _Snapshot, do: Callable[[], dict]):
        """Run one step and describe the state after it (or the error and the state before it)."""
        extra: dict[str, Any] = {}
        error = None
        try:
            extra = do() or {}
        except KuratorError as exc:
            error = {"message": _russian(exc), "element_id": getattr(exc, "element_id", None)}
            extra = getattr(exc, "simulation_extra", {}) or {}
        except Exception as exc:  # an engine failure on an odd draft is a step error, not a crash
            log.exception("simulation step failed")
            error = {"message": f"Шаг не выполнен: {exc.__class__.__name__}: {exc}", "element_id": None}
        if error is not None and kind == "complete" and error["element_id"] is None:
            error["element_id"] = extra.get("element_id")
        after = self._snapshot() if self.instance_id is not None else _Snapshot()
        if error is not None and kind == "complete":
            action = action.replace("Выполнена задача", "Не выполнена задача", 1)
        step = self._state(index, kind, action, before, after, extra.get("timers_fired", []))
        step["filled"] = extra.get("filled") or {}
        step["error"] = error
        return step, after

    # -- actions ------------------------------------------------------------------------------------------------

    def _open_rows(self) -> list[HumanTask]:
        with self.sim.db.session() as session:
            rows = session.scalars(select(HumanTask).where(HumanTask.instance_id == self.instance_id,
                                                           HumanTask.status == "open")
                                   .order_by(HumanTask.created_at, HumanTask.id)).all()
            session.expunge_all()
            return list(rows)

    def _task_name(self, element: str, snapshot: _Snapshot) -> str:
        for task in snapshot.open.values():
            if task["element_id"] == element:
                return task["name"]
        return element

    def _complete(self, item: Step, snapshot: _Snapshot) -> dict[str, Any]:
        rows = [r for r in self._open_rows() if r.element_id == item.target]
        if not rows:
            open_now = ", ".join(f"{t['element_id']} («{t['name']}»)" for t in snapshot.open.values()) or "нет"
            raise _StepError(f"Задача «{item.target}» не открыта; открытые задачи: {open_now}", item.target)
        row = rows[0]
        now_local = self.clock.now().astimezone(self.tz)
        schema = self.sim.repository.form(row.form_key) if row.form_key else None
        data = dict(item.data or {})
        filled = {}
        for key, value in form_defaults(schema, now_local.date(), now_local).items():
            if key not in data and _required(schema, key):
                filled[key] = value
        data.update(filled)
        username = item.user
        if username is None:
            if row.assignee:
                username = row.assignee
            elif not row.candidate_roles and row.candidate_users:
                username = row.candidate_users[0]
            else:
                username = self.user
        self._ensure_user(username, all_roles=username == self.user or item.user is not None)
        try:
            self.sim.tasks.complete(row.id, username, data)
        except InvalidInput as exc:
            fields = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
            raise _StepError(f"Данные формы «{row.name}» не приняты: {fields or exc.message}", row.element_id,
                             {"filled": filled}) from None
        except KuratorError as exc:
            raise _StepError(_russian(exc), getattr(exc, "element_id", None) or row.element_id,
                             {"filled": filled}) from None
        return {"filled": filled, "element_id": row.element_id}

    def _advance_target(self, advance: tuple[str, Any]) -> datetime:
        kind, value = advance
        now = self.clock.now()
        if kind == "delta":
            return now + value
        if kind == "to":
            return value.astimezone(timezone.utc)
        start = self.scenario.start.astimezone(self.tz)
        day = datetime.combine(start.date() + timedelta(days=value), start.timetz().replace(tzinfo=None), self.tz)
        return day.astimezone(timezone.utc)

    def _advance(self, target: datetime) -> dict[str, Any]:
        now = self.clock.now()
        if target < now:
            raise _StepError(f"Часы нельзя перевести назад: сейчас {self._text(now)}, запрошено "
                             f"{self._text(target)}", None)
        fired: list[dict[str, Any]] = []
        previous = None
        for _ in range(MAX_TIMER_FIRINGS):
            wakeup = self._next_wakeup()
            if wakeup is None or wakeup > target:
                break
            # SpiffWorkflow fires a timer strictly after its instant: one second later, as a sweep would
            self.clock.set(max(wakeup + timedelta(seconds=1), self.clock.now()))
            now_fired = self._fire_timers()
            if not now_fired and wakeup == previous:
                break  # a wake-up with nothing to fire: nothing more will happen before the target
            previous = wakeup
            fired.extend(now_fired)
        else:
            raise _StepError(f"Больше {MAX_TIMER_FIRINGS} срабатываний таймеров за один перевод часов: "
                             f"проверьте циклы таймеров", None, {"timers_fired": fired})
        self.clock.set(max(target, self.clock.now()))
        self.sim.management.mark_overdue()
        return {"timers_fired": fired}

    def _next_wakeup(self) -> datetime | None:
        with self.sim.db.session() as session:
            return session.scalar(select(ProcessInstance.next_wakeup)
                                  .where(ProcessInstance.id == self.instance_id, ProcessInstance.status == "running"))

    def _fire_timers(self) -> list[dict[str, Any]]:
        """Fire the timers due now, as the scheduler's sweep does, but with errors tied to their element."""
        executor = self.sim.executor
        with executor.operation(self.instance_id, "scheduler", what="timer") as loaded:
            waiting = {t["element_id"]: t for t in self._timers(loaded.workflow)}
            elements = executor.fire_due_timers(loaded)
        return [waiting.get(e) or {"element_id": e, "name": e, "at": self.clock.now().astimezone(self.tz).isoformat(),
                                   "at_text": self._text(self.clock.now())} for e in elements]

    def _message(self, item: Step) -> dict[str, Any]:
        self.sim.runtime.correlate_message(item.target, item.data, instance_id=self.instance_id,
                                           actor=item.user or self.user)
        return {}

    def _signal(self, item: Step) -> dict[str, Any]:
        self.sim.runtime.send_signal(item.target, item.data, instance_id=self.instance_id,
                                     actor=item.user or self.user)
        return {}

    # -- the state after a step ---------------------------------------------------------------------------------

    def _snapshot(self) -> _Snapshot:
        roles = self.sim.role_titles()
        now_local = self.clock.now().astimezone(self.tz)
        snapshot = _Snapshot()
        with self.sim.db.session() as session:
            row = session.get(ProcessInstance, self.instance_id)
            loaded = self.sim.executor.load(session, row)
            workflow = loaded.workflow
            for task_row in session.scalars(select(HumanTask).where(HumanTask.instance_id == self.instance_id,
                                                                    HumanTask.status == "open")
                                            .order_by(HumanTask.created_at, HumanTask.id)):
                task = workflow.get_task_from_id(UUID(task_row.id))
                schema = self.sim.repository.form(task_row.form_key) if task_row.form_key else None
                snapshot.open[task_row.id] = {
                    "task_id": task_row.id,
                    "element_id": task_row.element_id,
                    "name": task_row.name,
                    "roles": list(task_row.candidate_roles or []),
                    "role_titles": [roles.get(r, r) for r in task_row.candidate_roles or []],
                    "assignee": task_row.assignee,
                    "candidate_users": list(task_row.candidate_users or []),
                    "due": task_row.due.astimezone(self.tz).isoformat() if task_row.due else None,
                    "due_text": self._text(task_row.due, weekday=True) if task_row.due else "без срока",
                    "overdue": bool(task_row.overdue),
                    "opened_at": task_row.created_at.astimezone(self.tz).isoformat(),
                    "form_key": task_row.form_key,
                    "path": _path(workflow, task) if task is not None else [],
                    "defaults": form_defaults(schema, now_local.date(), now_local),
                }
            snapshot.timers = self._timers(workflow)
            snapshot.completed = sorted(completed_elements(workflow))
            snapshot.ended = row.status != "running"
            snapshot.closed_rows = {
                r.id: (r.status, r.completed_by) for r in session.scalars(
                    select(HumanTask).where(HumanTask.instance_id == self.instance_id, HumanTask.status != "open"))}
        return snapshot

    def _timers(self, workflow) -> list[dict[str, Any]]:
        timers = []
        for task in workflow.get_tasks(state=TaskState.WAITING):
            if not isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition):
                continue
            spec = task.task_spec
            value = task.internal_data.get("event_value")
            if isinstance(value, dict):
                value = value.get("next")
            at = None
            if isinstance(value, str):
                try:
                    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    at = None
            element = getattr(spec, "bpmn_id", None) or spec.name
            timers.append({"element_id": element, "name": spec.bpmn_name or element,
                           "at": at.astimezone(self.tz).isoformat() if at else None,
                           "at_text": self._text(at, weekday=True) if at else "—", "path": _path(workflow, task)})
        return timers

    def _state(self, index: int, kind: str, action: str, before: _Snapshot, after: _Snapshot,
               timers_fired: list[dict[str, Any]]) -> dict[str, Any]:
        now = self.clock.now()
        opened = [t for task_id, t in after.open.items() if task_id not in before.open]
        closed = []
        closed_rows = after.closed_rows
        for task_id, task in before.open.items():
            if task_id not in after.open:
                status, by = closed_rows.get(task_id, ("completed", None))
                closed.append({"element_id": task["element_id"], "name": task["name"], "status": status, "by": by})
        start_date = self.scenario.start.astimezone(self.tz).date()
        return {
            "index": index,
            "kind": kind,
            "action": action,
            "at": now.astimezone(self.tz).isoformat(),
            "at_text": self._text(now),
            "day": (now.astimezone(self.tz).date() - start_date).days,
            "opened": opened,
            "open": list(after.open.values()),
            "closed": closed,
            "timers_waiting": after.timers,
            "timers_fired": timers_fired,
            "completed_elements": after.completed,
            "ended": after.ended,
            "filled": {},
            "error": None,
        }

    def _text(self, at: datetime, weekday: bool = False) -> str:
        local = at.astimezone(self.tz)
        text = f"{local:%d.%m.%Y %H:%M}"
        return f"{_WEEKDAYS[local.weekday()]} {text}" if weekday else text


def _required(schema: dict[str, Any] | None, key: str) -> bool:
    component = input_fields(schema or {}).get(key) or {}
    return bool((component.get("validate") or {}).get("required")) and component.get("defaultValue") in (None, "")


def _path(workflow, task) -> list[str]:
    """The call activities and subprocesses around a task, outermost first (empty for a top-level task)."""
    path: list[str] = []
    current = task.workflow
    for _ in range(50):
        parent_id = getattr(current, "parent_task_id", None)
        if parent_id is None or current is workflow:
            break
        parent = workflow.get_task_from_id(parent_id)
        if parent is None:
            break
        path.insert(0, getattr(parent.task_spec, "bpmn_id", None) or parent.task_spec.name)
        current = parent.workflow
    return path


class _StepError(KuratorError):
    """A step that cannot be done, with a Russian message for the methodologist."""

    def __init__(self, message: str, element_id: str | None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.element_id = element_id
        self.simulation_extra = extra or {}


def _russian(exc: KuratorError) -> str:
    if isinstance(exc, _StepError):
        return exc.message
    if isinstance(exc, ExecutionError):
        return f"Ошибка выполнения схемы: {exc.message}"
    return f"Шаг не выполнен: {exc.message}"


__all__ = ["MAX_STEPS", "Scenario", "Simulator", "check_scenario", "form_defaults", "gateways", "municipality_timezone",
           "simulate"]
