"""The SOP domain: case records, the services that keep them in step with the processes, documents, jobs.

No Flask here: the web app, the CLI, the scheduler and the demo build their engine with `build_engine` (the engine
with the domain attached as its plugin `sop`); `install(engine)` attaches the domain to an engine built otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine import Database, ProcessEngine
    from engine.clock import Clock

    from .service import SopService


PLUGIN = "sop"  # the name the domain is attached under: `engine.sop`, `engine.plugin("sop", SopService)`


def install(engine: ProcessEngine, jobs: bool = True) -> SopService:
    """Attach the SOP domain to an engine (listeners and, unless `jobs` is false, the periodic jobs) and
    return its service; an engine that has it already keeps it."""
    from .service import SopService

    service = engine.plugin(PLUGIN, SopService)
    if service is None:
        service = engine.attach(PLUGIN, SopService(engine, jobs=jobs))
    return service


def build_engine(database: Database, clock: Clock | None = None, jobs: bool = True) -> ProcessEngine:
    """The product's engine, built in this one place: the engine on `database` with the SOP domain attached. The
    clock given, else the engine clock of the environment (`KURATOR_NOW`: starts at that instant and runs on in
    real time; see `engine.clock`)."""
    from engine import ProcessEngine
    from engine.clock import environment_clock

    engine = ProcessEngine(database, clock or environment_clock())
    install(engine, jobs=jobs)
    return engine
