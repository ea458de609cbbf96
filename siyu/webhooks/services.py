"""Managing webhook endpoints and delivering events to them, signed and retried."""

import hashlib
import hmac
import ipaddress
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput, NotFound
from siyu.core.events import ALL_EVENTS, event_types, watched_event_types
from siyu.core.http import http_client
from siyu.core.models import Event
from siyu.core.services import retry_delay
from siyu.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookStatus,
)

SIGNATURE_HEADER = "X-Siyu-Signature"


def _clean_url(url: str) -> str:
    url = url.strip()
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InvalidInput("a webhook URL must be an absolute http(s) URL")
    if len(url) > 500:
        raise InvalidInput("a webhook URL may be at most 500 characters")
    if not settings.SIYU_WEBHOOK_ALLOW_PRIVATE:
        host = parsed.hostname
        try:
            private = not ipaddress.ip_address(host).is_global
        except ValueError:
            private = host == "localhost" or host.endswith(".localhost")
        if private:
            raise InvalidInput("webhooks may not target private or loopback addresses")
    return url


def _clean_event_types(types: list[str]) -> list[str]:
    allowed = {item.name for item in event_types() if item.webhook}
    if not types:
        raise InvalidInput("choose at least one event type (or * for all)")
    unknown = [name for name in types if name != ALL_EVENTS and name not in allowed]
    if unknown:
        raise InvalidInput(f"unknown event types: {', '.join(sorted(unknown))}")
    return sorted(set(types))


@transaction.atomic
def webhook_endpoint_create(
    *, actor: StaffMember, url: str, event_types: list[str], description: str = ""
) -> WebhookEndpoint:
    require(actor, Action.WEBHOOKS_MANAGE)
    endpoint = WebhookEndpoint.objects.create(
        url=_clean_url(url),
        event_types=_clean_event_types(event_types),
        description=description.strip()[:200],
    )
    audit_record(
        actor=actor,
        action="webhook.created",
        target=endpoint,
        details={"url": endpoint.url, "event_types": endpoint.event_types},
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_update(
    *,
    actor: StaffMember,
    endpoint_id: int,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    require(actor, Action.WEBHOOKS_MANAGE)
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("webhook endpoint not found")
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = _clean_url(url)
    if event_types is not None:
        changes["event_types"] = _clean_event_types(event_types)
    if description is not None:
        changes["description"] = description.strip()[:200]
    if is_active is not None:
        changes["is_active"] = is_active
    for field, value in changes.items():
        setattr(endpoint, field, value)
    endpoint.save()
    audit_record(actor=actor, action="webhook.updated", target=endpoint, details=changes)
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, actor: StaffMember, endpoint_id: int) -> None:
    require(actor, Action.WEBHOOKS_MANAGE)
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("webhook endpoint not found")
    audit_record(actor=actor, action="webhook.deleted", target=endpoint, details={})
    endpoint.delete()


def _endpoint_types(tenant_id: int) -> list[str]:
    return [
        event_type
        for types in WebhookEndpoint.unscoped.filter(
            tenant_id=tenant_id, is_active=True
        ).values_list("event_types", flat=True)
        for event_type in types
    ]


def tenant_wants_webhook(event: Event) -> bool:
    watched = watched_event_types("webhooks", event, lambda: _endpoint_types(event.tenant_id))
    return "*" in watched or event.type in watched


def webhook_fan_out(*, event: Event) -> list[int]:
    """Create one delivery per endpoint that wants the event; sending happens after commit."""
    endpoints = [e for e in WebhookEndpoint.objects.filter(is_active=True) if e.wants(event.type)]
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(tenant_id=event.tenant_id, endpoint=e, event=event, next_attempt_at=now)
            for e in endpoints
        ],
        ignore_conflicts=True,
    )
    ids = list(
        WebhookDelivery.objects.filter(event=event, status=WebhookStatus.PENDING).values_list(
            "pk", flat=True
        )
    )
    transaction.on_commit(lambda: _enqueue(ids))
    return ids


def _enqueue(ids: list[int], countdown: float = 0) -> None:
    from siyu.webhooks.tasks import send_webhook

    for delivery_id in ids:
        send_webhook.apply_async((delivery_id,), countdown=countdown)


