"""Error responses: an HTML page for the UI, JSON `{message, errors}` for the API — never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine import KuratorError

log = logging.getLogger(__name__)

STATUS = {"NotFound": 404, "PermissionDenied": 403, "Conflict": 409, "InvalidInput": 422, "DuplicateFound": 409,
          "ValidationFailed": 422, "ExecutionError": 422}
TITLES = {400: "Неверный запрос", 401: "Требуется вход", 403: "Доступ запрещен", 404: "Не найдено",
          405: "Метод не поддерживается", 409: "Конфликт", 413: "Слишком большой запрос", 422: "Данные не приняты",
          500: "Ошибка"}
HTML_MESSAGES = {403: "Недостаточно прав.", 404: "Страница не найдена.", 405: "Метод не поддерживается.",
                 413: "Слишком большой запрос.", 500: "Внутренняя ошибка. Она записана в журнал; сообщите "
                                                     "администратору."}


def respond(code: int, message: str, errors: dict | None = None):
    if request.path.startswith("/api/"):
        return jsonify({"message": message, "errors": errors or {}}), code
    return render_template("error.html", code=code, title=TITLES.get(code, "Ошибка"), message=message), code


def register(app: Flask) -> None:
    @app.errorhandler(KuratorError)
    def _engine_error(error: KuratorError):
        return respond(STATUS.get(type(error).__name__, 422), error.message, getattr(error, "errors", None))

    @app.errorhandler(CSRFError)
    def _csrf(error):
        return respond(400, "Форма устарела. Обновите страницу и повторите.")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") or {}
        errors = {k: "; ".join(v) if isinstance(v, list) else str(v)
                  for location in messages.values() if isinstance(location, dict) for k, v in location.items()}
        if request.path.startswith("/api/"):
            return respond(error.code or 500, error.description or error.name, errors)
        return respond(error.code or 500, HTML_MESSAGES.get(error.code, error.description or error.name))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error on %s", request.path)
        return respond(500, HTML_MESSAGES[500])
