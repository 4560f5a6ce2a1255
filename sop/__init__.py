"""The SOP domain: case records, the services that keep them in step with the processes, documents, jobs.

No Flask here: the CLI, the scheduler and the web app all use `install(engine)` to get a `SopService`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine import ProcessEngine

    from .service import SopService


def install(engine: ProcessEngine, jobs: bool = True) -> SopService:
    """Attach the SOP domain to an engine (listeners and, unless `jobs` is false, the periodic jobs) and
    return its service."""
    from .service import SopService

    service = getattr(engine, "sop", None)
    if service is None:
        service = SopService(engine, jobs=jobs)
        engine.sop = service
    return service
