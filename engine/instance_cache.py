"""Live workflows of the instances changed last, kept in memory between changes.

Restoring a workflow from its stored state is a good part of a change's cost, and the next change of an instance
(the next step of a case) usually lands in the same process. After a change commits, the executor keeps the live
workflow it has just saved here, stamped with what the saved row says about it: the revision written, the process
version and the time zone. The next change takes it out if, and only if, the instance row it has read (and, on
PostgreSQL, locked by its revision check) carries the same stamp; anything else restores from the stored state as
before. Every state write goes through the executor and raises the revision, so a stamp that matches means that
no other process or thread has changed the instance since.

An entry is taken out for a change (two threads never share a workflow) and kept again only once that change has
committed: a change that fails or is rolled back leaves nothing behind, and the next one restores from the database.
Nothing is kept from a change made in a savepoint (a rolled-back savepoint does not roll back an after-commit
callback). Bounded: the least recently kept entries are dropped first.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

# Live workflows kept per process (`KURATOR_INSTANCE_CACHE`; 0 turns the cache off).
DEFAULT_SIZE = 256


class Stamp(NamedTuple):
    """What the instance row must say for a kept workflow to be its current state."""

    revision: int
    definition_id: int
    timezone: str


def stamp_of(row: Any, revision: int | None = None) -> Stamp:
    """The stamp of an instance row (with `revision` in place of the row's own, for the one being written)."""
    return Stamp(row.revision if revision is None else revision, row.definition_id, row.timezone)


class InstanceCache:
    """Live workflows by instance id, bounded, shared by the threads of one process."""

    def __init__(self, size: int | None = None):
        self.size = int(os.environ.get("KURATOR_INSTANCE_CACHE", DEFAULT_SIZE)) if size is None else size
        self._entries: OrderedDict[int, tuple[Stamp, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def take(self, instance_id: int, stamp: Stamp) -> Any | None:
        """The kept workflow of the instance if its stamp is `stamp`, removed from the cache; else None (and a
        kept workflow of another stamp is dropped: it is out of date)."""
        with self._lock:
            entry = self._entries.pop(instance_id, None)
            if entry is not None and entry[0] == stamp:
                self.hits += 1
                return entry[1]
            self.misses += 1
            return None

    def keep(self, instance_id: int, stamp: Stamp, workflow: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries.pop(instance_id, None)
            self._entries[instance_id] = (stamp, workflow)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def discard(self, instance_id: int) -> None:
        with self._lock:
            self._entries.pop(instance_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
