"""The commission's roles belong to the SOP domain (issue 12): the engine seeds only the generic roles it needs
itself (admin, methodologist, manager); the domain's roles are seeded by the domain through the plugin hook
(`kurator init-db`, the demo); roles already in a database stay."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

import sop
from engine import Database, FrozenClock, ProcessEngine
from engine.identity import ENGINE_ROLES
from engine.models import Role
from sop.roles import ROLES as SOP_ROLES

ROOT = Path(__file__).resolve().parent.parent
AT = "2026-01-12T09:00:00+03:00"


def _roles(db: Database) -> dict[str, str]:
    with db.session() as session:
        return dict(session.execute(select(Role.code, Role.title)).all())


def test_the_engine_keeps_only_its_generic_roles():
    assert set(ENGINE_ROLES) == {"admin", "methodologist", "manager"}
    assert not set(SOP_ROLES) & set(ENGINE_ROLES)
    mentions = [path.relative_to(ROOT).as_posix() for path in (ROOT / "engine").rglob("*.py")
                if "migrations" not in path.parts
                and re.search(r"[\"'](commission_secretary|regional_secretary|agency_specialist|police)[\"']",
                              path.read_text(encoding="utf-8"))]
    assert mentions == []


def test_init_db_seeds_the_engine_roles_alone_and_the_domain_adds_its_own(tmp_path):
    alone = ProcessEngine(Database(f"sqlite:///{tmp_path / 'engine.db'}"), FrozenClock(AT))
    alone.init_db()
    assert _roles(alone.db) == ENGINE_ROLES

    product = sop.build_engine(Database(f"sqlite:///{tmp_path / 'product.db'}"), FrozenClock(AT), jobs=False)
    product.init_db()
    assert _roles(product.db) == {**ENGINE_ROLES, **SOP_ROLES}
    assert product.role_titles()["commission_secretary"] == "Ответственный секретарь КДНиЗП"


def test_an_existing_database_keeps_its_roles_and_titles(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    old = ProcessEngine(db, FrozenClock(AT))
    old.init_db()
    # as seeded before the roles moved, plus a renamed title and a role of the region's own
    old.identity.ensure_roles({**SOP_ROLES, "police": "Полиция (ПДН)", "probation": "УИИ"})
    before = _roles(db)
    ProcessEngine(db, FrozenClock(AT)).init_db()  # the engine alone: removes nothing
    assert _roles(db) == before
    product = sop.build_engine(db, FrozenClock(AT), jobs=False)
    product.init_db()
    assert _roles(db) == before and before["police"] == "Полиция (ПДН)"
    assert product.identity.ensure_roles(SOP_ROLES) == []


def test_kurator_init_db_seeds_the_domain_roles(tmp_path):
    from webapp.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(main, ["--database-url", url, "init-db"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert _roles(Database(url)) == {**ENGINE_ROLES, **SOP_ROLES}


def test_the_role_titles_cache_sees_roles_seeded_later(engine):
    with engine.db.session() as session:
        session.query(Role).delete()
    engine.forget_role_titles()
    engine.identity.ensure_roles(ENGINE_ROLES)
    assert set(engine.role_titles()) == set(ENGINE_ROLES)
    sop.install(engine, jobs=False)
    engine.identity.ensure_default_roles()
    assert set(engine.role_titles()) == set(ENGINE_ROLES) | set(SOP_ROLES)
