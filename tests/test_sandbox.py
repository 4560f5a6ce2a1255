"""Tests of the restricted evaluator for diagram expressions and scripts (engine/sandbox.py)."""

from __future__ import annotations

import copy
import functools
import sys
from datetime import date, timedelta
from decimal import Decimal

import pytest

from engine.sandbox import (
    Sandbox,
    SandboxError,
    SandboxLimitError,
    SandboxRuntimeError,
    SandboxSyntaxError,
    _compile,
    check,
)


def working_days(days: int) -> date:
    """A stand-in for the engine's calendar function."""
    return date(2024, 1, 1) + timedelta(days=days)


FUNCTIONS = {"working_days": working_days}


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture
def small() -> Sandbox:
    """A sandbox with a small step limit so that endless loops stop fast on any machine."""
    return Sandbox(max_steps=2_000)


# ------------------------------------------------------------------------------------------ expressions


def test_simple_expressions(sandbox):
    variables = {"amount": 1500, "region": "EU", "items": [1, 2, 3]}
    assert sandbox.evaluate("amount > 1000 and region == 'EU'", variables) is True
    assert sandbox.evaluate("amount < 1000 or len(items) > 5", variables) is False
    assert sandbox.evaluate("sum(i * 2 for i in items)", variables) == 12
    assert sandbox.evaluate("sorted(['b', 'A'], key=str.lower)", {}) == ["A", "b"]
    assert sandbox.evaluate("f'{amount:>6}|{region!r}'", variables) == "  1500|'EU'"
    assert sandbox.evaluate("'{0}-{1:>3}'.format(amount, region)", variables) == "1500- EU"
    assert sandbox.evaluate("isinstance(region, str) and isinstance(amount, int)", variables) is True
    assert sandbox.evaluate("Decimal('1.10') + Decimal('2.20')", {}) == Decimal("3.30")
    assert sandbox.evaluate("[*items, *range(2)]", variables) == [1, 2, 3, 0, 1]


def test_dates(sandbox):
    assert sandbox.evaluate("date.today() - timedelta(days=1) < date.today()", {}) is True
    expression = "datetime.strptime('2024-01-02', '%Y-%m-%d').strftime('%d.%m.%Y')"
    assert sandbox.evaluate(expression, {}) == "02.01.2024"


def test_functions_are_callable_by_name(sandbox):
    assert sandbox.evaluate("working_days(5)", {}, FUNCTIONS) == date(2024, 1, 6)
    assert sandbox.evaluate("working_days(n) + timedelta(days=1)", {"n": 1}, FUNCTIONS) == date(2024, 1, 3)


def test_function_wins_over_variable_of_the_same_name(sandbox):
    assert sandbox.evaluate("working_days(1)", {"working_days": 3}, FUNCTIONS) == date(2024, 1, 2)


def test_expression_does_not_change_variables(sandbox):
    variables = {"items": [1, 2]}
    assert sandbox.evaluate("items.append(3) or len(items)", variables) == 3
    assert variables == {"items": [1, 2]}


def test_result_is_returned_as_is(sandbox):
    assert sandbox.evaluate("{'a': [1, (2, 3)]}", {}) == {"a": [1, (2, 3)]}


def test_statement_in_expression(sandbox):
    with pytest.raises(SandboxSyntaxError, match="expression is expected"):
        sandbox.evaluate("x = 1", {})


def test_compiled_code_is_cached(sandbox):
    sandbox.evaluate("amount + 1", {"amount": 1})
    before = _compile.cache_info().hits
    for value in range(5):
        assert sandbox.evaluate("amount + 1", {"amount": value}) == value + 1
    assert _compile.cache_info().hits == before + 5


# -------------------------------------------------------------------------------------------- scripts


