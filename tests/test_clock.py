"""The engine clock a process runs on: frozen for one-shot commands, shifted (and running) for the web app and the
scheduler when KURATOR_NOW is set, one shared timeline with KURATOR_NOW_SINCE."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.cli import Context
from engine.clock import (
    FrozenClock,
    ShiftedClock,
    SystemClock,
    configured_clock,
    environment_clock,
    parse_instant,
)

DEMO = "2026-03-02T09:00:00+03:00"
WALL = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


class Wall:
    """A stand-in for the real clock that the test moves."""

    def __init__(self, at: datetime = WALL):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_a_shifted_clock_starts_at_the_instant_and_runs_on_in_real_time():
    wall = Wall()
    clock = ShiftedClock(DEMO, wall=wall)
    assert clock.now() == parse_instant(DEMO) == datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
    assert clock.since == WALL and clock.offset == parse_instant(DEMO) - WALL
    wall.at += timedelta(minutes=90, seconds=5)
    assert clock.now() == datetime(2026, 3, 2, 7, 30, 5, tzinfo=timezone.utc)
    assert clock.now().tzinfo == timezone.utc


def test_a_shifted_clock_with_since_reads_the_instant_at_that_wall_moment():
    """Two processes started at different moments, both told "DEMO held at WALL", tell the same time."""
    early = ShiftedClock(DEMO, since=WALL.isoformat(), wall=Wall(WALL + timedelta(seconds=3)))
    late = ShiftedClock(DEMO, since=WALL, wall=Wall(WALL + timedelta(seconds=3)))
    assert early.now() == late.now() == parse_instant(DEMO) + timedelta(seconds=3)


def test_the_real_shifted_clock_moves():
    clock = ShiftedClock(DEMO)
    first = clock.now()
    assert timedelta(0) <= first - parse_instant(DEMO) < timedelta(seconds=5)
    assert clock.now() >= first


@pytest.mark.parametrize(("now", "since", "one_shot", "kind"), [
    (None, None, False, SystemClock), (None, None, True, SystemClock), ("", None, False, SystemClock),
    (DEMO, None, True, FrozenClock),      # `kurator --now T complete …`: acts exactly at T
    (DEMO, None, False, ShiftedClock),    # the web app, `serve`, `run`, `scheduler`: from T on
    (DEMO, WALL.isoformat(), True, ShiftedClock), (DEMO, WALL, False, ShiftedClock),  # one shared timeline
    (DEMO, "", False, ShiftedClock),
])
def test_which_clock_a_process_runs_on(now, since, one_shot, kind):
    clock = configured_clock(now, since, one_shot=one_shot)
    assert type(clock) is kind
    if kind is FrozenClock:
        assert clock.now() == parse_instant(DEMO)


def test_the_environment_names_the_clock():
    assert type(environment_clock({})) is SystemClock
    shifted = environment_clock({"KURATOR_NOW": DEMO})
    assert type(shifted) is ShiftedClock and shifted.at == parse_instant(DEMO)
    pinned = environment_clock({"KURATOR_NOW": DEMO, "KURATOR_NOW_SINCE": WALL.isoformat()})
    assert pinned.since == WALL
    assert environment_clock({"KURATOR_NOW": DEMO}, one_shot=True).now() == parse_instant(DEMO)
    with pytest.raises(ValueError, match="not an ISO 8601"):
        environment_clock({"KURATOR_NOW": "tomorrow"})


def test_the_cli_context_has_a_frozen_clock_for_commands_and_a_running_one_for_services(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    ctx = Context(url, DEMO)
    assert type(ctx.clock) is FrozenClock and ctx.clock.now() == parse_instant(DEMO)
    running = ctx.running_clock()
    assert type(running) is ShiftedClock and running.at == parse_instant(DEMO)
    assert ctx.running_clock() is running  # one timeline for the process
    pinned = Context(url, DEMO, WALL.isoformat())
    assert type(pinned.clock) is ShiftedClock and pinned.running_clock().since == WALL
    real = Context(url)
    assert type(real.clock) is SystemClock and type(real.running_clock()) is SystemClock
    assert Context(url, None, WALL.isoformat()).since is None  # since alone means nothing


@pytest.mark.parametrize("demo", ["2025-01-10T09:00:00+03:00", "2031-01-10T09:00:00+03:00"])
def test_the_scheduler_paces_its_sweeps_by_the_real_clock_whatever_the_engine_clock(demo):
    """A first run time on a shifted clock would make APScheduler wait for years or replay months of runs."""
    from types import SimpleNamespace

    from engine.scheduler import build_scheduler

    scheduler = build_scheduler(SimpleNamespace(clock=ShiftedClock(demo)), 15)
    first = scheduler.get_jobs()[0].next_run_time
    assert abs(first - datetime.now(timezone.utc)) < timedelta(seconds=5)
