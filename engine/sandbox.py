"""Restricted evaluation of diagram expressions (conditions, due dates, timers) and script tasks.

Diagrams are uploaded by methodologists through the web, so their code is untrusted. Three layers:

* compile time (`check`, also used by the engine at deploy time): RestrictedPython with a stricter
  policy - no imports, no names or attributes starting with ``_``, no dangerous builtins, no classes,
  ``global``, ``with``, ``yield`` or ``async`` - and AST rewrites that send size-sensitive operators,
  f-strings and star-unpacking through guarded helpers;
* run time: an allow-list of builtins, attribute access only on plain data types, guarded methods that
  could build huge values, item writes only into lists and dicts;
* bounded execution: a step limit and a wall-clock limit, enforced by a trace function that only
  follows the diagram's own code;
* hard limits for what the trace function cannot interrupt: one C-level operation (a comparison, a hash,
  ``sum(map(...))``) on a structure that is small to build but huge when expanded (``[a] * 10**6``,
  ``a = [a, a]`` repeated, a list that contains itself), or many copies made between two steps. Code that
  passes a cheap static budget (`_Budget`: straight-line code whose values and work stay within a few
  times `max_size`) runs in this process; any other code runs in a forked worker process whose processor
  time and address space are capped with ``resource.setrlimit`` (`_Worker`). The worker is forked by a small
  host process of its own (`_Host`: a new interpreter that imports this module only), so it holds nothing of
  the caller - no database connection, no open file, none of a web worker's memory - but the code, the
  variables and the limits of its run. The engine's functions stay in the calling process and are called
  through a socket; the worker's answer is unpickled with data types only.

Why a worker and not more guards: every guard refuses one payload class, while the classes are open-ended
(any builtin that walks its argument, any operator that compares or hashes, and memory spent by many
small copies); a worker's limits bound them all. A fork costs milliseconds, so only code that could
amplify - loops, comprehensions, functions, methods that insert into containers, item assignment,
``*`` by a variable or a large count - pays for it; conditions and short assignments do not.
"""

from __future__ import annotations

import _string
import ast
import builtins
import copy
import copyreg
import functools
import gc
import io
import math
import operator
import os
import pickle
import queue
import re
import select
import signal
import socket
import string
import struct
import subprocess
import sys
import threading
import time
import types
from collections.abc import (
    Callable,
    ItemsView,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    Sized,
    ValuesView,
)
from datetime import date, datetime, timedelta, timezone
from datetime import time as dt_time
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows: no worker processes there
    resource = None  # type: ignore[assignment]

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer, copy_locations

__all__ = [
    "FORBIDDEN_NAMES",
    "MAX_INT_BITS",
    "Sandbox",
    "SandboxError",
    "SandboxLimitError",
    "SandboxRuntimeError",
    "SandboxSyntaxError",
    "check",
]

FILENAME = "<diagram>"
MAX_INT_BITS = 10_000
_INT_DIGITS = MAX_INT_BITS * 3 // 10  # decimal digits of the largest allowed integer, roughly

FORBIDDEN_NAMES = frozenset({
    "open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "getattr", "setattr",
    "delattr", "input", "breakpoint", "help", "memoryview", "type", "object", "super", "classmethod",
    "staticmethod", "property", "dir", "id", "exit", "quit", "print", "printed",
})

BLOCKED_ATTRIBUTES = INSPECT_ATTRIBUTES | frozenset({
    "mro", "func_globals", "func_code", "func_closure", "func_defaults", "func_dict",
    "im_func", "im_self", "im_class", "gi_running", "f_lasti",
})


# --------------------------------------------------------------------------------------------- errors