def test_script_creates_changes_and_deletes_variables(sandbox):
    keep = {"nested": [1]}
    variables = {"count": 1, "old": "x", "keep": keep, "items": [1, 2], "_private": 7}
    script = (
        "count = count + 1\n"
        "items.append(3)\n"
        "del old\n"
        "total = sum(items)\n"
        "report = {'total': total, 'due': working_days(2)}\n"
        "report['ok'] = True\n"
        "helper = lambda x: x\n"
        "lazy = map(str, items)\n"
    )
    sandbox.execute(script, variables, FUNCTIONS)
    assert variables == {
        "count": 2,
        "keep": {"nested": [1]},
        "items": [1, 2, 3],
        "_private": 7,
        "total": 6,
        "report": {"total": 6, "due": date(2024, 1, 3), "ok": True},
    }
    assert variables["keep"] is keep  # untouched values stay the same objects
    assert "working_days" not in variables


def test_script_functions_loops_and_exceptions(sandbox):
    variables = {"values": [3, 1, 2]}
    script = (
        "def double(x):\n"
        "    return x * 2\n"
        "result = []\n"
        "for i, v in enumerate(sorted(values)):\n"
        "    result.append((i, double(v)))\n"
        "a, *rest = values\n"
        "n = 0\n"
        "while n < 3:\n"
        "    n += 1\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError as e:\n"
        "    message = str(e)\n"
    )
    sandbox.execute(script, variables)
    assert variables["result"] == [(0, 2), (1, 4), (2, 6)]
    assert (variables["a"], variables["rest"], variables["n"]) == (3, [1, 2], 3)
    assert variables["message"] == "division by zero"
    assert "double" not in variables and "e" not in variables


def test_script_may_not_hide_a_function(sandbox):
    variables = {"x": 1}
    with pytest.raises(SandboxRuntimeError, match="Variable 'working_days' would hide the function") as info:
        sandbox.execute("x = 2\nworking_days = 3", variables, FUNCTIONS)
    assert info.value.lineno == 2
    assert variables == {"x": 1}


def test_variable_named_like_a_function_is_left_alone(sandbox):
    variables = {"working_days": 5}
    sandbox.execute("d = working_days(1)", variables, FUNCTIONS)
    assert variables == {"working_days": 5, "d": date(2024, 1, 2)}


def test_non_data_values_cannot_be_stored(sandbox):
    variables = {"x": 1}
    with pytest.raises(SandboxRuntimeError, match="cannot be stored"):
        sandbox.execute("x = 2\nkeys = {'a': 1}.keys()", variables)
    with pytest.raises(SandboxRuntimeError, match="cannot be stored"):
        sandbox.execute("x = 2\nfs = [lambda: 1]", variables)
    assert variables == {"x": 1}


def test_failing_script_leaves_variables_unchanged(sandbox):
    variables = {"items": [1, 2], "data": {"k": [1]}, "n": 1, "gone": True}
    snapshot = copy.deepcopy(variables)
    items = variables["items"]
    script = (
        "items.append(3)\n"
        "data['k'].append(2)\n"
        "data['new'] = 1\n"
        "n = 5\n"
        "created = 1\n"
        "del gone\n"
        "boom = 1 / 0\n"
    )
    with pytest.raises(SandboxRuntimeError, match="ZeroDivisionError: division by zero") as info:
        sandbox.execute(script, variables)
    assert variables == snapshot
    assert variables["items"] is items and items == [1, 2]
    assert info.value.lineno == 7
    assert info.value.source == script
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_unknown_name(sandbox):
    with pytest.raises(SandboxRuntimeError, match="Unknown name 'amount'") as info:
        sandbox.evaluate("amount > 5", {})
    assert "_" not in str(info.value).replace("'amount'", "")  # nothing private is listed
    assert isinstance(info.value.__cause__, NameError)


def test_python_builtin_that_is_not_available(sandbox):
    with pytest.raises(SandboxRuntimeError, match="Function 'repr' is not available"):
        sandbox.evaluate("repr(1)", {})


def test_errors_are_wrapped_with_the_original_message(sandbox):
    with pytest.raises(SandboxRuntimeError, match="ValueError: amount must be positive") as info:
        sandbox.execute("x = 1\nraise ValueError('amount must be positive')", {})
    assert info.value.lineno == 2
    assert isinstance(info.value.__cause__, ValueError)


