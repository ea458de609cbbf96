"""Payments through the sandbox's WeChat-Pay-like emulator: prepay, the customer pays, signed
notifications (verified, amount-checked, processed once), refunds."""

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.urls import reverse

from siyu.core.errors import InvalidInput
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.pay import notification_for
from siyu.shop import services
from siyu.shop.models import Order, OrderStatus, Payment, PaymentAccount, Refund, RefundStatus
from siyu.shop.tests.conftest import MCHID, Shop, post_notification

if TYPE_CHECKING:
    from siyu.sandbox.httpd import Sandbox

NOTIFY = "http://testserver/shop/hooks/acme/pay/notify"


def _paid_at_sandbox(shop: Shop, sandbox: "Sandbox", quantity: int = 1) -> tuple[Order, Payment]:
    """An order whose customer paid at the sandbox; the notification is not delivered yet
    (notify_url points nowhere reachable), the test delivers it with the test client."""
    with tenant_context(shop.company.tenant):
        order = services.order_create(
            customer=shop.customer, staff=shop.company["alice"], lines=[(shop.tea, quantity)]
        )
        start = services.payment_start(order=order, openid="o_buyer_openid", notify_url=NOTIFY)
    assert start.params["package"] == f"prepay_id={start.payment.prepay_id}"
    sandbox.pay.pay(start.payment.prepay_id)
    return order, start.payment


def _notify(payment: Payment, sandbox: "Sandbox", **kwargs: object) -> tuple[dict[str, str], bytes]:
    txn = sandbox.pay.transactions[payment.out_trade_no]
    return notification_for(sandbox.pay.merchants[MCHID], txn, **kwargs)  # type: ignore[arg-type]


