"""Helpers of the analytics tests: adds and deletes through the customers' real services, and
the rollup subscriber's deliveries run the way the job queue runs them."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from siyu.core.models import DeliveryStatus, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.customers.models import StaffRelation
from siyu.customers.services import relation_added, relation_deleted
from siyu.testing.stories import Company

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the tenant's local day is the settings' TIME_ZONE


def at(day: int, hour: int = 10, minute: int = 0, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def add(
    company: Company, userid: str, ext: str, state: str, when: datetime, **kw: Any
) -> StaffRelation:
    relation = relation_added(
        staff=company[userid], external_userid=ext, at=when, source="wecom", state=state, **kw
    )
    assert relation is not None
    return relation


def delete(
    company: Company, userid: str, ext: str, when: datetime, by: str = "customer", **kw: Any
) -> None:
    relation_deleted(
        staff=company[userid], external_userid=ext, at=when, by=by, source="wecom", **kw
    )


def deliver() -> int:
    """Run every pending rollup delivery; returns how many ran."""
    ran = 0
    for delivery in EventDelivery.objects.filter(
        subscriber="analytics.source_rollup", status=DeliveryStatus.PENDING
    ).order_by("pk"):
        assert event_delivery_run(delivery_id=delivery.pk) == "done"
        ran += 1
    return ran
