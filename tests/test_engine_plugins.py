"""A domain attaches itself to the engine through a declared plugin hook (issue 12), and the product's engine is
built in one place (`sop.build_engine`) for the web app, the command line and the scheduler."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sop
from engine import Database, FrozenClock, ProcessEngine
from sop.service import SopService

ROOT = Path(__file__).resolve().parent.parent


class Directory:
    """A stand-in plugin."""


def test_attach_declares_a_plugin_reachable_by_name_and_type(engine):
    plugin = Directory()
    assert engine.plugin("directory") is None
    with pytest.raises(AttributeError, match="no plugin of that name"):
        engine.directory  # noqa: B018
    assert engine.attach("directory", plugin) is plugin
    assert engine.attach("directory", Directory()) is plugin  # once: the first one stays
    assert engine.plugins == {"directory": plugin}
    assert engine.plugin("directory", Directory) is plugin and engine.directory is plugin
    with pytest.raises(TypeError, match="not a SopService"):
        engine.plugin("directory", SopService)
    assert "directory" not in vars(engine)  # not monkey-patched onto the instance


@pytest.mark.parametrize("name", ["db", "runtime", "attach", "plugins", "_private", "not a name", ""])
def test_a_plugin_name_cannot_hide_the_engine_or_be_odd(engine, name):
    with pytest.raises(ValueError):
        engine.attach(name, Directory())
    assert engine.plugins == {}


def test_sop_install_attaches_the_domain_through_the_hook_once(engine):
    service = sop.install(engine, jobs=False)
    assert isinstance(service, SopService)
    assert engine.plugins == {"sop": service} and "sop" not in vars(engine)
    assert engine.sop is service and engine.plugin("sop", SopService) is service
    assert sop.install(engine) is service


def test_one_builder_for_the_web_app_the_cli_and_the_scheduler(database):
    import webapp
    import webapp.cli  # noqa: F401 - the product's `kurator` command
    from engine.cli import Context

    assert webapp.build_engine is sop.build_engine
    assert Context.factory is sop.build_engine  # every command (scheduler, serve, run) builds its engine with it
    built = sop.build_engine(Database(str(database.engine.url)), FrozenClock("2026-01-12T09:00:00+03:00"))
    assert isinstance(built, ProcessEngine) and isinstance(built.plugin("sop", SopService), SopService)
    jobs = [name for name, _ in built.management._jobs]
    assert {"quarterly_reconciliation", "minor_turned_18", "podrostok_campaign", "kpi_campaign"} <= set(jobs)
    quiet = sop.build_engine(Database(str(database.engine.url)), FrozenClock("2026-01-12T09:00:00+03:00"),
                             jobs=False)
    assert quiet.management._jobs == [] and quiet.sop is not built.sop
    definitions = [path.relative_to(ROOT).as_posix()
                   for folder in ("engine", "sop", "webapp")
                   for path in (ROOT / folder).rglob("*.py")
                   if re.search(r"^def build_engine\(", path.read_text(encoding="utf-8"), re.MULTILINE)]
    assert definitions == ["sop/__init__.py"]


def test_no_module_sets_an_undeclared_attribute_on_the_engine():
    offenders = [path.relative_to(ROOT).as_posix()
                 for folder in ("engine", "sop", "webapp")
                 for path in (ROOT / folder).rglob("*.py")
                 if re.search(r"\bengine\.sop\s*=[^=]", path.read_text(encoding="utf-8"))]
    assert offenders == []
    assert "noqa: F401" not in (ROOT / "webapp" / "cli.py").read_text(encoding="utf-8")
