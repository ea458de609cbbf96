"""Queries: the catalog, carts, and orders within a member's data scope."""

from typing import Any

from django.db.models import Q, QuerySet

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require, visible_staff_ids
from siyu.core.errors import NotFound
from siyu.customers.models import StaffRelation
from siyu.shop.models import Cart, Order, Product


def products_on_sale() -> QuerySet[Product]:
    return Product.objects.filter(is_active=True).prefetch_related("skus")


def cart_summary(*, cart: Cart) -> dict[str, Any]:
    lines = list(cart.lines.select_related("sku__product").order_by("pk"))
    rows = [{"line": line, "amount_fen": line.sku.price_fen * line.quantity} for line in lines]
    return {"lines": rows, "total_fen": sum(row["amount_fen"] for row in rows)}


def orders_visible(*, actor: StaffMember, action: Action = Action.ORDERS_VIEW) -> QuerySet[Order]:
    """Orders credited to a member in the actor's scope, or of a customer they serve."""
    require(actor, action)
    ids = visible_staff_ids(actor)
    orders = Order.objects.select_related("customer", "staff")
    if ids is None:
        return orders
    owned = StaffRelation.objects.filter(staff_id__in=ids).values("customer_id")
    return orders.filter(Q(staff_id__in=ids) | Q(customer_id__in=owned))


def order_list(
    *, actor: StaffMember, status: str = "", source: str = "", customer_id: int | None = None
) -> QuerySet[Order]:
    orders = orders_visible(actor=actor)
    if status:
        orders = orders.filter(status=status)
    if source:
        orders = orders.filter(source=source)
    if customer_id is not None:
        orders = orders.filter(customer_id=customer_id)
    return orders.order_by("-created_at", "-pk")


def order_get(*, actor: StaffMember, order_id: int, action: Action = Action.ORDERS_VIEW) -> Order:
    order = orders_visible(actor=actor, action=action).filter(pk=order_id).first()
    if order is None:
        raise NotFound("order not found")
    return order
