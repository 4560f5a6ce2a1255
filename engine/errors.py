"""Errors the engine raises; each carries a message a user or methodologist can act on."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class KuratorError(Exception):
    """Base of every expected engine error (never a traceback for the user)."""

    code = "error"

    def __init__(self, message: str, ru: str | None = None):
        super().__init__(message)
        self.message = message
        self.message_ru = ru  # the same in Russian, for a page that shows it to a person

    @property
    def user_message(self) -> str:
        """The message a page shows: the Russian one where the error has it."""
        return self.message_ru or self.message

    def to_dict(self) -> dict:
        return {"error": self.code, "message": self.message,
                **({"message_ru": self.message_ru} if self.message_ru else {})}


@dataclass(frozen=True)
class Problem:
    """One finding of diagram validation, tied to a file and an element of the diagram."""

    severity: str  # "error" or "warning"
    message: str
    element_id: str | None = None
    file: str | None = None
    rule: str | None = None  # the lint rule that found it (bpmnlint ids); None for the engine's own checks
    message_ru: str | None = None  # the same finding in Russian, for the methodologist

    def __str__(self) -> str:
        where = ", ".join(part for part in (self.file, f"element '{self.element_id}'" if self.element_id else None)
                          if part)
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{self.severity}: {where + ': ' if where else ''}{self.message}{rule}"

    def to_dict(self) -> dict:
        return asdict(self)


class ValidationFailed(KuratorError):
    """A deployment was refused; nothing was stored."""

    code = "validation_failed"

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        lines = "\n".join(f"  - {p}" for p in errors)
        super().__init__(f"Deployment refused: {len(errors)} problem(s)\n{lines}")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "problems": [p.to_dict() for p in self.problems]}


class NotFound(KuratorError):
    code = "not_found"


class PermissionDenied(KuratorError):
    code = "permission_denied"


class Conflict(KuratorError):
    """Someone else changed the same instance or task first; nothing of this attempt was saved."""

    code = "conflict"


class InvalidInput(KuratorError):
    """Input that the engine cannot accept (bad variables, bad form data, bad arguments)."""

    code = "invalid_input"

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.errors = errors or {}

    def to_dict(self) -> dict:
        return {**super().to_dict(), "errors": self.errors}


class ExecutionError(KuratorError):
    """The diagram failed while running (a script, an expression, a deadline); the instance is unchanged."""

    code = "execution_error"

    def __init__(self, message: str, element_id: str | None = None):
        super().__init__(f"{message}" + (f" (element '{element_id}')" if element_id else ""))
        self.element_id = element_id
