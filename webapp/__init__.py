"""The Kurator web application: server-rendered Russian pages and the REST API over the engine.

    app = create_app()            # configuration from the environment (KURATOR_DATABASE_URL, …)
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, request, session
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from engine import Database, ProcessEngine
from sop import build_engine  # the one engine builder (the web app's, the CLI's and the scheduler's)

from . import config as config_module
from . import errors, filters, rendering, security
from .params import BoundedIntConverter

csrf = CSRFProtect()
__all__ = ["build_engine", "create_app"]


def create_app(overrides: dict | None = None, engine: ProcessEngine | None = None) -> Flask:
    """The application factory. `engine` lets tests share an engine (and its clock) with the app."""
    app = Flask(__name__, instance_path=str(Path.cwd() / "instance"))
    app.url_map.converters["int"] = BoundedIntConverter  # before any route is added
    app.config.update(config_module.load(Path(app.instance_path)))
    app.config.update(overrides or {})
    if app.config.get("PROXY_COUNT"):
        # behind N reverse proxies: the client address (the login back-off, the audit log) and the scheme come
        # from the last N X-Forwarded-For / X-Forwarded-Proto entries; without it those headers are ignored
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_COUNT"], x_proto=app.config["PROXY_COUNT"])
    app.extensions["kurator"] = engine or build_engine(Database(app.config["DATABASE_URL"]))
    csrf.init_app(app)

    from . import auth, emergency, views
    from .api import register_api

    app.register_blueprint(auth.bp)
    views.register(app)
    register_api(app, csrf)

    @app.before_request
    def _current_user():
        # the API authenticates by bearer token only (never the session cookie, so no CSRF on it)
        if request.path.startswith("/api/v1/"):
            header = request.headers.get("Authorization", "")
            g.user = auth.user_from_token(header[7:].strip()) if header.startswith("Bearer ") else None
        else:
            g.user = auth.user_from_session(session.get("sid"))

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    errors.register(app)
    security.register(app)

    @app.context_processor
    def _layout():
        return {"current_user": g.get("user"), "endpoints": app.view_functions.keys()}

    filters.register(app)
    emergency.register(app)
    rendering.register(app)

    return app
