"""Kurator's own deploy-time rules on parsed specs and forms, reported as `Problem`s with element ids."""

from __future__ import annotations

import json
import re
from typing import Any

from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask, StandardLoopTask
from SpiffWorkflow.bpmn.specs.mixins.script_task import ScriptTask
from SpiffWorkflow.specs.MultiChoice import MultiChoice

from ..errors import Problem
from ..forms import normalize_form_key
from ..sandbox import SandboxError
from .script_engine import check_expression, check_script, is_iso_literal
from .specs import KuratorUserTask

_CRON = re.compile(r"^\S+(\s+\S+){4,6}$")
_ISO_ATTEMPT = re.compile(r"^(P[\dT]|R\d*/|\d{4}-)", re.I)


# Known parser failures, with a Russian explanation; `{0}` is the first group of the match.
_PARSER_MESSAGES_RU = [
    (re.compile(r"When looking for a task spec, we found two items.*\((.+?)\)", re.S),
     "Поток ведет к элементу «{0}», которого нет в процессе, или этот id повторяется: проверьте, что элемент "
     "существует и его id уникален."),
    (re.compile(r"The process '(.+?)' was not found"),
     "Вызываемый процесс «{0}» не найден: разверните его вместе с этой схемой или исправьте calledElement."),
    (re.compile(r"No start event found"),
     "В процессе нет начального события: добавьте начальное событие."),
    (re.compile(r"Time Specification Error"),
     "Таймер задан неверно: укажите дату, длительность или цикл (например, P5D или ${{working_days(3)}})."),
    (re.compile(r"There is no support implemented for this task type"),
     "Движок не умеет исполнять элементы этого типа: замените элемент задачей, шлюзом или событием, которые "
     "он поддерживает."),
    (re.compile(r"Multiple outgoing flows are not supported for tasks"),
     "У задачи несколько исходящих потоков без шлюза: поставьте после нее шлюз."),
]


def parser_message_ru(message: str) -> str:
    """A Russian lead for a parser message (English, from SpiffWorkflow), followed by the original detail."""
    for pattern, text in _PARSER_MESSAGES_RU:
        match = pattern.search(message)
        if match:
            lead = text.format(*(match.groups() or ("",)))
            break
    else:
        lead = "Движок не может разобрать схему: исправьте элемент, указанный в сообщении."
    return f"{lead} Подробности: {message}"


def problem_from_exception(exc: Exception, file: str, element_id: str | None = None, tree=None) -> Problem:
    """A parser failure, however foreign the input, as a readable problem."""
    if isinstance(exc, ValidationException):
        message = str(exc.args[0]).strip() if exc.args else str(exc)
        line = f" (line {exc.line_number})" if getattr(exc, "line_number", "") else ""
        element = getattr(exc, "id", None) or _called_element(message, tree) or element_id
        return Problem("error", f"{message}{line}", element_id=element, file=file or getattr(exc, "file_name", None),
                       message_ru=parser_message_ru(f"{message}{line}"))
    detail = str(exc) or exc.__class__.__name__
    return Problem("error", f"The diagram uses a construct the engine cannot execute ({exc.__class__.__name__}: "
                            f"{detail}); simplify the element or remove it", element_id=element_id, file=file,
                   message_ru=f"На схеме есть конструкция, которую движок не может исполнить: упростите или удалите "
                              f"элемент. Подробности: {exc.__class__.__name__}: {detail}")


def _called_element(message: str, tree) -> str | None:
    """The call activity that names a process the parser did not find."""
    match = re.search(r"The process '(.+?)' was not found", message)
    if match is None or tree is None:
        return None
    for element in tree.iter("{*}callActivity"):
        if element.get("calledElement") == match.group(1):
            return element.get("id")
    return None


