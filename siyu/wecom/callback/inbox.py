"""The callback inbox: store first, acknowledge, then process exactly once in the background."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.models import Tenant
from siyu.core.services import retry_delay
from siyu.core.tenancy import tenant_context
from siyu.wecom.callback.handlers import Inbound, handler_for
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import RateLimited, TransientError
from siyu.wecom.models import CallbackInbox, InboxStatus

logger = logging.getLogger(__name__)


def dedupe_key(message: str) -> str:
    return hashlib.sha1(message.encode()).hexdigest()  # noqa: S324 (an identity, not a secret)


def _create_time(data: dict[str, Any]) -> datetime:
    raw = str(data.get("CreateTime", "") or "")
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw), tz=UTC)
    return timezone.now()


def inbox_store(*, tenant: Tenant, message: str, data: dict[str, Any]) -> CallbackInbox | None:
    """Store a verified, decrypted callback; None if it is a duplicate of one already stored.

    Called by the receiver before it answers WeCom. Processing is enqueued after commit.
    """
    key = dedupe_key(message)
    now = timezone.now()
    with tenant_context(tenant):
        try:
            with transaction.atomic():
                item = CallbackInbox.objects.create(
                    dedupe_key=key,
                    event=str(data.get("Event", ""))[:64],
                    change_type=str(data.get("ChangeType", ""))[:64],
                    create_time=_create_time(data),
                    message=message,
                    data=data,
                    next_attempt_at=now,
                )
                transaction.on_commit(lambda: _enqueue([item.pk]))
        except IntegrityError:
            CallbackInbox.objects.filter(dedupe_key=key).update(duplicates=F("duplicates") + 1)
            return None
    return item


def _enqueue(ids: list[int], countdown: float = 0) -> None:
    from siyu.wecom.tasks import process_callback

    for inbox_id in ids:
        try:
            process_callback.apply_async((inbox_id,), countdown=countdown)
        except Exception:
            logger.exception("could not enqueue callback %s; the sweep will pick it up", inbox_id)


def inbox_process(*, inbox_id: int, client: WeComClient | None = None) -> str:
    """Process one stored callback if it is pending and due; returns what happened."""
    item = CallbackInbox.unscoped.select_related("tenant").filter(pk=inbox_id).first()
    if item is None or item.status != InboxStatus.PENDING:
        return "skipped"
    if item.next_attempt_at > timezone.now():
        return "not_due"
    handler = handler_for(item.event, item.change_type)
    with tenant_context(item.tenant):
        if handler is None:
            # Events Siyu does not act on (yet) are kept for replay, not treated as failures.
            CallbackInbox.objects.filter(pk=item.pk, status=InboxStatus.PENDING).update(
                status=InboxStatus.DONE, processed_at=timezone.now(), last_error="no handler"
            )
            return "ignored"
        msg = Inbound(key=item.dedupe_key, data=item.data, at=item.create_time)
        try:
            prepared = None
            if handler.prepare is not None:
                own = client is None
                api = client or WeComClient.for_tenant(item.tenant)
                try:
                    prepared = handler.prepare(api, msg)
                finally:
                    if own:
                        api.close()
            with transaction.atomic():
                claimed = CallbackInbox.objects.filter(
                    pk=item.pk, status=InboxStatus.PENDING
                ).update(
                    status=InboxStatus.DONE,
                    attempts=F("attempts") + 1,
                    processed_at=timezone.now(),
                    last_error="",
                )
                if claimed != 1:
                    return "skipped"
                handler.apply(msg, prepared)
        except RateLimited as exc:
            return _fail(item, f"rate limited: {exc}", delay=timedelta(seconds=exc.retry_after))
        except TransientError as exc:
            return _fail(item, f"transient: {exc}")
        except Exception as exc:
            logger.exception("callback %s (%s/%s) failed", item.pk, item.event, item.change_type)
            return _fail(item, f"{type(exc).__name__}: {exc}")
    return "done"


def _fail(item: CallbackInbox, error: str, *, delay: timedelta | None = None) -> str:
    attempts = item.attempts + 1
    if attempts >= settings.SIYU_EVENT_MAX_ATTEMPTS:
        CallbackInbox.unscoped.filter(pk=item.pk, status=InboxStatus.PENDING).update(
            status=InboxStatus.DEAD, attempts=attempts, last_error=error[:4000]
        )
        return "dead"
    delay = delay or retry_delay(attempts)
    CallbackInbox.unscoped.filter(pk=item.pk, status=InboxStatus.PENDING).update(
        attempts=attempts, last_error=error[:4000], next_attempt_at=timezone.now() + delay
    )
    transaction.on_commit(lambda: _enqueue([item.pk], countdown=delay.total_seconds()))
    return "retry"


def inbox_sweep(*, grace_seconds: int = 60, batch: int = 1000) -> int:
    """Re-enqueue stored callbacks whose job was lost (broker down, worker killed)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    ids = list(
        CallbackInbox.unscoped.filter(status=InboxStatus.PENDING, next_attempt_at__lte=cutoff)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:batch]
    )
    if ids:
        _enqueue(ids)
    return len(ids)


def inbox_replay(
    *,
    tenant: Tenant,
    first_id: int | None = None,
    last_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_dead_only: bool = False,
) -> list[int]:
    """Mark a range of stored callbacks pending again and enqueue them, oldest first.

    Handlers are idempotent (event keys, newer-change-wins), so replaying processed callbacks
    repairs state without duplicating events.
    """
    with tenant_context(tenant):
        qs = CallbackInbox.objects.all()
        if first_id is not None:
            qs = qs.filter(pk__gte=first_id)
        if last_id is not None:
            qs = qs.filter(pk__lte=last_id)
        if since is not None:
            qs = qs.filter(received_at__gte=since)
        if until is not None:
            qs = qs.filter(received_at__lte=until)
        if include_dead_only:
            qs = qs.filter(status=InboxStatus.DEAD)
        ids = list(qs.order_by("create_time", "pk").values_list("pk", flat=True))
        CallbackInbox.objects.filter(pk__in=ids).update(
            status=InboxStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
        )
    transaction.on_commit(lambda: _enqueue(ids))
    return ids
