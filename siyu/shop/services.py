"""Orders, payments and refunds: every function that changes money or stock.

Stock and money move only by conditional UPDATEs (compare-and-set on stock, status and the
refunded amount) inside the transaction that records the matching event, so concurrent
requests and re-delivered payment notifications cannot oversell, pay twice or refund more than
was paid.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require
from siyu.audit.services import audit_record
from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.models import Event
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers.lifecycle import rule_create, stage_order
from siyu.customers.models import Customer, LifecycleRule
from siyu.shop.events import (
    CART_ABANDONED,
    ORDER_CANCELLED,
    ORDER_CREATED,
    ORDER_PAID,
    ORDER_REFUNDED,
    PRODUCT_VIEWED,
)
from siyu.shop.models import (
    ORDER_TRANSITIONS,
    PAID_STATUSES,
    Cart,
    CartLine,
    CartStatus,
    ExternalShop,
    Order,
    OrderLine,
    OrderSource,
    OrderStatus,
    Payment,
    PaymentAccount,
    PaymentStatus,
    Product,
    Refund,
    RefundStatus,
    Sku,
)
from siyu.shop.payments import PaymentNotice, ProviderError, provider_for

logger = logging.getLogger(__name__)

MAX_LINE_QUANTITY = 999
MAX_LINES = 50
LINK_SALT = "siyu.shop.staff-link"  # signing namespace, not a secret
URL_PATTERN = re.compile(r"^https?://\S+$")


def _new_number(prefix: str) -> str:
    # 32 characters at most: WeChat Pay's limit for out_trade_no / out_refund_no.
    return f"{prefix}{timezone.now():%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"


def _staff_id(order: Order) -> int | None:
    return order.staff_id


def order_transition(*, order: Order, to: str, **fields: Any) -> None:
    """Move ``order`` to ``to`` if that is a legal move from the status it is in now.

    The UPDATE is conditional on the status read, so of two racing moves only one wins; the
    loser gets ``Conflict`` and changes nothing.
    """
    if to not in ORDER_TRANSITIONS[order.status]:
        raise Conflict(
            f"order {order.number} cannot go from {order.status} to {to}", code="illegal_transition"
        )
    updated = Order.objects.filter(pk=order.pk, status=order.status).update(status=to, **fields)
    if updated != 1:
        raise Conflict(f"order {order.number} changed meanwhile; try again", code="order_changed")
    order.status = to
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(order, name, value)


def _reserve_stock(lines: list[tuple[Sku, int]]) -> None:
    # Sorted by pk: two orders for the same SKUs lock rows in the same order (no deadlock).
    for sku, quantity in sorted(lines, key=lambda line: line[0].pk):
        taken = Sku.objects.filter(pk=sku.pk, is_active=True, stock__gte=quantity).update(
            stock=F("stock") - quantity
        )
        if taken != 1:
            raise Conflict(f"{sku} is out of stock", code="out_of_stock")


def _release_stock(order: Order) -> None:
    lines = order.lines.filter(sku__isnull=False).order_by("sku_id")
    for sku_id, quantity in lines.values_list("sku_id", "quantity"):
        Sku.objects.filter(pk=sku_id).update(stock=F("stock") + quantity)


def order_create(
    *,
    customer: Customer | None,
    staff: StaffMember | None,
    lines: list[tuple[Sku, int]],
    source: str = "shop",
    discount_fen: int = 0,
    channel: str = "",
) -> Order:
    """Place an order for our own catalog, reserving stock atomically; it waits for payment
    until ``expires_at`` (then ``orders_expire`` cancels it and gives the stock back)."""
    if source not in OrderSource.values:
        raise InvalidInput(f"unknown order source {source!r}")
    if not lines:
        raise InvalidInput("an order needs at least one line")
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"an order has at most {MAX_LINES} lines")
    skus = {sku.pk for sku, _ in lines}
    if len(skus) != len(lines):
        raise InvalidInput("each SKU may appear once in an order")
    for sku, quantity in lines:
        if not isinstance(quantity, int) or not 1 <= quantity <= MAX_LINE_QUANTITY:
            raise InvalidInput(f"quantity must be between 1 and {MAX_LINE_QUANTITY}")
        if not sku.is_active:
            raise InvalidInput(f"{sku} is not on sale")
    total = sum(sku.price_fen * quantity for sku, quantity in lines)
    if not isinstance(discount_fen, int) or discount_fen < 0 or discount_fen > total:
        raise InvalidInput("discount must be between 0 and the order total")
    if len(channel) > 64:
        raise InvalidInput("channel is too long")
    now = timezone.now()
    with transaction.atomic():
        _reserve_stock(lines)
        order = Order.objects.create(
            number=_new_number("S"),
            customer=customer,
            staff=staff,
            total_fen=total,
            discount_fen=discount_fen,
            source=source,
            channel=channel,
            expires_at=now + timedelta(minutes=settings.SIYU_SHOP_ORDER_TTL_MINUTES),
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                tenant=order.tenant,
                order=order,
                sku=sku,
                name=str(sku),
                price_fen=sku.price_fen,
                quantity=quantity,
            )
            for sku, quantity in lines
        )
        event_record(
            type=ORDER_CREATED,
            source="h5" if source == OrderSource.SHOP else source,
            customer_id=customer.pk if customer else None,
            payload={"order_id": order.pk, "total_fen": total, "staff_id": _staff_id(order)},
        )
        if order.payable_fen == 0:
            _order_paid(order=order, amount_fen=0, paid_at=now, source="system")
    return order


def order_cancel(*, order: Order, source: str = "console") -> Order:
    """Cancel an unpaid order and give its stock back."""
    with transaction.atomic():
        order_transition(order=order, to=OrderStatus.CANCELLED, cancelled_at=timezone.now())
        _release_stock(order)
        Payment.objects.filter(order=order, status=PaymentStatus.PENDING).update(
            status=PaymentStatus.CLOSED
        )
        event_record(
            type=ORDER_CANCELLED,
            source=source,
            customer_id=order.customer_id,
            payload={"order_id": order.pk},
        )
    return order


def orders_expire(*, now: datetime | None = None) -> int:
    """Cancel the tenant's unpaid orders past their deadline, closing their payments at the
    provider first so a late payment cannot land on a cancelled order."""
    now = now or timezone.now()
    cancelled = 0
    due = Order.objects.filter(status=OrderStatus.CREATED, expires_at__lte=now).order_by("pk")
    for order in due[:500]:
        try:
            _close_payments(order)
            with transaction.atomic():
                order_cancel(order=order, source="schedule")
                cart = Cart.objects.filter(order=order).first()
                if cart is not None:
                    # Went as far as paying, then walked away: the owner wants to know.
                    Cart.objects.filter(pk=cart.pk).update(status=CartStatus.ABANDONED)
                    _cart_abandoned(cart, order.payable_fen, "schedule")
        except (Conflict, ProviderError) as exc:
            # Paid meanwhile, or the provider says it is paid: the notification will settle it.
            logger.info("order %s not expired: %s", order.number, exc)
            continue
        cancelled += 1
    return cancelled


def _close_payments(order: Order) -> None:
    pending = list(Payment.objects.filter(order=order, status=PaymentStatus.PENDING))
    if not pending:
        return
    provider = provider_for(_account())
    for payment in pending:
        provider.close(payment=payment)


def _account() -> PaymentAccount:
    account = PaymentAccount.objects.filter(is_active=True).first()
    if account is None:
        raise InvalidInput("this company has not set up payments", code="payments_not_configured")
    return account


@dataclass(frozen=True)
class PaymentStart:
    payment: Payment
    # What the page hands to WeChat's JSAPI (or, in the sandbox, the pay page to open).
    params: dict[str, str]


def payment_start(*, order: Order, openid: str, notify_url: str) -> PaymentStart:
    """Create a prepay at the provider for what the order still owes."""
    if order.status != OrderStatus.CREATED:
        raise Conflict("only unpaid orders can be paid", code="illegal_transition")
    if order.expires_at is not None and order.expires_at <= timezone.now():
        raise Conflict("this order has expired", code="order_expired")
    account = _account()
    provider = provider_for(account)
    payment = Payment.objects.create(
        order=order,
        provider=account.provider,
        out_trade_no=_new_number("P"),
        amount_fen=order.payable_fen,
    )
    params = provider.create_payment(
        payment=payment, description=order.number, openid=openid, notify_url=notify_url
    )
    payment.prepay_id = params.get("prepay_id", "")
    payment.save(update_fields=["prepay_id"])
    return PaymentStart(payment=payment, params=params)


def payment_notified(*, headers: dict[str, str], body: bytes) -> Payment:
    """Handle the provider's asynchronous notification: verified, decrypted, amount-checked,
    and processed once however often it is delivered."""
    notice = provider_for(_account()).verify_notification(headers=headers, body=body)
    return payment_settle(notice=notice)


def payment_settle(*, notice: PaymentNotice) -> Payment:
    payment = (
        Payment.objects.select_related("order").filter(out_trade_no=notice.out_trade_no).first()
    )
    if payment is None:
        raise NotFound("unknown out_trade_no")
    if notice.trade_state != "SUCCESS":
        # Only success moves money; other states (USERPAYING, PAYERROR …) are informational.
        return payment
    if notice.amount_fen != payment.amount_fen:
        raise InvalidInput(
            f"paid amount {notice.amount_fen} differs from {payment.amount_fen}",
            code="amount_mismatch",
        )
    if payment.transaction_id == notice.transaction_id:
        _surplus_refunds_send(payment)  # a replay: finish what a crash may have left
        return payment
    try:
        with transaction.atomic():
            claimed = Payment.objects.filter(pk=payment.pk, transaction_id__isnull=True).update(
                status=PaymentStatus.SUCCEEDED,
                transaction_id=notice.transaction_id,
                paid_at=notice.paid_at,
            )
            if claimed != 1:
                payment.refresh_from_db()
                if payment.transaction_id != notice.transaction_id:
                    raise Conflict("this payment was settled by another transaction")
                return payment  # a concurrent delivery of the same notice won
            payment.refresh_from_db()
            order = Order.objects.get(pk=payment.order_id)
            if order.status == OrderStatus.CREATED and notice.amount_fen == order.payable_fen:
                _order_paid(
                    order=order,
                    amount_fen=notice.amount_fen,
                    paid_at=notice.paid_at,
                    source="webhook",
                )
                return payment
            # The customer paid an order that is no longer payable (cancelled, or already
            # paid by another prepay): the money goes straight back. The refund row is written
            # with the claim, so a crash before the provider call is finished by a replay.
            Refund.objects.create(
                order=order,
                payment=payment,
                out_refund_no=_new_number("R"),
                amount_fen=payment.amount_fen,
                reason="duplicate or late payment",
                is_surplus=True,
            )
    except IntegrityError:
        # The same transaction id on two of our payments: the first one owns it.
        raise Conflict("transaction already recorded") from None
    _surplus_refunds_send(payment)
    return payment


def _order_paid(*, order: Order, amount_fen: int, paid_at: datetime, source: str) -> None:
    order_transition(order=order, to=OrderStatus.PAID, paid_fen=amount_fen, paid_at=paid_at)
    paid_orders = (
        Order.objects.filter(customer_id=order.customer_id, status__in=PAID_STATUSES).count()
        if order.customer_id
        else 1
    )
    event_record(
        type=ORDER_PAID,
        source=source,
        customer_id=order.customer_id,
        payload={
            "order_id": order.pk,
            "amount_fen": amount_fen,
            "staff_id": _staff_id(order),
            "paid_orders": paid_orders,
        },
        occurred_at=paid_at,
        idempotency_key=f"order.paid:{order.pk}",
    )


def _surplus_refunds_send(payment: Payment) -> None:
    for refund in Refund.objects.filter(
        payment=payment, is_surplus=True, status=RefundStatus.PROCESSING
    ).select_related("order"):
        _refund_at_provider(refund=refund, payment=payment)


def order_refund(
    *, order: Order, amount_fen: int, reason: str, by: StaffMember | None = None
) -> Refund:
    """Give back part or all of what was paid. The amount is reserved on the order first
    (conditional on what is still refundable), then sent to the provider; a failed refund
    releases the reservation."""
    if not isinstance(amount_fen, int) or amount_fen <= 0:
        raise InvalidInput("refund amount must be a positive number of fen")
    if len(reason) > 200:
        raise InvalidInput("reason is too long")
    if order.status not in PAID_STATUSES or order.status == OrderStatus.REFUNDED:
        raise Conflict("only paid orders can be refunded", code="illegal_transition")
    with transaction.atomic():
        reserved = Order.objects.filter(
            pk=order.pk,
            status__in=PAID_STATUSES,
            refunded_fen__lte=F("paid_fen") - amount_fen,
        ).update(refunded_fen=F("refunded_fen") + amount_fen)
        if reserved != 1:
            raise InvalidInput(
                "refund exceeds what is left of the paid amount", code="refund_too_large"
            )
        order.refresh_from_db()
        payment = order.payments.filter(status=PaymentStatus.SUCCEEDED).order_by("pk").first()
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            out_refund_no=_new_number("R"),
            amount_fen=amount_fen,
            reason=reason,
            by=by,
        )
    if payment is None:
        # External orders were paid elsewhere: the refund is a record of what that shop did.
        _refund_succeeded(refund=refund, order=order)
        return refund
    _refund_at_provider(refund=refund, payment=payment)
    if refund.status == RefundStatus.SUCCEEDED:
        order.refresh_from_db()
    elif refund.status == RefundStatus.FAILED:
        raise Conflict("the payment provider refused the refund", code="refund_failed")
    return refund


def _refund_at_provider(*, refund: Refund, payment: Payment) -> None:
    try:
        result = provider_for(_account()).refund(payment=payment, refund=refund)
    except ProviderError as exc:
        logger.warning("refund %s failed: %s", refund.out_refund_no, exc)
        if not exc.transient:
            _refund_failed(refund=refund)
        # Unknown outcome: stays processing; ``refunds_retry`` asks again with the same number.
        return
    Refund.objects.filter(pk=refund.pk).update(provider_refund_id=result.refund_id)
    refund.provider_refund_id = result.refund_id
    if result.status == "SUCCESS":
        _refund_succeeded(refund=refund, order=refund.order)


def refunds_retry(*, older_than: timedelta = timedelta(minutes=1)) -> int:
    """Send again the refunds whose provider call never finished (crash, timeout, 5xx); the
    provider treats the same out_refund_no as the same refund."""
    due = Refund.objects.filter(
        status=RefundStatus.PROCESSING,
        payment__isnull=False,
        created_at__lte=timezone.now() - older_than,
    ).select_related("order", "payment")
    count = 0
    for refund in due[:100]:
        assert refund.payment is not None  # noqa: S101 (filtered above)
        _refund_at_provider(refund=refund, payment=refund.payment)
        count += 1
    return count


def _refund_succeeded(*, refund: Refund, order: Order) -> None:
    with transaction.atomic():
        done = Refund.objects.filter(pk=refund.pk, status=RefundStatus.PROCESSING).update(
            status=RefundStatus.SUCCEEDED
        )
        refund.status = RefundStatus.SUCCEEDED
        if done != 1 or refund.is_surplus:
            return
        # One UPDATE decides partial vs full from the amounts as they are now, so two refunds
        # finishing at once cannot leave a stale status.
        Order.objects.filter(pk=order.pk, status__in=PAID_STATUSES).update(
            status=Case(
                When(refunded_fen=F("paid_fen"), then=Value(OrderStatus.REFUNDED.value)),
                default=Value(OrderStatus.PARTIALLY_REFUNDED.value),
            )
        )
        order.refresh_from_db()
        event_record(
            type=ORDER_REFUNDED,
            source="system",
            customer_id=order.customer_id,
            payload={
                "order_id": order.pk,
                "amount_fen": refund.amount_fen,
                "staff_id": _staff_id(order),
            },
            idempotency_key=f"order.refunded:{refund.pk}",
        )


def _refund_failed(*, refund: Refund) -> None:
    with transaction.atomic():
        failed = Refund.objects.filter(pk=refund.pk, status=RefundStatus.PROCESSING).update(
            status=RefundStatus.FAILED
        )
        refund.status = RefundStatus.FAILED
        if failed == 1 and not refund.is_surplus:
            Order.objects.filter(pk=refund.order_id).update(
                refunded_fen=F("refunded_fen") - refund.amount_fen
            )


# --- carts, visits and the staff's shop links --------------------------------------------

SRC_PATTERN = re.compile(r"^[a-z_]{1,20}:[\w-]{1,40}$")


def staff_shop_token(*, staff: StaffMember, src: str = "") -> str:
    """The signed part of a member's shop link: who gets the credit (and through which content
    or campaign); nobody can change it without the secret key."""
    if src and not SRC_PATTERN.match(src):
        raise InvalidInput("src looks like content:12 or fission:3")
    return signing.dumps({"t": staff.tenant_id, "s": staff.pk, "c": src}, salt=LINK_SALT)


def payment_notify_url() -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse(
        "shop_hooks:payment_notify", args=[get_current_tenant().slug]
    )


def order_webhook_url(*, shop: ExternalShop) -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse(
        "shop_hooks:order_webhook", args=[get_current_tenant().slug, shop.key]
    )


def staff_shop_url(*, staff: StaffMember, product: Product | None = None, src: str = "") -> str:
    """Absolute URL of the member's shop (or one product in it), for sharing."""
    from django.urls import reverse

    token = staff_shop_token(staff=staff, src=src)
    slug = get_current_tenant().slug
    path = (
        reverse("shop_h5:product", args=[slug, token, product.pk])
        if product is not None
        else reverse("shop_h5:home", args=[slug, token])
    )
    return settings.SITE_URL + path


