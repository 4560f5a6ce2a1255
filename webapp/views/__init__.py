"""The pages, one blueprint per area of the UI; the navigation shows the areas a user's roles may use."""

from __future__ import annotations

from flask import Flask, g, request

from ..access import REPORT_ROLES

# (endpoint, label, roles that see the link; None = every signed-in user)
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
    ("reports.index", "Статистика", REPORT_ROLES),
    ("kpi.index", "Показатели", REPORT_ROLES),
    ("podrostok.index", "Подросток", REPORT_ROLES),
    ("modeler.index", "Моделер", {"methodologist"}),
    ("admin.index", "Администрирование", {"admin"}),
]

# Blueprints whose pages belong to a navigation area besides the area's own one (the link is shown active there).
SECTIONS = {"modeler": {"modeler", "modeler_forms", "diagram_diff", "simulation", "migration"}}


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
        return {"navigation": links}

    def _shown(user, roles) -> bool:
        if roles == "meetings":  # the commission's roles and its members (a look-up of the membership)
            return meetings.shows_link(user)
        return roles is None or user.has(*roles)
