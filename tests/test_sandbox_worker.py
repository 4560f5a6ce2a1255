"""The sandbox's last layer: code over the cheap static budget runs in a worker process with hard limits.

One C-level operation (a comparison, a hash, `sum(map(...))`) on a structure that is small to build but huge
when expanded, or many copies made before the step limit fires, cannot be interrupted by the trace function.
Such code is over the static budget, so it runs in a forked worker whose processor time and memory are capped
by `resource.setrlimit`: every known payload of that kind is stopped with a message naming the limit.
"""

from __future__ import annotations

import ast
import glob
import io
import os
import pickle
import signal
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

import engine.sandbox as sandbox_module
from engine.sandbox import Sandbox, SandboxError, SandboxLimitError, SandboxRuntimeError, _compiled, _DataUnpickler

pytestmark = pytest.mark.skipif(not sandbox_module._CAN_ISOLATE, reason="worker processes need fork and resource")

LIMIT = "seconds of processor time|MB of memory"

DOUBLING = "a = [0]\nb = [0]\nfor i in range(60):\n    a = [a, a]\n    b = [b, b]\n"
PAYLOADS = [
    # comparisons, hashes and searches over shared structures (measured: each ran for minutes)
    ("exec", "a = [list(range(1000000))] * 1000000\nb = [list(range(1000000))] * 1000000\nr = a == b"),
    ("exec", DOUBLING + "r = a == b"),
    ("exec", DOUBLING + "r = max([a, b])"),
    ("exec", DOUBLING + "r = sorted([a, b, a, b])"),
    ("exec", DOUBLING + "r = a in [b]"),
    ("exec", "t = (0,)\nfor i in range(60):\n    t = (t, t)\nr = {t}"),
    ("eval", "{tuple([tuple(range(1000000))] * 1000000): 1}"),
    ("exec", "t = tuple(range(1000000))\nu = tuple(range(1000000))\nr = (t,) * 1000000 < (u,) * 1000000"),
    ("exec", "a = [list(range(1000000))] * 1000000\nr = a.count(list(range(1000000)))"),
    ("eval", "dict.fromkeys(range(1000000), list(range(1000000))) == "
             "dict.fromkeys(range(1000000), list(range(1000000)))"),
    # self-referencing lists compared down to the recursion limit
    ("exec", "x = list(range(1000000))\nx.append(x)\ny = list(range(1000000))\ny.append(y)\nr = x == y"),
    # one builtin call repeating C work over a shared structure
    ("eval", "sum(map(sum, [list(range(1000000))] * 1000000))"),
    ("eval", "any(map(any, [[0] * 1000000] * 1000000))"),
    ("eval", "len(set(map(tuple, [[0] * 1000000] * 1000000)))"),
    # doubling without a loop: straight-line code over the budget
    ("exec", "a = list(range(1000000))\n" + "a = [a, a]\n" * 30
             + "b = list(range(1000000))\n" + "b = [b, b]\n" * 30 + "r = a == b"),
    # memory: many copies, each within the size limit, made faster than the step or time limit fires
    ("eval", "len(list(map(list, [[0] * 1000000] * 1000000)))"),
    ("exec", "x = [0] * 1000000\nz = []\nfor i in range(5000):\n    z.append(x[:])"),
    ("exec", "x = [0] * 1000000\nz = [x * 1 for i in range(5000)]"),
]


@pytest.fixture
def limited() -> Sandbox:
    return Sandbox(worker_cpu_seconds=1, worker_memory_mb=256)


@pytest.mark.parametrize(("mode", "source"), PAYLOADS)
def test_c_level_payloads_are_stopped_by_the_worker_limits(limited, mode, source):
    assert _compiled(source, mode).isolate
    variables = {"keep": [1, 2]}
    with pytest.raises(SandboxLimitError, match=LIMIT) as info:
        if mode == "eval":
            limited.evaluate(source, variables)
        else:
            limited.execute(source, variables)
    assert info.value.source == source
    assert variables == {"keep": [1, 2]}


