"""The scheduler process: APScheduler runs the engine sweep every few seconds.

Any number of scheduler processes may run against one PostgreSQL database: each sweep takes due instances
with `FOR UPDATE SKIP LOCKED`, so each timer fires once. On SQLite run a single scheduler process.
"""

from __future__ import annotations

import logging
import signal
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from apscheduler.schedulers.blocking import BlockingScheduler

if TYPE_CHECKING:
    from . import ProcessEngine

log = logging.getLogger(__name__)


def run_sweep(engine: ProcessEngine) -> None:
    result = engine.management.sweep()
    if result.instances or result.overdue_marked or result.incidents:
        log.info("sweep: %s", result.to_dict())


def build_scheduler(engine: ProcessEngine, interval_seconds: float = 15.0) -> BlockingScheduler:
    """A blocking APScheduler with the sweep job (one run at a time per process, missed runs coalesced).

    APScheduler paces the sweeps by the real clock (first one at once); each sweep reads the engine clock, which
    may be shifted (KURATOR_NOW): a first run time on a shifted clock would lie months ahead or behind."""
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(run_sweep, "interval", args=[engine], seconds=interval_seconds, id="kurator-sweep",
                      max_instances=1, coalesce=True, next_run_time=datetime.now(timezone.utc))
    return scheduler


def run_forever(engine: ProcessEngine, interval_seconds: float = 15.0) -> None:
    scheduler = build_scheduler(engine, interval_seconds)

    def stop(_signum, _frame):
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler started: sweep every %s s", interval_seconds)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