@dataclass(frozen=True)
class Attribution:
    staff: StaffMember | None
    src: str


def staff_shop_attribution(*, token: str) -> Attribution:
    try:
        data = signing.loads(token, salt=LINK_SALT)
    except signing.BadSignature:
        raise NotFound("this shop link is not valid") from None
    if data.get("t") != get_current_tenant().pk:
        raise NotFound("this shop link is not valid")
    staff = StaffMember.objects.filter(pk=data.get("s"), status=StaffStatus.ACTIVE).first()
    return Attribution(staff=staff, src=str(data.get("c", "")))


def product_viewed(*, customer: Customer, product: Product, staff: StaffMember | None) -> Event:
    """The visitor opened a product page; repeats within ten minutes are one view."""
    bucket = int(timezone.now().timestamp()) // 600
    return event_record(
        type=PRODUCT_VIEWED,
        source="h5",
        customer_id=customer.pk,
        payload={
            "product_id": product.pk,
            "name": product.name,
            "staff_id": staff.pk if staff else None,
        },
        idempotency_key=f"viewed:{customer.pk}:{product.pk}:{bucket}",
    )


def cart_for(*, customer: Customer, staff: StaffMember | None, src: str = "") -> Cart:
    cart = Cart.objects.filter(customer=customer, status=CartStatus.OPEN).order_by("-pk").first()
    if cart is None:
        cart = Cart.objects.create(customer=customer, staff=staff, src=src)
    elif staff is not None and (cart.staff_id != staff.pk or cart.src != src):
        # The last link followed gets the credit.
        Cart.objects.filter(pk=cart.pk).update(staff=staff, src=src)
        cart.staff, cart.src = staff, src
    return cart


