"""The engine's modules import alone, and no two of them depend on each other in a circle.

Each module is imported in a fresh interpreter, so an import circle that only shows in one order fails here. The
static check also reads imports deferred into functions (a common way to hide a circle): submodule to submodule,
they must form no cycle. `TYPE_CHECKING` imports and the package facade (`engine/__init__.py`) are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _engine_modules() -> list[str]:
    return sorted(_module_name(path) for path in ENGINE.rglob("*.py") if "migrations" not in path.parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, modules: set[str]) -> set[str]:
    """Engine modules that `module` imports at run time, at the top or inside functions."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name in modules and name != module and name != "engine"}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = walk(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = walk(node)
            if found:
                return found
    return None


MODULES = _engine_modules()


def test_the_module_list_covers_the_engine():
    assert {"engine", "engine.repository", "engine.bpmn.validation", "engine.forms"} <= set(MODULES)


_IMPORT_EACH_ALONE = """
import importlib, os, sys, traceback
for name in sys.argv[2].split(","):
    importlib.import_module(name)  # third-party libraries only: loaded once, shared by the children
failed = []
for module in sys.argv[1].split(","):
    pid = os.fork()
    if pid == 0:
        assert not any(m == "engine" or m.startswith("engine.") for m in sys.modules)
        try:
            importlib.import_module(module)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(module)
print(",".join(failed))
"""


def _third_party(modules: list[str]) -> list[str]:
    names: set[str] = set()
    for module in modules:
        path = ROOT / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return sorted(name for name in names - {"engine", "sop", "webapp", "__future__"}
                  if name not in sys.stdlib_module_names)


def test_every_engine_module_imports_alone():
    """Each module in its own fresh process (forked before any engine module is loaded)."""
    libraries = ",".join(_third_party(MODULES))
    result = subprocess.run([sys.executable, "-c", _IMPORT_EACH_ALONE, ",".join(MODULES), libraries], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"these modules fail to import alone: {result.stdout}\n{result.stderr}"


def test_a_module_that_fails_alone_is_reported(tmp_path):
    (tmp_path / "broken_a.py").write_text("from broken_b import B\nA = 1\n")
    (tmp_path / "broken_b.py").write_text("from broken_a import A\nB = 1\n")
    (tmp_path / "fine.py").write_text("X = 1\n")
    result = subprocess.run([sys.executable, "-c", _IMPORT_EACH_ALONE, "fine,broken_a,broken_b", "json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "broken_a,broken_b"
    assert "ImportError" in result.stderr


def test_no_import_cycle_between_engine_modules_even_when_deferred():
    modules = set(MODULES)
    graph = {module: _imports(module, modules) for module in modules if module != "engine"}
    assert "engine.forms" in graph["engine.bpmn.validation"]
    assert _cycle(graph) is None, "import cycle: " + " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_sees_a_deferred_circle():
    graph = {"engine.a": {"engine.b"}, "engine.b": {"engine.a"}, "engine.c": set()}
    assert _cycle(graph) == ["engine.a", "engine.b", "engine.a"]
    assert _cycle({"engine.a": {"engine.b"}, "engine.b": set()}) is None


def test_the_engine_never_imports_the_modeler_or_the_web_app():
    """`modeler/` sits between the engine and the web app: it may use the engine, never the other way round."""
    for module in _engine_modules():
        outside = {name for name in _imports(module, set()) if name.split(".")[0] in ("modeler", "webapp", "sop")}
        assert not outside, f"{module} imports {sorted(outside)}"