def test_a_forged_or_broken_answer_is_an_error(limited, monkeypatch):
    """Whatever the worker sends back, the caller gets a SandboxError, never another exception."""
    monkeypatch.setattr(sandbox_module, "_USE_HOST", False)  # the worker's side replaced in this process
    for answer in [("ok",), ("error", "SandboxRuntimeError"), "ok", ("call", 1), ("unknown", 1)]:
        monkeypatch.setattr(sandbox_module._Worker, "_child", lambda self, channel, work, answer=answer: (
            channel.send(answer), os._exit(0)))
        with pytest.raises(SandboxRuntimeError, match="no readable answer|stopped"):
            limited.evaluate("[i for i in range(3)]", {})
    monkeypatch.setattr(sandbox_module._Worker, "_child", lambda self, channel, work: os._exit(3))
    with pytest.raises(SandboxLimitError, match="was stopped"):
        limited.evaluate("[i for i in range(3)]", {})


def test_limit_messages_name_the_limit(limited):
    with pytest.raises(SandboxLimitError, match="more than 1 seconds of processor time"):
        limited.execute(DOUBLING + "r = a == b", {})
    with pytest.raises(SandboxLimitError, match="needed more than 256 MB of memory"):
        limited.evaluate("len(list(map(list, [[0] * 1000000] * 1000000)))", {})


# ------------------------------------------------------------------------------------- static budget


def diagram_scripts() -> list[str]:
    scripts = []
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "workflows", "*.bpmn"))):
        for element in ElementTree.parse(path).iter():
            if element.tag.endswith("}script") and element.text:
                scripts.append(element.text)
    return scripts


def has_loop(script: str) -> bool:
    return any(isinstance(node, (ast.For, ast.While, ast.comprehension)) for node in ast.walk(ast.parse(script)))


def test_straight_line_diagram_scripts_run_in_process():
    scripts = diagram_scripts()
    straight = [script for script in scripts if not has_loop(script)]
    assert len(straight) >= 5
    assert [script for script in straight if _compiled(script, "exec").isolate] == []
    assert all(_compiled(script, "exec").isolate for script in scripts if has_loop(script))


@pytest.mark.parametrize("expression", [
    "amount > 1000 and region == 'EU'",
    "working_days(n) + timedelta(days=1)",
    "decision == 'continue' and correct_programme",
    "'-' * 80",
    "str(int(half[0:4]) + 1) + '-01-20'",
    "len(items) > 3 or items[0]['name'] in names",
    "datetime.strptime(received, '%Y-%m-%d').date()",
    "'{0}-{1:>3}'.format(amount, region)",
    "sorted(items)[0]",
])
def test_ordinary_expressions_run_in_process(expression):
    assert not _compiled(expression, "eval").isolate


@pytest.mark.parametrize(("mode", "source"), [
    ("eval", "[x for x in items]"),
    ("eval", "sum(i for i in items)"),
    ("eval", "sorted(items, key=lambda i: -i)"),
    ("exec", "while n:\n    n = n - 1"),
    ("exec", "def f(v):\n    return v\nr = f(1)"),
    ("exec", "items.append(items)"),
    ("exec", "grow = items.extend"),
    ("exec", "d['k'] = d"),
    ("exec", "items += [items]"),
    ("exec", "items *= 1000"),
    ("eval", "dict.fromkeys(keys, value)"),
    ("eval", "[x] * 1000"),
    ("eval", "[[0] * 1000] * 1000"),
    ("eval", "price * quantity"),
    ("exec", "a = [x, x]\n" + "a = [a, a]\n" * 6),
    ("exec", "r = 1\n" * 401),
    # library code written in Python, which the trace function does not follow
    ("eval", "text.encode('idna')"),
    ("eval", "raw.decode(codec)"),
    ("eval", "template.format(amount)"),
    ("eval", "str.format(template, amount)"),
    ("eval", "datetime.strptime(received, pattern)"),
    ("eval", "sorted(a) + sorted(b)"),
])
def test_code_over_the_static_budget_runs_in_a_worker(mode, source):
    assert _compiled(source, mode).isolate


def test_largest_in_process_values_stay_small():
    """Within the budget, values of the size limit can still be built and compared in process."""
    source = "a = list(range(1000000))\nb = list(range(1000000))\nsame = a == b\nn = len(a)\ndel a, b"
    assert not _compiled(source, "exec").isolate
    variables: dict = {}
    Sandbox().execute(source, variables)
    assert variables["same"] is True and variables["n"] == 1_000_000


# ---------------------------------------------------------------------------------- same as in process