def cart_set(*, cart: Cart, sku: Sku, quantity: int) -> None:
    """Put ``quantity`` of ``sku`` in the cart (0 removes it)."""
    if cart.status != CartStatus.OPEN:
        raise Conflict("this cart was checked out already")
    if not isinstance(quantity, int) or not 0 <= quantity <= MAX_LINE_QUANTITY:
        raise InvalidInput(f"quantity must be between 0 and {MAX_LINE_QUANTITY}")
    if quantity and (not sku.is_active or not sku.product.is_active):
        raise InvalidInput(f"{sku} is not on sale")
    if quantity == 0:
        CartLine.objects.filter(cart=cart, sku=sku).delete()
    else:
        CartLine.objects.update_or_create(cart=cart, sku=sku, defaults={"quantity": quantity})
    Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now())


def cart_total(cart: Cart) -> int:
    return sum(line.sku.price_fen * line.quantity for line in cart.lines.select_related("sku"))


def cart_checkout(*, cart: Cart, discount_fen: int = 0) -> Order:
    """Turn the cart into an order (stock reserved); the cart remembers it."""
    lines = [(line.sku, line.quantity) for line in cart.lines.select_related("sku__product")]
    with transaction.atomic():
        taken = Cart.objects.filter(pk=cart.pk, status=CartStatus.OPEN).update(
            status=CartStatus.ORDERED
        )
        if taken != 1:
            raise Conflict("this cart was checked out already")
        order = order_create(
            customer=cart.customer,
            staff=cart.staff,
            lines=lines,
            discount_fen=discount_fen,
            channel=cart.src,
        )
        Cart.objects.filter(pk=cart.pk).update(order=order)
    return order


