"""Helpers of the dashboard tests: events written through the real event log, and the rollup
subscriber's deliveries run the way the job queue runs them."""

from datetime import datetime
from typing import Any

import pytest

from siyu.core import events as registry
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import event_delivery_run, event_record
from siyu.dashboards.rollup import TRACKED_TYPES


def declare_contract_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Contract event types of apps not installed in this checkout yet, for one test."""
    for name in TRACKED_TYPES:
        if name not in registry._event_types:
            monkeypatch.setitem(
                registry._event_types, name, registry.EventType(name, name, webhook=False)
            )


def record(
    type: str, customer_id: int | None, when: datetime, key: str | None = None, **payload: Any
) -> Event:
    return event_record(
        type=type,
        source="sandbox",
        customer_id=customer_id,
        occurred_at=when,
        payload=payload,
        idempotency_key=key,
    )


def deliver() -> int:
    ran = 0
    for delivery in EventDelivery.objects.filter(
        subscriber="dashboards.rollup", status=DeliveryStatus.PENDING
    ).order_by("pk"):
        assert event_delivery_run(delivery_id=delivery.pk) == "done"
        ran += 1
    return ran
