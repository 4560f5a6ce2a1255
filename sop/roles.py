"""The roles of the SOP procedure (docs/domain.md §2): code -> Russian title shown in the UI and accepted as a lane
name in the diagrams. The domain seeds them (`kurator init-db`, the demo) through the engine's plugin hook; the
engine itself only has the generic roles of `engine.identity.ENGINE_ROLES`."""

from __future__ import annotations

ROLES = {
    "commission_secretary": "Ответственный секретарь КДНиЗП",
    "commission": "КДНиЗП",
    "curator": "Куратор случая",
    "agency_specialist": "Специалист органа системы профилактики",
    "guardianship": "Орган опеки и попечительства",
    "police": "ПДН / ОВД",
    "social_protection": "Социальная защита",
    "education": "Образование",
    "health": "Здравоохранение",
    "regional_secretary": "Ответственный секретарь региональной КДНиЗП",
}