def test_sandbox_error_takes_a_plain_message():
    error = SandboxError("Service tasks are not supported")
    assert str(error) == "Service tasks are not supported"
    assert error.source is None and error.lineno is None


# ------------------------------------------------------------------------------------------ static check


def test_check_accepts_valid_code():
    check("amount > 5 and working_days(3) > date.today()")
    check("x = [i for i in range(3)]\nf = lambda v: v + 1\ny = f(1)", "exec")


@pytest.mark.parametrize(("source", "message", "lineno"), [
    ("x = 1\nimport os", "Import statements are not allowed", 2),
    ("from os import path", "Import statements are not allowed", 1),
    ("x = 1\n\n_secret = 2", "Name '_secret' is not allowed: names starting with '_' are reserved", 3),
    ("global x", "'global' and 'nonlocal' statements are not allowed", 1),
    ("def f():\n    x = 1\n    def g():\n        nonlocal x\n    g()", "'global' and 'nonlocal'", 4),
    ("class A:\n    pass", "Class definitions are not allowed", 1),
    ("with x:\n    pass", "'with' statements are not allowed", 1),
    ("def f():\n    yield 1", "'yield' is not allowed", 2),
    ("async def f():\n    pass", "'async' and 'await' are not allowed", 1),
    ("print('x')", "Function 'print' is not available", 1),
    ("x = (1,\n", "Syntax error", 1),
])
def test_check_rejects_forbidden_scripts(source, message, lineno):
    with pytest.raises(SandboxSyntaxError, match=message) as info:
        check(source, "exec")
    assert info.value.lineno == lineno
    assert info.value.source == source


@pytest.mark.parametrize("name", ["open", "exec", "eval", "compile", "globals", "locals", "vars", "getattr",
                                  "setattr", "delattr", "input", "breakpoint", "help", "memoryview", "type",
                                  "object", "super", "classmethod", "staticmethod", "property", "dir", "id",
                                  "exit", "quit"])
def test_check_rejects_forbidden_builtins(name):
    with pytest.raises(SandboxSyntaxError, match=f"Function '{name}' is not available in diagram scripts"):
        check(f"{name}(x)")
    with pytest.raises(SandboxSyntaxError, match=f"Function '{name}' is not available"):
        check(f"f = {name}", "exec")


def test_check_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        check("1", "single")


# ------------------------------------------------------------------------------------------ escapes


STATIC_ESCAPES = [
    ("__import__('os')", "Name '__import__' is not allowed: names starting with '_' are reserved"),
    ("().__class__.__base__.__subclasses__()", "Attribute '__subclasses__' is not allowed"),
    ("open('/etc/passwd')", "Function 'open' is not available in diagram scripts"),
    ("getattr(x, '__globals__')", "Function 'getattr' is not available in diagram scripts"),
    ("(lambda: 0).__globals__", "Attribute '__globals__' is not allowed"),
    ("[c for c in ().__class__.__mro__]", "Attribute '__mro__' is not allowed"),
    ("x.gi_frame", "Attribute 'gi_frame' is not allowed"),
    ("type(1)", "Function 'type' is not available in diagram scripts"),
    ("eval('1')", "Function 'eval' is not available in diagram scripts"),
    ("x.__class__", "Attribute '__class__' is not allowed: attributes starting with '_' are reserved"),
    ("int.mro()", "Attribute 'mro' is not allowed"),
]


@pytest.mark.parametrize(("source", "message"), STATIC_ESCAPES)
def test_escapes_are_rejected_statically(source, message):
    with pytest.raises(SandboxSyntaxError, match=message):
        check(source)
    with pytest.raises(SandboxSyntaxError, match=message):
        check(f"y = 1\nz = {source}", "exec")


