"""The REST API (flask-smorest + marshmallow): `/api/v1/…`, OpenAPI at `/api/openapi.json`.

Authentication: `POST /api/v1/auth/token` with `{username, password}` gives a token for the `Authorization:
Bearer …` header. Errors are JSON: `{"message": …, "errors": {field: message}}`, never an HTML page.
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect


def register_api(app: Flask, csrf: CSRFProtect) -> Api:
    api = Api(app, spec_kwargs={"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}]})
    from . import auth, cases, documents, intake, kpi, meetings, tasks

    for module in (auth, tasks, intake, cases, documents, meetings, kpi):
        csrf.exempt(module.blp)
        api.register_blueprint(module.blp)

    return api