def _cart_abandoned(cart: Cart, total_fen: int, source: str) -> None:
    event_record(
        type=CART_ABANDONED,
        source=source,
        customer_id=cart.customer_id,
        payload={"cart_id": cart.pk, "total_fen": total_fen, "staff_id": cart.staff_id},
        idempotency_key=f"cart.abandoned:{cart.pk}",
    )


def carts_abandon(*, now: datetime | None = None) -> int:
    """Open carts with goods left alone too long are abandoned (the owner is told)."""
    cutoff = (now or timezone.now()) - timedelta(minutes=settings.SIYU_SHOP_CART_ABANDON_MINUTES)
    count = 0
    for cart in Cart.objects.filter(status=CartStatus.OPEN, updated_at__lte=cutoff)[:500]:
        total = cart_total(cart)
        with transaction.atomic():
            if not Cart.objects.filter(pk=cart.pk, status=CartStatus.OPEN).update(
                status=CartStatus.ABANDONED
            ):
                continue
            if total:
                _cart_abandoned(cart, total, "schedule")
                count += 1
    return count


# --- setup: catalog, payment account, external shops ----------------------------------------

# First paid order → 付费, the second → 复购 (the customer core's stage keys).
DEFAULT_LIFECYCLE_RULES = ((ORDER_PAID, 1, "paid"), (ORDER_PAID, 2, "repeat"))


