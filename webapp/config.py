"""Configuration of the web app, from the environment (see the README's configuration table)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from engine.db import database_url


def secret_key(instance_dir: Path) -> str:
    """KURATOR_SECRET_KEY, else a random key kept in instance/secret_key (created on first start)."""
    key = os.environ.get("KURATOR_SECRET_KEY")
    if key:
        return key
    path = instance_dir / "secret_key"
    if not path.exists():
        instance_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def count(name: str, default: int) -> int:
    """A non-negative whole number from the environment."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"{name} must be a whole number ≥ 0, not {raw!r}")
    return int(raw)


def load(instance_dir: Path) -> dict:
    https = os.environ.get("KURATOR_HTTPS", "").lower() in ("1", "true", "yes")
    return {
        "DATABASE_URL": database_url(),
        "SECRET_KEY": secret_key(instance_dir),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": https,
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "PERMANENT_SESSION_LIFETIME": 8 * 3600,
        "MAX_CONTENT_LENGTH": 5 * 1024 * 1024,
        "WTF_CSRF_TIME_LIMIT": None,
        # free failed logins per (user name, client address) before the back-off starts
        "LOGIN_ATTEMPTS": count("KURATOR_LOGIN_ATTEMPTS", 5),
        # failed logins per client address, whatever the names, in 15 minutes
        "LOGIN_IP_ATTEMPTS": count("KURATOR_LOGIN_IP_ATTEMPTS", 30),
        # reverse proxies in front of the app whose X-Forwarded-For / -Proto are trusted (0: none, ignore them)
        "PROXY_COUNT": count("KURATOR_PROXY_COUNT", 0),
        "API_TITLE": "Kurator API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
    }
