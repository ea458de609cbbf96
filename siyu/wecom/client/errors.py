"""WeCom's errcodes as exception types, so callers branch on kind, never on message text.

``TransientError`` and its subclasses are worth retrying later; everything else is permanent
for the same request.
"""

from typing import Any


class WeComError(Exception):
    def __init__(self, errcode: int, errmsg: str, *, api: str = "", payload: Any = None) -> None:
        super().__init__(f"{api}: errcode {errcode}: {errmsg}" if api else f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        self.payload = payload


class TransientError(WeComError):
    """System busy, 5xx, timeouts, connection failures: retry with backoff."""


class RateLimited(TransientError):
    """45009 (frequency) or 45033 (concurrency), or our own governor refusing in advance."""

    def __init__(self, errcode: int, errmsg: str, *, retry_after: float = 60.0, **kw: Any) -> None:
        super().__init__(errcode, errmsg, **kw)
        self.retry_after = retry_after


class TokenError(WeComError):
    """40014 invalid, 42001 expired, 41001 missing: refresh the token once and retry."""


class CredentialsError(WeComError):
    """Bad corp id or secret (40001, 40013, 40091, 41002, 41004): fix the tenant's settings."""


class PermissionError_(WeComError):  # noqa: N801 (not the builtin)
    """48002, 60011, 84074, 301002: the app lacks the permission or visibility."""


class NotExternalContact(WeComError):
    """84061: no relationship (the member deleted the customer, or a half contact)."""


class InvalidExternalUser(WeComError):
    """40096: unknown external_userid."""


class WelcomeCodeError(WeComError):
    """41049/41050: missing, invalid or expired welcome code (it lives 20 s)."""


class WelcomeAlreadySent(WeComError):
    """41051 (another app sent it, or the customer chatted) / 41096 (already being sent)."""


class QuotaExceeded(WeComError):
    """A documented quota: tags (40126), contact ways (41045), transfers (40128), reminders …"""


class InvalidRequest(WeComError):
    """40003, 40058, 40068, 41035 …: the request itself is wrong."""


_TYPES: dict[int, type[WeComError]] = {
    -1: TransientError,
    45009: RateLimited,
    45033: RateLimited,
    40014: TokenError,
    42001: TokenError,
    41001: TokenError,
    40001: CredentialsError,
    40013: CredentialsError,
    40091: CredentialsError,
    41002: CredentialsError,
    41004: CredentialsError,
    48002: PermissionError_,
    60011: PermissionError_,
    84074: PermissionError_,
    301002: PermissionError_,
    84061: NotExternalContact,
    40096: InvalidExternalUser,
    41049: WelcomeCodeError,
    41050: WelcomeCodeError,
    41051: WelcomeAlreadySent,
    41096: WelcomeAlreadySent,
    40126: QuotaExceeded,
    41045: QuotaExceeded,
    40128: QuotaExceeded,
    41094: QuotaExceeded,
    40003: InvalidRequest,
    40058: InvalidRequest,
    40068: InvalidRequest,
    41035: InvalidRequest,
}


def error_for(errcode: int, errmsg: str, *, api: str = "", payload: Any = None) -> WeComError:
    kind = _TYPES.get(errcode, WeComError)
    if kind is RateLimited:
        # WeCom blocks for the rest of the window; a minute is the common case.
        return RateLimited(errcode, errmsg, retry_after=60.0, api=api, payload=payload)
    return kind(errcode, errmsg, api=api, payload=payload)
