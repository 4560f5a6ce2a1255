"""MigrationService: move running instances of a process to another deployed version, and back.

Running instances stay on the version they were started with until a methodologist moves them. The work is
done in three steps:

* `plan()` is the dry run: for every selected running instance it compares the instance with the target
  version using SpiffWorkflow's diff (`diff_workflow`: a `SpecDiff` of the process and of every subprocess the
  instance has entered, aligned with the instance's tasks) and says whether it can move, why not, and what
  changes for it. Nothing is stored.
* `start_batch()` stores a `MigrationBatch` with the movable instances; `run_batch()` moves the next chunk,
  each instance in a transaction of its own through the executor (so its `revision` check applies), and
  `migrate()` runs a whole batch. Several web processes may step the same batch: an instance is recorded once
  per batch (a unique key), and its move is planned again on the state read in that transaction, so an
  instance that changed since the dry run is judged as it is now.
* `revert()` puts an instance back on its previous version while nothing further happened to it (its
  revision is still the one the migration left).

Rules (applied to the top-level process and to every subprocess the instance has entered):

1. A task whose element no longer exists in the target version (SpiffWorkflow cannot align it, neither by id
   nor by its place in the flow) blocks the move when the task is completed, started, failed or cancelled
   ("выполненный шаг «Проверка» (check) удален в версии 2"): its history would refer to an element the new
   version does not have, and the instance state could not even be read back with the new diagram.
2. A removed element whose task is ready or waiting (an open inbox task, a timer, a message) blocks the move
   too: the instance stands on a step the new version no longer has, and there is no safe place to put it.
3. A removed element that is only predicted (a step still ahead) does not block: the branch ahead is
   predicted again from the new version.
4. A subprocess the instance has entered whose process is not part of the target version blocks the move.
5. Changed elements never block. A completed step stays as it was done. An open inbox task whose element
   changed keeps its id, and its row is refreshed from the new version (name, form, candidates, deadlines;
   deadlines are computed as of the moment the task appeared, so "5 working days" still counts from then; a
   claim is kept). A waiting event whose element changed is started again by the new version (e.g. a timer
   counts from the migration); an unchanged waiting event keeps its schedule.
6. Finally the moved state must read back with the target version; if it does not, the instance does not move.

SpiffWorkflow's `migrate_workflow` re-predicts the branches below ready and waiting tasks, so the steps ahead
follow the new version.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from . import history
from .bpmn.pruning import pruned_elements
from .bpmn.script_engine import KuratorScriptEngine
from .calendar import DeadlineFunctions
from .errors import Conflict, InvalidInput, KuratorError, NotFound
from .executor import reconnect_event_subprocesses, task_uuid
from .models import HumanTask, InstanceMigration, MigrationBatch, ProcessDefinition, ProcessInstance

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from . import ProcessEngine

MAX_CHUNK = 500
FINISHED_OR_RUNNING = TaskState.COMPLETED | TaskState.STARTED | TaskState.ERROR | TaskState.CANCELLED
PREDICTED = TaskState.MAYBE | TaskState.LIKELY | TaskState.FUTURE
TASK_COLUMNS = ("process_key", "element_id", "name", "lane", "candidate_roles", "candidate_users", "candidates",
                "assignee", "form_key", "due", "follow_up", "priority", "overdue", "status", "created_at",
                "completed_at", "completed_by", "data")
DATETIME_COLUMNS = ("due", "follow_up", "created_at", "completed_at")
# What a changed attribute means to a methodologist.
ATTRIBUTE_LABELS = {
    "bpmn_name": "название", "form": "форма", "lane": "дорожка", "script": "скрипт", "event_definition": "событие",
    "cond_task_specs": "условия переходов", "default_task_spec": "переход по умолчанию", "typename": "тип элемента",
    "camunda.dueDate": "срок", "camunda.followUpDate": "дата напоминания", "camunda.candidateGroups": "роли",
    "camunda.candidateUsers": "исполнители", "camunda.assignee": "исполнитель", "camunda.priority": "приоритет",
    "camunda.formKey": "форма", "prescript": "скрипт до шага", "postscript": "скрипт после шага",
    "data_input_associations": "входные данные", "data_output_associations": "выходные данные",
}
STRUCTURE = ("inputs", "outputs", "description", "documentation")


class MigrationBlocked(KuratorError):
    """The instance cannot move (raised inside a migration to undo it; recorded as a failed attempt)."""

    code = "migration_blocked"

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class _AlreadyRecorded(KuratorError):
    """Another step of the same batch got to this instance first."""

log = logging.getLogger(__name__)


@dataclass
class InstancePlan:
    """The dry-run verdict for one instance."""

    instance_id: int
    business_key: str | None
    version: int
    revision: int
    stage: list[dict[str, str]]
    movable: bool
    reasons: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MigrationPlan:
    """A dry run: which selected instances can move to the target version and which cannot, and why."""

    process_key: str
    target_version: int
    target_definition_id: int
    filters: dict[str, Any]
    instances: list[InstancePlan]
    # paging (`plan(..., after_id=, limit=)`): the id to continue after, None when this page is the last
    next_after: int | None = None
    selected: int | None = None  # how many instances the whole selection has (when paged)

    @property
    def movable(self) -> list[InstancePlan]:
        return [i for i in self.instances if i.movable]

    @property
    def blocked(self) -> list[InstancePlan]:
        return [i for i in self.instances if not i.movable]

    def to_dict(self) -> dict[str, Any]:
        return {"process_key": self.process_key, "target_version": self.target_version,
                "filters": self.filters, "total": len(self.instances), "movable": len(self.movable),
                "blocked": len(self.blocked), "instances": [i.to_dict() for i in self.instances],
                "next_after": self.next_after,
                "selected": self.selected if self.selected is not None else len(self.instances)}


@dataclass
class _Target:
    definition_id: int
    key: str
    version: int
    spec_json: str


@dataclass
class _Assessment:
    reasons: list[str]
    changes: list[str]
    changed_ready: set[str] = field(default_factory=set)


class MigrationService:
    """Dry runs, batches, single moves and reverts of instance migrations between process versions."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine

    # -- dry run ----------------------------------------------------------------------------------------------

    def plan(self, process_key: str, target_version: int | None = None, *, from_versions: list[int] | None = None,
             stages: list[str] | None = None, instance_ids: list[int] | None = None, after_id: int | None = None,
             limit: int | None = None) -> MigrationPlan:
        """Judge every selected running instance of `process_key` not yet on the target version; stores nothing.

        With `limit`, only the next `limit` instances (by id, after `after_id`) are judged, and `next_after` tells
        where the next page starts: a page of a large dry run fits in one web request."""
        target = self._target(process_key, target_version)
        filters = {"from_versions": sorted(set(from_versions or [])) or None,
                   "stages": sorted(set(stages or [])) or None,
                   "instance_ids": sorted(set(instance_ids or [])) or None}
        result = []
        next_after = selected = None
        with self._engine.executor.clock_in_force(), self._engine.db.session() as session:
            if limit is not None:
                selected = self._select(session, target, count=True, **filters)
            rows = self._select(session, target, after_id=after_id,
                                limit=limit + 1 if limit is not None else None, **filters)
            if limit is not None and len(rows) > limit:
                rows = rows[:limit]
                next_after = rows[-1].id
            stage_map = self._stages(session, [r.id for r in rows])
            for row in rows:
                assessment = self._assess_row(session, row, target)
                result.append(InstancePlan(row.id, row.business_key, row.definition.version, row.revision,
                                           stage_map.get(row.id, []), not assessment.reasons,
                                           assessment.reasons, assessment.changes))
        return MigrationPlan(target.key, target.version, target.definition_id, filters, result, next_after, selected)

    def overview(self, process_key: str) -> dict[str, Any]:
        """What the migration page offers: versions with their running instances, open stages, the latest."""
        with self._engine.db.session() as session:
            versions = session.execute(
                select(ProcessDefinition.version, ProcessDefinition.id, ProcessDefinition.name,
                       ProcessDefinition.deployed_at, ProcessDefinition.comment,
                       func.count(ProcessInstance.id))
                .outerjoin(ProcessInstance, (ProcessInstance.definition_id == ProcessDefinition.id)
                           & (ProcessInstance.status == "running"))
                .where(ProcessDefinition.key == process_key)
                .group_by(ProcessDefinition.version, ProcessDefinition.id, ProcessDefinition.name,
                          ProcessDefinition.deployed_at, ProcessDefinition.comment)
                .order_by(ProcessDefinition.version)).all()
            if not versions:
                raise NotFound(f"Процесс «{process_key}» не развернут")
            stages = session.execute(
                select(HumanTask.element_id, HumanTask.name, ProcessDefinition.version,
                       func.count(func.distinct(HumanTask.instance_id)))
                .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
                .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                .where(ProcessInstance.process_key == process_key, ProcessInstance.status == "running",
                       HumanTask.status == "open")
                .group_by(HumanTask.element_id, HumanTask.name, ProcessDefinition.version)).all()
        by_stage: dict[str, dict[str, Any]] = {}
        for element, name, version, count in stages:
            entry = by_stage.setdefault(element, {"element": element, "name": name, "count": 0, "by_version": {}})
            entry["count"] += count
            entry["by_version"][version] = entry["by_version"].get(version, 0) + count
        return {
            "process_key": process_key,
            "latest": versions[-1].version,
            "versions": [{"version": v.version, "definition_id": v.id, "name": v.name,
                          "deployed_at": v.deployed_at.isoformat(), "comment": v.comment, "running": v[5]}
                         for v in versions],
            "stages": sorted(by_stage.values(), key=lambda s: (s["name"] or "", s["element"])),
        }

    # -- batches ----------------------------------------------------------------------------------------------

    def start_batch(self, plan: MigrationPlan | str, target_version: int | None = None, *, actor: str | None = None,
                    comment: str | None = None, **filters: Any) -> int:
        """Store a batch of the movable instances of a plan (made here from the arguments if not given)."""
        if not isinstance(plan, MigrationPlan):
            plan = self.plan(plan, target_version, **filters)
        return self._store_batch(plan.process_key, plan.target_version, plan.target_definition_id,
                                 [i.instance_id for i in plan.movable], plan.filters, actor, comment)

    def start_batch_of(self, process_key: str, target_version: int | None, instance_ids: list[int], *,
                       actor: str | None = None, comment: str | None = None,
                       filters: dict[str, Any] | None = None) -> int:
        """Store a batch of instances a (paged) dry run found movable, without judging them again here: each step
        judges every instance on its state at that moment anyway. Ids that are not running instances of the
        process off the target version are refused."""
        target = self._target(process_key, target_version)
        ids = sorted(set(instance_ids))
        with self._engine.db.session() as session:
            found: set[int] = set()
            for start in range(0, len(ids), 900):
                found.update(session.scalars(
                    select(ProcessInstance.id).where(ProcessInstance.id.in_(ids[start:start + 900]),
                                                     ProcessInstance.process_key == target.key,
                                                     ProcessInstance.status == "running",
                                                     ProcessInstance.definition_id != target.definition_id)))
        unknown = [i for i in ids if i not in found]
        if unknown:
            shown = ", ".join(map(str, unknown[:10])) + (" …" if len(unknown) > 10 else "")
            raise InvalidInput(f"Экземпляры {shown} не идут по процессу «{process_key}» вне целевой версии: "
                               f"повторите пробный прогон", {"instance_ids": "устарели"})
        return self._store_batch(target.key, target.version, target.definition_id, ids, filters or {}, actor, comment)

    def _store_batch(self, process_key: str, target_version: int, target_definition_id: int, ids: list[int],
                     filters: dict[str, Any], actor: str | None, comment: str | None) -> int:
        if not ids:
            raise InvalidInput("Нет экземпляров, которые можно перенести: проверьте отбор и причины в пробном "
                               "прогоне", {"instances": "нет переносимых"})
        with self._engine.db.session() as session:
            batch = MigrationBatch(process_key=process_key, target_definition_id=target_definition_id,
                                   target_version=target_version, instance_ids=ids, filters=filters,
                                   total=len(ids), done=0, moved=0, failed=0, status="running",
                                   comment=(comment or "").strip()[:2000] or None, created_by=actor,
                                   created_at=self._engine.clock.now())
            session.add(batch)
            session.flush()
            return batch.id

    def run_batch(self, batch_id: int, limit: int = 50, actor: str | None = None) -> dict[str, Any]:
        """Move the next `limit` instances of a batch; returns its progress."""
        limit = max(1, min(int(limit), MAX_CHUNK))
        with self._engine.db.session() as session:
            batch = session.get(MigrationBatch, batch_id)
            if batch is None:
                raise NotFound(f"Пакет переноса {batch_id} не найден")
            processed = set(session.scalars(select(InstanceMigration.instance_id)
                                            .where(InstanceMigration.batch_id == batch_id)))
            pending = [i for i in batch.instance_ids if i not in processed]
            # a random chunk, so that steps running at once in several processes rarely pick the same instances
            pending = random.sample(pending, limit) if len(pending) > limit else pending
            target = _Target(batch.target_definition_id, batch.process_key, batch.target_version,
                             self._engine.repository.spec_json(batch.target_definition_id))
            who = actor or batch.created_by
        for instance_id in pending:
            self._migrate_one(batch_id, instance_id, target, who)
        return self._refresh_counters(batch_id)

    def migrate(self, process_key: str, target_version: int | None = None, *, actor: str | None = None,
                comment: str | None = None, chunk: int = 100, **filters: Any) -> dict[str, Any]:
        """Plan, store a batch and run it to the end; returns the batch with its results."""
        plan = self.plan(process_key, target_version, **filters)
        batch_id = self.start_batch(plan, actor=actor, comment=comment)
        progress = self.progress(batch_id)
        while progress["status"] == "running":
            done = progress["done"]
            progress = self.run_batch(batch_id, chunk, actor)
            if progress["done"] == done:
                break  # nothing left that this process can take
        return self.batch(batch_id)

    # -- one instance -----------------------------------------------------------------------------------------

    def _migrate_one(self, batch_id: int, instance_id: int, target: _Target, actor: str | None) -> str:
        """Move one instance in its own transaction; records the outcome. Returns "moved", "failed" or "skipped"."""
        reasons: list[str] = []
        for attempt in (1, 2):
            try:
                self._move(batch_id, instance_id, target, actor)
                return "moved"
            except (IntegrityError, _AlreadyRecorded):
                return "skipped"  # another step of the same batch recorded this instance first
            except MigrationBlocked as exc:
                reasons = exc.reasons
                break
            except Conflict:
                if attempt == 2:
                    reasons = ["экземпляр изменялся одновременно с переносом; повторите перенос позже"]
            except KuratorError as exc:
                reasons = [f"перенос не удался: {exc.message}"]
                break
            except SQLAlchemyError:  # the database refused the save (after the step's own checks): record it
                log.exception("migration of instance %s failed in the database", instance_id)
                reasons = ["перенос не удался: база данных отклонила сохранение; подробности в журнале сервера"]
                break
        try:
            with self._engine.db.session() as session:
                row = session.get(ProcessInstance, instance_id)
                session.add(InstanceMigration(batch_id=batch_id, instance_id=instance_id, status="failed",
                                              reason="; ".join(reasons),
                                              from_definition_id=row.definition_id if row else target.definition_id,
                                              to_definition_id=target.definition_id,
                                              migrated_at=self._engine.clock.now(), migrated_by=actor))
        except IntegrityError:
            return "skipped"
        return "failed"

    def _move(self, batch_id: int, instance_id: int, target: _Target, actor: str | None) -> None:
        """Move one instance through the executor: everything (state, definition, inbox, record, history) is
        saved with the instance's revision check, or nothing is."""
        executor = self._engine.executor
        with executor.operation(instance_id, actor, what="migration") as loaded:
            session, row = loaded.session, loaded.row
            if session.scalar(select(InstanceMigration.id).where(InstanceMigration.batch_id == batch_id,
                                                                 InstanceMigration.instance_id == instance_id)):
                raise _AlreadyRecorded("recorded by another step")
            if row.status != "running":
                raise MigrationBlocked(["экземпляр уже завершен"])
            if row.definition_id == target.definition_id:
                raise MigrationBlocked([f"экземпляр уже работает по версии {target.version}"])
            source = row.definition
            previous_state, from_id = row.state, row.definition_id
            previous_tasks = [_snapshot(t) for t in session.scalars(
                select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.status == "open"))]
            assessment = self._assess(loaded.workflow, target)
            if assessment.reasons:
                raise MigrationBlocked(assessment.reasons)
            row.definition_id = target.definition_id
            executor.advance(loaded)
            # rows of open tasks that stay open are not touched by the executor's re-sync: refresh them here
            self._refresh_changed_tasks(session, loaded, assessment.changed_ready)
            record = InstanceMigration(batch_id=batch_id, instance_id=instance_id, status="moved",
                                       from_definition_id=from_id, to_definition_id=target.definition_id,
                                       previous_state=previous_state, previous_revision=loaded.revision,
                                       revision_after=loaded.revision + 1, previous_tasks=previous_tasks,
                                       changes=assessment.changes, migrated_at=self._engine.clock.now(),
                                       migrated_by=actor)
            session.add(record)
            session.flush()
            self._engine.history.record(session, history.INSTANCE_MIGRATED, instance_id, actor=actor,
                                        data={"from": {"key": source.key, "version": source.version},
                                              "to": {"key": target.key, "version": target.version},
                                              "batch_id": batch_id, "migration_id": record.id,
                                              "changes": assessment.changes})

    def _refresh_changed_tasks(self, session: Session, loaded, task_ids: set[str]) -> None:
        """Open inbox rows of tasks whose element changed take the new version's attributes; deadlines are
        computed as of the moment the task appeared (and a claim is kept)."""
        if not task_ids:
            return
        executor = self._engine.executor
        workflow = loaded.workflow
        roles = self._engine.role_titles()
        original_engine = workflow.script_engine
        try:
            for task_id in task_ids:
                task_row = session.get(HumanTask, task_id)
                task = workflow.get_task_from_id(task_uuid(task_id))
                if task_row is None or task_row.status != "open" or task is None:
                    continue
                created = task_row.created_at
                functions = {**DeadlineFunctions(self._engine.calendar.calendar, lambda at=created: at,
                                                 loaded.row.timezone).namespace(),
                             **self._engine.identity.functions()}
                workflow.script_engine = KuratorScriptEngine(functions, tz=loaded.row.timezone,
                                                             providers=self._engine.function_providers,
                                                             now=lambda at=created: at)
                values = executor.human_task_values(loaded, task, roles)
                values.pop("agency_missing")
                if task_row.assignee:
                    values.pop("assignee")
                due = values["due"]
                values["overdue"] = bool(task_row.overdue and due is not None and due <= self._engine.clock.now())
                for key, value in values.items():
                    setattr(task_row, key, value)
        finally:
            workflow.script_engine = original_engine

    # -- revert -----------------------------------------------------------------------------------------------

    def revert(self, migration_id: int, actor: str | None = None) -> dict[str, Any]:
        """Put an instance back on the version it had before a migration, if nothing happened to it since."""
        executor = self._engine.executor
        with self._engine.db.session() as session:
            record = session.get(InstanceMigration, migration_id)
            if record is None:
                raise NotFound(f"Перенос {migration_id} не найден")
            if record.status == "reverted":
                raise Conflict(f"Перенос {migration_id} уже отменен: экземпляр {record.instance_id} "
                               f"возвращен на прежнюю версию")
            if record.status != "moved":
                raise InvalidInput(f"Экземпляр {record.instance_id} не был перенесен ({record.reason}); "
                                   f"возвращать нечего", {"migration": "не перенесен"})
            row = session.get(ProcessInstance, record.instance_id)
            previous = session.get(ProcessDefinition, record.from_definition_id)
            current = session.get(ProcessDefinition, record.to_definition_id)
            why = self._not_revertable(record, row)
            if why:
                raise Conflict(why)
            instance_id, previous_id, current_id = row.id, previous.id, current.id
            answer = {"migration_id": record.id, "instance_id": row.id, "version": previous.version,
                      "status": "reverted"}
            data = {"from": {"key": current.key, "version": current.version},
                    "to": {"key": previous.key, "version": previous.version},
                    "migration_id": record.id, "batch_id": record.batch_id}
        with executor.operation(instance_id, actor, what="migration revert") as loaded:
            session = loaded.session
            record = session.get(InstanceMigration, migration_id)
            if (loaded.revision != record.revision_after or loaded.row.definition_id != current_id
                    or record.status != "moved"):
                raise Conflict(f"Экземпляр {instance_id} изменился после переноса; вернуть его на версию "
                               f"{answer['version']} нельзя")
            workflow = executor.serializer.restore(record.previous_state,
                                                   self._engine.repository.spec_json(previous_id))
            reconnect_event_subprocesses(workflow)
            workflow.script_engine = executor.script_engine(loaded.row.timezone)
            loaded.workflow = workflow
            loaded.row.definition_id = previous_id
            # the rows the tasks had before the move (the executor's re-sync then keeps them, and cancels the
            # rows of tasks that only the new version had)
            for snapshot in record.previous_tasks or []:
                task_row = session.get(HumanTask, snapshot["id"])
                if task_row is not None:
                    values = _restore(snapshot)
                    if task_row.status == "open":
                        values.pop("assignee", None)  # a claim made since the move stays
                    for key, value in values.items():
                        setattr(task_row, key, value)
            record.status = "reverted"
            record.reverted_at = self._engine.clock.now()
            record.reverted_by = actor
            self._engine.history.record(session, history.MIGRATION_REVERTED, instance_id, actor=actor, data=data)
        return answer

    @staticmethod
    def _not_revertable(record: InstanceMigration, row: ProcessInstance | None) -> str | None:
        if record.status == "reverted":
            return "перенос уже отменен"
        if record.status != "moved":
            return "экземпляр не был перенесен"
        if row is None:
            return "экземпляр удален"
        if row.definition_id != record.to_definition_id or row.revision != record.revision_after:
            return ("после переноса с экземпляром уже что-то произошло (выполнен шаг, сработало событие или "
                    "новый перенос), поэтому вернуть прежнюю версию нельзя")
        return None

    # -- queries ----------------------------------------------------------------------------------------------

    def progress(self, batch_id: int) -> dict[str, Any]:
        with self._engine.db.session() as session:
            batch = session.get(MigrationBatch, batch_id)
            if batch is None:
                raise NotFound(f"Пакет переноса {batch_id} не найден")
            return _batch_dict(batch)

    def batch(self, batch_id: int) -> dict[str, Any]:
        """A batch's progress with its moved and failed instances (each moved one says if it can be reverted)."""
        with self._engine.db.session() as session:
            batch = session.get(MigrationBatch, batch_id)
            if batch is None:
                raise NotFound(f"Пакет переноса {batch_id} не найден")
            rows = session.execute(
                select(InstanceMigration, ProcessInstance)
                .outerjoin(ProcessInstance, ProcessInstance.id == InstanceMigration.instance_id)
                .where(InstanceMigration.batch_id == batch_id).order_by(InstanceMigration.instance_id)).all()
            versions = dict(session.execute(select(ProcessDefinition.id, ProcessDefinition.version)
                                            .where(ProcessDefinition.key == batch.process_key)).all())
            items = [_migration_dict(m, i, versions, self._not_revertable(m, i)) for m, i in rows]
            result = _batch_dict(batch)
        result["items"] = items
        return result

    def batches(self, process_key: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with self._engine.db.session() as session:
            query = select(MigrationBatch)
            if process_key:
                query = query.where(MigrationBatch.process_key == process_key)
            return [_batch_dict(b) for b in session.scalars(query.order_by(MigrationBatch.id.desc()).limit(limit))]

    def migrations(self, instance_id: int) -> list[dict[str, Any]]:
        """Every migration (and failed attempt) of one instance, oldest first."""
        with self._engine.db.session() as session:
            row = session.get(ProcessInstance, instance_id)
            if row is None:
                raise NotFound(f"Экземпляр {instance_id} не найден")
            versions = dict(session.execute(select(ProcessDefinition.id, ProcessDefinition.version)
                                            .where(ProcessDefinition.key == row.process_key)).all())
            records = session.scalars(select(InstanceMigration).where(InstanceMigration.instance_id == instance_id)
                                      .order_by(InstanceMigration.id)).all()
            return [_migration_dict(m, row, versions, self._not_revertable(m, row)) for m in records]

    # -- internals --------------------------------------------------------------------------------------------

    def _target(self, process_key: str, version: int | None) -> _Target:
        try:
            definition = self._engine.repository.definition(process_key, version)
        except NotFound as exc:
            what = f"версия {version} процесса «{process_key}»" if version else f"процесс «{process_key}»"
            raise NotFound(f"Не развернута {what}") from exc
        return _Target(definition.id, definition.key, definition.version,
                       self._engine.repository.spec_json(definition.id))

    def _select(self, session: Session, target: _Target, from_versions=None, stages=None, instance_ids=None,
                after_id: int | None = None, limit: int | None = None, count: bool = False):
        """The selected running instances not on the target version, by id (or how many there are)."""
        what = func.count(ProcessInstance.id) if count else ProcessInstance
        query = (select(what).join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                 .where(ProcessInstance.process_key == target.key, ProcessInstance.status == "running",
                        ProcessInstance.definition_id != target.definition_id))
        if from_versions:
            query = query.where(ProcessDefinition.version.in_(from_versions))
        if instance_ids:
            query = query.where(ProcessInstance.id.in_(instance_ids))
        if stages:
            query = query.where(ProcessInstance.id.in_(
                select(HumanTask.instance_id).where(HumanTask.status == "open", HumanTask.element_id.in_(stages))))
        if count:
            return session.scalar(query)
        if after_id is not None:
            query = query.where(ProcessInstance.id > after_id)
        query = query.order_by(ProcessInstance.id)
        if limit is not None:
            query = query.limit(limit)
        return list(session.scalars(query).unique())

    @staticmethod
    def _stages(session: Session, ids: list[int]) -> dict[int, list[dict[str, str]]]:
        result: dict[int, list[dict[str, str]]] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for instance_id, element, name in session.execute(
                    select(HumanTask.instance_id, HumanTask.element_id, HumanTask.name)
                    .where(HumanTask.instance_id.in_(chunk), HumanTask.status == "open")
                    .order_by(HumanTask.instance_id, HumanTask.created_at)):
                result.setdefault(instance_id, []).append({"element": element, "name": name})
        return result

    def _assess_row(self, session: Session, row: ProcessInstance, target: _Target) -> _Assessment:
        try:
            loaded = self._engine.executor.load(session, row)
        except Exception as exc:  # a state that cannot be read is reported, never a traceback
            return _Assessment([f"состояние экземпляра не читается: {exc}"], [])
        return self._assess(loaded.workflow, target)

    def _assess(self, workflow: BpmnWorkflow, target: _Target) -> _Assessment:
        """Judge the move of one instance to the target, and carry it out on this live workflow when it can move
        (a dry run works on a workflow it then throws away)."""
        serializer = self._engine.executor.serializer
        registry = serializer._registry
        specs = json.loads(target.spec_json)
        new_spec = registry.restore(specs["spec"])
        new_deps = {name: registry.restore(sp) for name, sp in specs["subprocess_specs"].items()}
        try:
            top_diff, sp_diffs = diff_workflow(registry, workflow, new_spec, new_deps)
        except Exception as exc:
            return _Assessment([f"версии не удается сравнить: {exc}"], [])
        reasons: list[str] = []
        changes: list[str] = []
        changed_ready: set[str] = set()
        version = target.version
        parts = [(workflow, top_diff)]
        for sp_id, sp in workflow.subprocesses.items():
            parts.append((sp, sp_diffs.get(sp_id)))
        for wf, diff in parts:
            if diff is None:
                reasons.append(f"подпроцесс {_label(wf.spec)} отсутствует в версии {version}")
                continue
            target_spec = new_spec if wf is workflow else new_deps.get(wf.spec.name)
            for name, state in pruned_elements(wf).items():  # steps done long ago, dropped from the stored tree
                spec = wf.spec.task_specs.get(name)
                if target_spec is None or name in target_spec.task_specs or not getattr(spec, "bpmn_id", None):
                    continue
                what = "выполненный" if state == "completed" else "отмененный"
                reasons.append(f"{what} шаг {_label(spec)} удален в версии {version}")
            for task in diff.removed:
                spec = task.task_spec
                label = _label(spec)
                if task.has_state(TaskState.COMPLETED):
                    reasons.append(f"выполненный шаг {label} удален в версии {version}")
                elif task.has_state(TaskState.STARTED):
                    reasons.append(f"начатый шаг {label} удален в версии {version}")
                elif task.has_state(TaskState.ERROR):
                    reasons.append(f"шаг {label}, завершившийся ошибкой, удален в версии {version}")
                elif task.has_state(TaskState.CANCELLED):
                    reasons.append(f"отмененный шаг {label} удален в версии {version}")
                elif task.has_state(TaskState.READY):
                    reasons.append(f"текущий шаг {label} удален в версии {version}")
                elif task.has_state(TaskState.WAITING):
                    reasons.append(f"ожидаемое событие {label} удалено в версии {version}")
                elif getattr(spec, "bpmn_id", None):
                    changes.append(f"предстоящий шаг {label} удален")
            for task in wf.get_tasks(state=TaskState.READY | TaskState.WAITING, skip_subprocesses=True):
                split = _new_boundary_split(task, diff.alignment.get(task))
                if split is not None:
                    reasons.append(f"у текущего шага {_label(task.task_spec)} в версии {version} появилось "
                                   f"граничное событие: перенос возможен, когда шаг будет выполнен")
            for task in diff.changed:
                if not task.has_state(TaskState.READY | TaskState.WAITING):
                    continue
                attributes = _changed_attributes(registry, task.task_spec, diff.alignment.get(task))
                if not attributes:
                    continue
                what = "текущего шага" if task.has_state(TaskState.READY) else "ожидаемого события"
                changes.append(f"у {what} {_label(task.task_spec)} изменится: {', '.join(attributes)}")
                if task.has_state(TaskState.READY) and task.task_spec.manual:
                    changed_ready.add(str(task.id))
        for spec in sorted((s for s in _added(top_diff, new_spec, workflow)), key=lambda s: s.name):
            changes.append(f"новый шаг {_label(spec)}")
        reasons = list(dict.fromkeys(reasons))
        changes = list(dict.fromkeys(changes))
        if reasons:
            return _Assessment(reasons, changes, changed_ready=changed_ready)
        try:
            _apply(workflow, top_diff, sp_diffs, new_spec, new_deps)
            serializer.restore(serializer.state_to_json(workflow), target.spec_json)
        except Exception as exc:
            return _Assessment([f"состояние не переносится на версию {version}: {exc}"], changes)
        return _Assessment([], changes, changed_ready=changed_ready)

    def _refresh_counters(self, batch_id: int) -> dict[str, Any]:
        with self._engine.db.session() as session:
            counts = dict(session.execute(select(InstanceMigration.status, func.count())
                                          .where(InstanceMigration.batch_id == batch_id)
                                          .group_by(InstanceMigration.status)).all())
            moved = counts.get("moved", 0) + counts.get("reverted", 0)
            failed = counts.get("failed", 0)
            batch = session.get(MigrationBatch, batch_id)
            done = moved + failed
            values: dict[str, Any] = {"done": done, "moved": moved, "failed": failed}
            if done >= batch.total and batch.status == "running":
                values.update(status="done", finished_at=self._engine.clock.now())
            session.execute(update(MigrationBatch).where(MigrationBatch.id == batch_id).values(**values)
                            .execution_options(synchronize_session=False))
            session.expire(batch)
            batch = session.get(MigrationBatch, batch_id)
            return _batch_dict(batch)


# -- helpers --------------------------------------------------------------------------------------------------

def _apply(workflow: BpmnWorkflow, top_diff, sp_diffs: dict, new_spec, new_deps: dict) -> None:
    """SpiffWorkflow's migration, keeping unchanged waiting events on schedule and re-predicting removed steps."""
    keep = {}
    for wf, diff in [(workflow, top_diff), *((sp, sp_diffs.get(sp_id)) for sp_id, sp in workflow.subprocesses.items())]:
        for task in wf.get_tasks(state=TaskState.READY | TaskState.WAITING, skip_subprocesses=True):
            if diff is not None and task not in diff.changed:
                keep[task.id] = (task.task_spec.name, task.state, dict(task.data), dict(task.internal_data))
    migrate_workflow(top_diff, workflow, new_spec)
    for sp_id, sp in workflow.subprocesses.items():
        migrate_workflow(sp_diffs[sp_id], sp, new_deps.get(sp.spec.name))
    workflow.subprocess_specs = new_deps
    for wf in [workflow, *workflow.subprocesses.values()]:
        for task in list(wf.get_tasks(skip_subprocesses=True)):
            if task.id not in wf.tasks or not task.has_state(PREDICTED):
                continue
            if wf.spec.task_specs.get(task.task_spec.name) is not task.task_spec and task.parent is not None:
                parent = task.parent
                parent._drop_children()
                parent.task_spec._predict(parent, mask=PREDICTED | TaskState.FUTURE)
    for task_id, (name, state, data, internal) in keep.items():
        task = workflow.get_task_from_id(task_id)
        if task is not None and task.task_spec.name == name and task.state == state:
            task.data = data
            task.internal_data = internal
    reconnect_event_subprocesses(workflow)


def _added(top_diff, new_spec, workflow: BpmnWorkflow) -> list:
    """Elements of the target's top-level process that the instance's version does not have."""
    old_names = set(workflow.spec.task_specs)
    aligned = {spec.name for spec in top_diff.alignment.values() if spec is not None}
    return [spec for name, spec in new_spec.task_specs.items()
            if name not in old_names and name not in aligned and getattr(spec, "bpmn_id", None)]


def _changed_attributes(registry, old, new) -> list[str]:
    if new is None:
        return []
    first, second = registry.convert(old), registry.convert(new)
    labels = []
    for key in sorted(set(first) | set(second)):
        if key in STRUCTURE or first.get(key) == second.get(key):
            continue
        if key == "camunda":
            a, b = first.get(key) or {}, second.get(key) or {}
            labels.extend(ATTRIBUTE_LABELS.get(f"camunda.{k}", k) for k in sorted(set(a) | set(b))
                          if a.get(k) != b.get(k))
        elif key == "name":
            labels.append("идентификатор")
        else:
            labels.append(ATTRIBUTE_LABELS.get(key, key))
    return list(dict.fromkeys(labels))


def _new_boundary_split(task, new_spec):
    """The boundary-event split that wraps a ready or waiting task's element in the target version, when the
    instance's tree has no such split above the task (SpiffWorkflow's boundary join would look for it in vain)."""
    if new_spec is None:
        return None
    for spec in getattr(new_spec, "inputs", []):
        if spec.name.endswith(".BoundaryEventSplit") and getattr(task.parent, "task_spec", None) is not None \
                and task.parent.task_spec.name != spec.name:
            return spec
    return None


def _label(spec) -> str:
    bpmn_id = getattr(spec, "bpmn_id", None) or spec.name
    name = getattr(spec, "bpmn_name", None) or getattr(spec, "description", None) or bpmn_id
    return f"«{name}» ({bpmn_id})"


def _snapshot(row: HumanTask) -> dict[str, Any]:
    values: dict[str, Any] = {"id": row.id}
    for column in TASK_COLUMNS:
        value = getattr(row, column)
        values[column] = value.isoformat() if isinstance(value, datetime) else value
    return values


def _restore(snapshot: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in snapshot.items() if k in TASK_COLUMNS}
    for column in DATETIME_COLUMNS:
        if values.get(column):
            values[column] = datetime.fromisoformat(values[column])
    return values


def _batch_dict(batch: MigrationBatch) -> dict[str, Any]:
    return {"id": batch.id, "process_key": batch.process_key, "target_version": batch.target_version,
            "total": batch.total, "done": batch.done, "moved": batch.moved, "failed": batch.failed,
            "status": batch.status, "comment": batch.comment, "created_by": batch.created_by,
            "created_at": batch.created_at.isoformat(),
            "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
            "filters": batch.filters}


def _migration_dict(record: InstanceMigration, row: ProcessInstance | None, versions: dict[int, int],
                    not_revertable: str | None) -> dict[str, Any]:
    return {"id": record.id, "batch_id": record.batch_id, "instance_id": record.instance_id,
            "business_key": row.business_key if row is not None else None, "status": record.status,
            "reason": record.reason, "from_version": versions.get(record.from_definition_id),
            "to_version": versions.get(record.to_definition_id), "changes": record.changes or [],
            "migrated_at": record.migrated_at.isoformat(), "migrated_by": record.migrated_by,
            "reverted_at": record.reverted_at.isoformat() if record.reverted_at else None,
            "reverted_by": record.reverted_by, "revertable": record.status == "moved" and not not_revertable,
            "not_revertable": not_revertable if record.status == "moved" else None}