def run_both(monkeypatch, script, variables, functions=None):
    """(variables after the script in a worker, the same in process)."""
    assert _compiled(script, "exec").isolate
    in_worker = dict(variables)
    Sandbox().execute(script, in_worker, functions)
    monkeypatch.setattr(sandbox_module, "_CAN_ISOLATE", False)
    in_process = dict(variables)
    Sandbox().execute(script, in_process, functions)
    monkeypatch.setattr(sandbox_module, "_CAN_ISOLATE", True)
    return in_worker, in_process


def test_worker_results_are_exactly_those_of_the_process(monkeypatch):
    zone = timezone(timedelta(hours=3))
    variables = {"items": [1, 2], "gone": "x", "kept": {"a": 1}, "when": datetime(2024, 5, 1, 9, tzinfo=zone),
                 "local": datetime(2024, 5, 1, 9, tzinfo=ZoneInfo("Europe/Moscow"))}
    script = ("for i in range(3):\n    items.append(i)\n"
              "del gone\n"
              "row = [date(2024, 1, 2), Decimal('1.10'), {1, 2}, frozenset({3}), (4, 5), None, 2.5, True, b'x']\n"
              "pair = [row, row]\n"
              "later = when + timedelta(days=1)\n"
              "local_later = local + timedelta(hours=1)\n")
    in_worker, in_process = run_both(monkeypatch, script, variables)
    assert in_worker == in_process
    assert in_worker["items"] == [1, 2, 0, 1, 2] and "gone" not in in_worker
    assert in_worker["kept"] is variables["kept"]  # unchanged variables are not replaced
    assert [type(v) for v in in_worker["row"]] == [type(v) for v in in_process["row"]]
    assert in_worker["pair"][0] is in_worker["pair"][1]  # shared values stay shared, as in process
    assert in_worker["later"].tzinfo == zone
    assert in_worker["local_later"].tzinfo is ZoneInfo("Europe/Moscow")


def test_worker_expression_value(limited):
    assert limited.evaluate("[i * i for i in items if i > 1]", {"items": [1, 2, 3]}) == [4, 9]
    assert limited.evaluate("{k: v for k, v in pairs}", {"pairs": [("a", Decimal("1"))]}) == {"a": Decimal("1")}
    with pytest.raises(SandboxRuntimeError, match="'generator' object"):
        limited.evaluate("(i for i in items)", {"items": [1]})
    with pytest.raises(SandboxLimitError, match="value is too large"):
        limited.evaluate("[[0] * 1000] * 1001", {})


def test_engine_functions_run_in_this_process(limited):
    calls = []

    def where(value):
        calls.append((os.getpid(), value))
        return date(2024, 1, value)

    def failing(reason):
        raise ValueError(f"bad {reason}")

    def refusing():
        raise SandboxError("Not available here")

    def opaque():
        return lambda: 1

    functions = {"where": where, "failing": failing, "refusing": refusing, "opaque": opaque}
    variables: dict = {}
    limited.execute("days = [where(i) for i in range(1, 3)]\n"
                    "try:\n    failing('x')\nexcept ValueError as exc:\n    caught = str(exc)\n",
                    variables, functions)
    assert variables == {"days": [date(2024, 1, 1), date(2024, 1, 2)], "caught": "bad x"}
    assert calls == [(os.getpid(), 1), (os.getpid(), 2)]
    with pytest.raises(SandboxRuntimeError, match="ValueError: bad y") as info:
        limited.execute("for i in range(2):\n    failing('y')", {}, functions)
    assert info.value.lineno == 2 and isinstance(info.value.__cause__, ValueError)
    with pytest.raises(SandboxError, match="^Not available here$"):
        limited.execute("for i in range(2):\n    refusing()", {}, functions)
    with pytest.raises(SandboxLimitError, match="arguments of 'where' are too large"):
        limited.execute("for i in range(2):\n    where([[0] * 1000] * 1001)", {}, functions)
    assert len(calls) == 2
    with pytest.raises(SandboxRuntimeError, match="'opaque' gave a value that cannot be passed"):
        limited.execute("for i in range(2):\n    opaque()", {}, functions)