def lifecycle_rules_seed() -> int:
    """Give a tenant that starts selling the default order rules, unless it has its own."""
    if LifecycleRule.objects.filter(event_type=ORDER_PAID).exists():
        return 0
    order = stage_order()
    created = 0
    for event_type, min_count, stage in DEFAULT_LIFECYCLE_RULES:
        if stage in order:
            rule_create(event_type=event_type, min_count=min_count, stage=stage)
            created += 1
    return created


def product_save(
    *,
    actor: StaffMember,
    name: str,
    description: str = "",
    images: list[str] | None = None,
    is_active: bool = True,
    product: Product | None = None,
) -> Product:
    require(actor, Action.SHOP_MANAGE)
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("product names are 1–100 characters")
    images = images or []
    if len(images) > 9 or any(not URL_PATTERN.match(url) or len(url) > 500 for url in images):
        raise InvalidInput("images are up to 9 http(s) URLs")
    product = product or Product()
    product.name, product.description, product.images = name, description[:2000], images
    product.is_active = is_active
    with transaction.atomic():
        product.save()
        audit_record(
            actor=actor, action="shop.product_save", target=product, details={"name": name}
        )
    return product


def sku_save(
    *,
    actor: StaffMember,
    product: Product,
    name: str,
    price_fen: int,
    code: str = "",
    is_active: bool = True,
    sku: Sku | None = None,
) -> Sku:
    """Create or edit a SKU's name and price; stock moves only through ``stock_adjust``."""
    require(actor, Action.SHOP_MANAGE)
    if not 1 <= len(name.strip()) <= 64:
        raise InvalidInput("SKU names are 1–64 characters")
    if not isinstance(price_fen, int) or price_fen <= 0:
        raise InvalidInput("price must be a positive number of fen")
    if sku is not None and sku.product_id != product.pk:
        raise NotFound("SKU not found")
    sku = sku or Sku(product=product)
    sku.name, sku.price_fen, sku.code, sku.is_active = name.strip(), price_fen, code[:64], is_active
    with transaction.atomic():
        sku.save()
        audit_record(
            actor=actor, action="shop.sku_save", target=sku, details={"price_fen": price_fen}
        )
    return sku