def _post(headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    response = post_notification(headers, body)
    return response.status_code, response.content


def test_paid_notification_pays_once_however_often_it_arrives(
    shop: Shop, pay_sandbox: "Sandbox"
) -> None:
    order, payment = _paid_at_sandbox(shop, pay_sandbox, quantity=2)
    for _ in range(3):
        status, _body = _post(*_notify(payment, pay_sandbox))
        assert status == 204
    with tenant_context(shop.company.tenant):
        order.refresh_from_db()
        assert (order.status, order.paid_fen) == (OrderStatus.PAID, 25600)
        paid = Event.objects.filter(type="order.paid")
        assert paid.count() == 1
        assert paid[0].customer_id == shop.customer.pk
        assert paid[0].payload == {
            "order_id": order.pk,
            "amount_fen": 25600,
            "staff_id": shop.company["alice"].pk,
            "paid_orders": 1,
        }
        assert Payment.objects.get(pk=payment.pk).transaction_id


def test_tampered_stale_and_mismatched_notifications_change_nothing(
    shop: Shop, pay_sandbox: "Sandbox"
) -> None:
    order, payment = _paid_at_sandbox(shop, pay_sandbox)
    headers, body = _notify(payment, pay_sandbox)
    tampered = body.replace(b'"summary"', b'"Summary"')
    assert _post(headers, tampered)[0] == 401
    assert _post({**headers, "Wechatpay-Signature": "AAAA"}, body)[0] == 401
    status, answer = _post(*_notify(payment, pay_sandbox, timestamp=1_600_000_000))
    assert status == 401
    assert json.loads(answer)["code"] == "FAIL"
    # Correctly signed, but claims less money than the order costs.
    status, answer = _post(*_notify(payment, pay_sandbox, amount=1))
    assert status == 400
    assert "differs" in json.loads(answer)["message"]
    with tenant_context(shop.company.tenant):
        order.refresh_from_db()
        assert (order.status, order.paid_fen) == (OrderStatus.CREATED, 0)
        assert not Event.objects.filter(type="order.paid").exists()


def test_refunds_partial_then_full_never_above_paid(shop: Shop, pay_sandbox: "Sandbox") -> None:
    order, payment = _paid_at_sandbox(shop, pay_sandbox)
    assert _post(*_notify(payment, pay_sandbox))[0] == 204
    with tenant_context(shop.company.tenant):
        order.refresh_from_db()
        first = services.order_refund(order=order, amount_fen=2800, reason="少发一包")
        assert first.status == RefundStatus.SUCCEEDED
        order.refresh_from_db()
        assert (order.status, order.refunded_fen) == (OrderStatus.PARTIALLY_REFUNDED, 2800)
        for bad in (0, -1, 10001):
            with pytest.raises(InvalidInput):
                services.order_refund(order=order, amount_fen=bad, reason="")
        services.order_refund(order=order, amount_fen=10000, reason="退货")
        order.refresh_from_db()
        assert (order.status, order.refunded_fen) == (OrderStatus.REFUNDED, 12800)
        assert Event.objects.filter(type="order.refunded").count() == 2
    assert sum(pay_sandbox.pay.transactions[payment.out_trade_no].refunds.values()) == 12800


def test_payment_after_cancellation_is_refunded_not_counted(
    shop: Shop, pay_sandbox: "Sandbox"
) -> None:
    order, payment = _paid_at_sandbox(shop, pay_sandbox)
    with tenant_context(shop.company.tenant):
        services.order_cancel(order=order)
    assert _post(*_notify(payment, pay_sandbox))[0] == 204
    assert _post(*_notify(payment, pay_sandbox))[0] == 204
    with tenant_context(shop.company.tenant):
        order.refresh_from_db()
        assert (order.status, order.paid_fen, order.refunded_fen) == (OrderStatus.CANCELLED, 0, 0)
        refund = Refund.objects.get(order=order)
        assert (refund.is_surplus, refund.amount_fen, refund.status) == (
            True,
            12800,
            RefundStatus.SUCCEEDED,
        )
        assert not Event.objects.filter(type="order.paid").exists()
    assert pay_sandbox.pay.transactions[payment.out_trade_no].refunds == {
        refund.out_refund_no: 12800
    }


def test_expiry_closes_the_prepay_so_it_cannot_be_paid(shop: Shop, pay_sandbox: "Sandbox") -> None:
    with tenant_context(shop.company.tenant):
        order = services.order_create(customer=shop.customer, staff=None, lines=[(shop.cup, 1)])
        start = services.payment_start(order=order, openid="o_buyer_openid", notify_url=NOTIFY)
        Order.objects.filter(pk=order.pk).update(expires_at=order.created_at)
        assert services.orders_expire() == 1
    with (
        SandboxControl(pay_sandbox.base_url) as control,
        pytest.raises(RuntimeError, match="closed"),
    ):
        control.pay(start.payment.prepay_id)


@pytest.mark.django_db(transaction=True)
def test_sandbox_delivers_and_retries_notifications_to_the_live_server(
    shop: Shop, pay_sandbox: "Sandbox", live_server: object
) -> None:
    sandbox = pay_sandbox
    notify_url = f"{live_server.url}{reverse('shop_hooks:payment_notify', args=['acme'])}"  # type: ignore[attr-defined]
    with tenant_context(shop.company.tenant):
        order = services.order_create(customer=shop.customer, staff=None, lines=[(shop.tea, 1)])
        start = services.payment_start(order=order, openid="o_buyer_openid", notify_url=notify_url)
    with SandboxControl(sandbox.base_url) as control:
        control.pay(start.payment.prepay_id)
        control.pay_renotify(start.payment.out_trade_no, copies=4)  # duplicates, racing
        assert control.pay_flush(timeout=30)
        delivered = control.pay_notifications()
    assert [n["status"] for n in delivered] == ["delivered"] * 5
    with tenant_context(shop.company.tenant):
        order.refresh_from_db()
        assert (order.status, order.paid_fen) == (OrderStatus.PAID, 12800)
        assert Event.objects.filter(type="order.paid").count() == 1


def test_a_refund_with_unknown_outcome_is_retried_with_the_same_number(
    shop: Shop, pay_sandbox: "Sandbox"
) -> None:
    order, payment = _paid_at_sandbox(shop, pay_sandbox)
    assert _post(*_notify(payment, pay_sandbox))[0] == 204
    with tenant_context(shop.company.tenant):
        PaymentAccount.objects.update(api_base_url="http://127.0.0.1:9/")  # provider unreachable
        order.refresh_from_db()
        refund = services.order_refund(order=order, amount_fen=800, reason="破损")
        assert refund.status == RefundStatus.PROCESSING
        order.refresh_from_db()
        assert (order.status, order.refunded_fen) == (OrderStatus.PAID, 800)  # reserved
        PaymentAccount.objects.update(api_base_url=pay_sandbox.base_url + "/")
        assert services.refunds_retry(older_than=timedelta(0)) == 1
        assert services.refunds_retry(older_than=timedelta(0)) == 0
        refund.refresh_from_db()
        order.refresh_from_db()
        assert refund.status == RefundStatus.SUCCEEDED
        assert (order.status, order.refunded_fen) == (OrderStatus.PARTIALLY_REFUNDED, 800)
    assert pay_sandbox.pay.transactions[payment.out_trade_no].refunds == {refund.out_refund_no: 800}