def test_worker_errors_keep_line_and_cause(limited):
    with pytest.raises(SandboxRuntimeError, match="ZeroDivisionError: division by zero") as info:
        limited.execute("x = 1\nfor i in range(2):\n    y = 1 / 0", {})
    assert info.value.lineno == 3 and isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(SandboxLimitError, match="more than 2000 steps"):
        Sandbox(max_steps=2000).execute("while True:\n    pass", {})


def test_worker_answer_cannot_name_code():
    """The worker ran untrusted code: its answer is unpickled with only data types available."""
    for forged in (pickle.dumps(os.system), pickle.dumps(("ok", print)), pickle.dumps(io.BytesIO())):
        with pytest.raises(pickle.UnpicklingError, match="is not data"):
            _DataUnpickler(io.BytesIO(forged)).load()
    value = ("ok", {"d": date(2024, 1, 1), "n": Decimal("2.5"), "s": {1}})
    assert _DataUnpickler(io.BytesIO(pickle.dumps(value))).load() == value


def forks_of_the_caller(monkeypatch) -> list[int]:
    """The pids of the workers this process forks from now on (os.fork wrapped for the test)."""
    forked = []
    real_fork = os.fork

    def fork():
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return forked


def test_without_fork_the_code_runs_in_process(monkeypatch):
    monkeypatch.setattr(sandbox_module, "_CAN_ISOLATE", False)
    assert Sandbox().evaluate("[i for i in range(3)]", {}) == [0, 1, 2]


