"""The pages, one blueprint per area of the UI; the navigation shows the areas a user's roles may use."""

from __future__ import annotations

from flask import Flask, g, request

from ..access import reads_reports

# (endpoint, label, roles that see the link; None = every signed-in user; a function: a test of the user, the one the
# pages apply — `webapp.access.reads_reports` for the reports, whose scope is not a set of roles)
NAVIGATION = [
    ("inbox.index", "Мои задачи", None),
    ("intake.new", "Новое сообщение", {"commission_secretary", "police", "guardianship", "social_protection",
                                       "education", "health", "agency_specialist", "curator"}),
    ("cases.index", "Личные дела", {"commission_secretary", "commission", "curator", "agency_specialist", "police",
                                    "guardianship", "social_protection", "education", "health", "manager"}),
    ("registers.index", "Реестры", {"commission_secretary", "commission", "regional_secretary", "police",
                                    "guardianship", "social_protection", "education", "health", "manager",
                                    "agency_specialist", "curator"}),
    ("manager.overdue", "Просроченные", {"manager", "commission_secretary", "commission"}),
    ("meetings.index", "Заседания", "meetings"),
    ("reports.index", "Статистика", reads_reports),
    ("kpi.index", "Показатели", reads_reports),
    ("podrostok.index", "Подросток", lambda user: reads_reports(user, personal=True)),
    ("modeler.index", "Моделер", {"methodologist"}),
    ("admin.index", "Администрирование", {"admin"}),
]

# Blueprints whose pages belong to a navigation area besides the area's own one (the link is shown active there).
SECTIONS = {"modeler": {"modeler", "modeler_forms", "diagram_diff", "simulation", "migration"}}
# Links the top bar shows under one menu (its label -> their endpoints), in the place of the first of them, so that
# the bar of the commission's roles fits a 1280 px screen; a user who may see only one of them gets it as a link.
GROUPS = {"Отчеты": ("reports.index", "kpi.index", "podrostok.index")}


def menu(links: list[tuple[str, str, bool]]) -> list[dict]:
    """The top bar's items from the links a user may see (endpoint, label, active): links
    ({"endpoint", "label", "active"}) and menus ({"label", "active", "children": [links]})."""
    group_of = {endpoint: label for label, endpoints in GROUPS.items() for endpoint in endpoints}
    grouped: dict[str, list[dict]] = {}
    for endpoint, label, active in links:
        if endpoint in group_of:
            grouped.setdefault(group_of[endpoint], []).append({"endpoint": endpoint, "label": label,
                                                               "active": active})
    items: list[dict] = []
    for endpoint, label, active in links:
        group = group_of.get(endpoint)
        if group is None or len(grouped[group]) == 1:
            items.append({"endpoint": endpoint, "label": label, "active": active, "children": None})
        elif grouped[group][0]["endpoint"] == endpoint:
            items.append({"label": group, "active": any(c["active"] for c in grouped[group]),
                          "children": grouped[group]})
    return items


def register(app: Flask) -> None:
    from . import (
        admin,
        cases,
        diagram_diff,
        inbox,
        intake,
        kpi,
        manager,
        meetings,
        migration,
        modeler,
        modeler_forms,
        podrostok,
        registers,
        reports,
        simulation,
        tasks,
    )

    for module in (inbox, tasks, intake, cases, registers, manager, meetings, reports, kpi, podrostok, modeler,
                   modeler_forms,
                   diagram_diff, simulation, migration, admin):
        app.register_blueprint(module.bp)

    @app.context_processor
    def _navigation():
        user = g.get("user")
        here = request.blueprint or ""
        links = [(endpoint, label, here in SECTIONS.get(endpoint.split(".")[0], {endpoint.split(".")[0]}))
                 for endpoint, label, roles in NAVIGATION
                 if endpoint in app.view_functions and user is not None and _shown(user, roles)]
        return {"navigation": menu(links)}

    def _shown(user, roles) -> bool:
        if roles == "meetings":  # the commission's roles and its members (a look-up of the membership)
            return meetings.shows_link(user)
        if callable(roles):
            return roles(user)
        return roles is None or user.has(*roles)