@pytest.mark.parametrize(("source", "message"), STATIC_ESCAPES + [("import os", "Import statements")])
def test_escapes_leave_variables_unchanged(sandbox, source, message):
    variables = {"x": (i for i in range(3)), "items": [1]}
    snapshot = dict(variables)
    with pytest.raises(SandboxSyntaxError, match=message):
        sandbox.execute(f"items.append(2)\nresult = 1\n{source}", variables)
    assert variables == snapshot and variables["items"] == [1]


@pytest.mark.parametrize(("source", "variables", "message"), [
    ("'{0.__class__}'.format(1)", {}, "Attribute '__class__' is not allowed"),
    ("str.format('{0.__class__}', 1)", {}, "Attribute '__class__' is not allowed"),
    ("'{x.__class__}'.format_map({'x': 1})", {}, "Attribute '__class__' is not allowed"),
    ("'{0.gi_frame}'.format(g)", {"g": (i for i in range(3))}, "Attribute 'gi_frame' is not allowed"),
    ("'{0.func}'.format(f)", {}, "Attributes of 'partial' objects are not available"),
    ("f.func", {}, "Attributes of 'partial' objects are not available"),
    ("g.send", {"g": (i for i in range(3))}, "Attributes of 'generator' objects are not available"),
])
def test_escapes_are_rejected_at_run_time(sandbox, source, variables, message):
    functions = {"f": functools.partial(max, 1)}
    with pytest.raises(SandboxRuntimeError, match=message):
        sandbox.evaluate(source, variables, functions)


def test_only_lists_and_dicts_can_be_changed(sandbox):
    variables = {"when": date(2024, 1, 1)}
    with pytest.raises(SandboxRuntimeError, match="Objects of type 'date' cannot be changed"):
        sandbox.execute("when.year = 2020", variables)
    with pytest.raises(SandboxRuntimeError, match="Objects of type 'tuple' cannot be changed"):
        sandbox.execute("t = (1, 2)\nt[0] = 5", variables)
    assert variables == {"when": date(2024, 1, 1)}


# ------------------------------------------------------------------------------------------ limits


@pytest.mark.parametrize("script", [
    "while True:\n    pass",
    "x = 0\nwhile True:\n    x = x + 1",
    "r = sorted(range(100000), key=lambda x: -x)",
    "def f(n):\n    return [f(n - 1) for i in range(10)] if n else 0\nf(8)",
    # the limit error cannot be swallowed by except or finally
    "while True:\n    try:\n        while True:\n            pass\n    except Exception:\n        pass",
    "while True:\n    try:\n        while True:\n            pass\n    except:\n        continue",
    "def f():\n    while True:\n        pass\n"
    "while True:\n    try:\n        f()\n    except f():\n        pass",
    "try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass",
    "def g():\n    try:\n        while True:\n            pass\n    finally:\n        return 1\n"
    "while True:\n    g()",
])
def test_endless_scripts_are_stopped_by_the_step_limit(small, script):
    variables = {"keep": [1]}
    with pytest.raises(SandboxLimitError, match=r"Script ran too long \(more than 2000 steps\)"):
        small.execute(script, variables)
    assert variables == {"keep": [1]}


def test_step_limit_message(sandbox):
    with pytest.raises(SandboxLimitError) as info:
        Sandbox(max_steps=100_000).execute("while True:\n    pass", {})
    assert str(info.value) == ("Script ran too long (more than 100000 steps); "
                               "loops in diagram scripts must be short")
    assert info.value.lineno in (1, 2)


def test_time_limit():
    slow = Sandbox(max_steps=10**12, max_seconds=0.05)
    with pytest.raises(SandboxLimitError, match="more than 0.05 seconds"):
        slow.execute("while True:\n    pass", {})


def test_endless_recursion(small):
    with pytest.raises(SandboxLimitError):
        Sandbox().execute("def f(n):\n    return f(n + 1)\nf(0)", {})