class SandboxError(Exception):
    """A diagram expression or script was rejected or failed; `str()` is meant for the methodologist."""

    def __init__(self, message: str, source: str | None = None, lineno: int | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.lineno = lineno

    def __str__(self) -> str:
        return self.message


class SandboxSyntaxError(SandboxError):
    """Invalid syntax or a forbidden construct, found without running the code (deploy time)."""


class SandboxRuntimeError(SandboxError):
    """An error while running; the original exception, if any, is the `__cause__`."""


class SandboxLimitError(SandboxRuntimeError):
    """The step, time or size limit was exceeded."""


class _Violation(Exception):
    """Raised by the policy at the first forbidden construct."""

    def __init__(self, message: str, lineno: int | None):
        super().__init__(message)
        self.message = message
        self.lineno = lineno


class _NotData(Exception):
    """A value that cannot be stored as a process variable."""


# ------------------------------------------------------------------------------------ compile policy


def _unavailable(name: str) -> str:
    return f"Function '{name}' is not available in diagram scripts"


def _underscore_attribute(name: str) -> str:
    return f"Attribute '{name}' is not allowed: attributes starting with '_' are reserved"


def _name(identifier: str) -> ast.Name:
    return ast.Name(identifier, ast.Load())


def _call(identifier: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    node = ast.Call(func=_name(identifier), args=args, keywords=[])
    copy_locations(node, like)
    return node


def _splat_parts(elements: list[ast.expr]) -> list[ast.expr]:
    """``a, *b, c`` -> ``(a,), b, (c,)``: every part becomes an iterable."""
    return [e.value if isinstance(e, ast.Starred) else ast.Tuple([e], ast.Load()) for e in elements]


_GUARDED_BINOPS = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<", ast.Mod: "%",
                   ast.BitOr: "|", ast.BitXor: "^"}


class _SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, stricter, with clear messages and rewrites for the runtime guards."""

    def error(self, node: ast.AST, info: str) -> None:
        raise _Violation(info, getattr(node, "lineno", None))

    def check_name(self, node: ast.AST, name: str | None, allow_magic_methods: bool = False) -> None:
        if name is None:
            return
        if name.startswith("_"):
            self.error(node, f"Name '{name}' is not allowed: names starting with '_' are reserved")
        if name in FORBIDDEN_NAMES:
            self.error(node, _unavailable(name))
        super().check_name(node, name)

    def _forbid(self, node: ast.AST, what: str) -> None:
        self.error(node, f"{what} not allowed in diagram scripts")

    # names, attributes, calls

    def visit_Name(self, node: ast.Name) -> Any:
        self.check_name(node, node.id)
        return super().visit_Name(node)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):
            self.error(node, _underscore_attribute(node.attr))
        if node.attr in BLOCKED_ATTRIBUTES:
            self.error(node, f"Attribute '{node.attr}' is not allowed in diagram scripts")
        return super().visit_Attribute(node)

    def visit_Call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Name):
            self.check_name(node.func, node.func.id)
        node = super().visit_Call(node)
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            splat = _call("_sb_splat_", [ast.Constant("tuple"), *_splat_parts(node.args)], node)
            starred = ast.Starred(splat, ast.Load())
            copy_locations(starred, node)
            node.args = [starred]
        return node

    # forbidden statements

    def visit_Import(self, node: ast.Import) -> Any:
        self.error(node, "Import statements are not allowed in diagram scripts; "
                         "use the functions the engine provides")

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.AST) -> Any:
        self._forbid(node, "'global' and 'nonlocal' statements are")

    visit_Nonlocal = visit_Global

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self._forbid(node, "Class definitions are")

    def visit_With(self, node: ast.AST) -> Any:
        self._forbid(node, "'with' statements are")

    visit_AsyncWith = visit_With

    def visit_AsyncFunctionDef(self, node: ast.AST) -> Any:
        self._forbid(node, "'async' and 'await' are")

    visit_AsyncFor = visit_Await = visit_AsyncFunctionDef

    def visit_Yield(self, node: ast.AST) -> Any:
        self._forbid(node, "'yield' is")

    visit_YieldFrom = visit_Yield

    def visit_TryStar(self, node: ast.AST) -> Any:
        self._forbid(node, "'except*' clauses are")

    def visit_Match(self, node: ast.AST) -> Any:
        self._forbid(node, "'match' statements are")

    def visit_AnnAssign(self, node: ast.AST) -> Any:
        self._forbid(node, "Type annotations on variables are")

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        if isinstance(node.target, (ast.Subscript, ast.Attribute)):
            self.error(node, "Augmented assignment to an item or attribute (like d['k'] += 1) is not "
                             "supported; write d['k'] = d['k'] + 1")
        return super().visit_AugAssign(node)

    # rewrites for the runtime guards

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = super().visit_BinOp(node)
        op = _GUARDED_BINOPS.get(type(node.op))
        if op is None:
            return node
        return _call("_sb_binop_", [ast.Constant(op), node.left, node.right], node)

    def _guard_display(self, node: ast.List | ast.Tuple, kind: str) -> Any:
        if not isinstance(node.ctx, ast.Load) or not any(isinstance(e, ast.Starred) for e in node.elts):
            return node
        return _call("_sb_splat_", [ast.Constant(kind), *_splat_parts(node.elts)], node)

    def visit_List(self, node: ast.List) -> Any:
        return self._guard_display(super().visit_List(node), "list")

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        return self._guard_display(super().visit_Tuple(node), "tuple")

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        node = super().visit_JoinedStr(node)
        parts: list[ast.expr] = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                spec = part.format_spec if part.format_spec is not None else ast.Constant("")
                parts.append(ast.Tuple([part.value, ast.Constant(part.conversion), spec], ast.Load()))
            else:
                parts.append(part)
        return _call("_sb_fstring_", parts, node)

    def _abort_check(self, like: ast.AST) -> ast.stmt:
        statement = ast.Expr(_call("_sb_abort_check_", [], like))
        copy_locations(statement, like)
        return statement

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        # After the step/time limit fired, tracing is off: no handler may swallow the limit error.
        node = super().visit_ExceptHandler(node)
        node.body.insert(0, self._abort_check(node))
        if node.type is not None:
            node.type = ast.BoolOp(ast.Or(), [_call("_sb_abort_check_", [], node), node.type])
            copy_locations(node.type, node)
        return node

    def visit_Try(self, node: ast.Try) -> Any:
        node = super().visit_Try(node)
        if node.finalbody:
            node.finalbody.insert(0, self._abort_check(node.finalbody[0]))
        return node


# ------------------------------------------------------------------------------------- static budget

# Code that passes this budget runs in the calling process; any other code runs in a worker process with
# hard limits. Sizes are counted in units of `max_size` (the largest value a guard lets one operation
# build, and the largest variable a script may store): each unit is at most that many elements.
STATIC_BUDGET = 32
MAX_INLINE_NODES = 400
_REPEATING = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
              ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)
# Methods that put references into an existing container (a cycle or a hidden fan-out), or build one value
# with many references to another.
_INSERTING = frozenset({"append", "extend", "insert", "update", "setdefault", "add", "fromkeys",
                        "symmetric_difference_update", "intersection_update", "difference_update"})
# Library code written in Python runs unseen by the trace function: codecs such as 'idna' and 'punycode'
# (quadratic), `str.format` with a template from the data, `strptime` with a format from the data.
_PYTHON_LEVEL = frozenset({"encode", "decode", "strptime"})
_FORMATTING = frozenset({"format", "format_map"})
_SORTING = frozenset({"sorted", "sort"})
_SORT_FACTOR = 20  # about log2(max_size) comparisons per element
_SCALAR_CALLS = frozenset({"int", "float", "bool", "len", "str", "abs", "round", "format", "isinstance",
                           "Decimal", "date", "datetime", "timedelta"})
_OVER = float("inf")


class _OverBudget(Exception):
    """The code may amplify a value beyond what the static budget can bound."""


def _constant_count(node: ast.expr) -> float | None:
    """Value of a small integer constant expression (``1000``, ``10 ** 6``), else None."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return abs(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Pow, ast.Add, ast.LShift)):
        left, right = _constant_count(node.left), _constant_count(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right > 64:
            return _OVER
        return left ** right if isinstance(node.op, ast.Pow) else left * 2 ** right
    return None


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    return node.func.attr if isinstance(node.func, ast.Attribute) else None


def _expressions(node: ast.AST) -> Iterator[ast.expr]:
    """The expressions directly inside `node`, also those in keyword arguments and other helper nodes."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            yield child
        elif not isinstance(child, (ast.stmt, ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)):
            yield from _expressions(child)


class _Budget:
    """Upper bounds, in units of `max_size`, of the values straight-line code builds and of its C-level work.

    Without loops, comprehensions and functions every node runs once; without methods that insert into
    existing containers no value can contain itself. Then a value is at most as large as the values it was
    built from (lists repeated by a constant ``*`` count times), and one operation's work is at most the
    size of its operands. A variable of the process counts as one unit: it was stored within `max_size`.
    """

    def __init__(self) -> None:
        self.names: dict[str, float] = {}
        self.work = 0.0

    def size(self, node: ast.expr) -> float:
        if isinstance(node, ast.Constant):
            return 0
        if isinstance(node, ast.Name):
            return self.names.get(node.id, 1)
        if isinstance(node, _REPEATING):
            raise _OverBudget(type(node).__name__)
        if isinstance(node, ast.Attribute) and (node.attr in _INSERTING or node.attr in _PYTHON_LEVEL or (
                node.attr in _FORMATTING and not isinstance(node.value, ast.Constant))):
            raise _OverBudget(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "strptime":
            return self.strptime(node)
        if isinstance(node, ast.NamedExpr):
            value = self.size(node.value)
            self.bind(node.target, value)
            return value
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        parts = [self.size(child) for child in _expressions(node)
                 if not (isinstance(node, ast.Call) and child is node.func and isinstance(child, ast.Name))]
        total = sum(parts)
        self.work += total + isinstance(node, ast.Call)  # a call may also build a new value of one unit
        if isinstance(node, ast.Call) and _called_name(node) in _SORTING:
            self.work += total * _SORT_FACTOR
        if isinstance(node, ast.Subscript):
            return parts[0]  # an item or a slice of the value
        if isinstance(node, (ast.Attribute, ast.Starred, ast.BoolOp, ast.IfExp)):
            return total  # a part of a value, or one of the operands
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SCALAR_CALLS:
            return 1
        if isinstance(node, (ast.Compare, ast.UnaryOp, ast.JoinedStr, ast.FormattedValue)):
            return 1  # a truth value, a number or a guarded text
        return total + 1  # a new container or a call's result, with what it was built from

    def strptime(self, node: ast.Call) -> float:
        """`datetime.strptime(text, '%d.%m.%Y')`: with a constant format its library code is quick."""
        if len(node.args) != 2 or node.keywords or not isinstance(node.args[1], ast.Constant):
            raise _OverBudget("strptime")
        self.work += self.size(node.func.value) + self.size(node.args[0]) + 1  # type: ignore[attr-defined]
        return 1

    def binop(self, node: ast.BinOp) -> float:
        left, right = self.size(node.left), self.size(node.right)
        self.work += left + right + 1
        constant = isinstance(node.left, ast.Constant) or isinstance(node.right, ast.Constant)
        if isinstance(node.op, ast.Mult):
            for count, other in ((_constant_count(node.left), right), (_constant_count(node.right), left)):
                if count is not None:
                    self.work += count * other
                    return max(count * other, 1)
            if constant:
                return 1  # text repeated: flat, guarded
            raise _OverBudget("*")
        return 1 if constant else left + right + 1

    def bind(self, target: ast.expr, value: float) -> None:
        if isinstance(target, ast.Name):
            self.names[target.id] = max(self.names.get(target.id, 1), value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.bind(element, value)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, value)
        else:
            raise _OverBudget("item assignment")

    def statements(self, body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Assign):
                value = self.size(node.value)
                for target in node.targets:
                    self.bind(target, value)
            elif isinstance(node, ast.AugAssign):
                if (not isinstance(node.target, ast.Name) or not isinstance(node.value, ast.Constant)
                        or isinstance(node.op, ast.Mult)):  # `items *= 1000` repeats a list in place
                    raise _OverBudget("augmented assignment")
                self.work += self.size(node.target) + 1
                self.bind(node.target, 1)
            elif isinstance(node, ast.If):
                self.size(node.test)
                self.statements(node.body)
                self.statements(node.orelse)
            elif isinstance(node, ast.Try):
                self.statements(node.body)
                for handler in node.handlers:
                    if handler.type is not None:
                        self.size(handler.type)
                    if handler.name:
                        self.names[handler.name] = max(self.names.get(handler.name, 1), 1)
                    self.statements(handler.body)
                self.statements(node.orelse)
                self.statements(node.finalbody)
            elif isinstance(node, (ast.Expr, ast.Return)):
                if node.value is not None:
                    self.size(node.value)
            elif isinstance(node, (ast.Raise, ast.Assert, ast.Delete)):
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.expr) and not isinstance(getattr(child, "ctx", None), ast.Del):
                        self.size(child)
            elif not isinstance(node, (ast.Pass, ast.Break, ast.Continue)):
                raise _OverBudget(type(node).__name__)


def _needs_worker(tree: ast.AST) -> bool:
    """True unless the code passes the cheap static budget (see `_Budget`)."""
    if sum(1 for _ in ast.walk(tree)) > MAX_INLINE_NODES:
        return True
    budget = _Budget()
    try:
        if isinstance(tree, ast.Expression):
            budget.size(tree.body)
        else:
            budget.statements(tree.body)
    except (_OverBudget, RecursionError):
        return True
    return budget.work > STATIC_BUDGET


class _Compiled(NamedTuple):
    code: types.CodeType
    names: frozenset[str]
    isolate: bool  # over the static budget: runs in a worker process


def _syntax_error(exc: SyntaxError, source: str, mode: str) -> SandboxSyntaxError:
    message = f"Syntax error: {exc.msg}"
    if mode == "eval":
        try:
            ast.parse(source, FILENAME, "exec")
        except (SyntaxError, ValueError):
            pass
        else:
            message = "An expression is expected here, not a statement (such as an assignment)"
    return SandboxSyntaxError(message, source, exc.lineno)


@functools.lru_cache(maxsize=4096)
def _compile(source: str, mode: str) -> _Compiled:
    """Parse, check and compile once per (source, mode); failures are not cached."""
    try:
        tree = ast.parse(source, FILENAME, mode)
    except SyntaxError as exc:
        raise _syntax_error(exc, source, mode) from None
    except ValueError as exc:
        raise SandboxSyntaxError(f"Syntax error: {exc}", source) from None
    except (RecursionError, MemoryError):
        raise SandboxSyntaxError("The code is too deeply nested; simplify it", source) from None
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    isolate = _needs_worker(tree)  # before compiling: the policy rewrites the tree
    try:
        result = compiler(tree, FILENAME, policy=_SandboxPolicy)
    except _Violation as exc:
        raise SandboxSyntaxError(exc.message, source, exc.lineno) from None
    except SyntaxError as exc:
        raise _syntax_error(exc, source, mode) from None
    except (RecursionError, MemoryError):
        raise SandboxSyntaxError("The code is too deeply nested; simplify it", source) from None
    if result.errors or result.code is None:  # pragma: no cover - the policy raises at the first error
        raise SandboxSyntaxError(str(result.errors[0]) if result.errors else "Cannot compile", source)
    return _Compiled(result.code, frozenset(result.used_names), isolate)


def _compiled(source: str, mode: str) -> _Compiled:
    if mode not in ("eval", "exec"):
        raise ValueError(f"mode must be 'eval' or 'exec', not {mode!r}")
    if not isinstance(source, str):
        raise SandboxSyntaxError(f"Code must be text, not {type(source).__name__}")
    return _compile(source, mode)


def check(source: str, mode: str = "eval") -> None:
    """Deploy-time check: raise `SandboxSyntaxError` (with `lineno`) unless the code may run here."""
    _compiled(source, mode)


# ------------------------------------------------------------------------------------ runtime guards

_SEQUENCES = (str, bytes, bytearray, list, tuple)
_SET_LIKE = (set, frozenset, dict, KeysView, ItemsView)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_SCALARS = (float, date, dt_time, timedelta)
# Instances of these (and their subclasses) expose their public attributes; the classes themselves too.
_DATA_TYPES = frozenset({
    str, bytes, int, float, complex, bool, list, tuple, dict, set, frozenset, range, type(None),
    date, datetime, dt_time, timedelta, timezone, Decimal,
    type({}.keys()), type({}.values()), type({}.items()),
})
_DATA_INSTANCES = tuple(_DATA_TYPES)
_DATE_LIKE = (date, dt_time, timedelta, timezone, Decimal)

_BINARY = {"+": operator.add, "*": operator.mul, "**": operator.pow, "<<": operator.lshift,
           "%": operator.mod, "|": operator.or_, "^": operator.xor}
_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
    "@=": operator.imatmul,
}
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?.", re.S)
_DIGITS = re.compile(r"\d+")


_ATOMS = frozenset({float, bool, type(None), date, datetime, dt_time, timedelta})


def _bulk_size(members: Any) -> int | None:
    """Size of a collection of atoms, integers or strings, computed at C speed; None if mixed."""
    kinds = set(map(type, members))
    if kinds <= _ATOMS:
        return len(members)
    if kinds <= {int, bool}:
        return sum(map(int.bit_length, members)) // 3 + len(members)
    if kinds == {str}:
        return sum(map(len, members)) + len(members)
    return None


def _measure(value: Any, budget: int, data_only: bool = False) -> int:
    """Rough size (elements + characters) counting shared and nested values each time; stops past budget.

    With `data_only`, raise `_NotData` for anything that is not plain data (functions, iterators...).
    """
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += max(len(item), 1)
        elif item is None or isinstance(item, bool):
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, (dict, list, tuple, set, frozenset)):
            total += 1
            for members in (item.keys(), item.values()) if isinstance(item, dict) else (item,):
                size = _bulk_size(members)
                if size is None:
                    pending.extend(members)
                else:
                    total += size
        elif isinstance(item, Decimal):
            total += len(item.as_tuple().digits) + 1
        elif data_only and not isinstance(item, _SCALARS):
            raise _NotData(item)
        elif isinstance(item, BaseException):
            total += 1
            pending.extend(item.args)
        elif isinstance(item, (KeysView, ValuesView, ItemsView)):
            total += 1
            pending.extend(item)
        else:
            total += 1
        if total > budget or len(pending) > budget:
            return max(total, len(pending))
    return total


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


_C_IMPORTS = frozenset({"time", "_strptime"})


def _internal_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                     level: int = 0) -> Any:
    """`__import__` for the C code of the date types (it imports `time` and `_strptime`).

    Diagram code cannot name it: names starting with '_' are rejected at compile time.
    """
    if level != 0 or name not in _C_IMPORTS:
        raise ImportError(f"Module '{name}' is not available in diagram scripts")
    return builtins.__import__(name, globals, locals, fromlist, level)


def _argument(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


class _GuardedType(type):
    """Metaclass of the stand-ins for `str` and `int`: `isinstance` works, construction is guarded."""

    wrapped: type
    construct: Callable[..., Any]

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.wrapped)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls.wrapped)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.construct(*args, **kwargs)

    def __repr__(cls) -> str:
        return repr(cls.wrapped)


def _guarded_type(real: type, construct: Callable[..., Any]) -> type:
    return _GuardedType(real.__name__, (), {"wrapped": real, "construct": staticmethod(construct)})


class _SafeFormatter(string.Formatter):
    """`str.format` whose field lookups go through the sandbox's guards and whose output is bounded."""

    def __init__(self, guards: _Guards):
        super().__init__()
        self.guards = guards
        self.total = 0

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attribute, key in rest:
            if is_attribute:
                obj = self.guards.guarded_getattr(obj, key)
            else:
                obj = self.guards.guarded_getitem(obj, key)
        return obj, first

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            self.guards.limit(_measure(value, self.guards.max_size), "text")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> str:
        text = self.guards.format_value(value, format_spec)
        self.total += len(text)
        self.guards.limit(self.total, "text")
        return text


class _Guards:
    """The runtime hooks RestrictedPython's rewritten code calls, and the guarded builtins."""

    def __init__(self, max_size: int):
        self.max_size = max_size
        self.str_type = _guarded_type(str, self.make_str)
        self.int_type = _guarded_type(int, self.make_int)
        g = self
        self.method_guards: dict[tuple[type, str], Callable[..., Any]] = {
            **{(kind, name): g.width for kind in (str, bytes)
               for name in ("center", "ljust", "rjust", "zfill")},
            **{(kind, "expandtabs"): g.expandtabs for kind in (str, bytes)},
            **{(kind, "replace"): g.replace for kind in (str, bytes)},
            **{(kind, "join"): g.join for kind in (str, bytes)},
            (str, "translate"): g.translate,
            (str, "format"): g.format_method,
            (str, "format_map"): g.format_map_method,
            (list, "extend"): g.extend,
            **{(kind, name): g.grow_set for kind in (set, frozenset)
               for name in ("update", "union", "symmetric_difference", "symmetric_difference_update")},
            (dict, "update"): g.dict_update,
            (int, "to_bytes"): g.to_bytes,
            (Decimal, "as_integer_ratio"): g.decimal_ratio,
            (date, "strftime"): g.strftime,
            (dt_time, "strftime"): g.strftime,
        }

    # limits

    def limit(self, size: int | float, what: str = "value") -> None:
        if size > self.max_size:
            raise SandboxLimitError(
                f"Value too large: the {what} would have more than {self.max_size} elements or characters; "
                "work with smaller data")

    @staticmethod
    def limit_bits(bits: int | float) -> None:
        if bits > MAX_INT_BITS:
            raise SandboxLimitError(f"Number too large: the result would have more than {MAX_INT_BITS} bits")

    @staticmethod
    def limit_decimal(value: Any) -> None:
        if isinstance(value, Decimal) and value.is_finite() and value.adjusted() > _INT_DIGITS:
            raise SandboxLimitError(f"Number too large to convert to an integer "
                                    f"(more than {_INT_DIGITS} digits)")

    # RestrictedPython hooks

    def guarded_getattr(self, obj: Any, name: str) -> Any:
        if not isinstance(name, str):
            raise TypeError("attribute name must be text")
        if name.startswith("_"):
            raise SandboxRuntimeError(_underscore_attribute(name))
        if name in BLOCKED_ATTRIBUTES:
            raise SandboxRuntimeError(f"Attribute '{name}' is not allowed in diagram scripts")
        if isinstance(obj, _GuardedType):
            obj = obj.wrapped
        if isinstance(obj, type):
            if obj not in _DATA_TYPES and not issubclass(obj, _DATE_LIKE):
                raise SandboxRuntimeError(
                    f"Attributes of '{obj.__name__}' are not available in diagram scripts")
            owner, instance = obj, None
        elif isinstance(obj, _DATA_INSTANCES) or (
                isinstance(obj, BaseException) and type(obj).__module__ == "builtins"):
            owner, instance = type(obj), obj
        else:
            raise SandboxRuntimeError(
                f"Attributes of '{type(obj).__name__}' objects are not available in diagram scripts")
        value = getattr(obj, name)
        guard = next((self.method_guards[base, name] for base in owner.__mro__
                      if (base, name) in self.method_guards), None)
        if guard is None:
            return value
        if instance is not None:
            def bound(*args: Any, **kwargs: Any) -> Any:
                return guard(value, instance, args, kwargs)
            return bound

        def unbound(self_: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(self_, owner):
                raise TypeError(f"'{name}' needs a '{owner.__name__}' object, not '{type(self_).__name__}'")
            return guard(functools.partial(value, self_), self_, args, kwargs)
        return unbound

    @staticmethod
    def guarded_getitem(obj: Any, index: Any) -> Any:
        return obj[index]

    @staticmethod
    def guarded_write(obj: Any) -> Any:
        if isinstance(obj, (list, dict)):
            return obj
        raise SandboxRuntimeError(f"Objects of type '{type(obj).__name__}' cannot be changed in diagram "
                                  "scripts; only lists and dictionaries can")

    def binop(self, op: str, left: Any, right: Any) -> Any:
        self.check_operation(op, left, right)
        return _BINARY[op](left, right)

    def inplacevar(self, op: str, target: Any, value: Any) -> Any:
        self.check_operation(op[:-1], target, value)
        return _INPLACE[op](target, value)

    def check_operation(self, op: str, a: Any, b: Any) -> None:
        """Refuse, before computing it, an operation whose result would be too large."""
        if op == "+":
            if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
                self.limit(len(a) + len(b))
        elif op == "*":
            if isinstance(a, int) and isinstance(b, int):
                self.limit_bits(a.bit_length() + b.bit_length())
            elif isinstance(a, _SEQUENCES) and isinstance(b, int):
                self.limit(len(a) * b)
            elif isinstance(b, _SEQUENCES) and isinstance(a, int):
                self.limit(len(b) * a)
        elif op == "**":
            if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
                self.limit_bits(b if b > MAX_INT_BITS else b * math.log2(abs(a)))
        elif op == "<<":
            if isinstance(a, int) and isinstance(b, int) and a and b > 0:
                self.limit_bits(b if b > MAX_INT_BITS else a.bit_length() + b)
        elif op == "%":
            if isinstance(a, (str, bytes)):
                self.limit(self.percent_size(a, b), "text")
        elif op in ("|", "^"):
            if isinstance(a, _SET_LIKE) and isinstance(b, Sized):
                self.limit(len(a) + len(b))

    def percent_size(self, fmt: str | bytes, args: Any) -> int:
        """Upper estimate of the length of ``fmt % args``."""
        text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
        values = args if isinstance(args, tuple) else (args,)
        total = len(text) + _measure(values, self.max_size)
        for value in values:
            self.limit_decimal(value)
        star = False
        for match in _PERCENT_SPEC.finditer(text):
            for number in match.groups():
                if number == "*":
                    star = True
                elif number:
                    total += self.max_size + 1 if len(number) > 9 else int(number)
        if star:
            total += sum(abs(v) for v in values if isinstance(v, int))
        return total

    def splat(self, kind: str, *parts: Any) -> list | tuple:
        items: list[Any] = []
        for part in parts:
            items.extend(part)
            self.limit(len(items))
        return tuple(items) if kind == "tuple" else items

    def format_value(self, value: Any, spec: Any) -> str:
        """`format(value, spec)` refusing huge widths, precisions and values."""
        if not isinstance(spec, str):
            raise TypeError(f"format specification must be text, not {type(spec).__name__}")
        size = _measure(value, self.max_size) + 16 * len(spec)
        for digits in _DIGITS.findall(spec):
            size += self.max_size + 1 if len(digits) > 9 else int(digits)
        if isinstance(value, Decimal) and value.is_finite():
            size += abs(value.as_tuple().exponent)
        self.limit(size, "text")
        return format(value, spec)

    def fstring(self, *parts: Any) -> str:
        pieces = []
        total = 0
        for part in parts:
            if isinstance(part, tuple):
                value, conversion, spec = part
                if conversion >= 0:
                    self.limit(_measure(value, self.max_size), "text")
                    value = {115: str, 114: repr, 97: ascii}[conversion](value)
                part = self.format_value(value, spec)
            total += len(part)
            self.limit(total, "text")
            pieces.append(part)
        return "".join(pieces)

    # guarded builtins

    def make_str(self, *args: Any, **kwargs: Any) -> str:
        if args and type(args[0]) is not str:
            self.limit(_measure(args[0], self.max_size), "text")
        return str(*args, **kwargs)

    def make_int(self, *args: Any, **kwargs: Any) -> int:
        if args:
            self.limit_decimal(args[0])
        return int(*args, **kwargs)

    def guarded_round(self, number: Any, ndigits: Any = None) -> Any:
        if ndigits is None:
            self.limit_decimal(number)
            return round(number)
        if isinstance(ndigits, int) and abs(ndigits) > _INT_DIGITS:
            raise SandboxLimitError(f"round() supports at most {_INT_DIGITS} digits")
        return round(number, ndigits)

    def guarded_range(self, *args: Any) -> range:
        result = range(*args)
        try:
            size = len(result)
        except OverflowError:
            size = self.max_size + 1
        if size > self.max_size:
            raise SandboxLimitError(f"range() is too long: at most {self.max_size} numbers are allowed")
        return result

    def guarded_sum(self, iterable: Any, /, start: Any = 0) -> Any:
        if not isinstance(start, (list, tuple)):
            return sum(iterable, start)
        result = list(start)  # linear, unlike sum() of lists
        for item in iterable:
            if not isinstance(item, type(start)):
                raise TypeError(f'can only concatenate {type(start).__name__} (not "{type(item).__name__}")')
            self.limit(len(result) + len(item))
            result.extend(item)
        return tuple(result) if isinstance(start, tuple) else result

    def guarded_format(self, value: Any, format_spec: str = "") -> str:
        return self.format_value(value, format_spec)

    # guarded methods: guard(call, self_, args, kwargs) where call(*args, **kwargs) does the real work

    def width(self, call: Callable[..., Any], s: Any, args: tuple, kwargs: dict) -> Any:
        width = _argument(args, kwargs, 0, "width", 0)
        if isinstance(width, int):
            self.limit(width, "text")
        return call(*args, **kwargs)

    def expandtabs(self, call: Callable[..., Any], s: Any, args: tuple, kwargs: dict) -> Any:
        size = _argument(args, kwargs, 0, "tabsize", 8)
        if isinstance(size, int) and size > 0:
            self.limit(len(s) + s.count("\t" if isinstance(s, str) else b"\t") * size, "text")
        return call(*args, **kwargs)

    def replace(self, call: Callable[..., Any], s: Any, args: tuple, kwargs: dict) -> Any:
        if len(args) >= 2 and isinstance(args[0], type(s)) and isinstance(args[1], type(s)):
            old, new = args[0], args[1]
            count = _argument(args, kwargs, 2, "count", -1)
            hits = s.count(old) if old else len(s) + 1
            if isinstance(count, int) and count >= 0:
                hits = min(hits, count)
            self.limit(len(s) + hits * max(len(new) - len(old), 0), "text")
        return call(*args, **kwargs)

    def join(self, call: Callable[..., Any], sep: Any, args: tuple, kwargs: dict) -> Any:
        if len(args) != 1 or kwargs:
            return call(*args, **kwargs)
        items = list(args[0])
        size = len(sep) * max(len(items) - 1, 0)
        size += sum(len(item) for item in items if isinstance(item, (str, bytes, bytearray)))
        self.limit(size, "text")
        return call(items)

    def translate(self, call: Callable[..., Any], s: Any, args: tuple, kwargs: dict) -> Any:
        table = _argument(args, kwargs, 0, "table", None)
        values: Any = ()
        if isinstance(table, dict):
            values = table.values()
        elif isinstance(table, (list, tuple)):
            values = table
        longest = max((len(v) for v in values if isinstance(v, str)), default=1)
        self.limit(len(s) * max(longest, 1), "text")
        return call(*args, **kwargs)

    def format_method(self, call: Callable[..., Any], s: str, args: tuple, kwargs: dict) -> str:
        return _SafeFormatter(self).vformat(s, args, kwargs)

    def format_map_method(self, call: Callable[..., Any], s: str, args: tuple, kwargs: dict) -> str:
        if len(args) != 1 or kwargs:
            raise TypeError("format_map() takes exactly one argument")
        return _SafeFormatter(self).vformat(s, (), args[0])

    def extend(self, call: Callable[..., Any], items: list, args: tuple, kwargs: dict) -> Any:
        if len(args) != 1 or kwargs:
            return call(*args, **kwargs)
        more = args[0] if isinstance(args[0], (list, tuple)) else list(args[0])
        self.limit(len(items) + len(more))
        return call(more)

    def grow_set(self, call: Callable[..., Any], items: Any, args: tuple, kwargs: dict) -> Any:
        others = [o if isinstance(o, (*_CONTAINERS, KeysView, ItemsView)) else list(o) for o in args]
        self.limit(len(items) + sum(len(o) for o in others))
        return call(*others, **kwargs)

    def dict_update(self, call: Callable[..., Any], items: dict, args: tuple, kwargs: dict) -> Any:
        others = [o if isinstance(o, (dict, list, tuple)) else list(o) for o in args]
        self.limit(len(items) + sum(len(o) for o in others) + len(kwargs))
        return call(*others, **kwargs)

    def to_bytes(self, call: Callable[..., Any], number: int, args: tuple, kwargs: dict) -> Any:
        length = _argument(args, kwargs, 0, "length", 1)
        if isinstance(length, int):
            self.limit(length, "bytes")
        return call(*args, **kwargs)

    @staticmethod
    def decimal_ratio(call: Callable[..., Any], number: Decimal, args: tuple, kwargs: dict) -> Any:
        if number.is_finite():
            _sign, digits, exponent = number.as_tuple()
            if len(digits) + abs(int(exponent)) > _INT_DIGITS:
                raise SandboxLimitError(f"Number too large to convert (more than {_INT_DIGITS} digits)")
        return call(*args, **kwargs)

    def strftime(self, call: Callable[..., Any], moment: Any, args: tuple, kwargs: dict) -> Any:
        pattern = _argument(args, kwargs, 0, "format", "")
        if isinstance(pattern, str):
            self.limit(16 * len(pattern), "text")
        return call(*args, **kwargs)

    def namespace_builtins(self) -> dict[str, Any]:
        """The builtins of diagram code: a small allow-list plus RestrictedPython's hooks."""
        allowed: dict[str, Any] = {
            "abs": abs, "all": all, "any": any, "bool": bool, "dict": dict, "divmod": divmod,
            "enumerate": enumerate, "filter": filter, "float": float, "format": self.guarded_format,
            "frozenset": frozenset, "int": self.int_type, "isinstance": isinstance, "len": len, "list": list,
            "map": map, "max": max, "min": min, "range": self.guarded_range, "reversed": reversed,
            "round": self.guarded_round, "set": set, "sorted": sorted, "str": self.str_type,
            "sum": self.guarded_sum, "tuple": tuple, "zip": zip, "True": True, "False": False, "None": None,
            "date": date, "datetime": datetime, "timedelta": timedelta, "Decimal": Decimal,
        }
        for error in (ArithmeticError, AssertionError, AttributeError, Exception, IndexError, KeyError,
                      LookupError, NameError, NotImplementedError, OverflowError, RuntimeError, TypeError,
                      ValueError, ZeroDivisionError):
            allowed[error.__name__] = error
        allowed.update({
            "_getattr_": self.guarded_getattr, "_getitem_": self.guarded_getitem, "_getiter_": iter,
            "_write_": self.guarded_write,
            "_inplacevar_": self.inplacevar, "_apply_": _apply, "__import__": _internal_import,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_sb_binop_": self.binop, "_sb_splat_": self.splat, "_sb_fstring_": self.fstring,
        })
        return allowed


# ------------------------------------------------------------------------------------------ running


class _Run:
    """Step counter and deadline of one evaluation; the trace function calls `tick`."""

    __slots__ = ("steps", "max_steps", "max_seconds", "deadline", "what", "aborted")

    def __init__(self, max_steps: int, max_seconds: float, what: str):
        self.steps = 0
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.deadline = time.monotonic() + max_seconds
        self.what = what
        self.aborted: SandboxLimitError | None = None

    def tick(self, frame: types.FrameType) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            self.abort(f"{self.what} ran too long (more than {self.max_steps} steps); "
                       "loops in diagram scripts must be short", frame)
        if time.monotonic() > self.deadline:
            self.abort(f"{self.what} ran too long (more than {self.max_seconds:g} seconds); "
                       "loops in diagram scripts must be short", frame)

    def abort(self, message: str, frame: types.FrameType) -> None:
        if self.aborted is None:
            self.aborted = SandboxLimitError(message, lineno=frame.f_lineno)
        raise self.aborted

    def abort_check(self) -> None:
        """Injected at the start of every `except` and `finally`: re-raise once the limit was hit."""
        if self.aborted is not None:
            raise self.aborted


def _script_lineno(tb: types.TracebackType | None) -> int | None:
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def _describe(exc: BaseException) -> str:
    if _measure(exc.args, 2000) > 2000:
        return f"{type(exc).__name__} (message too long to show)"
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - any failure just hides the text
        text = ""
    if len(text) > 500:
        text = text[:500] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _translate(exc: Exception, source: str, what: str) -> SandboxError:
    lineno = _script_lineno(exc.__traceback__)
    if isinstance(exc, NameError) and getattr(exc, "name", None):
        name = exc.name
        if name in vars(builtins):
            return SandboxRuntimeError(_unavailable(name), source, lineno)
        return SandboxRuntimeError(f"Unknown name '{name}': it is neither a process variable "
                                   "nor a function available to diagram scripts", source, lineno)
    if isinstance(exc, RecursionError):
        return SandboxLimitError(f"{what} went too deep: functions in diagram scripts must not call "
                                 "themselves endlessly", source, lineno)
    if isinstance(exc, MemoryError):
        return SandboxLimitError(f"{what} ran out of memory; work with smaller data", source, lineno)
    return SandboxRuntimeError(_describe(exc), source, lineno)


def _check_functions(functions: Mapping[str, Any] | None) -> dict[str, Any]:
    """Injected names, each called untraced (`_untraced`); those starting with '_' could replace the sandbox's
    hooks and are dropped."""
    return {name: _untraced(value) if callable(value) else value for name, value in (functions or {}).items()
            if isinstance(name, str) and not name.startswith("_")}


# arguments an engine function can be given without any of the diagram's code running inside the call
_PLAIN_ARGUMENTS = frozenset({str, int, float, bool, type(None), date, datetime, timedelta, Decimal})


def _untraced(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` called from diagram code without the trace function: the engine's functions are trusted and their
    own frames are never limited (`Sandbox._run`'s trace ignores them), but the trace is still called at every
    Python call they make - hundreds for one database query, which then costs several times as much. Only when
    all arguments are plain values: a function or iterator the diagram passes in would run its code untraced."""
    return functools.partial(_call_untraced, function)


def _call_untraced(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    previous = sys.gettrace()
    if previous is None or not all(type(value) in _PLAIN_ARGUMENTS for value in (*args, *kwargs.values())):
        return function(*args, **kwargs)
    sys.settrace(None)
    try:
        return function(*args, **kwargs)
    finally:
        sys.settrace(previous)


def _copy_shared(value: Any, memo: dict[int, Any]) -> Any:
    """Deep copy of plain containers; objects that cannot be copied are shared (scripts can't change them)."""
    key = id(value)
    if key in memo:
        return memo[key]
    kind = type(value)
    if kind is list:
        result: Any = []
        memo[key] = result
        result.extend(_copy_shared(item, memo) for item in value)
    elif kind is dict:
        result = {}
        memo[key] = result
        for name, item in value.items():
            result[_copy_shared(name, memo)] = _copy_shared(item, memo)
    elif kind in (tuple, set, frozenset):
        result = kind(_copy_shared(item, memo) for item in value)
        memo[key] = result
    else:
        try:
            result = copy.deepcopy(value, memo)
        except Exception:  # noqa: BLE001 - e.g. generators: share them
            result = value
        memo[key] = result
    return result


def _copy_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """A private deep copy of the variables a script or expression may change in place."""
    try:
        return copy.deepcopy(dict(variables))
    except Exception:  # noqa: BLE001 - fall back to copying what can be copied
        memo: dict[int, Any] = {}
        return {name: _copy_shared(value, memo) for name, value in variables.items()}


def _is_code(value: Any) -> bool:
    return callable(value) or isinstance(value, (types.ModuleType, Iterator))


def _equal(old: Any, new: Any) -> bool:
    try:
        return type(old) is type(new) and bool(old == new)
    except Exception:  # noqa: BLE001 - incomparable means changed
        return False


def _assignment_line(source: str, name: str) -> int | None:
    """Line of the first assignment or deletion of `name` in a script, for error messages."""
    for node in ast.walk(ast.parse(source, FILENAME, "exec")):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, (ast.Store, ast.Del)):
            return node.lineno
    return None


# ------------------------------------------------------------------------------------- worker process

_CAN_ISOLATE = resource is not None and hasattr(os, "fork")
_LENGTH = struct.Struct("!Q")
# What a worker's answer may hold: the data types a variable may have. The worker runs untrusted code, so
# its bytes are unpickled with nothing else available.
_PICKLE_CLASSES = {
    "builtins": frozenset({"set", "frozenset", "complex", "bytearray"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    __name__: frozenset({"_zone"}),
}


def _zone(key: str) -> ZoneInfo:
    return ZoneInfo(key)


def _reduce_zone(zone: ZoneInfo) -> tuple:
    if zone.key is None:
        raise pickle.PicklingError("a time zone without a name cannot be passed")
    return _zone, (zone.key,)
_ERRORS = {cls.__name__: cls for cls in (SandboxError, SandboxSyntaxError, SandboxRuntimeError, SandboxLimitError)}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name not in _PICKLE_CLASSES.get(module, ()):
            raise pickle.UnpicklingError(f"'{module}.{name}' is not data")
        return super().find_class(module, name)


def _dumps(message: Any) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, ZoneInfo: _reduce_zone}  # by name, not by getattr
    pickler.dump(message)
    return buffer.getvalue()


class _Channel:
    """Length-prefixed pickled messages over a pair of pipes, or both ways over one socket."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd = read_fd
        self.write_fd = write_fd

    def send(self, message: Any) -> None:
        self.send_bytes(_dumps(message))

    def send_bytes(self, data: bytes) -> None:
        """A message already pickled (`_dumps`)."""
        view = memoryview(_LENGTH.pack(len(data)) + data)
        while view:
            view = view[os.write(self.write_fd, view):]

    def receive(self, deadline: float | None, trusted: bool) -> Any:
        """The next message; None if the other side closed the pipe or the deadline passed."""
        header = self._read(_LENGTH.size, deadline)
        if header is None:
            return None
        data = self._read(_LENGTH.unpack(header)[0], deadline)
        if data is None:
            return None
        if trusted:
            return pickle.loads(data)  # noqa: S301 - from the parent process
        return _DataUnpickler(io.BytesIO(data)).load()

    def _read(self, size: int, deadline: float | None) -> bytes | None:
        chunks = []
        while size:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                    return None
            chunk = os.read(self.read_fd, min(size, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)


def _portable_cause(cause: BaseException | None) -> tuple | None:
    """A built-in exception as (type name, simple arguments), to be rebuilt on the other side."""
    if cause is None or type(cause).__module__ != "builtins":
        return None
    return type(cause).__name__, tuple(a for a in cause.args if isinstance(a, (str, int, float, bool)))


def _rebuilt_cause(cause: Any) -> BaseException | None:
    if not isinstance(cause, tuple) or len(cause) != 2:
        return None
    cls = getattr(builtins, cause[0], None) if isinstance(cause[0], str) else None
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        return None
    try:
        return cls(*cause[1])
    except Exception:  # noqa: BLE001 - a cause that cannot be rebuilt is left out
        return None


class _Worker:
    """Runs one evaluation in a forked process with hard processor-time and memory limits.

    The worker is forked by the host (`_Host`), which holds nothing of this process; when the host cannot take the
    run, this process forks it itself. The engine's functions stay in this process (they may use its database
    connection): the worker calls them through the channel, with data arguments, and gets their results or errors
    back.
    """

    def __init__(self, sandbox: Sandbox, source: str, what: str, functions: Mapping[str, Callable[..., Any]]):
        self.sandbox = sandbox
        self.source = source
        self.what = what
        self.functions = functions
        self.cpu = sandbox.worker_cpu_seconds
        self.memory = sandbox.worker_memory_mb
        self._answered = False

    def run(self, work: Callable[[Mapping[str, Any]], Any], request: tuple) -> Any:
        """`work`'s result, computed in a worker: one the host forks, given `request` (what `_hosted_worker`
        rebuilds `work` from), else one forked from this process."""
        if _USE_HOST:
            hosted = _HOST.run(self, request)
            if hosted is not _UNHOSTED:
                return hosted
        to_parent = os.pipe()
        to_child = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child process (coverage does not follow it)
            os.close(to_parent[0])
            os.close(to_child[1])
            self._child(_Channel(to_child[0], to_parent[1]), work)
        os.close(to_parent[1])
        os.close(to_child[0])
        try:
            return self.serve(_Channel(to_parent[0], to_child[1]), _Forked(pid))
        finally:
            os.close(to_parent[0])
            os.close(to_child[1])

    def serve(self, channel: _Channel, process: _Forked | _Hosted) -> Any:
        """Serve the worker until it answers; then leave its exit to be collected, or stop it."""
        try:
            return self._serve(channel, process)
        finally:
            if self._answered:  # it exits by itself
                process.collect()
            else:
                process.status(kill=True)

    # the worker's side

    def _child(self, channel: _Channel, work: Callable[[Mapping[str, Any]], Any]) -> None:  # pragma: no cover
        try:
            try:
                self._limit()
                proxies = {name: self._proxy(channel, name) for name in self.functions}
                message: tuple = ("ok", work(proxies))
            except SandboxError as exc:
                text = exc.message
                if isinstance(exc.__cause__, MemoryError):
                    text = f"{self.what} needed more than {self.memory} MB of memory; work with smaller data"
                message = ("error", type(exc).__name__, text, exc.lineno, _portable_cause(exc.__cause__))
            except MemoryError:
                message = ("error", "SandboxLimitError",
                           f"{self.what} needed more than {self.memory} MB of memory; work with smaller data", None,
                           None)
            except Exception as exc:  # noqa: BLE001 - e.g. the limits cannot be set: reported, never ignored
                message = ("error", "SandboxRuntimeError",
                           f"The {self.what.lower()} could not run in its worker process ({type(exc).__name__})",
                           None, None)
            try:
                channel.send(message)
            except (pickle.PicklingError, TypeError, RecursionError, MemoryError):
                channel.send(("error", "SandboxRuntimeError",
                              f"The result of the {self.what.lower()} cannot be passed back; keep only plain data "
                              "(numbers, text, dates, lists, dictionaries)", None, None))
        finally:
            os._exit(0)

    def _limit(self) -> None:  # pragma: no cover - runs in the child process
        assert resource is not None
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu, self.cpu + 1))
        statm = os.open("/proc/self/statm", os.O_RDONLY)  # not open(): a text file costs a millisecond here
        try:
            used = int(os.read(statm, 256).split()[0]) * os.sysconf("SC_PAGE_SIZE")
        finally:
            os.close(statm)
        limit = used + self.memory * 2**20
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    def _proxy(self, channel: _Channel, name: str) -> Callable[..., Any]:  # pragma: no cover
        max_size = self.sandbox.max_size

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                size = _measure((args, kwargs), max_size, data_only=True)
            except _NotData as exc:
                raise SandboxRuntimeError(f"'{name}' cannot be given a '{type(exc.args[0]).__name__}' object; "
                                          "pass data (numbers, text, dates, lists, dictionaries)") from None
            if size > max_size:
                raise SandboxLimitError(f"The arguments of '{name}' are too large (more than {max_size} "
                                        "elements or characters)")
            channel.send(("call", name, args, kwargs))
            reply = channel.receive(None, trusted=True)
            if reply is None:
                os._exit(1)
            if reply[0] == "value":
                return reply[1]
            _kind, error, text = reply
            if error in _ERRORS:
                raise _ERRORS[error](text)
            cls = getattr(builtins, error, None) if error else None
            if isinstance(cls, type) and issubclass(cls, Exception):
                raise cls(text)
            raise SandboxRuntimeError(text)
        return call

    # this process's side

    def _serve(self, channel: _Channel, process: _Forked | _Hosted) -> Any:
        # The processor-time limit bounds the work; the wall clock only guards against a stuck worker.
        deadline = time.monotonic() + self.wall_seconds()
        while True:
            try:
                message = channel.receive(deadline, trusted=False)
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
                raise SandboxRuntimeError(f"The result of the {self.what.lower()} cannot be read back: {exc}",
                                          self.source) from None
            if message is None:
                raise self._stopped(process, time.monotonic() >= deadline)
            if not isinstance(message, tuple) or not message:
                raise SandboxRuntimeError(f"The worker of the {self.what.lower()} gave no readable answer",
                                          self.source)
            if message[0] == "call" and len(message) == 4 and isinstance(message[1], str):
                try:
                    reply = self._call(message[1], tuple(message[2]), dict(message[3]))
                    try:
                        channel.send(reply)
                    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
                        channel.send(("raise", "TypeError", f"'{message[1]}' gave a value that cannot be passed "
                                                            "to this script"))
                except OSError:  # the worker is gone
                    raise self._stopped(process, time.monotonic() >= deadline) from None
                continue
            self._answered = True
            if message[0] == "ok" and len(message) == 2:
                return message[1]
            if message[0] == "error" and len(message) == 5:
                _kind, error, text, lineno, cause = message
                lineno = lineno if isinstance(lineno, int) else None
                raise _ERRORS.get(error, SandboxRuntimeError)(str(text), self.source, lineno) \
                    from _rebuilt_cause(cause)
            raise SandboxRuntimeError(f"The worker of the {self.what.lower()} gave no readable answer",
                                      self.source)

    def _call(self, name: str, args: tuple, kwargs: dict) -> tuple:
        try:
            value = self.functions[name](*args, **kwargs)
        except SandboxError as exc:
            return ("raise", type(exc).__name__, exc.message)
        except Exception as exc:  # noqa: BLE001 - passed on to the script, as when run in this process
            if type(exc).__module__ == "builtins":
                return ("raise", type(exc).__name__, str(exc))
            return ("raise", None, _describe(exc))
        return ("value", value)

    def wall_seconds(self) -> float:
        """How long the worker may take by the wall clock: its processor time bounds the work, this only guards
        against a worker that is stuck."""
        return 3 * self.cpu + 5

    def _stopped(self, process: _Forked | _Hosted, timed_out: bool) -> SandboxLimitError:
        status = process.status(kill=True)
        if timed_out:
            message = f"{self.what} ran too long (more than {self.wall_seconds()} seconds in its worker process)"
        elif status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU,
                                                                                       signal.SIGKILL):
            message = (f"{self.what} ran too long (more than {self.cpu} seconds of processor time); "
                       "work with smaller data")
        else:
            message = (f"{self.what} was stopped: it needed more than {self.memory} MB of memory or "
                       f"{self.cpu} seconds of processor time; work with smaller data")
        return SandboxLimitError(message, self.source)



class _Forked:
    """A worker this process forked."""

    def __init__(self, pid: int):
        self.pid = pid
        self._status: int | None = None

    def status(self, kill: bool) -> int | None:
        """Wait for the worker (killing it first if `kill`); its wait status, once known."""
        if self._status is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG) if kill else (0, 0)
                if not done:
                    if kill:
                        os.kill(self.pid, signal.SIGKILL)
                    done, status = os.waitpid(self.pid, 0)
            except ChildProcessError:  # pragma: no cover - already reaped elsewhere
                return None
            self._status = status
        return self._status

    def collect(self) -> None:
        """The worker answered and exits by itself: its exit is collected off the caller's path."""
        _REAPER.collect(self.pid)


class _Reaper:
    """Collects the exit of workers that have answered, in a thread of its own, so that the change that ran them
    does not wait for it: a worker forked from a large process (a web worker) takes milliseconds to give its copy
    of the address space back after it has answered. One thread per process (a forked process starts its own)."""

    def __init__(self) -> None:
        self._forked()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._pids: queue.SimpleQueue[int] | None = None

    def collect(self, pid: int) -> None:
        with self._lock:
            if self._pids is None:
                self._pids = queue.SimpleQueue()
                threading.Thread(target=self._wait, args=(self._pids,), name="kurator-sandbox-reaper",
                                 daemon=True).start()
            self._pids.put(pid)

    @staticmethod
    def _wait(pids: queue.SimpleQueue[int]) -> None:
        while True:
            pid = pids.get()
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # pragma: no cover - already collected elsewhere
                pass


_REAPER = _Reaper()


# ------------------------------------------------------------------------------------- the worker host

# Whether workers are forked by the host (`KURATOR_SANDBOX_HOST=0` turns it off: every worker is forked from the
# caller, as on a system that cannot start the host; tests that replace the worker's side here turn it off too).
_USE_HOST = os.environ.get("KURATOR_SANDBOX_HOST", "1") != "0"
_UNHOSTED = object()  # the host could not take a run: the caller forks the worker itself
_HOST_START_SECONDS = 10.0  # for the host's first answer: it starts an interpreter and imports this module
_HOST_RETRY_SECONDS = 60.0  # after the host failed to start, runs fork the caller for this long before a retry
_EARLY_BYTES = 32_768  # a request this small is written before the worker has its socket (a socket buffers more)
_ENGINE_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
# The host's whole environment: not the caller's, which holds the database's address and the keys.
_HOST_ENVIRONMENT = {"PATH": os.defpath, "LC_ALL": "C.UTF-8"}
# The host's program: this module imported as `engine.sandbox` without the `engine` package's own imports (the
# database, the workflow library, the services), then the host's loop on the control socket given by number.
_BOOT = ("import os, signal, sys, types\n"
         "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
         "package = types.ModuleType('engine')\n"
         "package.__path__ = [sys.argv[1]]\n"
         "sys.modules['engine'] = package\n"
         "from engine import sandbox\n"
         "sandbox._host_main(int(sys.argv[2]))\n")


class _Hosted:
    """A worker the host forked: this process may kill it (same user), and the host reports its exit."""

    def __init__(self, host: _Host, control: socket.socket, pid: int):
        self.host = host
        self.control = control
        self.pid = pid
        self._status: int | None = None
        self._known = False
        # The host, not this process, collects the worker's exit, so its pid may be given to another process once
        # it has exited: a kill goes through a descriptor of this very process where the system has them.
        try:
            self._pidfd: int | None = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
        except OSError:  # already gone (the host reports it), or no pidfd here
            self._pidfd = None

    def status(self, kill: bool) -> int | None:
        """Its wait status as the host reports it (killing it first if `kill`); None if the host did not say."""
        if not self._known:
            if kill:
                try:
                    if self._pidfd is not None:
                        signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                    else:
                        os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:  # it has exited; the host reports how
                    pass
            self._close()
            self._known = True
            message = self.host.receive(self.control, time.monotonic() + _HOST_START_SECONDS)
            if (isinstance(message, tuple) and len(message) == 3 and message[0] == "exited"
                    and message[1] == self.pid and isinstance(message[2], int)):
                self._status = message[2]
            else:
                self.host.discard(self.control)
        return self._status

    def collect(self) -> None:
        """The worker answered and exits by itself: the host's report of its exit is read by the next run, off
        this one's path."""
        self._close()
        self.host.pending = self

    def _close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class _Host:
    """Forks the workers from a small process of its own instead of from the caller.

    A worker forked from the caller holds a copy of all of it: a web worker's heap (its sessions, its keys, the data
    of the requests in progress) and its open files and database connections, which the worker's code never needs;
    and forking a large process costs milliseconds. The host is a new interpreter, started once per process
    (`_BOOT`: it imports this module, not the engine), that forks one worker per run. The worker holds nothing of
    the caller but what its run needs, which it receives as data over a socket pair of its own: the code, the
    variables, the limits and the names of the engine's functions (called back in the caller, as before).

    One run at a time per host. A run that finds the host busy, a run whose variables cannot be passed as data, and
    every run while the host cannot be started fork the caller as before. A host that misbehaves is discarded and
    a new one started for a later run; a process forked from its owner starts its own."""

    def __init__(self) -> None:
        self._forked()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        control = getattr(self, "_control", None)
        if control is not None:  # the parent's host: this process keeps no way to it
            os.close(control.detach())
        self._lock = threading.Lock()
        self._owner = os.getpid()
        self._process: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._failed_at: float | None = None
        self.pending: _Hosted | None = None  # a worker that answered, whose exit the host has still to report

    def run(self, worker: _Worker, request: tuple) -> Any:
        """The run's result from a hosted worker, or `_UNHOSTED` (nothing ran) when the caller must fork it."""
        if not self._lock.acquire(blocking=False):
            return _UNHOSTED
        try:
            pending, self.pending = self.pending, None
            if pending is not None:
                pending.status(kill=False)
            try:
                payload = _dumps(request)
            except (pickle.PicklingError, TypeError, AttributeError, RecursionError, ValueError):
                return _UNHOSTED  # a variable that is not data: the caller's own fork shares it as it is
            control = self._started()
            if control is None:
                return _UNHOSTED
            ours, theirs = socket.socketpair()
            with ours:
                channel = _Channel(ours.fileno(), ours.fileno())
                early = len(payload) <= _EARLY_BYTES  # waits in the socket for the worker, which starts on it
                try:
                    with theirs:
                        if early:
                            channel.send_bytes(payload)
                        socket.send_fds(control, [b"w"], [theirs.fileno()])
                    forked = self.receive(control, time.monotonic() + _HOST_START_SECONDS)
                except OSError:
                    forked = None
                if not (isinstance(forked, tuple) and len(forked) == 2 and forked[0] == "forked"
                        and isinstance(forked[1], int)):
                    self.discard(control)
                    self._failed_at = time.monotonic()
                    return _UNHOSTED
                process = _Hosted(self, control, forked[1])
                if not early:
                    try:
                        channel.send_bytes(payload)
                    except OSError:  # the worker is gone already: its exit says why
                        pass
                return worker.serve(channel, process)
        finally:
            self._lock.release()

    def _started(self) -> socket.socket | None:
        """The control socket of a running host, started if need be; None while starting it fails."""
        if self._control is not None and self._process is not None and self._process.poll() is None:
            return self._control
        if self._control is not None:
            self.discard(self._control)
        if self._failed_at is not None and time.monotonic() - self._failed_at < _HOST_RETRY_SECONDS:
            return None
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, _ENGINE_DIRECTORY, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=_HOST_ENVIRONMENT)
        except OSError:
            ours.close()
            self._failed_at = time.monotonic()
            return None
        finally:
            theirs.close()
        self._control = ours
        return ours

    @staticmethod
    def receive(control: socket.socket, deadline: float) -> Any:
        """The host's next report (it is trusted: it runs no diagram code), or None."""
        try:
            return _Channel(control.fileno(), control.fileno()).receive(deadline, trusted=True)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError):
            return None

    def discard(self, control: socket.socket) -> None:
        """Stop the host of `control` (if it is still this process's host); a later run starts a new one."""
        if control is not self._control:
            return
        process, self._process, self._control = self._process, None, None
        control.close()
        if process is not None:
            process.kill()
            process.wait()


def _host_main(control_fd: int) -> None:  # pragma: no cover - runs in the host process
    """The host's loop: for each worker socket the caller sends, hand it to the spare worker, report the worker's
    pid, fork the next spare, wait for the worker's exit and report that. Ends when the caller closes its end.

    The spare is forked and warmed up before it is needed, so that neither the fork nor the first touches of the
    memory it shares with the host (each copies a page) are on the caller's path."""
    control = socket.socket(fileno=control_fd)
    reports = _Channel(control_fd, control_fd)
    gc.freeze()  # what the host has built stays shared: a worker's collections do not touch (and copy) it
    spare = _Spare(control)
    while True:
        try:
            _message, fds, _flags, _address = socket.recv_fds(control, 16, 4)
        except OSError:
            os._exit(0)
        if not fds:
            os._exit(0)
        for extra in fds[1:]:
            os.close(extra)
        if not spare.take(fds[0]):  # it died before its run: a new one, at once
            spare = _Spare(control)
            spare.take(fds[0])
        os.close(fds[0])
        reports.send(("forked", spare.pid))
        worker, spare = spare, _Spare(control)
        _done, status = os.waitpid(worker.pid, 0)
        reports.send(("exited", worker.pid, status))


class _Spare:  # pragma: no cover - runs in the host process and its workers
    """A worker forked by the host ahead of its run, waiting for its socket on a link of its own."""

    def __init__(self, control: socket.socket):
        link, end = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:
            link.close()
            control.close()  # nothing of the host's own socket
            self._wait(end)
        end.close()
        self.link = link

    def take(self, fd: int) -> bool:
        """Hand the worker its socket; False (and the spare collected) if it is gone."""
        try:
            socket.send_fds(self.link, [b"w"], [fd])
            return True
        except OSError:
            os.waitpid(self.pid, 0)
            return False
        finally:
            self.link.close()

    @staticmethod
    def _wait(end: socket.socket) -> None:
        _warm_up()
        try:
            _message, fds, _flags, _address = socket.recv_fds(end, 16, 4)
        except OSError:
            os._exit(0)
        if not fds:  # the host is gone
            os._exit(0)
        end.close()
        for extra in fds[1:]:
            os.close(extra)
        _hosted_worker(fds[0])


def _warm_up() -> None:  # pragma: no cover - runs in a spare worker
    """Go once through what a run does (unpickle a request, build the sandbox, run a loop, pickle the answer), so
    that the pages it touches are this process's own before the caller waits for it."""
    request = pickle.loads(_dumps(("exec", "t = 0\nfor i in range(3):\n    t += i\n", {"d": date(2000, 1, 1)},
                                   (), (100, 1.0, 100, 1, 16), "Script")))
    _dumps(("ok", Sandbox(*request[4])._work(request[0], request[1], request[2], worker=True)({})))


def _hosted_worker(fd: int) -> None:  # pragma: no cover - runs in a worker the host forked
    """Rebuild the run from the caller's request and run it as a worker forked from the caller would."""
    channel = _Channel(fd, fd)
    try:
        request = channel.receive(None, trusted=True)  # from the caller, which runs no diagram code
        mode, source, data, names, limits, what = request
        sandbox = Sandbox(*limits)
        work = sandbox._work(mode, source, data, worker=True)
        worker = _Worker(sandbox, source, what, dict.fromkeys(names))
    except Exception:  # noqa: BLE001 - a request it cannot read: the caller reports the worker as stopped
        os._exit(1)
    worker._child(channel, work)


_HOST = _Host()


class Sandbox:
    """Runs diagram expressions and scripts with restricted builtins and bounded steps, time and size.

    Code over the static budget runs in a worker process limited to `worker_cpu_seconds` of processor time
    and `worker_memory_mb` megabytes of memory (on systems without `fork`, in this process).
    """

    def __init__(self, max_steps: int = 100_000, max_seconds: float = 2.0, max_size: int = 1_000_000,
                 worker_cpu_seconds: int | None = None, worker_memory_mb: int = 512):
        if max_steps < 1 or max_seconds <= 0 or max_size < 1:
            raise ValueError("sandbox limits must be positive")
        if worker_cpu_seconds is None:
            worker_cpu_seconds = math.ceil(max_seconds) + 1
        if worker_cpu_seconds < 1 or worker_memory_mb < 16:
            raise ValueError("worker limits: at least 1 second and 16 MB")
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.max_size = max_size
        self.worker_cpu_seconds = int(worker_cpu_seconds)
        self.worker_memory_mb = int(worker_memory_mb)
        self._builtins = _Guards(max_size).namespace_builtins()

    def evaluate(self, expression: str, variables: Mapping[str, Any],
                 functions: Mapping[str, Callable[..., Any]] | None = None) -> Any:
        """Value of an expression; variables are read-only (copies), functions callable by name."""
        compiled = _compiled(expression, "eval")
        injected = _check_functions(functions)
        used = {name: variables[name] for name in compiled.names
                if name not in injected and not name.startswith("_") and name in variables}
        if compiled.isolate and _CAN_ISOLATE:
            return _Worker(self, expression, "Expression", injected).run(
                self._work("eval", expression, used, True, compiled),
                self._request("eval", expression, used, injected))
        return self._work("eval", expression, used, False, compiled)(injected)

    def execute(self, script: str, variables: MutableMapping[str, Any],
                functions: Mapping[str, Callable[..., Any]] | None = None) -> None:
        """Run a script; on success `variables` gets its new/changed variables and loses deleted ones.

        On any error `variables` is left exactly as it was (the script works on a deep copy).
        """
        compiled = _compiled(script, "exec")
        injected = _check_functions(functions)
        visible = {name: value for name, value in variables.items()
                   if isinstance(name, str) and not name.startswith("_") and name not in injected}
        if compiled.isolate and _CAN_ISOLATE:
            updates, deleted = _Worker(self, script, "Script", injected).run(
                self._work("exec", script, visible, True, compiled),
                self._request("exec", script, visible, injected))
        else:
            updates, deleted = self._work("exec", script, visible, False, compiled)(injected)
        for name in deleted:
            del variables[name]
        variables.update(updates)

    def _work(self, mode: str, source: str, data: dict[str, Any], worker: bool = False,
              compiled: _Compiled | None = None) -> Callable[[Mapping[str, Any]], Any]:
        """What a run does once given its functions: an expression's value over copies of the variables it uses
        (`data`; in a `worker`, checked to be data that may leave it), or a script's changes to the visible
        variables (`data`). Built the same way in this process and in a hosted worker (`_hosted_worker`)."""
        compiled = compiled or _compiled(source, mode)
        if mode == "exec":
            return functools.partial(self._execute, compiled, source, data)

        def run(callables: Mapping[str, Any]) -> Any:
            namespace = _copy_variables(data)
            namespace.update(callables)
            return self._run(compiled, namespace, source, "Expression")
        return self._returnable(run) if worker else run

    def _request(self, mode: str, source: str, data: dict[str, Any], functions: Mapping[str, Any]) -> tuple:
        """What a hosted worker needs to rebuild this sandbox and the run's work: data and names only."""
        limits = (self.max_steps, self.max_seconds, self.max_size, self.worker_cpu_seconds, self.worker_memory_mb)
        return (mode, source, data, tuple(functions), limits, "Expression" if mode == "eval" else "Script")

    def _execute(self, compiled: _Compiled, script: str, visible: dict[str, Any],
                 injected: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Run a script on a copy of `visible`: (new and changed variables, names of deleted ones)."""
        namespace = _copy_variables(visible)
        copies = dict(namespace)
        namespace.update(injected)
        self._run(compiled, namespace, script, "Script")

        updates = {}
        for name, value in namespace.items():
            if not isinstance(name, str) or name.startswith("_"):
                continue
            if name in injected:
                if value is not injected[name]:
                    raise SandboxRuntimeError(f"Variable '{name}' would hide the function of the same name; "
                                              "rename it", script, _assignment_line(script, name))
                continue
            if _is_code(value):
                continue
            rebound = name not in copies or value is not copies[name]
            if rebound or (isinstance(value, _CONTAINERS) and not _equal(visible[name], value)):
                self._check_storable(name, value, script)
                updates[name] = value
        for name in injected:
            if name not in namespace:
                raise SandboxRuntimeError(f"'{name}' is a function provided by the engine and cannot be "
                                          "deleted", script, _assignment_line(script, name))
        return updates, [name for name in visible if name not in namespace]

    def _returnable(self, run: Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, Any]], Any]:
        """`run`, whose result must be data within `max_size` to leave the worker process."""
        def checked(callables: Mapping[str, Any]) -> Any:
            result = run(callables)
            try:
                size = _measure(result, self.max_size, data_only=True)
            except _NotData as exc:
                raise SandboxRuntimeError(
                    f"The expression's value is a '{type(exc.args[0]).__name__}' object; an expression with "
                    "loops or functions must give data (numbers, text, dates, lists, dictionaries)") from None
            if size > self.max_size:
                raise SandboxLimitError(f"The expression's value is too large (more than {self.max_size} "
                                        "elements or characters, nested values included)")
            return result
        return checked

    def _check_storable(self, name: str, value: Any, script: str) -> None:
        try:
            size = _measure(value, self.max_size, data_only=True)
        except _NotData as exc:
            kind = type(exc.args[0]).__name__
            raise SandboxRuntimeError(
                f"Variable '{name}' holds a '{kind}' object, which cannot be stored; keep only data in "
                "variables (numbers, text, dates, lists, dictionaries), e.g. convert with list(...)",
                script, _assignment_line(script, name)) from None
        if size > self.max_size:
            raise SandboxLimitError(f"Variable '{name}' is too large (more than {self.max_size} elements or "
                                    "characters, nested values included)",
                                    script, _assignment_line(script, name))

    def _run(self, compiled: _Compiled, namespace: dict[str, Any], source: str, what: str) -> Any:
        run = _Run(self.max_steps, self.max_seconds, what)
        namespace["__builtins__"] = {**self._builtins, "_sb_abort_check_": run.abort_check}
        previous = sys.gettrace()

        def trace_line(frame: types.FrameType, event: str, arg: Any) -> Any:
            if event == "line":
                run.tick(frame)
            return trace_line

        def trace_call(frame: types.FrameType, event: str, arg: Any) -> Any:
            if frame.f_code.co_filename == FILENAME:
                run.tick(frame)
                return trace_line
            return previous(frame, event, arg) if previous is not None else None

        try:
            sys.settrace(trace_call)
            try:
                return eval(compiled.code, namespace)  # noqa: S307 - restricted code, restricted namespace
            finally:
                sys.settrace(previous)
        except SandboxError as exc:
            if exc.source is None:
                exc.source = source
            if exc.lineno is None:
                exc.lineno = _script_lineno(exc.__traceback__)
            raise
        except Exception as exc:
            raise _translate(exc, source, what) from exc
