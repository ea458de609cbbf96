"""What the shop tells the rest of Siyu: timeline events, abandoned carts, lifecycle stages."""

from datetime import timedelta
from typing import TYPE_CHECKING

from django.utils import timezone

from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer
from siyu.shop import services
from siyu.shop.models import Cart, CartStatus, Order
from siyu.shop.payments import PaymentNotice
from siyu.shop.tasks import expire_orders
from siyu.shop.tests.conftest import API_V3_KEY, APPID, MCHID, Shop

if TYPE_CHECKING:
    from siyu.sandbox.httpd import Sandbox

NOTIFY = "http://127.0.0.1:9/notify"  # nobody listens: the test settles the notice itself


def _pay(shop: Shop, sandbox: "Sandbox", quantity: int) -> Order:
    order = services.order_create(
        customer=shop.customer, staff=shop.company["alice"], lines=[(shop.tea, quantity)]
    )
    start = services.payment_start(order=order, openid="o_buyer_openid", notify_url=NOTIFY)
    paid = sandbox.pay.pay(start.payment.prepay_id)
    services.payment_settle(
        notice=PaymentNotice(
            out_trade_no=paid["out_trade_no"],
            transaction_id=paid["transaction_id"],
            trade_state="SUCCESS",
            amount_fen=order.payable_fen,
            paid_at=timezone.now(),
        )
    )
    return order


def _run_deliveries() -> None:
    for delivery in EventDelivery.objects.filter(status=DeliveryStatus.PENDING).order_by("pk"):
        event_delivery_run(delivery_id=delivery.pk)


def test_first_payment_makes_a_paying_customer_the_second_a_repeat_one(
    shop: Shop, sandbox: "Sandbox"
) -> None:
    from siyu.sandbox.client import SandboxControl

    with SandboxControl(sandbox.base_url) as control:
        control.add_pay_merchant(MCHID, APPID, API_V3_KEY)
    with tenant_context(shop.company.tenant):
        services.payment_account_configure(
            actor=shop.company["admin"],
            mchid=MCHID,
            appid=APPID,
            api_v3_key=API_V3_KEY,
            api_base_url=sandbox.base_url + "/",
        )
        _pay(shop, sandbox, 1)
        _run_deliveries()
        assert Customer.objects.get(pk=shop.customer.pk).stage == "paid"
        _pay(shop, sandbox, 1)
        _run_deliveries()
        assert Customer.objects.get(pk=shop.customer.pk).stage == "repeat"
        paid = Event.objects.filter(type="order.paid").order_by("pk")
        assert [e.payload["paid_orders"] for e in paid] == [1, 2]
        changes = Event.objects.filter(type="customer.stage_changed", customer_id=shop.customer.pk)
        assert [e.payload["to"] for e in changes.order_by("pk")] == ["paid", "repeat"]


def test_idle_carts_and_orders_left_unpaid_are_abandoned_once(shop: Shop) -> None:
    alice = shop.company["alice"]
    with tenant_context(shop.company.tenant):
        idle = services.cart_for(customer=shop.customer, staff=alice)
        services.cart_set(cart=idle, sku=shop.cup, quantity=2)
        Cart.objects.filter(pk=idle.pk).update(updated_at=timezone.now() - timedelta(hours=2))
        walked_away = services.cart_for(customer=shop.stranger, staff=shop.company["bob"])
        services.cart_set(cart=walked_away, sku=shop.tea, quantity=1)
        order = services.cart_checkout(cart=walked_away)
        Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_orders() == 2
    assert expire_orders() == 0
    with tenant_context(shop.company.tenant):
        assert set(Cart.objects.values_list("status", flat=True)) == {CartStatus.ABANDONED}
        abandoned = {e.customer_id: e.payload for e in Event.objects.filter(type="cart.abandoned")}
        assert abandoned == {
            shop.customer.pk: {"cart_id": idle.pk, "total_fen": 7800, "staff_id": alice.pk},
            shop.stranger.pk: {
                "cart_id": walked_away.pk,
                "total_fen": 12800,
                "staff_id": shop.company["bob"].pk,
            },
        }
        assert shop.cup.__class__.objects.get(pk=shop.tea.pk).stock == 10