def unsupported_element(exc: Exception, spec, subprocess_specs: dict, file: str) -> Problem:
    """A spec the serializer cannot store: name the element type (and the first element of that type)."""
    match = re.search(r"Object of type (\w+) is not JSON serializable", str(exc))
    if not match:
        return Problem("error", f"The process cannot be stored: {exc}", element_id=spec.name, file=file,
                       message_ru=f"Процесс не удается сохранить: упростите схему. Подробности: {exc}")
    type_name = match.group(1)
    element = spec.name
    for process in [spec, *subprocess_specs.values()]:
        for task_spec in (process.task_specs.values() if process is not None else []):
            if type(task_spec).__name__ == type_name or type(getattr(task_spec, "event_definition", None)).__name__ \
                    == type_name:
                element = getattr(task_spec, "bpmn_id", None) or task_spec.name
                break
    hint = {"ServiceTask": "service tasks are not supported: use a user task or a script task"}.get(
        type_name, f"elements of type {type_name} are not supported by the engine")
    hint_ru = {"ServiceTask": "сервисные задачи не поддерживаются: используйте пользовательскую задачу или "
                              "задачу-скрипт"}.get(type_name, f"элементы типа {type_name} движок не поддерживает: "
                                                              f"замените элемент")
    return Problem("error", f"The diagram cannot be executed: {hint}", element_id=element, file=file,
                   message_ru=f"Схему нельзя исполнить: {hint_ru}.")