@pytest.mark.parametrize("source", [
    "'x' * 10**10",
    "10 ** 10**8",
    "[0] * 10**10",
    "1 << 10**9",
    "2 ** 100000",
    "'%0*d' % (10**9, 1)",
    "'%1000000000d' % 1",
    "f'{1:>1000000000}'",
    "format(1, '>1000000000')",
    "'{:>1000000000}'.format(1)",
    "'a'.ljust(10**9)",
    "'a'.zfill(10**9)",
    "'ab' * 400000 + 'cd' * 400000",
    "('x' * 1000).replace('', 'x' * 1000)",
    "','.join(['x' * 1000] * 1000)",
    "range(10**12)",
    "list(range(10**12))",
    "sum([[0] * 1000] * 1001, [])",
    "str([['x' * 1000] * 1000] * 10)",
    "f'{[[0] * 1000] * 2000}'",
    "[*range(600000), *range(600000)]",
    "(1).to_bytes(10**9, 'big')",
    "int(Decimal('1e999999'))",
    "round(5, -10**9)",
])
def test_huge_values_are_refused(sandbox, source):
    with pytest.raises(SandboxLimitError, match="too large|too long|at most|more than"):
        sandbox.evaluate(source, {})


@pytest.mark.parametrize("script", [
    "s = 'x'\nfor i in range(30):\n    s = s + s",
    "l = [1]\nfor i in range(30):\n    l.extend(l)",
    "l = [1]\nfor i in range(30):\n    l += l",
    "l = [0] * 100\nfor i in range(30):\n    l = [*l, *l]",
    "s = {0}\nfor i in range(30):\n    s = s | set(range(len(s), 2 * len(s)))",
    "d = {0: 0}\nfor i in range(30):\n    d.update(zip(range(len(d), 2 * len(d)), d))",
])
def test_doubling_is_refused(sandbox, script):
    variables = {"x": 1}
    with pytest.raises(SandboxLimitError):
        sandbox.execute(script, variables)
    assert variables == {"x": 1}


def test_too_large_variable_is_not_stored(sandbox):
    variables = {}
    with pytest.raises(SandboxLimitError, match="Variable 'big' is too large"):
        sandbox.execute("row = 'x' * 1000\nbig = [row for i in range(2000)]", variables)
    assert variables == {}


def test_reasonable_sizes_are_allowed(sandbox):
    assert len(sandbox.evaluate("'-' * 1000", {})) == 1000
    assert sandbox.evaluate("2 ** 100", {}) == 2**100
    assert sandbox.evaluate("[0] * 3", {}) == [0, 0, 0]
    assert len(sandbox.evaluate("list(range(1000))", {})) == 1000


# ------------------------------------------------------------------------------------------ tracing


def test_previous_trace_function_is_restored(sandbox, small):
    seen = []

    def tracer(frame, event, arg):
        seen.append(event)
        return None

    original = sys.gettrace()
    sys.settrace(tracer)
    try:
        assert sandbox.evaluate("working_days(1)", {}, FUNCTIONS) == date(2024, 1, 2)
        assert sys.gettrace() is tracer
        sandbox.execute("x = [i for i in range(10)]", {})
        assert sys.gettrace() is tracer
        with pytest.raises(SandboxRuntimeError):
            sandbox.evaluate("1 / 0", {})
        assert sys.gettrace() is tracer
        with pytest.raises(SandboxLimitError):
            small.execute("while True:\n    pass", {})
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(original)
    assert "call" in seen  # the trusted function's call was passed on to the previous tracer


def test_engine_functions_run_untraced_only_with_plain_arguments(sandbox):
    """An engine function (a database look-up) called from an expression runs without the sandbox's trace function,
    which would otherwise be called at each of its Python calls; with anything but plain values as arguments the
    trace stays on, and it is back on for the diagram's code after the call."""
    traces = []

    def probe(*args):
        traces.append(sys.gettrace())
        return len(args)

    assert sandbox.evaluate("[probe('Волжск', 1, day), probe(items), probe('x')]",
                            {"day": date(2025, 10, 30), "items": [1, 2]}, {"probe": probe}) == [3, 1, 1]
    assert traces[0] is None and traces[2] is None
    assert traces[1] is not None  # a list: it could hold the diagram's code
    assert sys.gettrace() is not traces[1]  # the trace ends with the evaluation
