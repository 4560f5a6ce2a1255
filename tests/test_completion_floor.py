"""`bench/completion_floor.py` writes, step by step, what it says a durable completion has to write: the floor of
`completion_ratio` stands only if it leaves nothing out. PostgreSQL only, where the ratio is measured."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import func, select

from engine.models import HistoryEvent, HumanTask, ProcessInstance

from .support import ROOT, clear, postgres_url

pytestmark = pytest.mark.skipif(not postgres_url(), reason="the floor is measured on PostgreSQL")


@pytest.fixture
def floor_bench(database):
    clear(database)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import completion_floor
        import engine_bench
        yield completion_floor, engine_bench
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_the_floor_leaves_a_case_where_the_engine_leaves_it(database, floor_bench):
    floor, eb = floor_bench
    engine = eb.sop_engine(database)
    engine_times, floor_times = floor.run_cases(engine, database, 1)
    steps = len(eb.SOP_PATH)
    assert len(engine_times) == len(floor_times) == steps  # the warm-up case is not counted
    assert all(set(phases) == {*floor.PHASES, "total"} for phases in floor_times)
    with database.session() as session:
        for case in (0, 1):
            by_engine = session.scalar(select(ProcessInstance).where(ProcessInstance.business_key == f"engine-{case}"))
            by_floor = session.scalar(select(ProcessInstance).where(ProcessInstance.business_key == f"floor-{case}"))
            assert by_floor.revision == 1 + steps

            def rows(instance, status):
                return sorted(session.execute(select(HumanTask.element_id, HumanTask.completed_by)
                                              .where(HumanTask.instance_id == instance.id,
                                                     HumanTask.status == status)).all())

            # the same steps completed, and the same steps open next, as in the engine's case
            assert [element for element, _by in rows(by_floor, "completed")] == \
                [element for element, _by in rows(by_engine, "completed")]
            assert {by for _element, by in rows(by_floor, "completed")} == {"bench"}
            assert rows(by_floor, "open") == rows(by_engine, "open") != []
            events = dict(session.execute(select(HistoryEvent.event_type, func.count())
                                          .where(HistoryEvent.instance_id == by_floor.id)
                                          .group_by(HistoryEvent.event_type)).all())
            assert events["task_completed"] == steps
            tasks = session.scalar(select(func.count()).where(HumanTask.instance_id == by_floor.id))
            assert events["task_created"] == tasks - 1  # the case's first task is written at its start
            restored = engine.executor.serializer.restore(by_floor.state, engine.repository.spec_json(
                by_floor.definition_id))
            assert {t.task_spec.bpmn_id for t in engine.executor.ready_user_tasks(restored).values()} == \
                {element for element, _by in rows(by_engine, "open")}
