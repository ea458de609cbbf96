"""The event log: written with the change, delivered once per subscriber, retried, dead-lettered."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from siyu.core import events as registry
from siyu.core.errors import InvalidInput
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import (
    event_deliveries_sweep,
    event_delivery_retry,
    event_delivery_run,
    event_record,
)
from siyu.testing.stories import Company

TEST_TYPE = registry.event_type("test.happened", "测试事件")
seen_ids: list[int] = []
FAILURES: dict[str, int] = {"remaining": 0}


@registry.subscriber(TEST_TYPE, name="test.recorder")
def _recorder(event: Event) -> None:
    if FAILURES["remaining"] > 0:
        FAILURES["remaining"] -= 1
        raise RuntimeError("subscriber is down")
    seen_ids.append(event.pk)
    # A database effect of the subscriber, to prove it is rolled back with a failed claim.
    Event.objects.create(
        tenant_id=event.tenant_id,
        type="test.echo",
        source="system",
        occurred_at=event.occurred_at,
        payload={"echo_of": event.pk},
    )


registry.event_type("test.echo", "测试回声", webhook=False)


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    seen_ids.clear()
    FAILURES["remaining"] = 0
    yield
    seen_ids.clear()


def _delivery(event: Event) -> EventDelivery:
    return EventDelivery.objects.get(event=event, subscriber="test.recorder")


def test_event_and_its_deliveries_are_written_in_the_callers_transaction(
    in_acme: Company, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        event = event_record(type=TEST_TYPE, source="console", customer_id=7, payload={"a": 1})
    assert _delivery(event).status == DeliveryStatus.PENDING
    assert len(callbacks) == 1  # enqueueing waits for the commit


def test_a_rolled_back_change_leaves_no_event_and_enqueues_nothing(
    in_acme: Company, django_capture_on_commit_callbacks
) -> None:
    def change_that_fails() -> None:
        with transaction.atomic():
            event_record(type=TEST_TYPE, source="console")
            raise ZeroDivisionError

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ZeroDivisionError):
        change_that_fails()
    assert Event.objects.count() == 0
    assert EventDelivery.objects.count() == 0
    assert callbacks == []


def test_the_same_idempotency_key_is_one_event(in_acme: Company) -> None:
    first = event_record(type=TEST_TYPE, source="wecom", idempotency_key="cb:abc")
    again = event_record(type=TEST_TYPE, source="wecom", idempotency_key="cb:abc")
    other = event_record(type=TEST_TYPE, source="wecom", idempotency_key="cb:abd")
    assert first.pk == again.pk
    assert other.pk != first.pk
    assert EventDelivery.objects.filter(subscriber="test.recorder").count() == 2


def test_two_events_in_the_same_second_without_key_are_two_events(in_acme: Company) -> None:
    at = timezone.now().replace(microsecond=0)
    event_record(type=TEST_TYPE, source="wecom", occurred_at=at, payload={"who": "a"})
    event_record(type=TEST_TYPE, source="wecom", occurred_at=at, payload={"who": "a"})
    assert Event.objects.filter(type=TEST_TYPE).count() == 2


def test_unknown_event_type_and_source_are_refused(in_acme: Company) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        event_record(type="no.such.type", source="console")
    with pytest.raises(InvalidInput):
        event_record(type=TEST_TYPE, source="telepathy")
    assert Event.objects.count() == 0


def test_a_delivery_runs_its_subscriber_exactly_once(in_acme: Company) -> None:
    event = event_record(type=TEST_TYPE, source="console")
    delivery = _delivery(event)
    assert event_delivery_run(delivery_id=delivery.pk) == "done"
    assert event_delivery_run(delivery_id=delivery.pk) == "skipped"
    assert seen_ids == [event.pk]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DONE, 1)
    assert Event.objects.filter(type="test.echo").count() == 1


def test_a_failing_subscriber_is_rolled_back_and_retried_with_backoff(
    in_acme: Company, django_capture_on_commit_callbacks
) -> None:
    event = event_record(type=TEST_TYPE, source="console")
    delivery = _delivery(event)
    FAILURES["remaining"] = 1
    before = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        assert event_delivery_run(delivery_id=delivery.pk) == "retry"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert "subscriber is down" in delivery.last_error
    assert delivery.next_attempt_at >= before + timedelta(seconds=8)
    assert len(callbacks) == 1  # the retry is scheduled with a countdown
    assert Event.objects.filter(type="test.echo").count() == 0  # nothing half-done
    # Not due yet: a premature run does nothing.
    assert event_delivery_run(delivery_id=delivery.pk) == "not_due"
    EventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert event_delivery_run(delivery_id=delivery.pk) == "done"
    assert seen_ids == [event.pk]


def test_a_subscriber_failing_every_time_becomes_a_dead_letter_and_can_be_retried(
    in_acme: Company, settings
) -> None:
    settings.SIYU_EVENT_MAX_ATTEMPTS = 3
    event = event_record(type=TEST_TYPE, source="console")
    delivery = _delivery(event)
    FAILURES["remaining"] = 3
    outcomes = []
    for _ in range(3):
        EventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        outcomes.append(event_delivery_run(delivery_id=delivery.pk))
    assert outcomes == ["retry", "retry", "dead"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DEAD, 3)
    with pytest.raises(InvalidInput):
        event_delivery_retry(delivery_id=_delivery(event_record(type=TEST_TYPE, source="api")).pk)
    event_delivery_retry(delivery_id=delivery.pk)
    assert event_delivery_run(delivery_id=delivery.pk) == "done"
    assert seen_ids == [event.pk]


def test_the_sweep_re_enqueues_overdue_pending_deliveries(in_acme: Company, monkeypatch) -> None:
    enqueued: list[list[int]] = []
    monkeypatch.setattr(
        "siyu.core.services._enqueue", lambda ids, countdown=0: enqueued.append(ids)
    )
    fresh = _delivery(event_record(type=TEST_TYPE, source="console"))
    stale = _delivery(event_record(type=TEST_TYPE, source="console"))
    EventDelivery.objects.filter(pk=stale.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    assert event_deliveries_sweep() == 1
    assert enqueued[-1] == [stale.pk]
    assert fresh.pk not in enqueued[-1]
