"""Promotions fixtures: the shop's catalog and customers (``build_shop``), payments through the
sandbox's pay emulator, and the promotions subscribers run the way the job queue runs them."""

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone

from siyu.core.models import DeliveryStatus, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.core.tenancy import tenant_context
from siyu.shop import services as shop_services
from siyu.shop.models import Order, Payment, PaymentAccount
from siyu.shop.payments import PaymentNotice
from siyu.shop.tests.conftest import API_V3_KEY, APPID, MCHID, Shop, build_shop
from siyu.testing.stories import Company

if TYPE_CHECKING:
    from siyu.sandbox.httpd import Sandbox

# The emulator's notification to this closed port fails; tests hand the notice over directly.
NOTIFY_URL = "http://127.0.0.1:9/notify"


@pytest.fixture
def shop(acme: Company) -> Iterator[Shop]:
    shop = build_shop(acme)
    with tenant_context(acme.tenant):
        yield shop


@pytest.fixture
def paying(shop: Shop, sandbox: "Sandbox") -> "Payer":
    from siyu.sandbox.client import SandboxControl

    with SandboxControl(sandbox.base_url) as control:
        control.add_pay_merchant(MCHID, APPID, API_V3_KEY)
    PaymentAccount.objects.create(
        mchid=MCHID, appid=APPID, api_v3_key=API_V3_KEY, api_base_url=sandbox.base_url + "/"
    )
    return Payer(sandbox)


class Payer:
    """The customer pays at the emulator; its notice is settled by the shop's real service."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self.sandbox = sandbox

    def pay(self, order: Order, *, at_offset: timedelta = timedelta(0)) -> PaymentNotice:
        from siyu.sandbox.client import SandboxControl

        start = shop_services.payment_start(order=order, openid="o_buyer", notify_url=NOTIFY_URL)
        with SandboxControl(self.sandbox.base_url) as control:
            paid = control.pay(start.payment.prepay_id)
        notice = PaymentNotice(
            out_trade_no=paid["out_trade_no"],
            transaction_id=paid["transaction_id"],
            trade_state="SUCCESS",
            amount_fen=start.payment.amount_fen,
            paid_at=timezone.now() + at_offset,
        )
        self.settle(notice)
        return notice

    @staticmethod
    def settle(notice: PaymentNotice) -> Payment:
        return shop_services.payment_settle(notice=notice)


def deliver(subscriber: str = "promotions.") -> int:
    """Run the pending deliveries of the promotions subscribers; returns how many ran."""
    ran = 0
    for delivery in EventDelivery.objects.filter(
        subscriber__startswith=subscriber, status=DeliveryStatus.PENDING
    ).order_by("pk"):
        assert event_delivery_run(delivery_id=delivery.pk) == "done", delivery.last_error
        ran += 1
    return ran
