"""A small world of customers built through the real services (so every change is an event)."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest
from django.utils import timezone

from siyu.customers.attributes import attributes_set, field_create
from siyu.customers.lifecycle import stage_set
from siyu.customers.models import Customer
from siyu.customers.services import relation_added
from siyu.segments import index
from siyu.tags.models import Tag, TagGroup
from siyu.tags.services import customer_tags_set_from_wecom
from siyu.testing.stories import Company


@pytest.fixture(autouse=True)
def _fresh_index() -> Iterator[None]:
    index.segment_index_forget_all()
    yield
    index.segment_index_forget_all()


class World:
    """Builds customers for acme (tenant in context)."""

    def __init__(self, company: Company) -> None:
        self.company = company
        self._n = count(1)
        self.tags: dict[str, Tag] = {}

    def tag(self, name: str, group: str = "默认") -> Tag:
        key = f"{group}/{name}"
        if key not in self.tags:
            tag_group, _ = TagGroup.objects.get_or_create(name=group)
            self.tags[key] = Tag.objects.create(
                group=tag_group, name=name, wecom_id=f"et_{len(self.tags)}"
            )
        return self.tags[key]

    def customer(
        self,
        *,
        staff: str = "alice",
        tags: list[str] = (),  # type: ignore[assignment]
        stage: str = "",
        attrs: dict[str, Any] | None = None,
        added: datetime | None = None,
    ) -> Customer:
        member = self.company[staff]
        relation = relation_added(
            staff=member,
            external_userid=f"wm_world_{next(self._n)}",
            at=added or timezone.now(),
            source="sandbox",
        )
        assert relation is not None
        customer = relation.customer
        if tags:
            self.set_tags(customer, tags, staff=staff)
        if stage:
            stage_set(customer=customer, stage=stage, source="console")
        if attrs:
            attributes_set(customer=customer, values=attrs, source="console")
        return customer

    def set_tags(self, customer: Customer, tags: list[str], *, staff: str = "alice") -> None:
        wanted = [self.tag(*reversed(t.split("/", 1))) if "/" in t else self.tag(t) for t in tags]
        customer_tags_set_from_wecom(
            customer=customer,
            staff=self.company[staff],
            wecom_tag_ids=[t.wecom_id for t in wanted if t.wecom_id],
            source="console",
        )

    @staticmethod
    def days_ago(days: int) -> datetime:
        return timezone.now() - timedelta(days=days)


@pytest.fixture
def world(in_acme: Company) -> World:
    field_create(key="city", name="城市", kind="text")
    field_create(key="level", name="等级", kind="number")
    field_create(key="tier", name="会员", kind="choice", choices=["gold", "silver"])
    field_create(key="birthday", name="生日", kind="date")
    return World(in_acme)
