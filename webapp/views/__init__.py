"""The pages, one blueprint per area of the UI; the navigation shows the areas a user's roles may use."""

from __future__ import annotations

from flask import Flask, g

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
    ("modeler.index", "Моделер", {"methodologist"}),
    ("admin.index", "Администрирование", {"admin"}),
]


def register(app: Flask) -> None:
    from . import admin, cases, inbox, intake, manager, modeler, registers, tasks

    for module in (inbox, tasks, intake, cases, registers, manager, modeler, admin):
        app.register_blueprint(module.bp)

    @app.context_processor
    def _navigation():
        user = g.get("user")
        links = [(endpoint, label) for endpoint, label, roles in NAVIGATION
                 if endpoint in app.view_functions and user is not None and (roles is None or user.has(*roles))]
        return {"navigation": links}
