"""Reliability: concurrent orders for the last units, and duplicate / out-of-order payment
notifications racing each other. Real threads, real database (on PostgreSQL they truly race;
on SQLite the IMMEDIATE transactions serialise them, and the counts must still be exact)."""

import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from siyu.core.errors import Conflict
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.sandbox.pay import notification_for
from siyu.shop import services
from siyu.shop.models import Order, OrderStatus, Refund, Sku
from siyu.shop.tests.conftest import MCHID, Shop, post_notification
from siyu.testing.concurrency import race

if TYPE_CHECKING:
    from siyu.sandbox.httpd import Sandbox

pytestmark = pytest.mark.django_db(transaction=True)
NOTIFY = "http://testserver/shop/hooks/acme/pay/notify"


def test_last_units_and_racing_notifications_stay_exact(shop: Shop, pay_sandbox: "Sandbox") -> None:
    tenant = shop.company.tenant
    with tenant_context(tenant):
        Sku.objects.filter(pk=shop.cup.pk).update(stock=5)
        cup = Sku.objects.get(pk=shop.cup.pk)
    wanted = [1, 2, 1, 2, 1, 2, 1, 2]  # 12 units asked for, 5 exist
    placed: list[Order] = []
    refused: list[str] = []
    lock = threading.Lock()

    def buy(quantity: int) -> Callable[[], None]:
        def job() -> None:
            with tenant_context(tenant):
                try:
                    order = services.order_create(
                        customer=shop.customer, staff=None, lines=[(cup, quantity)]
                    )
                except Conflict as exc:
                    with lock:
                        refused.append(exc.code)
                    return
            with lock:
                placed.append(order)

        return job

    race([buy(q) for q in wanted])
    with tenant_context(tenant):
        sold = sum(order.lines.get().quantity for order in placed)
        assert Sku.objects.get(pk=cup.pk).stock == 5 - sold >= 0
        assert sold >= 4  # the stock ran out: at most one unit can be left over
        assert set(refused) == {"out_of_stock"}
        assert len(placed) + len(refused) == len(wanted)
        assert Order.objects.count() == len(placed)

        # Everyone pays; one order is cancelled first (its payment must come back).
        starts = [
            services.payment_start(order=order, openid="o_buyer_openid", notify_url=NOTIFY)
            for order in placed
        ]
        late = placed[0]
        services.order_cancel(order=late)
    for start in starts:
        pay_sandbox.pay.pay(start.payment.prepay_id)
    merchant = pay_sandbox.pay.merchants[MCHID]
    notices = [
        notification_for(merchant, pay_sandbox.pay.transactions[start.payment.out_trade_no])
        for start in starts
        for _ in range(3)
    ]
    random.Random(7).shuffle(notices)  # out of order and duplicated
    statuses: list[int] = []

    def deliver(headers: dict[str, str], body: bytes) -> Callable[[], None]:
        def job() -> None:
            response = post_notification(headers, body)
            with lock:
                statuses.append(response.status_code)

        return job

    race([deliver(h, b) for h, b in notices])
    assert statuses == [204] * len(notices)
    with tenant_context(tenant):
        assert Sku.objects.get(pk=cup.pk).stock == 5 - sold + late.lines.get().quantity
        paid = Order.objects.filter(status=OrderStatus.PAID)
        assert sorted(paid.values_list("pk", flat=True)) == sorted(o.pk for o in placed[1:])
        for order in paid:
            assert order.paid_fen == order.payable_fen
        assert Event.objects.filter(type="order.paid").count() == len(placed) - 1
        cancelled = Order.objects.get(pk=late.pk)
        assert (cancelled.status, cancelled.paid_fen) == (OrderStatus.CANCELLED, 0)
        surplus = Refund.objects.get()
        assert (surplus.order_id, surplus.is_surplus) == (late.pk, True)
        assert surplus.amount_fen == late.payable_fen
