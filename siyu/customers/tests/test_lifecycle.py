"""Lifecycle stages: configurable per tenant, moved by hand and by rules, every move an event;
custom fields validated; the functional account matrix."""

from datetime import UTC, datetime

import pytest

from siyu.core.errors import Conflict, InvalidInput
from siyu.core.models import Event, EventDelivery
from siyu.core.services import event_delivery_run, event_record
from siyu.customers.attributes import attributes_set, field_create
from siyu.customers.lifecycle import (
    account_kind_set,
    rule_create,
    stage_set,
    stages,
    stages_configure,
)
from siyu.customers.models import Customer
from siyu.customers.selectors import account_matrix
from siyu.customers.services import relation_added
from siyu.testing.stories import Company

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def add(company: Company, userid: str, ext: str) -> Customer:
    relation = relation_added(staff=company[userid], external_userid=ext, at=AT, source="wecom")
    assert relation is not None
    return relation.customer


def joined_group(customer: Customer, n: int) -> Event:
    event = event_record(
        type="customer.joined_group",
        source="wecom",
        customer_id=customer.pk,
        payload={"chat_id": f"wr{n}"},
    )
    for delivery in EventDelivery.objects.filter(
        event=event, subscriber="customers.lifecycle_rules"
    ):
        assert event_delivery_run(delivery_id=delivery.pk) == "done"
    return event


def test_every_tenant_starts_with_the_five_stages(in_acme: Company) -> None:
    assert [s.name for s in stages()] == ["普通", "意向", "付费", "复购", "代理"]


def test_a_move_by_hand_is_an_event_and_unknown_stages_are_refused(in_acme: Company) -> None:
    customer = add(in_acme, "alice", "wm-1")
    assert stage_set(customer=customer, stage="intent", source="api", by=in_acme["alice"])
    assert not stage_set(customer=customer, stage="intent", source="api")
    (event,) = Event.objects.filter(type="customer.stage_changed", customer_id=customer.pk)
    assert event.payload == {"from": "normal", "to": "intent", "by": "alice", "reason": ""}
    with pytest.raises(InvalidInput, match="unknown lifecycle stage"):
        stage_set(customer=customer, stage="vip", source="api")
    assert Customer.objects.get(pk=customer.pk).stage == "intent"


def test_rules_move_customers_forward_by_counts_never_back(in_acme: Company) -> None:
    rule_create(event_type="customer.joined_group", min_count=1, stage="intent")
    rule_create(event_type="customer.joined_group", min_count=2, stage="paid")
    customer = add(in_acme, "alice", "wm-2")
    joined_group(customer, 1)
    assert Customer.objects.get(pk=customer.pk).stage == "intent"
    joined_group(customer, 2)
    assert Customer.objects.get(pk=customer.pk).stage == "paid"
    stage_set(customer=customer, stage="agent", source="api")
    joined_group(customer, 3)
    assert Customer.objects.get(pk=customer.pk).stage == "agent"


def test_rule_input_is_validated(in_acme: Company) -> None:
    with pytest.raises(InvalidInput, match="unknown event type"):
        rule_create(event_type="order.nope", min_count=1, stage="paid")
    with pytest.raises(InvalidInput, match="unknown lifecycle stage"):
        rule_create(event_type="customer.joined_group", min_count=1, stage="vip")
    rule_create(event_type="customer.joined_group", min_count=1, stage="intent")
    with pytest.raises(Conflict):
        rule_create(event_type="customer.joined_group", min_count=1, stage="paid")


def test_stages_are_configurable_but_an_occupied_stage_stays(in_acme: Company) -> None:
    customer = add(in_acme, "alice", "wm-3")
    stage_set(customer=customer, stage="agent", source="api")
    keep = [{"key": s.key, "name": s.name} for s in stages() if s.key != "agent"]
    with pytest.raises(Conflict, match="agent"):
        stages_configure(actor=in_acme["admin"], items=keep)
    renamed = [{"key": "normal", "name": "新客"}, *keep[1:], {"key": "agent", "name": "代理"}]
    stages_configure(actor=in_acme["admin"], items=renamed)
    assert stages()[0].name == "新客"


def test_custom_fields_are_typed_and_unknown_keys_change_nothing(in_acme: Company) -> None:
    customer = add(in_acme, "alice", "wm-4")
    field_create(key="city", name="城市", kind="text")
    field_create(key="level", name="会员等级", kind="number")
    field_create(key="plan", name="套餐", kind="choice", choices=["基础", "专业"])
    attributes_set(
        customer=customer, values={"city": "上海", "level": "3", "plan": "专业"}, source="api"
    )
    assert Customer.objects.get(pk=customer.pk).attributes == {
        "city": "上海",
        "level": 3,
        "plan": "专业",
    }
    cases: list[tuple[dict[str, object], str]] = [
        ({"city": "杭州", "nope": 1}, "unknown custom fields"),
        ({"city": "杭州", "level": "三"}, "not a number"),
        ({"city": "杭州", "plan": "旗舰"}, "not one of"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidInput, match=message):
            attributes_set(customer=customer, values=bad, source="api")
    assert Customer.objects.get(pk=customer.pk).attributes["city"] == "上海"


def test_the_account_matrix_counts_customers_by_stage_and_account_kind(
    in_acme: Company,
) -> None:
    account_kind_set(actor=in_acme["admin"], member=in_acme["alice"], kind="ip")
    account_kind_set(actor=in_acme["admin"], member=in_acme["bob"], kind="deal")
    add(in_acme, "alice", "wm-5")
    paying = add(in_acme, "bob", "wm-6")
    stage_set(customer=paying, stage="paid", source="api")
    matrix = account_matrix(actor=in_acme["boss"])
    rows = {row["key"]: row["counts"] for row in matrix["stages"]}
    assert rows["normal"]["ip"] == 1
    assert rows["paid"]["deal"] == 1
    assert rows["paid"]["ip"] == 0
    # alice sees only her own customers
    mine = {row["key"]: row["counts"] for row in account_matrix(actor=in_acme["alice"])["stages"]}
    assert mine["paid"]["deal"] == 0
