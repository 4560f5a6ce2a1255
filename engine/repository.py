"""RepositoryService: validate and deploy BPMN diagrams and form definitions, versioned by content hash."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, undefer

from . import history
from .bpmn import lint as bpmn_lint
from .bpmn import validation
from .bpmn.parser import KuratorParser
from .bpmn.serializer import StateSerializer
from .errors import Conflict, NotFound, Problem, ValidationFailed
from .forms import FORM_SUFFIXES, normalize_form_key
from .models import FormDefinition, ProcessDefinition, Resource

if TYPE_CHECKING:
    from . import ProcessEngine

BPMN_SUFFIXES = (".bpmn", ".bpmn20.xml", ".xml")
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)


@dataclass
class DeployedItem:
    kind: str  # "process" or "form"
    key: str
    version: int
    created: bool
    file: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class DeploymentResult:
    items: list[DeployedItem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"items": [i.to_dict() for i in self.items], "warnings": [w.to_dict() for w in self.warnings]}


@dataclass
class _Source:
    name: str
    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


class RepositoryService:
    """Deploys definitions and hands out the stored specs of process versions."""

    def __init__(self, engine: ProcessEngine):
        self._engine = engine
        self._serializer = StateSerializer()
        self._spec_cache: dict[int, str] = {}
        # (form key, process version) -> the schema that version pinned; both are immutable once deployed
        self._pinned_forms: dict[tuple[str, int], dict[str, Any]] = {}

    # -- deployment -------------------------------------------------------------------------------------------

    def deploy(self, files: Iterable[str | Path | tuple[str, str | bytes]], deployed_by: str | None = None,
               comment: str | None = None, lint: bool = False) -> DeploymentResult:
        """Validate every file, then store new versions of what changed; refuse everything on any error.

        With `lint`, the diagrams are also checked by the `bpmnlint:recommended` rules (`engine.bpmn.lint`):
        their errors refuse the deployment like any other, their warnings are returned with the others."""
        sources = [_read(item) for item in files]
        if not sources:
            raise ValidationFailed([Problem("error", "No files to deploy", message_ru="Нет файлов для развертывания")])
        form_schemas, parsed, problems = self._prepare(sources, lint)
        if any(p.severity == "error" for p in problems):
            raise ValidationFailed(problems)
        warnings = [p for p in problems if p.severity == "warning"]
        result = DeploymentResult(warnings=warnings)
        try:
            with self._engine.db.session() as session:
                for key, (source, schema) in sorted(form_schemas.items()):
                    result.items.append(self._store_form(session, key, source, schema, deployed_by))
                for source, processes in parsed:
                    resource = self._store_resource(session, source, "bpmn")
                    for key, name, spec_json, spec_warnings in processes:
                        item = self._store_process(session, key, name, source, resource, spec_json,
                                                   [w.to_dict() for w in spec_warnings], deployed_by, comment)
                        result.items.append(item)
                changed_forms = {i.key for i in result.items if i.kind == "form" and i.created}
                deployed = {i.key for i in result.items if i.kind == "process"}
                result.items.extend(self._repin_forms(session, changed_forms, deployed, deployed_by, comment))
                for item in result.items:
                    if item.created:
                        self._engine.history.record(session, history.DEPLOYED, actor=deployed_by,
                                                    data={"kind": item.kind, "key": item.key,
                                                          "version": item.version, "file": item.file,
                                                          "comment": comment})
        except IntegrityError as exc:
            raise Conflict("Another deployment of the same definitions happened at the same time; "
                           "deploy again") from exc
        return result

    def validate(self, files: Iterable[str | Path | tuple[str, str | bytes]], lint: bool = False) -> list[Problem]:
        """All problems of a would-be deployment (errors and warnings), storing nothing; `lint` as in `deploy`."""
        try:
            sources = [_read(item) for item in files]
        except ValidationFailed as exc:
            return exc.problems
        return self._prepare(sources, lint)[2]

    def _prepare(self, sources: list[_Source], lint: bool = False):
        """Check forms and diagrams together: (form schemas by key, parsed processes per file, problems)."""
        problems: list[Problem] = []
        form_schemas = {}
        for source in sources:
            if source.name.lower().endswith(FORM_SUFFIXES):
                schema = validation.check_form(source.name, source.text, problems)
                if schema is not None:
                    form_schemas[Path(source.name).stem] = (source, schema)
        bpmn = [s for s in sources if not s.name.lower().endswith(FORM_SUFFIXES)]
        parsed = self._parse_bpmn(bpmn, set(form_schemas) | self.form_keys(), problems, lint)
        return form_schemas, parsed, problems

    def _parse_bpmn(self, sources: list[_Source], known_forms: set[str], problems: list[Problem],
                    lint: bool = False):
        parsed = []
        parser = KuratorParser()
        trees = []
        lint_problems: list[Problem] = []  # reported after the engine's own problems
        for source in sources:
            try:
                tree = etree.fromstring(source.text.encode("utf-8"), _XML_PARSER)
            except etree.XMLSyntaxError as exc:
                problems.append(Problem("error", f"Not a well-formed XML file: {exc}", file=source.name,
                                        message_ru=f"Файл не читается как XML (ошибка разметки): {exc}. Проверьте, "
                                                   f"что файл сохранен целиком и не изменялся вручную."))
                continue
            if etree.QName(tree).localname != "definitions":
                problems.append(Problem("error", "Not a BPMN 2.0 file: the root element must be "
                                                 "bpmn:definitions", file=source.name,
                                        message_ru="Это не файл BPMN 2.0: корневым элементом должен быть "
                                                   "bpmn:definitions."))
                continue
            if lint:
                lint_problems.extend(bpmn_lint.lint_tree(tree, source.name))
            try:
                parser.add_bpmn_xml(tree, filename=source.name)
            except Exception as exc:  # any parser failure on foreign input becomes a Problem
                problems.append(validation.problem_from_exception(exc, source.name, tree=tree))
                continue
            trees.append((source, tree))
        if not trees:
            problems.extend(lint_problems)
            return parsed
        self._add_called_processes(parser, problems)
        roles = self._engine.role_titles()
        for source, tree in trees:
            process_ids = [p.get("id") for p in tree.iter("{*}process")
                           if parser.get_process_parser(p.get("id")) is not None
                           and parser.get_process_parser(p.get("id")).process_executable]
            if not process_ids:
                problems.append(Problem("error", "The file has no executable process: set "
                                                 "isExecutable=\"true\" on the process to run", file=source.name,
                                        message_ru="В файле нет исполняемого процесса: отметьте процесс как "
                                                   "исполняемый (isExecutable=\"true\")."))
                continue
            processes = []
            for process_id in process_ids:
                spec_problems: list[Problem] = []
                try:
                    spec = parser.get_spec(process_id)
                    subprocess_specs = parser.get_subprocess_specs(process_id)
                except Exception as exc:
                    problems.append(validation.problem_from_exception(exc, source.name, process_id, tree=tree))
                    continue
                validation.check_specs(spec, subprocess_specs, source.name, known_forms, roles, spec_problems)
                problems.extend(spec_problems)
                if any(p.severity == "error" for p in spec_problems):
                    continue
                try:
                    spec_json = self._serializer.spec_to_json(spec, subprocess_specs)
                except Exception as exc:
                    problems.append(validation.unsupported_element(exc, spec, subprocess_specs, source.name))
                    continue
                warnings = [p for p in spec_problems if p.severity == "warning"]
                processes.append((process_id, spec.description or process_id, spec_json, warnings))
            parsed.append((source, processes))
        problems.extend(lint_problems)
        return parsed

    def _add_called_processes(self, parser: KuratorParser, problems: list[Problem]) -> None:
        """Called processes not in this deployment are taken from their latest deployed version."""
        added: set[str] = set()
        missing = [key for key in parser.get_process_dependencies() if key and parser.get_process_parser(key) is None]
        while missing:
            key = missing.pop()
            if key in added:
                continue
            added.add(key)
            with self._engine.db.session() as session:
                row = session.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key)
                                     .order_by(ProcessDefinition.version.desc()).limit(1))
                content = row.resource.content if row is not None else None
            if content is None:
                continue  # reported by the parser as a missing called element
            try:
                parser.add_bpmn_xml(etree.fromstring(content.encode("utf-8"), _XML_PARSER),
                                    filename=f"{key} (deployed)")
            except Exception as exc:
                problems.append(validation.problem_from_exception(exc, f"{key} (deployed)"))
            missing.extend(k for k in parser.get_process_dependencies()
                           if k and parser.get_process_parser(k) is None and k not in added)

    # -- storage ----------------------------------------------------------------------------------------------

    def _store_resource(self, session, source: _Source, kind: str) -> Resource:
        digest = source.digest
        resource = session.scalar(select(Resource).where(Resource.content_hash == digest))
        if resource is None:
            resource = Resource(name=source.name, kind=kind, content_hash=digest, content=source.text,
                                created_at=self._engine.clock.now())
            session.add(resource)
            session.flush()
        return resource

    def _store_process(self, session, key, name, source, resource, spec_json, warnings, deployed_by, comment):
        latest = session.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key)
                                .order_by(ProcessDefinition.version.desc()).limit(1))
        form_versions = self._latest_form_versions(session, self.spec_form_keys(spec_json))
        if latest is not None and latest.content_hash == resource.content_hash:
            if latest.form_versions is None:  # deployed before forms were pinned: it ran with the latest forms
                latest.form_versions = form_versions
            if latest.form_versions == form_versions:
                return DeployedItem("process", key, latest.version, False, source.name)
        version = (latest.version if latest else 0) + 1
        session.add(ProcessDefinition(key=key, version=version, name=name, content_hash=resource.content_hash,
                                      resource_id=resource.id, spec_json=spec_json, warnings=warnings,
                                      deployed_at=self._engine.clock.now(), deployed_by=deployed_by,
                                      comment=comment, form_versions=form_versions))
        session.flush()
        return DeployedItem("process", key, version, True, source.name)

    def _repin_forms(self, session, changed_forms: set[str], deployed: set[str], deployed_by, comment):
        """Forms are versioned with the diagrams that use them: a changed form gives every process whose latest
        version uses it (itself or in a process it calls) a new version, the same diagram with the new form, unless
        that process is part of this deployment anyway. Running instances keep their version and forms."""
        if not changed_forms:
            return []
        latest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
                  .group_by(ProcessDefinition.key).subquery())
        query = select(ProcessDefinition).options(undefer(ProcessDefinition.spec_json)).join(
            latest, (ProcessDefinition.key == latest.c.key) & (ProcessDefinition.version == latest.c.version))
        if deployed:
            query = query.where(ProcessDefinition.key.not_in(deployed))
        rows = session.scalars(query.order_by(ProcessDefinition.key)).all()
        items = []
        for row in rows:
            keys = self.spec_form_keys(row.spec_json)
            if not changed_forms.intersection(keys):
                continue
            session.add(ProcessDefinition(key=row.key, version=row.version + 1, name=row.name,
                                          content_hash=row.content_hash, resource_id=row.resource_id,
                                          spec_json=row.spec_json, warnings=row.warnings,
                                          deployed_at=self._engine.clock.now(), deployed_by=deployed_by,
                                          comment=comment, form_versions=self._latest_form_versions(session, keys)))
            session.flush()
            items.append(DeployedItem("process", row.key, row.version + 1, True, f"{row.key} (new forms)"))
        return items

    def _store_form(self, session, key, source, schema, deployed_by):
        digest = source.digest
        latest = session.scalar(select(FormDefinition).where(FormDefinition.key == key)
                                .order_by(FormDefinition.version.desc()).limit(1))
        if latest is not None and latest.content_hash == digest:
            return DeployedItem("form", key, latest.version, False, source.name)
        version = (latest.version if latest else 0) + 1
        session.add(FormDefinition(key=key, version=version, content_hash=digest, schema=schema,
                                   deployed_at=self._engine.clock.now(), deployed_by=deployed_by))
        session.flush()
        return DeployedItem("form", key, version, True, source.name)

    # -- queries ----------------------------------------------------------------------------------------------

    def form_keys(self) -> set[str]:
        with self._engine.db.session() as session:
            return set(session.scalars(select(FormDefinition.key).distinct()))

    def form(self, key: str, definition_id: int | None = None, session: Session | None = None) -> dict[str, Any] | None:
        """The schema of a form, by key or by a Camunda form key: the version pinned by process version
        `definition_id` when given (forms are versioned with the diagrams that use them), else the latest.
        The caller gets its own copy."""
        schema = self.shared_form(key, definition_id, session)
        return copy.deepcopy(schema) if schema is not None else None

    def shared_form(self, key: str, definition_id: int | None = None,
                    session: Session | None = None) -> dict[str, Any] | None:
        """`form()` without the copy: a schema pinned by a process version is read once per process and shared,
        so it must not be changed. In the caller's transaction when `session` is given."""
        key = normalize_form_key(key)
        if definition_id is not None:
            cached = self._pinned_forms.get((key, definition_id))
            if cached is not None:
                return cached
        with self._engine.db.session(join=session) as session:
            query = select(FormDefinition).where(FormDefinition.key == key)
            pinned_version = None
            if definition_id is not None:
                pinned = session.scalar(select(ProcessDefinition.form_versions)
                                        .where(ProcessDefinition.id == definition_id)) or {}
                pinned_version = pinned.get(key)
                if pinned_version is not None:
                    query = query.where(FormDefinition.version == pinned_version)
            schema = session.scalar(query.with_only_columns(FormDefinition.schema)
                                    .order_by(FormDefinition.version.desc()).limit(1))
        if schema is not None and pinned_version is not None:
            # a version without pins (deployed before 0006) follows the latest form, which may still change
            self._pinned_forms[(key, definition_id)] = schema
        return schema

    @staticmethod
    def spec_form_keys(spec_json: str) -> list[str]:
        """The deployable forms a stored spec's user tasks name, in the process and every process it calls
        (forms with inline fields, the Camunda generated kind, need no deployment)."""
        specs = json.loads(spec_json)
        keys = set()
        for process in [specs["spec"], *specs.get("subprocess_specs", {}).values()]:
            for task_spec in process.get("task_specs", {}).values():
                form = task_spec.get("form")
                if isinstance(form, dict) and form.get("key") and not form.get("fields"):
                    keys.add(normalize_form_key(form["key"]))
        return sorted(keys)

    @staticmethod
    def _latest_form_versions(session, keys: list[str]) -> dict[str, int]:
        if not keys:
            return {}
        rows = session.execute(select(FormDefinition.key, func.max(FormDefinition.version))
                               .where(FormDefinition.key.in_(keys)).group_by(FormDefinition.key)).all()
        return {key: version for key, version in sorted(rows)}

    def definition(self, key: str, version: int | None = None) -> ProcessDefinition:
        with self._engine.db.session() as session:
            query = select(ProcessDefinition).where(ProcessDefinition.key == key)
            if version is not None:
                query = query.where(ProcessDefinition.version == version)
            row = session.scalar(query.options(undefer(ProcessDefinition.spec_json))
                                 .order_by(ProcessDefinition.version.desc()).limit(1))
            if row is None:
                known = ", ".join(sorted(session.scalars(select(ProcessDefinition.key).distinct()))) or "none"
                what = f"version {version} of process '{key}'" if version else f"process '{key}'"
                raise NotFound(f"No deployed {what}; deployed processes: {known}")
            session.expunge(row)
            return row

    def process_names(self) -> dict[str, str]:
        """Process key -> the name of its latest version (the diagram's process name; the key when it has none)."""
        with self._engine.db.session() as session:
            rows = session.execute(select(ProcessDefinition.key, ProcessDefinition.name)
                                   .order_by(ProcessDefinition.version))
            return {key: name or key for key, name in rows}

    def definitions(self) -> list[dict]:
        with self._engine.db.session() as session:
            rows = session.execute(select(ProcessDefinition.id, ProcessDefinition.key, ProcessDefinition.version,
                                          ProcessDefinition.name, ProcessDefinition.deployed_at,
                                          ProcessDefinition.deployed_by)
                                   .order_by(ProcessDefinition.key, ProcessDefinition.version)).all()
            return [{"id": r.id, "key": r.key, "version": r.version, "name": r.name,
                     "deployed_at": r.deployed_at.isoformat(), "deployed_by": r.deployed_by} for r in rows]

    def spec_json(self, definition_id: int) -> str:
        """The stored spec of a version (immutable, so cached in-process)."""
        cached = self._spec_cache.get(definition_id)
        if cached is None:
            with self._engine.db.session() as session:
                cached = session.scalar(select(ProcessDefinition.spec_json)
                                        .where(ProcessDefinition.id == definition_id))
            if cached is None:
                raise NotFound(f"No process definition {definition_id}")
            self._spec_cache[definition_id] = cached
        return cached


def _read(item: str | Path | tuple[str, str | bytes]) -> _Source:
    if isinstance(item, tuple):
        name, content = item
    else:
        path = Path(item)
        name, content = path.name, path.read_bytes()
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationFailed([Problem("error", f"The file is not UTF-8 text ({exc.reason})", file=name,
                                            message_ru="Файл не в кодировке UTF-8: сохраните его в UTF-8.")]) from exc
    return _Source(name=name, text=content)
