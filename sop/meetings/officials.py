"""Who signs for the commission: its full name, chair and secretary, for documents and minutes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import Agency, Municipality

from .models import Commission


def commission_of(session: Session, municipality_id: int) -> Commission | None:
    return session.scalar(select(Commission).where(Commission.municipality_id == municipality_id))


def officials(session: Session, municipality_id: int) -> dict[str, Any]:
    """`commission_name`, `chair_name`, `secretary_name`, `place` of the municipality's commission.

    Without a commission record the name is the municipality's commission agency's (or «Комиссия по делам
    несовершеннолетних и защите их прав <municipality>»), and the chair and secretary are None.
    """
    commission = commission_of(session, municipality_id)
    if commission is not None:
        chair, secretary = commission.member_in("chair"), commission.member_in("secretary")
        return {"commission_name": commission.full_name, "chair_name": chair.full_name if chair else None,
                "secretary_name": secretary.full_name if secretary else None, "place": commission.place}
    agency = session.scalar(select(Agency.name).where(Agency.municipality_id == municipality_id,
                                                      Agency.kind == "commission").order_by(Agency.id).limit(1))
    if agency is None:
        municipality = session.scalar(select(Municipality.name).where(Municipality.id == municipality_id))
        agency = f"Комиссия по делам несовершеннолетних и защите их прав {municipality or ''}".strip()
    return {"commission_name": agency, "chair_name": None, "secretary_name": None, "place": None}
