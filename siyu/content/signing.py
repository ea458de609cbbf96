"""Tracking-link tokens: the link's id, its expiry and (for a share) the visit that shared it,
HMAC-signed with the secret key under a per-tenant salt.

The token names rows rather than carrying them, so it stays short (about 60 characters); the
per-tenant salt makes a token from one company worthless under another company's address.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.core import signing

from siyu.core.errors import InvalidInput, SiyuError
from siyu.core.models import Tenant

MAX_TOKEN_LENGTH = 120


class LinkExpired(SiyuError):
    code = "link_expired"
    status = 410


@dataclass(frozen=True)
class LinkToken:
    link_id: int
    expires_at: datetime
    # The visit whose share produced this token (None for the link as sent).
    from_visit_id: int | None = None


def _signer(tenant: Tenant) -> signing.Signer:
    return signing.Signer(salt=f"siyu.content.link.{tenant.pk}", algorithm="sha256")


def token_encode(tenant: Tenant, token: LinkToken) -> str:
    parts = [token.link_id, int(token.expires_at.timestamp())]
    if token.from_visit_id is not None:
        parts.append(token.from_visit_id)
    return _signer(tenant).sign(".".join(signing.b62_encode(part) for part in parts))


def token_decode(tenant: Tenant, raw: str, *, now: datetime) -> LinkToken:
    """Raises ``InvalidInput`` for anything not signed by us for this tenant (tampered,
    truncated, another company's) and ``LinkExpired`` for a genuine but expired token."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        raise InvalidInput("this link is not valid", code="link_invalid")
    try:
        value = _signer(tenant).unsign(raw)
        numbers = [signing.b62_decode(part) for part in value.split(".")]
    except (signing.BadSignature, ValueError):
        raise InvalidInput("this link is not valid", code="link_invalid") from None
    if len(numbers) not in (2, 3) or min(numbers) <= 0:
        raise InvalidInput("this link is not valid", code="link_invalid")
    expires_at = datetime.fromtimestamp(numbers[1], tz=UTC)
    if expires_at <= now:
        raise LinkExpired("this link has expired")
    return LinkToken(
        link_id=numbers[0],
        expires_at=expires_at,
        from_visit_id=numbers[2] if len(numbers) == 3 else None,
    )
