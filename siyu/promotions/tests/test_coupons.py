"""Coupons: templates, issuing and claiming within limits, redemption exactly once, release on
cancellation, expiry, and coupons as fission rewards."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer
from siyu.promotions import services
from siyu.promotions.models import (
    Coupon,
    CouponRedemption,
    CouponStatus,
    CouponTemplate,
    RedemptionStatus,
)
from siyu.promotions.tests.conftest import Payer, deliver
from siyu.shop import services as shop_services
from siyu.shop.models import Order, OrderStatus
from siyu.shop.tests.conftest import Shop, build_shop
from siyu.testing.concurrency import race
from siyu.testing.stories import Company


def _template(**overrides: Any) -> CouponTemplate:
    fields: dict[str, Any] = {
        "actor": None,
        "name": "满100减20",
        "kind": "amount",
        "amount_off_fen": 2000,
        "min_spend_fen": 10000,
        "valid_days": 7,
        "total_stock": 100,
        "per_customer_limit": 1,
    } | overrides
    return services.coupon_template_create(**fields)


def _checkout(shop: Shop, code: str, quantity: int = 1, customer: Customer | None = None) -> Order:
    """What the H5 checkout does (``coupon_order_place``): quote, place the order with the
    discount, redeem — one transaction, so a refused coupon leaves no order behind."""
    customer = customer or shop.customer
    return services.coupon_order_place(
        code=code,
        customer=customer,
        subtotal_fen=shop.tea.price_fen * quantity,
        place=lambda discount_fen: shop_services.order_create(
            customer=customer,
            staff=shop.company["alice"],
            lines=[(shop.tea, quantity)],
            discount_fen=discount_fen,
        ),
    )


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"amount_off_fen": 0}, "invalid_amount"),
        ({"kind": "percent", "amount_off_fen": 0, "percent_off": 100}, "invalid_percent"),
        ({"valid_days": None}, "invalid_validity"),
        ({"valid_until": timezone.now() + timedelta(days=1)}, "invalid_validity"),
        ({"total_stock": 0}, "invalid_stock"),
    ],
)
def test_bad_templates_are_refused_and_nothing_is_saved(
    in_acme: Company, overrides: dict[str, Any], code: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        _template(**overrides)
    assert exc.value.code == code
    assert not CouponTemplate.objects.exists()


def test_issue_keeps_the_per_customer_limit_the_stock_and_the_source_key(shop: Shop) -> None:
    template = _template(total_stock=3, per_customer_limit=2)
    first = services.coupon_issue(template=template, customer=shop.customer, source="operator")
    services.coupon_issue(template=template, customer=shop.customer, source="operator")
    with pytest.raises(Conflict) as exc:
        services.coupon_issue(template=template, customer=shop.customer, source="operator")
    assert exc.value.code == "coupon_limit"
    # The source key makes a repeat (a replayed SOP step) the same coupon.
    keyed = services.coupon_issue(
        template=template, customer=shop.stranger, source="sop", source_key="sop:7:1"
    )
    again = services.coupon_issue(
        template=template, customer=shop.stranger, source="sop", source_key="sop:7:1"
    )
    assert keyed.pk == again.pk
    with pytest.raises(Conflict) as exc:
        services.coupon_issue(template=template, customer=shop.stranger, source="operator")
    assert exc.value.code == "coupon_out_of_stock"
    template.refresh_from_db()
    assert template.issued == 3
    assert Coupon.objects.count() == 3
    assert first.valid_until - first.valid_from == timedelta(days=7)
    assert Event.objects.filter(type="coupon.issued").count() == 3


def test_claim_only_where_the_template_is_open_for_claiming(shop: Shop) -> None:
    closed = _template()
    with pytest.raises(NotFound):
        services.coupon_claim(template=closed, customer=shop.customer)
    open_ = _template(claimable=True)
    coupon = services.coupon_claim(template=open_, customer=shop.customer)
    assert (coupon.source, coupon.status) == ("claim", "available")


def test_discounts_respect_minimum_spend_cap_and_order_total(in_acme: Company) -> None:
    amount = _template(amount_off_fen=2000, min_spend_fen=0)
    assert services.coupon_discount(template=amount, subtotal_fen=1500) == 1500
    percent = _template(
        kind="percent", amount_off_fen=0, percent_off=15, max_off_fen=3000, min_spend_fen=10000
    )
    assert services.coupon_discount(template=percent, subtotal_fen=12800) == 1920
    assert services.coupon_discount(template=percent, subtotal_fen=25600) == 3000
    with pytest.raises(InvalidInput) as exc:
        services.coupon_discount(template=percent, subtotal_fen=9999)
    assert exc.value.code == "coupon_min_spend"


def test_redeemed_once_released_on_cancel_and_kept_after_refund(shop: Shop, paying: Payer) -> None:
    coupon = services.coupon_issue(template=_template(), customer=shop.customer, source="operator")
    order = _checkout(shop, coupon.code)
    assert (order.total_fen, order.discount_fen, order.payable_fen) == (12800, 2000, 10800)
    coupon.refresh_from_db()
    assert coupon.status == CouponStatus.RESERVED
    # The same coupon on a second order is refused, and that order never exists.
    with pytest.raises(Conflict) as exc:
        _checkout(shop, coupon.code)
    assert exc.value.code == "coupon_used"
    assert Order.objects.count() == 1

    # Cancelled before payment: the coupon comes back and can be used again.
    shop_services.order_cancel(order=order)
    deliver()
    coupon.refresh_from_db()
    assert coupon.status == CouponStatus.AVAILABLE
    assert CouponRedemption.objects.get(order=order).status == RedemptionStatus.RELEASED

    second = _checkout(shop, coupon.code)
    notice = paying.pay(second)
    paying.settle(notice)  # the provider's duplicate notification changes nothing
    deliver()
    assert CouponRedemption.objects.filter(coupon=coupon).count() == 2  # released + used
    coupon.refresh_from_db()
    assert coupon.status == CouponStatus.USED
    assert CouponRedemption.objects.get(order=second).status == RedemptionStatus.USED

    # Refunded in full: the coupon stays spent (documented: no refund-and-reorder loop).
    shop_services.order_refund(order=Order.objects.get(pk=second.pk), amount_fen=10800, reason="x")
    deliver()
    coupon.refresh_from_db()
    assert coupon.status == CouponStatus.USED
    with pytest.raises(Conflict):
        _checkout(shop, coupon.code)


def test_expired_foreign_and_mismatched_coupons_are_refused(shop: Shop) -> None:
    template = _template(valid_days=None, valid_until=timezone.now() + timedelta(days=1))
    coupon = services.coupon_issue(template=template, customer=shop.customer, source="operator")
    Coupon.objects.filter(pk=coupon.pk).update(valid_until=timezone.now() - timedelta(seconds=1))
    with pytest.raises(Conflict) as exc:
        _checkout(shop, coupon.code)
    assert exc.value.code == "coupon_expired"
    fresh = services.coupon_issue(template=_template(), customer=shop.customer, source="operator")
    with pytest.raises(NotFound):  # someone else's coupon is no coupon at all
        _checkout(shop, fresh.code, customer=shop.stranger)
    with transaction.atomic():
        order = shop_services.order_create(
            customer=shop.customer, staff=None, lines=[(shop.tea, 1)], discount_fen=5000
        )
        with pytest.raises(InvalidInput) as mismatch:
            services.coupon_apply(code=fresh.code, customer=shop.customer, order=order)
        assert mismatch.value.code == "coupon_discount_mismatch"
        transaction.set_rollback(True)
    assert not Order.objects.exists()
    assert Coupon.objects.get(pk=fresh.pk).status == CouponStatus.AVAILABLE


@pytest.mark.django_db(transaction=True)
def test_concurrent_redemptions_of_one_coupon_one_wins(acme: Company) -> None:
    with tenant_context(acme.tenant):
        shop = build_shop(acme)
        coupon = services.coupon_issue(
            template=_template(), customer=shop.customer, source="operator"
        )
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            with tenant_context(acme.tenant):
                _checkout(shop, coupon.code)
            outcomes.append("won")
        except Conflict as exc:
            outcomes.append(exc.code)

    race([attempt, attempt])
    assert sorted(outcomes) == ["coupon_used", "won"]
    with tenant_context(acme.tenant):
        assert Order.objects.count() == 1
        assert CouponRedemption.objects.filter(coupon=coupon).count() == 1
        assert Coupon.objects.get(pk=coupon.pk).status == CouponStatus.RESERVED
        order = Order.objects.get()
        assert (order.discount_fen, order.status) == (2000, OrderStatus.CREATED)
