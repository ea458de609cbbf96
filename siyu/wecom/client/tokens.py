"""The access-token cache shared by every process (a table, so it works on SQLite and PG)."""

import hashlib
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.wecom.models import AccessToken

# Refresh a little before WeCom's expiry so an in-flight call never carries a dead token.
REFRESH_MARGIN = timedelta(seconds=60)


def _fingerprint(corp_id: str, secret: str) -> str:
    return hashlib.sha256(f"{corp_id}\0{secret}".encode()).hexdigest()


def cached_token(corp_id: str, secret: str, fetch: Callable[[], tuple[str, int]]) -> str:
    """A valid token for (corp, secret): from the cache, or fetched once and stored."""
    fingerprint = _fingerprint(corp_id, secret)
    now = timezone.now()
    row = AccessToken.objects.filter(
        corp_id=corp_id, secret_fingerprint=fingerprint, expires_at__gt=now + REFRESH_MARGIN
    ).first()
    if row is not None:
        return row.token
    token, expires_in = fetch()
    expires_at = now + timedelta(seconds=expires_in)
    try:
        with transaction.atomic():
            AccessToken.objects.update_or_create(
                corp_id=corp_id,
                secret_fingerprint=fingerprint,
                defaults={"token": token, "expires_at": expires_at},
            )
    except IntegrityError:
        pass  # another process stored one at the same moment; ours is valid too
    return token


def invalidate_token(corp_id: str, secret: str, token: str) -> None:
    """Forget ``token`` if it is still the cached one (WeCom revoked or expired it early)."""
    row = AccessToken.objects.filter(
        corp_id=corp_id, secret_fingerprint=_fingerprint(corp_id, secret)
    ).first()
    if row is not None and row.token == token:
        AccessToken.objects.filter(pk=row.pk, updated_at=row.updated_at).delete()
