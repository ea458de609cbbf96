"""Domain errors. Services raise these; the API and console map them to responses in one place."""

from typing import Any


class SiyuError(Exception):
    """An expected failure with a stable machine code and a message fit for the user."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class InvalidInput(SiyuError):
    code = "invalid_input"
    status = 400


class NotFound(SiyuError):
    """Missing and forbidden answer alike, so ids of other tenants or scopes leak nothing."""

    code = "not_found"
    status = 404


class PermissionDenied(SiyuError):
    code = "permission_denied"
    status = 403


class Conflict(SiyuError):
    code = "conflict"
    status = 409
