"""Error responses: an HTML page for the UI, JSON `{message, errors}` for the API — never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from engine import KuratorError
from engine.db import CONCURRENT_CHANGE, is_concurrent_change

from .json_body import check_request_json

log = logging.getLogger(__name__)

STATUS = {"NotFound": 404, "PermissionDenied": 403, "Conflict": 409, "InvalidInput": 422, "DuplicateFound": 409,
          "ValidationFailed": 422, "ExecutionError": 422}
TITLES = {400: "Неверный запрос", 401: "Требуется вход", 403: "Доступ запрещен", 404: "Не найдено",
          405: "Метод не поддерживается", 409: "Конфликт", 413: "Слишком большой запрос", 422: "Данные не приняты",
          500: "Ошибка"}
HTML_MESSAGES = {403: "Недостаточно прав.", 404: "Страница не найдена.", 405: "Метод не поддерживается.",
                 413: "Слишком большой запрос.", 500: "Внутренняя ошибка. Она записана в журнал; сообщите "
                                                     "администратору."}


def wants_json() -> bool:
    """The API, and the pages' own JSON calls (fetch with a JSON body or Accept: application/json)."""
    return (request.path.startswith("/api/") or request.is_json
            or request.accept_mimetypes.best == "application/json")


def respond(code: int, message: str, errors: dict | None = None, page_message: str | None = None):
    """The error as JSON for the API and the pages' JSON calls, else as a page (`page_message`, the Russian text,
    where there is one)."""
    if wants_json():
        return jsonify({"message": message, "errors": errors or {},
                        **({"message_ru": page_message} if page_message else {})}), code
    return render_template("error.html", code=code, title=TITLES.get(code, "Ошибка"),
                           message=page_message or message), code


NUL_MESSAGE = "Запрос содержит недопустимый символ (NUL). Проверьте введенные данные."


def _has_nul() -> bool:
    """Whether the request carries a NUL character anywhere the app reads text from (PostgreSQL refuses them)."""
    if "\x00" in request.path:
        return True
    if any("\x00" in value for _, values in request.args.lists() for value in values):
        return True
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if any("\x00" in value for _, values in request.form.lists() for value in values):
            return True
    elif request.content_length or request.mimetype == "application/json":
        body = request.get_data(cache=True)
        return b"\x00" in body or b"\\u0000" in body
    return False


def register(app: Flask) -> None:
    @app.before_request
    def _refuse_nul():
        # the pages' forms and JSON; the API refuses NUL per field itself (422 naming the field)
        if not request.path.startswith("/api/") and _has_nul():
            return respond(400, NUL_MESSAGE)
        return None

    @app.before_request
    def _refuse_unreadable_json():
        # every JSON body, of the pages and the API alike: too deep, a huge integer, or not JSON at all
        message = check_request_json()
        return respond(400, message) if message else None

    @app.errorhandler(DataError)
    def _data_error(error: DataError):  # a value the database cannot store: the request's fault, not ours
        log.warning("database refused a value on %s: %s", request.path, error.orig)
        return respond(400, "Значение не может быть сохранено: проверьте длину и формат введенных данных.")

    @app.errorhandler(OperationalError)
    def _database_error(error: OperationalError):
        # the engine reports a change that met another one as a Conflict; one raised outside it is the same
        if is_concurrent_change(error):
            log.warning("a change on %s met another one: %s", request.path, error.orig)
            return respond(409, CONCURRENT_CHANGE)
        log.exception("database error on %s", request.path)
        return respond(500, HTML_MESSAGES[500])

    @app.errorhandler(KuratorError)
    def _engine_error(error: KuratorError):
        return respond(STATUS.get(type(error).__name__, 422), error.message, getattr(error, "errors", None),
                       error.message_ru)

    @app.errorhandler(CSRFError)
    def _csrf(error):
        return respond(400, "Форма устарела. Обновите страницу и повторите.")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") or {}
        errors = {k: "; ".join(v) if isinstance(v, list) else str(v)
                  for location in messages.values() if isinstance(location, dict) for k, v in location.items()}
        if wants_json():
            response = respond(error.code or 500, error.description or error.name, errors)
        else:
            response = respond(error.code or 500, HTML_MESSAGES.get(error.code, error.description or error.name))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            # RFC 9110: a 405 says which methods the resource has
            response = (response[0], response[1], {"Allow": ", ".join(sorted(error.valid_methods))})
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error on %s", request.path)
        return respond(500, HTML_MESSAGES[500])
