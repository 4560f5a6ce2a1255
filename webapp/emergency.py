"""The red emergency flag: on the inbox, the case list and the case file, the commission (secretary, chair) and
managers see every case of their municipality with an open emergency (`sop.emergencies`), with a link to it.

The flag is drawn by base.html (`_emergency_flag.html`) from the context processor registered here, so the views
of those pages stay as they are. Data scope: the user's municipality, narrowed to the cases the user may open
(nothing to narrow for those who see the whole municipality). Only the few cases the flag names are read in full;
the rest are counted.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask, g, request

from sop.emergencies import emergency_flag as open_emergency_flag

from .access import visible_cases
from .auth import kurator

ROLES = ("commission_secretary", "commission", "manager")
SHOWN = 5  # cases named in the flag; the rest are counted
PAGES = frozenset({"inbox.index", "cases.index", "cases.show"})


def emergency_flag() -> dict[str, Any] | None:
    """The flag of the current page: `this` (the open emergency of the case shown, if any) and `others` (the other
    cases), or None when there is nothing to show here to this user."""
    user = g.get("user")
    if (request.endpoint not in PAGES or user is None or user.municipality_id is None or not user.has(*ROLES)
            or sys.exc_info()[0] is not None):  # an error page (drawn while the error is handled) has no flag
        return None
    if "_emergency_flag" not in g:
        shown = (request.view_args or {}).get("case_id") if request.endpoint == "cases.show" else None
        with kurator().db.session() as db:
            flag = open_emergency_flag(db, user.municipality_id,
                                       cases=None if user.municipality_wide else visible_cases(user),
                                       shown=SHOWN, case_id=shown)
        g._emergency_flag = {"this": flag.this, "others": flag.others, "more": flag.more} if flag else None
    return g._emergency_flag


def register(app: Flask) -> None:
    @app.context_processor
    def _emergency():
        return {"emergency_flag": emergency_flag}
