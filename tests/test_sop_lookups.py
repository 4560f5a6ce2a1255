"""A domain change reads the reference rows it needs once per transaction (`sop.lookups`), and the deployed diagram a
document takes its terms from once per process (`sop.document_facts`), without ever printing what is out of date."""

from __future__ import annotations

import re

from sqlalchemy import select

from sop import casefile, document_facts, lookups
from sop.meetings.models import Commission, CommissionMember
from sop.models import Document

from .support import statements_sent
from .test_documents_complete import CURATOR, _signing_commission, text_of
from .test_sop_diagrams import CHECK, RECOGNITION, at, complete
from .test_sop_service import SIGNAL, world  # noqa: F401 - the fixture

USER_BY_NAME = re.compile(r"FROM app_user\b.*WHERE app_user\.username = ", re.S)
COMMISSION = re.compile(r"FROM sop_commission\b", re.S)
DIAGRAM_TEXT = re.compile(r"SELECT resource\.content\b", re.S)
LATEST_DIAGRAM = re.compile(r"FROM resource JOIN process_definition\b", re.S)


def _checked_case(engine, service) -> int:
    at(engine, "2025-10-30 09:00")
    iid = service.register_intake("school", dict(SIGNAL, received_on="2025-10-30"), new_family=True).instance_ids[0]
    complete(engine, iid, "sop_check", dict(CHECK, conclusion_date="2025-10-30"))
    at(engine, "2025-12-23 10:00")
    return iid


def _name_the_curator(engine) -> None:
    from engine.models import User

    with engine.db.session() as session:
        session.scalar(select(User).where(User.username == "curator1")).full_name = CURATOR


def test_a_recognition_reads_the_curator_and_the_commission_once_and_the_diagram_once_per_process(world):  # noqa: F811
    engine, service = world
    _signing_commission(engine)
    _name_the_curator(engine)
    first, second = _checked_case(engine, service), _checked_case(engine, service)
    with document_facts._ROOTS_LOCK:
        document_facts._ROOTS.clear()
    with statements_sent(engine) as sent:
        complete(engine, first, "sop_recognition", RECOGNITION)
    # the curator's account: checked for the role, printed in the case block, the resolution and the working group
    assert len([s for s in sent if USER_BY_NAME.search(s)]) == 1
    assert len([s for s in sent if COMMISSION.search(s)]) == 1  # the chair and the secretary who sign
    assert len([s for s in sent if DIAGRAM_TEXT.search(s)]) == 1  # two terms of one diagram: parsed once
    assert len([s for s in sent if LATEST_DIAGRAM.search(s)]) == 1  # and its latest version looked up once
    with statements_sent(engine) as sent:
        complete(engine, second, "sop_recognition", RECOGNITION)
    assert not [s for s in sent if DIAGRAM_TEXT.search(s)]  # the next case: the diagram parsed already
    # and the document still prints all of it
    with engine.db.session() as session:
        document = session.scalars(select(Document).where(Document.kind == "resolution_recognition")
                                   .order_by(Document.id.desc())).first()
        pdf = casefile.pdf_of(session, document)
    text = text_of(pdf)
    assert "Петров Игорь Николаевич" in text and "Егорова Анна Павловна" in text
    assert "Назначить куратором случая Смирнову Ольгу Викторовну (КЦСОН г. Йошкар-Олы)" in text
    assert "в срок до 30.12.2025 направить куратору случая предложения" in text


def test_a_change_to_the_commission_in_the_same_transaction_is_what_it_prints(world):  # noqa: F811
    engine, _service = world
    _signing_commission(engine)
    with engine.db.session() as session:
        commission = session.scalar(select(Commission))
        assert lookups.officials(session, commission.municipality_id)["chair_name"] == "Петров Игорь Николаевич"
        chair = session.scalar(select(CommissionMember).where(CommissionMember.position == "chair"))
        chair.full_name = "Иванов Сергей Петрович"  # not flushed yet: what is kept is not used
        assert lookups.officials(session, commission.municipality_id)["chair_name"] == "Иванов Сергей Петрович"
        session.add(CommissionMember(commission_id=commission.id, full_name="Кузнецова Мария Олеговна",
                                     position="secretary"))
        chair.active = False
        session.flush()  # written: forgotten too
        found = lookups.officials(session, commission.municipality_id)
        assert found["chair_name"] is None
        # a copy: the caller may change it without changing what is kept
        found["chair_name"] = "кто-то"
        assert lookups.officials(session, commission.municipality_id)["chair_name"] is None


def test_what_is_kept_ends_with_its_transaction(world):  # noqa: F811
    engine, _service = world
    from engine.models import User

    with engine.db.session() as session, statements_sent(engine) as sent:
        assert lookups.user_named(session, "curator1").username == "curator1"
        assert lookups.user_named(session, "curator1") is lookups.user_named(session, "curator1")
        assert lookups.user_named(session, "nobody") is None
        assert lookups.user_named(session, "nobody") is None
        assert lookups.user_named(session, "") is None and lookups.user_named(session, None) is None
    assert len([s for s in sent if USER_BY_NAME.search(s)]) == 2  # curator1 once, nobody once
    engine.identity.add_user("nobody", ["curator"], agency="КЦСОН г. Йошкар-Олы")
    with engine.db.session() as session:
        assert lookups.user_named(session, "nobody").username == "nobody"  # the new transaction reads again
        session.add(User(username="newcomer", full_name="Новикова Анна"))
        assert lookups.user_named(session, "newcomer") is not None  # added in this transaction: found
        session.rollback()
        assert lookups.user_named(session, "newcomer") is None  # rolled back: gone
