"""Writing to the event log and running its deliveries."""

import logging
import random
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.errors import InvalidInput, NotFound
from siyu.core.events import get_event_type, get_subscriber, subscribers_for
from siyu.core.models import DeliveryStatus, Event, EventDelivery, Tenant
from siyu.core.tenancy import get_current_tenant, tenant_context

logger = logging.getLogger(__name__)

EVENT_SOURCES = frozenset(
    {"console", "api", "wecom", "h5", "system", "import", "sandbox", "webhook", "schedule"}
)


def event_record(
    *,
    type: str,
    source: str,
    payload: dict[str, Any] | None = None,
    customer_id: int | None = None,
    occurred_at: datetime | None = None,
    idempotency_key: str | None = None,
) -> Event:
    """Append an event for the tenant in context, with one delivery per interested subscriber.

    Call it inside the transaction that makes the change the event describes. With an
    ``idempotency_key`` a second call returns the first event and schedules nothing: retries of
    the same fact (a re-delivered callback, a re-run job) are one event; two distinct facts in
    the same second have different keys and are two events.
    """
    get_event_type(type)
    if source not in EVENT_SOURCES:
        raise InvalidInput(f"unknown event source {source!r}")
    tenant = get_current_tenant()
    now = timezone.now()
    try:
        with transaction.atomic():
            event = Event.objects.create(
                tenant=tenant,
                type=type,
                source=source,
                payload=payload or {},
                customer_id=customer_id,
                occurred_at=occurred_at or now,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        # A concurrent writer recorded the same fact first.
        if idempotency_key is None:
            raise
        return Event.objects.get(idempotency_key=idempotency_key)
    subs = subscribers_for(event)
    deliveries = EventDelivery.objects.bulk_create(
        EventDelivery(tenant=tenant, event=event, subscriber=sub.name, next_attempt_at=now)
        for sub in subs
    )
    by_queue: dict[str | None, list[int]] = {}
    for sub, delivery in zip(subs, deliveries, strict=True):
        by_queue.setdefault(sub.queue, []).append(delivery.pk)
    for queue, ids in by_queue.items():
        # Default-queue deliveries keep the plain call (tests stand in for it).
        transaction.on_commit(
            partial(_enqueue, ids, queue=queue) if queue else partial(_enqueue, ids)
        )
    return event


def _enqueue(delivery_ids: list[int], countdown: float = 0, queue: str | None = None) -> None:
    from siyu.core.tasks import deliver_event

    for delivery_id in delivery_ids:
        try:
            if queue:
                deliver_event.apply_async((delivery_id,), countdown=countdown, queue=queue)
            else:
                deliver_event.apply_async((delivery_id,), countdown=countdown)
        except Exception:
            # The broker is down; the periodic sweep will find the pending row.
            logger.exception("could not enqueue event delivery %s", delivery_id)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter: 10 s, 20 s, 40 s … capped at one hour."""
    base = min(10 * 2 ** max(attempts - 1, 0), 3600)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))  # noqa: S311


def event_delivery_run(*, delivery_id: int) -> str:
    """Run one delivery if it is still pending and due; returns what happened.

    The claim (pending → done) and the subscriber's writes share one transaction, so a crash or
    an exception rolls both back and a concurrent second run finds nothing to claim.
    """
    delivery = (
        EventDelivery.unscoped.select_related("event", "tenant").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return "skipped"
    if delivery.next_attempt_at > timezone.now():
        return "not_due"
    sub = get_subscriber(delivery.subscriber)
    if sub is None:
        _park(delivery, f"no subscriber named {delivery.subscriber!r} is registered")
        return "dead"
    with tenant_context(delivery.tenant):
        try:
            with transaction.atomic():
                claimed = EventDelivery.unscoped.filter(
                    pk=delivery.pk, status=DeliveryStatus.PENDING
                ).update(
                    status=DeliveryStatus.DONE,
                    attempts=F("attempts") + 1,
                    done_at=timezone.now(),
                    last_error="",
                )
                if claimed != 1:
                    return "skipped"
                sub.handler(delivery.event)
        except Exception as exc:
            logger.exception("subscriber %s failed on event %s", sub.name, delivery.event_id)
            return _fail(delivery, sub.max_attempts, f"{type(exc).__name__}: {exc}")
    return "done"


def _fail(delivery: EventDelivery, max_attempts: int | None, error: str) -> str:
    attempts = delivery.attempts + 1
    limit = max_attempts or settings.SIYU_EVENT_MAX_ATTEMPTS
    if attempts >= limit:
        EventDelivery.unscoped.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.DEAD, attempts=attempts, last_error=error[:4000]
        )
        return "dead"
    delay = retry_delay(attempts)
    EventDelivery.unscoped.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        attempts=attempts, last_error=error[:4000], next_attempt_at=timezone.now() + delay
    )
    transaction.on_commit(lambda: _enqueue([delivery.pk], countdown=delay.total_seconds()))
    return "retry"


def _park(delivery: EventDelivery, error: str) -> None:
    EventDelivery.unscoped.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.DEAD, last_error=error
    )


def event_deliveries_sweep(*, grace_seconds: int = 60, batch: int = 1000) -> int:
    """Re-enqueue pending deliveries that are overdue: their job was lost (broker down, worker
    killed before ack). Running a delivery twice is harmless, so this may overlap the queue."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    ids = list(
        EventDelivery.unscoped.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=cutoff)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:batch]
    )
    if ids:
        _enqueue(ids)
    return len(ids)


def event_delivery_retry(*, delivery_id: int) -> EventDelivery:
    """Send a dead letter back to the queue (an admin fixed the cause)."""
    delivery = EventDelivery.objects.filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound("no such delivery")
    updated = EventDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.DEAD).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    if updated != 1:
        raise InvalidInput("only dead letters can be retried")
    transaction.on_commit(lambda: _enqueue([delivery_id]))
    delivery.refresh_from_db()
    return delivery


def tenant_create(
    *, slug: str, name: str, corp_id: str, wecom_base_url: str | None = None, **secrets: str
) -> Tenant:
    """Create a tenant. Secrets are keyword arguments named like the model's fields."""
    allowed = {"contact_secret", "app_secret", "agent_id", "callback_token", "callback_aes_key"}
    unknown = set(secrets) - allowed
    if unknown:
        raise InvalidInput(f"unknown tenant fields: {', '.join(sorted(unknown))}")
    if Tenant.objects.filter(slug=slug).exists() or Tenant.objects.filter(corp_id=corp_id).exists():
        raise InvalidInput("a tenant with this slug or corp id exists")
    tenant = Tenant(slug=slug, name=name, corp_id=corp_id, **secrets)
    if wecom_base_url:
        tenant.wecom_base_url = wecom_base_url
    tenant.full_clean()
    tenant.save()
    return tenant
