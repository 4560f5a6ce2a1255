"""The engine clock: everything that reads "now" asks a `Clock`, so tests and `tick --at` move time.

Which clock a process runs on (`configured_clock`, from `--now`/`KURATOR_NOW` and `--now-since`/`KURATOR_NOW_SINCE`):

- nothing set: the real wall clock (`SystemClock`);
- a one-shot command (`start`, `complete`, `tick`, …) with `--now T`: a `FrozenClock` standing at T;
- a long-running process (the web app, `serve`, `run`, `scheduler`) with `KURATOR_NOW=T`: a `ShiftedClock` that
  reads T when the process starts and then runs on in real time, so pages, deadlines and timers move as usual;
- `KURATOR_NOW_SINCE=W` as well: every process, one-shot or not, reads T at the wall-clock instant W and runs on
  from there, so processes started at different moments (web workers, schedulers) share one shifted timeline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FrozenClock:
    """A clock that stands still until it is moved; for tests, demos and `tick --at`."""

    def __init__(self, at: datetime | str | None = None):
        self._now = datetime.now(timezone.utc)
        if at is not None:
            self.set(at)

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime | str) -> None:
        self._now = parse_instant(at)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._now = self._now + (delta or timedelta(**kwargs))
        return self._now


class ShiftedClock:
    """The wall clock moved by a fixed offset: it reads `at` at the wall-clock instant `since` (default: when the
    clock is made) and runs on in real time. A demo in time that keeps moving, so the scheduler's timers fire."""

    def __init__(self, at: datetime | str, since: datetime | str | None = None,
                 wall: Callable[[], datetime] | None = None):
        self._wall = wall or SystemClock().now
        self.at = parse_instant(at)
        self.since = parse_instant(since) if since is not None else self._wall()
        self.offset = self.at - self.since

    def now(self) -> datetime:
        return self._wall() + self.offset


def configured_clock(now: datetime | str | None = None, since: datetime | str | None = None, *,
                     one_shot: bool = False) -> Clock:
    """The clock of a process acting at `now` (None: the real clock); see the module's docstring."""
    if now is None or (isinstance(now, str) and not now.strip()):
        return SystemClock()
    if since is not None and not (isinstance(since, str) and not since.strip()):
        return ShiftedClock(now, since)
    return FrozenClock(now) if one_shot else ShiftedClock(now)


def environment_clock(environ: Mapping[str, str] | None = None, *, one_shot: bool = False) -> Clock:
    """`configured_clock` from KURATOR_NOW and KURATOR_NOW_SINCE (what the web app runs on)."""
    environ = os.environ if environ is None else environ
    return configured_clock(environ.get("KURATOR_NOW"), environ.get("KURATOR_NOW_SINCE"), one_shot=one_shot)


def parse_instant(value: datetime | str) -> datetime:
    """An aware UTC datetime from a datetime or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"'{value}' is not an ISO 8601 date and time (e.g. 2026-01-12T09:00:00+03:00)") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
