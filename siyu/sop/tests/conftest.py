"""Helpers for the SOP tests: a world with customers, and running deliveries as the worker."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from siyu.core.models import DeliveryStatus, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.customers.models import Customer
from siyu.customers.services import relation_added
from siyu.sop import services
from siyu.sop.models import Sop
from siyu.tags.models import Tag, TagGroup
from siyu.testing.stories import Company


def add_customer(company: Company, userid: str, *, staff: str = "alice", **kw: Any) -> Customer:
    with transaction.atomic():
        relation = relation_added(
            staff=company[staff],
            external_userid=userid,
            at=kw.pop("at", timezone.now()),
            source="wecom",
            **kw,
        )
    assert relation is not None
    return relation.customer


def drain() -> list[str]:
    """Run every pending SOP delivery, as the worker would."""
    pending = EventDelivery.objects.filter(subscriber="sop.events", status=DeliveryStatus.PENDING)
    return [event_delivery_run(delivery_id=pk) for pk in pending.values_list("pk", flat=True)]


def make_sop(company: Company, *, activate: bool = True, **fields: Any) -> Sop:
    fields.setdefault("name", "新客 SOP")
    fields.setdefault("steps", [{"actions": [{"type": "task", "config": {"title": "打个招呼"}}]}])
    sop = services.sop_create(actor=company["ops"], **fields)
    if activate:
        sop = services.sop_activate(actor=company["ops"], sop_id=sop.pk)
    return sop


def at(days: float = 0, minutes: float = 0) -> datetime:
    return timezone.now() + timedelta(days=days, minutes=minutes)


@pytest.fixture
def vip(in_acme: Company) -> Tag:
    group = TagGroup.objects.create(name="客户等级", wecom_id="sop-g1")
    return Tag.objects.create(group=group, name="VIP", wecom_id="sop-t1")
