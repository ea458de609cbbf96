"""Orders: stock reservation, the state machine, cancellation and expiry."""

from datetime import timedelta

import pytest
from django.utils import timezone

from siyu.core.errors import Conflict, InvalidInput
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.shop import services
from siyu.shop.models import Order, OrderStatus, Sku
from siyu.shop.tests.conftest import Shop


def _stock(sku: Sku) -> int:
    return Sku.objects.get(pk=sku.pk).stock


def test_order_create_reserves_stock_and_records_the_event(shop: Shop) -> None:
    alice = shop.company["alice"]
    with tenant_context(shop.company.tenant):
        order = services.order_create(
            customer=shop.customer,
            staff=alice,
            lines=[(shop.tea, 2), (shop.cup, 1)],
            discount_fen=900,
            channel="content:7",
        )
        assert order.status == OrderStatus.CREATED
        assert (order.total_fen, order.discount_fen, order.payable_fen) == (29500, 900, 28600)
        assert (_stock(shop.tea), _stock(shop.cup)) == (8, 2)
        assert [(line.name, line.quantity) for line in order.lines.all()] == [
            ("龙井茶 250g", 2),
            ("龙井茶 茶杯", 1),
        ]
        event = Event.objects.get(type="order.created")
        assert event.customer_id == shop.customer.pk
        assert event.payload == {"order_id": order.pk, "total_fen": 29500, "staff_id": alice.pk}


@pytest.mark.parametrize(
    ("quantity", "discount", "message"),
    [(0, 0, "quantity"), (-1, 0, "quantity"), (1, -5, "discount"), (1, 12801, "discount")],
)
def test_bad_quantities_and_discounts_change_nothing(
    shop: Shop, quantity: int, discount: int, message: str
) -> None:
    with tenant_context(shop.company.tenant):
        with pytest.raises(InvalidInput, match=message):
            services.order_create(
                customer=shop.customer,
                staff=None,
                lines=[(shop.tea, quantity)],
                discount_fen=discount,
            )
        assert _stock(shop.tea) == 10
        assert not Order.objects.exists()


def test_out_of_stock_rolls_back_every_line(shop: Shop) -> None:
    with tenant_context(shop.company.tenant):
        with pytest.raises(Conflict) as exc:
            services.order_create(
                customer=shop.customer, staff=None, lines=[(shop.tea, 2), (shop.cup, 4)]
            )
        assert exc.value.code == "out_of_stock"
        assert (_stock(shop.tea), _stock(shop.cup)) == (10, 3)
        assert not Order.objects.exists()


def test_cancel_releases_stock_and_illegal_moves_are_rejected(shop: Shop) -> None:
    with tenant_context(shop.company.tenant):
        order = services.order_create(customer=shop.customer, staff=None, lines=[(shop.cup, 3)])
        assert _stock(shop.cup) == 0
        services.order_cancel(order=order)
        assert _stock(shop.cup) == 3
        with pytest.raises(Conflict) as exc:
            services.order_cancel(order=Order.objects.get(pk=order.pk))
        assert exc.value.code == "illegal_transition"
        with pytest.raises(Conflict):
            services.order_transition(order=Order.objects.get(pk=order.pk), to=OrderStatus.PAID)
        assert _stock(shop.cup) == 3
        assert (
            Event.objects.filter(type="order.cancelled", customer_id=shop.customer.pk).count() == 1
        )


def test_unpaid_orders_expire_and_give_stock_back(shop: Shop) -> None:
    with tenant_context(shop.company.tenant):
        old = services.order_create(customer=shop.customer, staff=None, lines=[(shop.cup, 2)])
        fresh = services.order_create(customer=shop.customer, staff=None, lines=[(shop.cup, 1)])
        Order.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert services.orders_expire() == 1
        assert Order.objects.get(pk=old.pk).status == OrderStatus.CANCELLED
        assert Order.objects.get(pk=fresh.pk).status == OrderStatus.CREATED
        assert _stock(shop.cup) == 2
