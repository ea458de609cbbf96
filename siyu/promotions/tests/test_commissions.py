"""Distribution (分销): rules and tiers, commission on payment, proportional reversal on
refunds, exactly once per event whatever order or how often the events come."""

from typing import Any

import pytest
from django.urls import reverse

from siyu.core.errors import InvalidInput
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.customers.lifecycle import stage_set
from siyu.promotions import selectors, services
from siyu.promotions.models import CommissionEntry, CommissionRule, OrderCommission, SharerLink
from siyu.promotions.tests.conftest import Payer, deliver
from siyu.shop import services as shop_services
from siyu.shop.models import Order
from siyu.shop.tests.conftest import Shop


def _rules() -> None:
    # Staff: 5 %, 8 % from ¥300 of monthly sales. Agents: 10 %.
    services.commission_rule_set(
        sharer_kind="staff", rate_bp=500, tiers=[{"min_sales_fen": 30000, "rate_bp": 800}]
    )
    services.commission_rule_set(sharer_kind="agent", rate_bp=1000, tiers=[])


def _order(shop: Shop, quantity: int = 1, channel: str = "") -> Order:
    return shop_services.order_create(
        customer=shop.customer,
        staff=shop.company["alice"],
        lines=[(shop.tea, quantity)],
        channel=channel,
    )


def _net(order: Order) -> int:
    return OrderCommission.objects.get(order=order).commission_fen


def _ledger(order: Order) -> list[tuple[str, int]]:
    return [
        (e.kind, e.amount_fen)
        for e in CommissionEntry.objects.filter(commission__order=order).order_by("pk")
    ]


@pytest.mark.parametrize(
    "tiers",
    [
        [{"min_sales_fen": 0, "rate_bp": 600}],
        [{"min_sales_fen": 100, "rate_bp": 400}],  # a higher tier paying less
        [{"min_sales_fen": 100, "rate_bp": 9000}],  # 90 %: a typo
        [{"min_sales_fen": 100, "rate_bp": 600}, {"min_sales_fen": 100, "rate_bp": 700}],
    ],
)
def test_bad_rules_are_refused(shop: Shop, tiers: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidInput):
        services.commission_rule_set(sharer_kind="staff", rate_bp=500, tiers=tiers)
    assert not CommissionRule.objects.exists()


def test_the_same_order_paid_twice_earns_one_commission(shop: Shop, paying: Payer) -> None:
    _rules()
    order = _order(shop)
    notice = paying.pay(order)
    paying.settle(notice)  # the provider's duplicate notification
    assert Event.objects.filter(type="order.paid").count() == 1
    assert deliver() == 1
    # The subscriber itself run again on the same event (a redelivery after a crash).
    event = Event.objects.get(type="order.paid")
    again = services.commission_on_paid(order_id=order.pk, event_id=event.pk, at=event.occurred_at)
    assert again is None
    assert _net(order) == 640  # 5 % of ¥128
    assert _ledger(order) == [("accrual", 640)]
    entry = CommissionEntry.objects.get()
    assert (entry.staff_id, entry.sharer_kind, entry.base_fen) == (
        shop.company["alice"].pk,
        "staff",
        12800,
    )


def test_refunds_reverse_proportionally_and_exactly(shop: Shop, paying: Payer) -> None:
    _rules()
    order = _order(shop, quantity=3)  # ¥384: the 8 % tier at once
    paying.pay(order)
    deliver()
    assert _net(order) == 3072
    shop_services.order_refund(order=Order.objects.get(pk=order.pk), amount_fen=10000, reason="a")
    deliver()
    assert _net(order) == 3072 * (38400 - 10000) // 38400  # 2272
    # Refunding above what is left is the shop's clear error, and the ledger does not move.
    with pytest.raises(InvalidInput) as exc:
        shop_services.order_refund(
            order=Order.objects.get(pk=order.pk), amount_fen=28401, reason="too much"
        )
    assert exc.value.code == "refund_too_large"
    assert deliver() == 0
    assert _net(order) == 2272
    shop_services.order_refund(order=Order.objects.get(pk=order.pk), amount_fen=7, reason="b")
    deliver()
    # The rest of the money: the commission goes to exactly zero, whatever the roundings were.
    shop_services.order_refund(order=Order.objects.get(pk=order.pk), amount_fen=28393, reason="c")
    deliver()
    assert _net(order) == 0
    ledger = _ledger(order)
    assert ledger[0] == ("accrual", 3072)
    assert [kind for kind, _ in ledger] == ["accrual", "reversal", "reversal", "reversal"]
    assert sum(amount for _, amount in ledger) == 0


def test_a_refund_processed_before_its_payment_is_still_exact(shop: Shop, paying: Payer) -> None:
    _rules()
    order = _order(shop)
    paying.pay(order)
    shop_services.order_refund(order=Order.objects.get(pk=order.pk), amount_fen=6400, reason="x")
    # The refund's delivery runs first (the payment's was delayed by a retry).
    deliveries = EventDelivery.objects.filter(
        subscriber__startswith="promotions.", status=DeliveryStatus.PENDING
    )
    refunded = deliveries.get(event__type="order.refunded")
    assert event_delivery_run(delivery_id=refunded.pk) == "done"
    deliver()
    assert _net(order) == 640 * 6400 // 12800
    assert sum(amount for _, amount in _ledger(order)) == 320


def test_agent_links_earn_the_agent_rule_and_statements_add_up(
    shop: Shop, paying: Payer, login: Any
) -> None:
    _rules()
    # Reaching the 代理 stage makes the customer an agent with a share code.
    stage_set(customer=shop.stranger, stage="agent", source="console")
    deliver()
    link = SharerLink.objects.get(customer=shop.stranger)
    assert services.sharer_link_ensure(customer=shop.stranger).pk == link.pk
    via_agent = _order(shop, channel=f"sharer:{link.code}")
    direct = _order(shop)
    paying.pay(via_agent)
    paying.pay(direct)
    deliver()
    agent_row = OrderCommission.objects.get(order=via_agent)
    assert (agent_row.sharer_kind, agent_row.agent_id, agent_row.commission_fen) == (
        "agent",
        shop.stranger.pk,
        1280,
    )
    # Alice sees only her own commission; operations see the agent's too.
    mine = selectors.commission_statements(staff=shop.company["alice"])
    assert [(s["name"], s["net_fen"], s["orders"]) for s in mine] == [("Alice", 640, 1)]
    everyone = selectors.commission_statements(staff=shop.company["ops"])
    assert sorted((s["sharer_kind"], s["net_fen"]) for s in everyone) == [
        ("agent", 1280),
        ("staff", 640),
    ]
    assert not selectors.commission_entries(staff=shop.company["bob"]).exists()
    page = login.session(shop.company["ops"]).get(reverse("console:promotions_commissions"))
    assert page.status_code == 200 and "客户代理" in page.content.decode()
