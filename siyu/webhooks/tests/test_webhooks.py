import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.core.events import event_type
from siyu.core.models import DeliveryStatus, EventDelivery
from siyu.core.services import event_delivery_run, event_record
from siyu.core.tenancy import tenant_context
from siyu.testing.http import http_receiver
from siyu.testing.stories import Company
from siyu.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookStatus
from siyu.webhooks.services import (
    webhook_deliveries_sweep,
    webhook_delivery_send,
    webhook_endpoint_create,
)

HOOKED = event_type("test.hooked", "测试 Webhook 事件")
OTHER = event_type("test.other", "另一个测试事件")


def _record_and_fan_out(type_: str, **payload: object) -> list[WebhookDelivery]:
    event = event_record(type=type_, source="api", customer_id=42, payload=dict(payload))
    for delivery in EventDelivery.objects.filter(event=event, subscriber="webhooks.fan_out"):
        assert event_delivery_run(delivery_id=delivery.pk) == "done"
    return list(WebhookDelivery.objects.filter(event=event))


def test_no_endpoint_means_no_fan_out_row_at_all(in_acme: Company) -> None:
    event = event_record(type=HOOKED, source="api")
    assert not EventDelivery.objects.filter(event=event, subscriber="webhooks.fan_out").exists()


def test_only_endpoints_subscribed_to_the_type_get_a_delivery(in_acme: Company) -> None:
    admin = in_acme["admin"]
    wanted = webhook_endpoint_create(actor=admin, url="http://127.0.0.1:9/a", event_types=[HOOKED])
    webhook_endpoint_create(actor=admin, url="http://127.0.0.1:9/b", event_types=[OTHER])
    everything = webhook_endpoint_create(actor=admin, url="http://127.0.0.1:9/c", event_types=["*"])
    deliveries = _record_and_fan_out(HOOKED)
    assert {d.endpoint_id for d in deliveries} == {wanted.pk, everything.pk}


def test_a_delivery_is_signed_and_carries_the_event(in_acme: Company) -> None:
    with http_receiver([200]) as receiver:
        endpoint = webhook_endpoint_create(
            actor=in_acme["admin"], url=receiver.url, event_types=[HOOKED]
        )
        (delivery,) = _record_and_fan_out(HOOKED, plan="gold")
        assert webhook_delivery_send(delivery_id=delivery.pk) == "succeeded"
    (request,) = receiver.requests
    body = json.loads(request.body)
    assert body["type"] == HOOKED
    assert body["customer_id"] == 42
    assert body["data"] == {"plan": "gold"}
    assert request.headers["X-Siyu-Event-Id"] == str(delivery.event_id)
    stamp, mac = request.headers["X-Siyu-Signature"].split(",")
    timestamp = stamp.removeprefix("t=")
    expected = hmac.new(
        endpoint.secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert mac == f"v1={expected}"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)


def test_failures_are_retried_with_backoff_then_succeed(
    in_acme: Company, django_capture_on_commit_callbacks
) -> None:
    with http_receiver([500, 503, 200]) as receiver:
        webhook_endpoint_create(actor=in_acme["admin"], url=receiver.url, event_types=[HOOKED])
        (delivery,) = _record_and_fan_out(HOOKED)
        outcomes = []
        for _ in range(3):
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
            with django_capture_on_commit_callbacks():
                outcomes.append(webhook_delivery_send(delivery_id=delivery.pk))
    assert outcomes == ["pending", "pending", "succeeded"]
    assert len(receiver.requests) == 3
    log = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("id"))
    assert [a.status_code for a in log] == [500, 503, 200]


def test_a_delivery_gives_up_after_the_maximum_attempts(in_acme: Company, settings) -> None:
    settings.SIYU_WEBHOOK_MAX_ATTEMPTS = 2
    with http_receiver([500]) as receiver:
        webhook_endpoint_create(actor=in_acme["admin"], url=receiver.url, event_types=[HOOKED])
        (delivery,) = _record_and_fan_out(HOOKED)
        for _ in range(2):
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
            webhook_delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookStatus.FAILED, 2)
    assert delivery.last_error == "HTTP 500"


def test_an_unreachable_endpoint_is_logged_as_an_error(in_acme: Company) -> None:
    webhook_endpoint_create(actor=in_acme["admin"], url="http://127.0.0.1:9/", event_types=["*"])
    (delivery,) = _record_and_fan_out(HOOKED)
    assert webhook_delivery_send(delivery_id=delivery.pk) == "pending"
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.status_code is None
    assert "ConnectError" in attempt.error


def test_a_send_in_flight_is_not_sent_twice_but_a_stale_lock_is_taken_back(
    in_acme: Company, monkeypatch
) -> None:
    webhook_endpoint_create(actor=in_acme["admin"], url="http://127.0.0.1:9/", event_types=["*"])
    (delivery,) = _record_and_fan_out(HOOKED)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookStatus.SENDING, locked_until=timezone.now() + timedelta(minutes=1)
    )
    assert webhook_delivery_send(delivery_id=delivery.pk) == "skipped"
    enqueued: list[list[int]] = []
    monkeypatch.setattr(
        "siyu.webhooks.services._enqueue", lambda ids, countdown=0: enqueued.append(ids)
    )
    assert webhook_deliveries_sweep() == 0
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert webhook_deliveries_sweep() == 1
    assert enqueued == [[delivery.pk]]


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/x", "http://127.0.0.1/x", "http://localhost/x", "http://[::1]/x"]
)
def test_production_refuses_private_targets(in_acme: Company, settings, url: str) -> None:
    from siyu.core.errors import InvalidInput

    settings.SIYU_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(InvalidInput, match="private"):
        webhook_endpoint_create(actor=in_acme["admin"], url=url, event_types=["*"])


def test_endpoint_changes_are_audited(acme: Company) -> None:
    from siyu.audit.models import AuditEntry

    with tenant_context(acme.tenant):
        webhook_endpoint_create(actor=acme["admin"], url="http://127.0.0.1:9/", event_types=["*"])
        entry = AuditEntry.objects.get(action="webhook.created")
    assert entry.actor_id == acme["admin"].pk
    assert entry.details == {"url": "http://127.0.0.1:9/", "event_types": ["*"]}
    assert DeliveryStatus.DONE == "done"