def stock_adjust(*, actor: StaffMember, sku: Sku, delta: int) -> Sku:
    """Add (or with a negative delta, take out) stock; never below zero, even while orders
    reserve units at the same moment."""
    require(actor, Action.SHOP_MANAGE)
    if not isinstance(delta, int) or delta == 0 or abs(delta) > 1_000_000:
        raise InvalidInput("delta must be a non-zero whole number")
    with transaction.atomic():
        changed = Sku.objects.filter(pk=sku.pk, stock__gte=max(-delta, 0)).update(
            stock=F("stock") + delta
        )
        if changed != 1:
            raise InvalidInput("stock cannot go below zero", code="out_of_stock")
        sku.refresh_from_db()
        audit_record(actor=actor, action="shop.stock_adjust", target=sku, details={"delta": delta})
    return sku


def payment_account_configure(
    *, actor: StaffMember, mchid: str, appid: str, api_v3_key: str, api_base_url: str
) -> PaymentAccount:
    require(actor, Action.SHOP_MANAGE)
    if not re.fullmatch(r"\d{8,12}", mchid):
        raise InvalidInput("mchid (商户号) is 8–12 digits")
    if not re.fullmatch(r"wx[\w]{2,30}", appid):
        raise InvalidInput("AppID starts with wx")
    if len(api_v3_key) != 32:
        raise InvalidInput("the API v3 key is 32 characters")
    if not URL_PATTERN.match(api_base_url):
        raise InvalidInput("the API address must be an http(s) URL")
    with transaction.atomic():
        account = PaymentAccount.objects.filter().first() or PaymentAccount()
        account.mchid, account.appid, account.api_v3_key = mchid, appid, api_v3_key
        account.api_base_url, account.is_active = api_base_url, True
        account.save()
        lifecycle_rules_seed()
        audit_record(actor=actor, action="shop.payment_configure", details={"mchid": mchid})
    return account


def external_shop_create(*, actor: StaffMember, key: str, name: str) -> tuple[ExternalShop, str]:
    """Register another shop; returns it and its webhook secret (shown once)."""
    require(actor, Action.SHOP_MANAGE)
    if not re.fullmatch(r"[a-z][a-z0-9_-]{1,31}", key):
        raise InvalidInput("key: 2–32 lower-case letters, digits, - or _")
    if not 1 <= len(name.strip()) <= 64:
        raise InvalidInput("names are 1–64 characters")
    if ExternalShop.objects.filter(key=key).exists():
        raise Conflict(f"a shop with key {key!r} exists already")
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        shop = ExternalShop.objects.create(key=key, name=name.strip(), secret=secret)
        lifecycle_rules_seed()
        audit_record(actor=actor, action="shop.external_create", target=shop, details={"key": key})
    return shop, secret