def webhook_payload(event: Event) -> bytes:
    body = {
        "id": event.pk,
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat(),
        "customer_id": event.customer_id,
        "source": event.source,
        "data": event.payload,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex hmac-sha256 of "<t>.<body>">``; receivers reject stale timestamps."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhook_delivery_send(*, delivery_id: int, client: httpx.Client | None = None) -> str:
    """Claim a due delivery, POST it, log the attempt, and schedule a retry if it failed.

    The HTTP call happens outside any transaction; a crash mid-call leaves the row locked until
    ``locked_until`` and the sweep sends it again, so receivers dedupe on ``X-Siyu-Event-Id``.
    """
    now = timezone.now()
    timeout = settings.SIYU_WEBHOOK_TIMEOUT_SECONDS
    claimable = Q(status=WebhookStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=WebhookStatus.SENDING, locked_until__lt=now
    )
    claimed = WebhookDelivery.unscoped.filter(claimable, pk=delivery_id).update(
        status=WebhookStatus.SENDING,
        locked_until=now + timedelta(seconds=timeout + 30),
    )
    if claimed != 1:
        return "skipped"
    delivery = WebhookDelivery.unscoped.select_related("endpoint", "event").get(pk=delivery_id)
    body = webhook_payload(delivery.event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Siyu-Webhooks/1",
        "X-Siyu-Event-Id": str(delivery.event_id),
        "X-Siyu-Event-Type": delivery.event.type,
        "X-Siyu-Delivery-Id": str(delivery.pk),
        SIGNATURE_HEADER: webhook_signature(delivery.endpoint.secret, int(time.time()), body),
    }
    started = time.monotonic()
    status_code: int | None = None
    error = ""
    excerpt = ""
    try:
        own_client = client or http_client(timeout=timeout)
        try:
            response = own_client.post(delivery.endpoint.url, content=body, headers=headers)
        finally:
            if client is None:
                own_client.close()
        status_code = response.status_code
        excerpt = response.text[:500]
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    WebhookAttempt.objects.create(
        delivery=delivery,
        status_code=status_code,
        error=error,
        duration_ms=int((time.monotonic() - started) * 1000),
        response_excerpt=excerpt,
    )
    attempts = delivery.attempts + 1
    fields: dict[str, Any] = {
        "attempts": attempts,
        "last_status_code": status_code,
        "last_error": error,
        "locked_until": None,
    }
    if not error:
        outcome = WebhookStatus.SUCCEEDED
        fields.update(status=outcome, finished_at=timezone.now())
    elif attempts >= settings.SIYU_WEBHOOK_MAX_ATTEMPTS:
        outcome = WebhookStatus.FAILED
        fields.update(status=outcome, finished_at=timezone.now())
    else:
        outcome = WebhookStatus.PENDING
        delay = retry_delay(attempts)
        fields.update(status=outcome, next_attempt_at=timezone.now() + delay)
        transaction.on_commit(lambda: _enqueue([delivery_id], countdown=delay.total_seconds()))
    WebhookDelivery.unscoped.filter(pk=delivery_id, status=WebhookStatus.SENDING).update(**fields)
    return str(outcome)


def webhook_deliveries_sweep(*, grace_seconds: int = 60, batch: int = 1000) -> int:
    now = timezone.now()
    due = Q(
        status=WebhookStatus.PENDING,
        next_attempt_at__lte=now - timedelta(seconds=grace_seconds),
    ) | Q(status=WebhookStatus.SENDING, locked_until__lt=now)
    ids = list(WebhookDelivery.unscoped.filter(due).values_list("pk", flat=True)[:batch])
    if ids:
        _enqueue(ids)
    return len(ids)


def webhook_delivery_redeliver(*, actor: StaffMember, delivery_id: int) -> WebhookDelivery:
    require(actor, Action.WEBHOOKS_MANAGE)
    updated = WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookStatus.FAILED).update(
        status=WebhookStatus.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    if updated != 1:
        raise NotFound("no failed delivery with this id")
    transaction.on_commit(lambda: _enqueue([delivery_id]))
    return WebhookDelivery.objects.get(pk=delivery_id)