def test_a_worker_that_answered_is_collected_without_the_caller_waiting_for_its_exit(monkeypatch):
    """The caller has its answer as soon as the worker sends it; the worker's exit is collected by the reaper's
    thread (no zombie is left), never by the caller."""
    monkeypatch.setattr(sandbox_module, "_USE_HOST", False)  # a worker forked from this process
    forked = forks_of_the_caller(monkeypatch)

    def waited(*_args, **_kwargs):
        raise AssertionError("the caller waited for a worker that had answered")

    monkeypatch.setattr(sandbox_module._Forked, "status", waited)
    script = DOUBLING.replace("range(60)", "range(3)") + "r = len(a)"
    variables: dict = {}
    Sandbox().execute(script, variables)
    assert variables["r"] == 2 and len(forked) == 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the reaper has collected it
        try:
            os.kill(forked[0], 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    with pytest.raises(ProcessLookupError):  # neither running nor a zombie: collected
        os.kill(forked[0], 0)


# ------------------------------------------------------------------------------------- the host


@pytest.fixture
def host(monkeypatch):
    """The process's host, stopped before and after the test (a test may break it on purpose)."""
    def stop():
        current = sandbox_module._HOST
        if current._control is not None:
            current.discard(current._control)
        current._failed_at = None
        current.pending = None
    stop()
    yield sandbox_module._HOST
    stop()


def no_fork(*_args, **_kwargs):
    raise AssertionError("the caller forked a worker itself")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def open_paths(pid: int) -> set[str]:
    paths = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            paths.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return paths


def environment(pid: int) -> bytes:
    with open(f"/proc/{pid}/environ", "rb") as variables:
        return variables.read()


def test_a_hosted_worker_holds_nothing_of_the_caller(host, monkeypatch, tmp_path):
    """The worker is forked by the host, a process started from a new interpreter, not by the caller: it is not
    the caller's child, and neither it nor the host has any of the caller's open files (a web worker's database
    connections, say) or its environment (the database's address, the keys). Limits and answers are as before; the
    caller never forks."""
    secret = tmp_path / "connection-of-the-caller"
    secret.write_text("password=caller-only")
    seen = {}

    def probe(n):  # runs in the caller while the worker waits for its answer
        host_pid = sandbox_module._HOST._process.pid
        workers = children_of(host_pid)
        seen.update(host=host_pid, workers=workers, mine=children_of(os.getpid()),
                    paths=set().union(*(open_paths(pid) for pid in [host_pid, *workers])),
                    environments=[environment(pid) for pid in [host_pid, *workers]])
        return n * 2

    monkeypatch.setenv("KURATOR_SECRET_KEY", "key-of-the-caller")
    with open(secret, encoding="utf-8"):
        monkeypatch.setattr(os, "fork", no_fork)
        variables = {"items": [1, 2, 3]}
        Sandbox().execute("total = 0\nfor i in items:\n    total += probe(i)\n", variables, {"probe": probe})
    assert variables["total"] == 12
    assert seen["workers"] and str(secret) not in seen["paths"]
    assert all(b"key-of-the-caller" not in env and b"KURATOR" not in env for env in seen["environments"])
    # the host is the caller's child, its workers are not (the caller may have other children: a browser driver)
    assert seen["host"] in seen["mine"] and not set(seen["workers"]) & set(seen["mine"])
    # a hosted worker's limits hold as a forked one's
    with pytest.raises(SandboxLimitError, match="more than 1 seconds of processor time"):
        Sandbox(worker_cpu_seconds=1, worker_memory_mb=256).execute(DOUBLING + "r = a == b", {})


def test_a_host_that_died_is_replaced_and_one_that_cannot_start_leaves_the_caller_to_fork(host, monkeypatch):
    sandbox = Sandbox()
    assert sandbox.evaluate("[i * 2 for i in range(3)]", {}) == [0, 2, 4]
    first = host._process.pid
    host._process.kill()
    host._process.wait()
    assert sandbox.evaluate("[i * 2 for i in range(3)]", {}) == [0, 2, 4]
    assert host._process.pid != first
    # a host whose program fails: this run and the next minute's fork the caller, and give the same answers
    host.discard(host._control)
    monkeypatch.setattr(sandbox_module, "_BOOT", "import sys\nsys.exit(3)\n")
    forked = forks_of_the_caller(monkeypatch)
    assert sandbox.evaluate("[i * 2 for i in range(3)]", {}) == [0, 2, 4]
    assert sandbox.evaluate("[i * 3 for i in range(2)]", {}) == [0, 3]
    assert len(forked) == 2 and host._control is None


def test_a_busy_host_or_variables_that_are_not_data_leave_the_caller_to_fork(host, monkeypatch):
    import threading

    forked = forks_of_the_caller(monkeypatch)
    sandbox = Sandbox()
    with host._lock:  # another thread's run holds the host
        assert sandbox.evaluate("[i for i in range(2)]", {}) == [0, 1]
    assert len(forked) == 1
    # a lock cannot be passed to the host as data; the caller's own fork shares it as it is
    assert sandbox.evaluate("[i for i in range(2)] if held else []", {"held": threading.Lock()}) == [0, 1]
    assert len(forked) == 2
    assert sandbox.evaluate("[i for i in range(2)]", {}) == [0, 1]  # and the host takes the next run
    assert len(forked) == 2


def test_a_forked_process_starts_its_own_host(host):
    sandbox = Sandbox()
    assert sandbox.evaluate("[i for i in range(2)]", {}) == [0, 1]
    parent_host = host._process.pid
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        try:
            value = sandbox.evaluate("[i * 5 for i in range(2)]", {})
            os.write(write, pickle.dumps((value, sandbox_module._HOST._process.pid)))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        value, child_host = pickle.loads(answer.read())
    os.waitpid(pid, 0)
    assert value == [0, 5] and child_host != parent_host
    assert sandbox.evaluate("[i for i in range(3)]", {}) == [0, 1, 2] and host._process.pid == parent_host


def test_a_hosted_worker_past_its_wall_clock_is_killed_and_the_host_goes_on(host, monkeypatch):
    """A worker that is still busy when its time by the wall clock is up (here: the engine's function it called took
    that long) is killed through its process descriptor, and the host reports its end; the next run is hosted."""
    monkeypatch.setattr(sandbox_module._Worker, "wall_seconds", lambda self: 0.3)
    monkeypatch.setattr(os, "fork", no_fork)
    statuses = []
    real_status = sandbox_module._Hosted.status

    def status(self, kill):
        statuses.append(real_status(self, kill))
        return statuses[-1]

    monkeypatch.setattr(sandbox_module._Hosted, "status", status)

    def slow(n):
        time.sleep(0.6)
        return n

    with pytest.raises(SandboxLimitError, match=r"ran too long \(more than 0.3 seconds in its worker process\)"):
        Sandbox().evaluate("[slow(i) for i in range(2)]", {}, {"slow": slow})
    assert os.WIFSIGNALED(statuses[0]) and os.WTERMSIG(statuses[0]) == signal.SIGKILL  # as the host saw it end
    first = host._process.pid
    assert Sandbox().evaluate("[i for i in range(2)]", {}) == [0, 1] and host._process.pid == first
