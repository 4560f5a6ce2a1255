"""Kurator's workflow engine: one `ProcessEngine` handing out a few services with plain verbs.

    engine = ProcessEngine(Database(url))
    engine.repository.deploy(["workflows/sop_case.bpmn", "forms/conclusion.json"])
    instance_id = engine.runtime.start("sop_case", {"family_id": 7}, business_key="case-7")
    engine.tasks.complete(task_id, "secretary", {"danger_level": "high"})
    engine.management.sweep()          # timers and overdue tasks, as the scheduler does
    engine.history.for_instance(instance_id)

No Flask here: the web app and the CLI are clients of this package.
"""

from __future__ import annotations

from typing import TypeVar

from .audit import AuditService
from .bpmn.script_engine import FunctionProvider
from .calendar_service import CalendarService
from .clock import Clock, FrozenClock, SystemClock
from .db import Database, MigrationBranch
from .drafts import DraftService
from .errors import (
    Conflict,
    ExecutionError,
    InvalidInput,
    KuratorError,
    NotFound,
    PermissionDenied,
    Problem,
    ValidationFailed,
)
from .executor import Executor
from .history import HistoryService
from .identity import IdentityService
from .instance_migration import MigrationService
from .management import ManagementService
from .repository import RepositoryService
from .runtime import RuntimeService
from .tasks import TaskService

P = TypeVar("P")

__all__ = [
    "Clock", "Conflict", "Database", "ExecutionError", "FrozenClock", "InvalidInput", "KuratorError",
    "MigrationBranch", "NotFound", "PermissionDenied", "ProcessEngine", "Problem", "SystemClock", "ValidationFailed",
]


class ProcessEngine:
    """The engine: repository, runtime, tasks, history, identity, calendar and management services."""

    def __init__(self, db: Database, clock: Clock | None = None):
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.calendar = CalendarService(self)
        self.identity = IdentityService(self)
        self.history = HistoryService(self)
        self.repository = RepositoryService(self)
        self.executor = Executor(self)
        self.runtime = RuntimeService(self)
        self.tasks = TaskService(self)
        self.management = ManagementService(self)
        self.audit = AuditService(self)
        self.migration = MigrationService(self)
        self.drafts = DraftService(self)
        self._role_titles: dict[str, str] | None = None
        self.function_providers: list[FunctionProvider] = []
        self.plugins: dict[str, object] = {}

    # -- plugins: how a domain attaches itself -------------------------------------------------------------------

    def attach(self, name: str, plugin: P) -> P:
        """Attach a plugin (a domain's service) under `name`, once: when a plugin of that name is already attached,
        that one is returned and `plugin` is ignored, so that installing a domain twice is harmless.

        The engine knows nothing of its plugins; they are reached as `engine.plugin(name, Type)` and, for brevity,
        as the attribute `engine.<name>` (an attached name may not hide one of the engine's own attributes).
        A plugin may declare `roles` (code -> title): `init_db` seeds them after the engine's own. It may declare
        `migrations`, a `MigrationBranch` (its own Alembic branch of the schema): `init_db` applies it beside the
        engine's chain.
        """
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"Plugin name '{name}' must be an identifier not starting with '_'")
        if name not in self.plugins and (hasattr(type(self), name) or name in vars(self)):
            raise ValueError(f"Plugin name '{name}' is taken by the engine itself")
        return self.plugins.setdefault(name, plugin)  # type: ignore[return-value]

    def plugin(self, name: str, kind: type[P] | None = None) -> P | None:
        """The plugin attached under `name` (None when there is none); with `kind`, checked to be of that type."""
        found = self.plugins.get(name)
        if found is not None and kind is not None and not isinstance(found, kind):
            raise TypeError(f"Plugin '{name}' is a {type(found).__name__}, not a {kind.__name__}")
        return found  # type: ignore[return-value]

    def __getattr__(self, name: str):
        # called only when the ordinary lookup fails: an attached plugin, else the usual AttributeError
        plugins = vars(self).get("plugins") or {}
        if name in plugins:
            return plugins[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}' (no plugin of that name is "
                             f"attached)")

    def add_functions(self, provider: FunctionProvider) -> None:
        """Offer more functions to diagram expressions and scripts (a domain's own, e.g. its meeting dates).

        `provider(variables, tz, now)` is called at each evaluation with the instance's variables, its time zone
        name and the clock to use for "now"; it returns {name: callable}. The functions must be pure lookups:
        they run inside the engine's transaction-less evaluation and must not change any record.
        """
        if provider not in self.function_providers:
            self.function_providers.append(provider)

    def migration_branches(self) -> list[MigrationBranch]:
        """The Alembic branches the attached plugins declare (`plugin.migrations`), in the order of attachment."""
        branches = []
        for plugin in self.plugins.values():
            branch = getattr(plugin, "migrations", None)
            if isinstance(branch, MigrationBranch) and branch not in branches:
                branches.append(branch)
        return branches

    def init_db(self) -> None:
        """Create or upgrade the schema (the engine's migrations and the attached plugins' branches) and seed the
        reference data: the engine's roles and the plugins' roles (missing ones only: roles already in the table
        stay as they are)."""
        self.db.upgrade(self.migration_branches())
        self.identity.ensure_default_roles()
        self._role_titles = None

    def forget_role_titles(self) -> None:
        """Drop the cached role titles (after roles change; this process only, others reload on restart)."""
        self._role_titles = None

    def role_titles(self) -> dict[str, str]:
        """Role code -> title (cached; roles change rarely)."""
        if self._role_titles is None:
            self._role_titles = self.identity.roles()
        return self._role_titles
