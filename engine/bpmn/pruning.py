"""Keeps an instance's task tree short: finished steps above the running part of the tree are dropped.

SpiffWorkflow keeps every task an instance ever ran as a chain of parent and child tasks, and walks that chain
with a depth limit of 1,000 (`TaskIterator`) and with recursive helpers (`find_ancestor`). A looping diagram
therefore grows without end, gets slower with every round, and once the chain is about 1,000 tasks deep the
running tasks fall out of sight: `is_completed()` finds no unfinished task and the instance ends itself.

Before an instance is saved, `prune()` cuts each (sub)process tree just above the smallest subtree that holds
all of its unfinished tasks, keeping one finished ancestor (gateways and multi-instance bodies read their
parent) and the split task an unfinished structured join looks for. The finished tasks above are removed, with
the subprocesses they called; the engine's history table already records every step. What was removed is
remembered per (sub)process as element ids in the root task's `internal_data`, so that completed steps can
still be listed (`completed_elements`) and migration can still refuse to drop a step that was done.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.control import _EndJoin
from SpiffWorkflow.util.task import TaskState

PRUNED_KEY = "kurator_pruned"
KEEP_ANCESTORS = 1


def prune(workflow) -> int:
    """Drop finished tasks that nothing reads any more from `workflow` and its subprocesses; returns how many."""
    removed = _prune_tree(workflow, workflow)
    for task_id in list(workflow.subprocesses):
        subprocess = workflow.subprocesses.get(task_id)  # None once dropped with the task that called it
        if subprocess is not None:
            removed += _prune_tree(workflow, subprocess)
    return removed


def pruned_elements(wf) -> dict[str, str]:
    """Element (spec) names removed from one (sub)process tree, with the state they finished in."""
    root = wf.task_tree
    return dict(root.internal_data.get(PRUNED_KEY) or {}) if root is not None else {}


def completed_elements(workflow) -> set[str]:
    """BPMN ids of the steps an instance completed, in its tree or pruned from it (all subprocesses too)."""
    return {element for _file, element in completed_steps(workflow)}


def completed_steps(workflow) -> set[tuple[str | None, str]]:
    """(diagram file, BPMN id) of every step completed at least once, in the tree or pruned from it."""
    done: set[tuple[str | None, str]] = set()
    for wf in [workflow, *workflow.subprocesses.values()]:
        file = getattr(wf.spec, "file", None)
        for task in wf.tasks.values():
            if task.state == TaskState.COMPLETED and getattr(task.task_spec, "bpmn_id", None):
                done.add((file, task.task_spec.bpmn_id))
        for name, state in pruned_elements(wf).items():
            spec = wf.spec.task_specs.get(name)
            if state == "completed" and spec is not None and getattr(spec, "bpmn_id", None):
                done.add((file, spec.bpmn_id))
    return done


def _path(task) -> list:
    """The tasks from the root down to `task` (iterative: the chain may be deep)."""
    path = []
    while task is not None:
        path.append(task)
        task = task.parent
    path.reverse()
    return path


def _subtree_ids(task) -> list:
    ids, stack = [], [task]
    while stack:
        current = stack.pop()
        ids.append(current.id)
        stack.extend(current.children)
    return ids


def _prune_tree(top, wf) -> int:
    root = wf.task_tree
    if root is None:
        return 0
    unfinished = [t for t in wf.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)]
    if not unfinished:
        return 0  # a finished (sub)process is left as it ended
    paths: dict[Any, list[list]] = {}
    for task in unfinished:
        path = _path(task)
        if len(path) > 1:
            paths.setdefault(path[1].id, []).append(path)
    removed_ids: list = []
    for child in list(root.children):
        if child.id in paths:
            removed_ids.extend(_cut_branch(wf, root, child, paths[child.id]))
        elif child.task_spec is not wf.spec.start:
            # a finished event subprocess beside the main flow, or an ended branch moved here whose end join
            # was cancelled by a later one: nothing waits in it any more
            removed_ids.extend(_subtree_ids(child))
            root._children = [c for c in root._children if c != child.id]
    if not removed_ids:
        return 0
    record = root.internal_data.setdefault(PRUNED_KEY, {})
    for task_id in removed_ids:
        task = wf.tasks.pop(task_id, None)
        if task is None:
            continue
        name = task.task_spec.name
        state = "completed" if task.state == TaskState.COMPLETED else "cancelled"
        if record.get(name) != "completed":
            record[name] = state
        if task_id in top.subprocesses:
            _drop_subprocess(top, task_id)
    if wf.last_task is not None and wf.last_task.id not in wf.tasks:
        wf.last_task = None
    return len(removed_ids)


def _cut_branch(wf, root, child, paths: list[list]) -> list:
    """Re-hang the lowest safe ancestor of this branch's unfinished tasks under the root; returns removed ids.

    A branch that ended at an end event leaves the process's end join waiting there until every other branch
    has ended (e.g. after a non-interrupting boundary timer fired). It does not hold the cut up: its end event
    is moved under the root with it, so that the join still finds it, and its data.
    """
    joins = {id(p): _waiting_end_join_at(p) for p in paths}
    detached = [p for p in paths if joins[id(p)]]
    others = [p for p in paths if not joins[id(p)]]
    if not others:
        return []
    common = 0
    shortest = min(len(p) for p in others)
    while common < shortest and all(p[common] is others[0][common] for p in others):
        common += 1
    keep_at = max(1, common - 1 - KEEP_ANCESTORS)
    for path in others:  # a structured join (e.g. of a boundary event) looks for its split among its ancestors
        split_name = getattr(path[-1].task_spec, "split_task", None)
        if split_name:
            for index in range(len(path) - 2, 0, -1):
                if path[index].task_spec.name == split_name:
                    keep_at = min(keep_at, index)
                    break
    keeper = others[0][keep_at]
    if keeper is child:
        return []
    kept = set(_subtree_ids(keeper))
    movers = []
    for path in detached:
        end_event = path[joins[id(path)] - 1]
        if end_event.id not in kept:
            movers.append(end_event)
            kept.update(_subtree_ids(end_event))
    removed = [task_id for task_id in _subtree_ids(child) if task_id not in kept]
    root._children = [keeper.id if c == child.id else c for c in root._children] + [m.id for m in movers]
    for task in (keeper, *movers):
        task._parent = root.id
    if wf.last_task is not None and wf.last_task.id in removed:
        wf.last_task = keeper
    return removed


def _waiting_end_join_at(path: list) -> int:
    """The index in `path` of a waiting end join (below the root's child and an end event), or 0."""
    for index in range(len(path) - 1, 2, -1):
        task = path[index]
        if task.state == TaskState.WAITING and isinstance(task.task_spec, _EndJoin):
            return index
    return 0


def _drop_subprocess(top, task_id) -> None:
    """Remove the subprocess a removed task called, and the subprocesses called inside it."""
    subprocess = top.subprocesses.pop(task_id, None)
    if subprocess is None:
        return
    for inner_id in list(subprocess.tasks):
        if inner_id in top.subprocesses:
            _drop_subprocess(top, inner_id)
