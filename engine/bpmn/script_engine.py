"""Expression and script evaluation for diagrams: Camunda-style expressions run in the sandbox.

Diagram expressions come in three shapes, all accepted:

* `${expr}` / `#{expr}` (Camunda's JUEL notation): the inside is evaluated; `&&`, `||`, `!`, `true`,
  `false` and `null` are translated to Python;
* plain Python expressions (SpiffWorkflow's own diagrams);
* ISO 8601 literals in timer definitions (`2026-01-12T09:00:00`, `P5D`, `R3/PT1H`), returned as text.

Everything runs through `engine.sandbox.Sandbox` with the domain functions (calendar) injected.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from ..clock import Clock
from ..sandbox import Sandbox, SandboxError, check

CURRENT_CLOCK: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("kurator_clock", default=None)

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_ISO_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_ISO_CYCLE = re.compile(r"^R\d*/[^/\s]+(/[^/\s]+)?$")
_JUEL = re.compile(r"^\s*[$#]\{(?P<body>.*)\}\s*$", re.S)
_STRING = re.compile(r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
_JUEL_WORDS = (
    (re.compile(r"&&"), " and "),
    (re.compile(r"\|\|"), " or "),
    (re.compile(r"!(?!=)"), " not "),
    (re.compile(r"\btrue\b"), "True"),
    (re.compile(r"\bfalse\b"), "False"),
    (re.compile(r"\bnull\b"), "None"),
)


class _EngineDatetime(datetime):
    """`datetime` whose `now()` reads the engine clock of the current engine call."""

    @classmethod
    def now(cls, tz=None):  # noqa: D102 - same contract as datetime.now
        clock = CURRENT_CLOCK.get()
        if clock is None:
            return datetime.now(tz)
        current = clock.now()
        return current.astimezone(tz) if tz is not None else current.astimezone().replace(tzinfo=None)


# SpiffWorkflow's timers call `datetime.now(timezone.utc)` in this one module; point it at the engine clock.
spiff_timer.datetime = _EngineDatetime


def is_iso_literal(text: str) -> bool:
    """Whether a timer definition is an ISO 8601 date/time, duration or repeating interval."""
    value = text.strip()
    return bool(_ISO_DATETIME.match(value) or _ISO_DURATION.match(value.upper()) or _ISO_CYCLE.match(value))


def to_python(expression: str) -> str:
    """Translate a Camunda `${...}` expression into the Python the sandbox runs; plain Python is kept."""
    match = _JUEL.match(expression)
    if not match:
        return expression.strip()
    body = match.group("body")
    parts = _STRING.split(body)
    for index in range(0, len(parts), 2):  # even parts are outside string literals
        for pattern, replacement in _JUEL_WORDS:
            parts[index] = pattern.sub(replacement, parts[index])
    return "".join(parts).strip()


def check_expression(expression: str) -> None:
    """Deploy-time check of an expression: raises `SandboxError` with a readable message."""
    if is_iso_literal(expression):
        return
    check(to_python(expression), "eval")


def check_script(script: str) -> None:
    """Deploy-time check of a script task's script."""
    check(script, "exec")


# provider(variables, tz name, now) -> {name: function}: functions bound to the instance being evaluated
FunctionProvider = Callable[[Mapping[str, Any], str, Callable[[], Any]], Mapping[str, Callable[..., Any]]]


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow's evaluation environment, backed by the sandbox (some Spiff code calls it directly)."""

    def __init__(self, sandbox: Sandbox, functions: Callable[[Mapping[str, Any]], Mapping[str, Callable[..., Any]]]):
        super().__init__({})
        self.sandbox = sandbox
        self.functions = functions

    def evaluate(self, expression, context, external_context=None):
        variables = {**context, **(external_context or {})}
        return self.sandbox.evaluate(to_python(expression), variables, self.functions(variables))

    def execute(self, script, context, external_context=None):
        self.sandbox.execute(script, context, {**self.functions(context), **(external_context or {})})
        return True

    def call_service(self, context, **kwargs):
        raise SandboxError("Service tasks are not supported: model the step as a user task or a script")


class KuratorScriptEngine(PythonScriptEngine):
    """SpiffWorkflow script engine that evaluates everything in the sandbox with the domain functions."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]], tz: str = "Europe/Moscow",
                 sandbox: Sandbox | None = None, providers: Sequence[FunctionProvider] = (),
                 now: Callable[[], Any] | None = None):
        self.functions = dict(functions)
        self.tz = ZoneInfo(tz)
        self.tz_name = tz
        self.sandbox = sandbox or Sandbox()
        self.providers = tuple(providers)
        self.now = now
        super().__init__(environment=SandboxEnvironment(self.sandbox, self.functions_for))

    def functions_for(self, variables: Mapping[str, Any]) -> Mapping[str, Callable[..., Any]]:
        """The functions an evaluation may call: the engine's, and the providers' bound to these variables."""
        if not self.providers:
            return self.functions
        functions = dict(self.functions)
        for provider in self.providers:
            functions.update(provider(variables, self.tz_name, self.now))
        return functions

    def evaluate(self, task, expression, external_context=None):
        if expression is None or not str(expression).strip():
            return None
        if is_iso_literal(expression):
            return self._literal(expression)
        variables = dict(task.data)
        if external_context:
            variables.update(external_context)
        try:
            result = self.sandbox.evaluate(to_python(expression), variables, self.functions_for(variables))
        except SandboxError as exc:
            raise WorkflowTaskException(f"Error evaluating expression '{expression}': {exc}",
                                        task=task, exception=exc) from exc
        if _is_timer_expression(task, expression):
            return self._timer_value(result)
        return result

    def execute(self, task, script, external_context=None):
        functions = dict(self.functions_for(task.data))
        if external_context:
            functions.update(external_context)
        try:
            self.sandbox.execute(script, task.data, functions)
        except SandboxError as exc:
            line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
            raise WorkflowTaskException(f"Script error{line}: {exc}", task=task, exception=exc) from exc
        return True

    def evaluate_value(self, expression: str, variables: Mapping[str, Any]) -> Any:
        """Evaluate a Camunda attribute expression (assignee, due date…) against instance variables."""
        if is_iso_literal(expression):
            return self._literal(expression)
        return self.sandbox.evaluate(to_python(expression), dict(variables), self.functions_for(variables))

    def _literal(self, text: str) -> str:
        value = text.strip()
        if _ISO_DATETIME.match(value):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
            if parsed.tzinfo is None:  # a naive date/time means the case's local time
                parsed = parsed.replace(tzinfo=self.tz)
            return parsed.astimezone(timezone.utc).isoformat()
        return value

    def _timer_value(self, result: Any) -> Any:
        if isinstance(result, datetime):
            if result.tzinfo is None:
                result = result.replace(tzinfo=self.tz)
            return result.astimezone(timezone.utc).isoformat()
        if isinstance(result, date):
            return datetime.combine(result, datetime.min.time(), self.tz).astimezone(timezone.utc).isoformat()
        if isinstance(result, str) and is_iso_literal(result):
            return self._literal(result)
        return result


def _is_timer_expression(task, expression: str) -> bool:
    definition = getattr(task.task_spec, "event_definition", None)
    return isinstance(definition, TimerEventDefinition) and definition.expression == expression