def check_form(name: str, text: str, problems: list[Problem]) -> dict[str, Any] | None:
    """A form-js schema: a JSON object with a list of components whose keys are unique."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(Problem("error", f"Not valid JSON: {exc.msg} at line {exc.lineno}", file=name,
                                message_ru=f"Форма не читается как JSON: ошибка в строке {exc.lineno} ({exc.msg})."))
        return None
    if not isinstance(schema, dict) or not isinstance(schema.get("components"), list):
        problems.append(Problem("error", "A form definition must be a JSON object with a 'components' list "
                                         "(form-js schema)", file=name,
                                message_ru="Описание формы должно быть JSON-объектом со списком components "
                                           "(схема form-js)."))
        return None
    seen: set[str] = set()

    def walk(components):
        for component in components:
            if not isinstance(component, dict):
                problems.append(Problem("error", "Every form component must be a JSON object", file=name,
                                        message_ru="Каждое поле формы должно быть JSON-объектом."))
                continue
            key = component.get("key")
            if key is not None:
                if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
                    problems.append(Problem("error", f"Field key '{key}' must be a name of Latin letters, digits "
                                                     f"and '_' not starting with '_'", file=name, element_id=key,
                                            message_ru=f"Ключ поля «{key}» должен состоять из латинских букв, цифр "
                                                       f"и «_» и не начинаться с «_»."))
                elif key in seen:
                    problems.append(Problem("error", f"Field key '{key}' is used twice", file=name,
                                            element_id=key, message_ru=f"Ключ поля «{key}» встречается дважды: "
                                                                       f"ключи полей формы должны быть разными."))
                seen.add(str(key))
            if isinstance(component.get("components"), list):
                walk(component["components"])

    before = len(problems)
    walk(schema["components"])
    return schema if len(problems) == before else None


def check_specs(spec, subprocess_specs: dict, file: str, known_forms: set[str], roles: dict[str, str],
                problems: list[Problem]) -> None:
    """Kurator rules over a process spec and the specs it calls."""
    for process in [spec, *subprocess_specs.values()]:
        if process is None:
            continue
        for task_spec in process.task_specs.values():
            element = getattr(task_spec, "bpmn_id", None) or task_spec.name
            label = task_spec.bpmn_name or element

            def report(message: str, message_ru: str, severity: str = "error", _element=element) -> None:
                problems.append(Problem(severity, message, element_id=_element, file=file, message_ru=message_ru))

            if getattr(task_spec, "bpmn_id", None) and task_spec.bpmn_id == process.name:
                # ids are unique in a BPMN file (xsd:ID); the engine would run it, but bpmn-js (the modeler and the
                # case file's diagram) resolves the id to the process and draws none of the flows to the element
                report(f"Element '{label}' has the id of its process '{process.name}': element ids must be unique "
                       f"in the file; give the element an id of its own",
                       f"Элемент «{label}» имеет тот же id, что и его процесс («{process.name}»): id элементов в "
                       f"файле не должны повторяться, иначе схему нельзя показать и отредактировать. Задайте "
                       f"элементу собственный id.")

            if isinstance(task_spec, KuratorUserTask):
                _check_user_task(task_spec, label, known_forms, roles, report)
            if isinstance(task_spec, ScriptTask):
                _check(check_script, task_spec.script or "", f"Script of '{label}'", f"Скрипт задачи «{label}»",
                       report)
            if isinstance(task_spec, MultiChoice):
                for condition, _target in task_spec.cond_task_specs:
                    text = condition if isinstance(condition, str) else (getattr(condition, "args", None) or [None])[0]
                    if isinstance(text, str):
                        _check(check_expression, text, f"Condition on a flow out of '{label}'",
                               f"Условие на потоке из «{label}»", report)
            if isinstance(task_spec, (MultiInstanceTask, StandardLoopTask)):
                for attr, attr_ru in (("cardinality", "Число повторений"), ("condition", "Условие завершения")):
                    value = getattr(task_spec, attr, None)
                    if isinstance(value, str) and value.strip():
                        _check(check_expression, value, f"Loop {attr} of '{label}'", f"{attr_ru} цикла «{label}»",
                               report)
            for attr, attr_ru in (("prescript", "Скрипт перед выполнением"), ("postscript", "Скрипт после выполнения")):
                value = getattr(task_spec, attr, None)
                if isinstance(value, str) and value.strip():
                    _check(check_script, value, f"The {attr} of '{label}'", f"{attr_ru} «{label}»", report)
            definition = getattr(task_spec, "event_definition", None)
            if definition is not None:
                _check_event(definition, label, report)


_ATTRIBUTES_RU = {"assignee": "Исполнитель (camunda:assignee)", "candidateGroups": "Группы (camunda:candidateGroups)",
                  "candidateUsers": "Пользователи (camunda:candidateUsers)", "dueDate": "Срок (camunda:dueDate)",
                  "followUpDate": "Дата напоминания (camunda:followUpDate)", "priority": "Приоритет (camunda:priority)",
                  "agency": "Орган-адресат (свойство agency)"}


def _check_user_task(task_spec, label, known_forms, roles, report) -> None:
    attrs = task_spec.camunda
    for name in ("assignee", "candidateGroups", "candidateUsers", "dueDate", "followUpDate", "priority", "agency"):
        value = attrs.get(name)
        if value and ("${" in value or "#{" in value or name in ("dueDate", "followUpDate", "agency")):
            _check(check_expression, value, f"camunda:{name} of '{label}'", f"{_ATTRIBUTES_RU[name]} задачи «{label}»",
                   report)
    groups = [g.strip() for key in ("candidateGroups", "agencyFallbackGroups")
              for g in attrs.get(key, "").split(",") if g.strip() and "{" not in g]
    known = ", ".join(sorted(roles))
    for group in groups:
        if group not in roles:
            report(f"Candidate group '{group}' of '{label}' is not a known role; known roles: {known}",
                   f"Группа «{group}» задачи «{label}» не является известной ролью: задача никому не попадет. "
                   f"Известные роли: {known}.", "warning")
    if not (task_spec.lane or attrs.get("candidateGroups") or attrs.get("assignee") or attrs.get("candidateUsers")):
        report(f"User task '{label}' has no lane, candidate group or assignee: it will be offered to the "
               f"'admin' role",
               f"У задачи «{label}» нет дорожки, группы или исполнителя: она попадет администраторам (роль admin). "
               f"Поместите задачу на дорожку роли или задайте camunda:candidateGroups.", "warning")
    elif task_spec.lane and not attrs.get("candidateGroups") and resolve_role(task_spec.lane, roles) is None:
        report(f"Lane '{task_spec.lane}' of '{label}' is not a known role: its tasks go to role "
               f"'{task_spec.lane}'",
               f"Дорожка «{task_spec.lane}» задачи «{label}» не совпадает ни с одной ролью: задача уйдет роли "
               f"«{task_spec.lane}». Назовите дорожку кодом или названием роли (известные роли: {known}).", "warning")
    form_key = task_spec.form.key if task_spec.form is not None else ""
    if form_key and not task_spec.form.fields and normalize_form_key(form_key) not in known_forms:
        report(f"Form '{form_key}' of '{label}' is not deployed: deploy forms/{normalize_form_key(form_key)}.json "
               f"together with the diagram",
               f"Форма «{form_key}» задачи «{label}» не развернута: разверните forms/"
               f"{normalize_form_key(form_key)}.json вместе со схемой или исправьте camunda:formKey.")


def _check_event(definition, label, report) -> None:
    if isinstance(definition, MultipleEventDefinition):
        for inner in definition.event_definitions:
            _check_event(inner, label, report)
        return
    if isinstance(definition, TimerEventDefinition):
        _check_timer(definition, label, report)
    elif isinstance(definition, ConditionalEventDefinition):
        _check(check_expression, definition.expression or "", f"Condition of '{label}'",
               f"Условие события «{label}»", report)
    else:
        expression = getattr(definition, "expression", None)
        if isinstance(expression, str) and expression.strip():
            _check(check_expression, expression, f"Message expression of '{label}'",
                   f"Выражение сообщения события «{label}»", report)


def _check_timer(definition: TimerEventDefinition, label: str, report) -> None:
    expression = (definition.expression or "").strip()
    if not expression:
        report(f"Timer '{label}' has no time, duration or cycle",
               f"У таймера «{label}» не задано ни время, ни длительность, ни цикл: укажите, например, P5D или "
               f"${{working_days(3)}}.")
        return
    looks_iso = bool(_ISO_ATTEMPT.match(expression))
    if is_iso_literal(expression) or looks_iso:
        try:
            if not is_iso_literal(expression):
                raise ValueError(expression)
            if isinstance(definition, CycleTimerEventDefinition):
                TimerEventDefinition.parse_iso_recurring_interval(expression)
            elif isinstance(definition, DurationTimerEventDefinition):
                TimerEventDefinition.parse_iso_duration(expression)
            else:
                TimerEventDefinition.parse_time_or_duration(expression)
        except Exception:
            report(f"Timer '{label}': '{expression}' is not a valid ISO 8601 value (e.g. 2026-01-12T09:00:00, "
                   f"P5D, R3/PT1H)",
                   f"Таймер «{label}»: «{expression}» не является значением ISO 8601; примеры: 2026-01-12T09:00:00 "
                   f"(дата), P5D (5 дней), R3/PT1H (3 раза каждый час).")
        return
    if _CRON.match(expression) and not any(ch in expression for ch in "()[]"):
        report(f"Timer '{label}': cron expressions ('{expression}') are not supported; use an ISO 8601 "
               f"repeating interval such as R/P1D or a calendar function such as ${{working_days(3)}}",
               f"Таймер «{label}»: выражения cron («{expression}») не поддерживаются; используйте повторяющийся "
               f"интервал ISO 8601, например R/P1D, или функцию календаря, например ${{working_days(3)}}.")
        return
    _check(check_expression, expression, f"Timer '{label}'", f"Таймер «{label}»", report)


def _check(checker, source: str, what: str, what_ru: str, report) -> None:
    try:
        checker(source)
    except SandboxError as exc:
        report(f"{what}: {exc}", f"{what_ru}: выражение не проходит проверку (ошибка в записи или запрещенная "
                                 f"конструкция), исправьте его. Подробности: {exc}")
    except Exception as exc:  # pragma: no cover - the checker must not crash on odd input
        report(f"{what}: cannot be checked ({exc})", f"{what_ru}: выражение не удается проверить ({exc}).")


def resolve_role(lane: str | None, roles: dict[str, str]) -> str | None:
    """The role code a lane name stands for: its code or its title, case-insensitively."""
    if not lane:
        return None
    wanted = lane.strip().casefold()
    for code, title in roles.items():
        if wanted in (code.casefold(), title.casefold()):
            return code
    return None
