"""Coupons: templates, issuing and claiming, redemption on an order, release and expiry.

Redemption happens inside the shop's order transaction: the checkout asks ``coupon_quote`` for
the discount, places the order with it, then ``coupon_apply`` flips the coupon
``available → reserved`` by a conditional UPDATE (of two orders racing for one coupon exactly
one wins; the loser's whole order rolls back). Payment makes it ``used``; cancelling the order
before payment gives it back (``available``). A refund does not: the coupon was spent on a sale
that happened, and handing it back would let a refund-and-reorder loop stack discounts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.services import event_record
from siyu.customers.models import Customer
from siyu.promotions import events
from siyu.promotions.models import (
    Coupon,
    CouponKind,
    CouponRedemption,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    RedemptionStatus,
)
from siyu.shop.models import Order, OrderStatus

MAX_STOCK = 10_000_000
MAX_AMOUNT_FEN = 100_000_000  # ¥1,000,000
MAX_VALID_DAYS = 3650
MAX_PER_CUSTOMER = 100


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and timezone.is_naive(value):
        raise InvalidInput(_("%(what)s 需要带时区的时间") % {"what": what})
    return value


def _check_template(template: CouponTemplate) -> None:
    """Refuse a template that could take off more than it should or never be valid."""
    if not template.name.strip() or len(template.name) > 64:
        raise InvalidInput(_("请填写券名称（不超过 64 字）"))
    if template.kind == CouponKind.AMOUNT:
        if not 1 <= template.amount_off_fen <= MAX_AMOUNT_FEN:
            raise InvalidInput(_("减免金额须大于 0"), code="invalid_amount")
        if template.percent_off or template.max_off_fen:
            raise InvalidInput(_("满减券不设折扣比例与最高减免"))
    elif template.kind == CouponKind.PERCENT:
        if not 1 <= template.percent_off <= 99:
            raise InvalidInput(_("减免比例须在 1% 到 99% 之间"), code="invalid_percent")
        if template.amount_off_fen:
            raise InvalidInput(_("折扣券不设减免金额"))
        if not 0 <= template.max_off_fen <= MAX_AMOUNT_FEN:
            raise InvalidInput(_("最高减免金额无效"))
    else:
        raise InvalidInput(_("未知的券类型 %(kind)s") % {"kind": template.kind})
    if not 0 <= template.min_spend_fen <= MAX_AMOUNT_FEN:
        raise InvalidInput(_("使用门槛无效"))
    if (
        template.kind == CouponKind.AMOUNT
        and template.min_spend_fen
        and template.amount_off_fen > template.min_spend_fen
    ):
        raise InvalidInput(_("减免金额不能高于使用门槛"))
    _aware(template.valid_from, _("生效时间"))
    _aware(template.valid_until, _("失效时间"))
    if template.valid_days is not None:
        if template.valid_until is not None:
            raise InvalidInput(_("固定有效期与领取后天数只能选一种"), code="invalid_validity")
        if not 1 <= template.valid_days <= MAX_VALID_DAYS:
            raise InvalidInput(_("领取后有效天数须在 1 到 %(max)s 之间") % {"max": MAX_VALID_DAYS})
    elif template.valid_until is None:
        raise InvalidInput(_("请设置失效时间或领取后有效天数"), code="invalid_validity")
    if (
        template.valid_from is not None
        and template.valid_until is not None
        and template.valid_until <= template.valid_from
    ):
        raise InvalidInput(_("失效时间必须晚于生效时间"), code="invalid_validity")
    if not template.issued <= template.total_stock <= MAX_STOCK or template.total_stock < 1:
        raise InvalidInput(_("发行总量须至少 1 张，且不少于已发放数量"), code="invalid_stock")
    if not 1 <= template.per_customer_limit <= MAX_PER_CUSTOMER:
        raise InvalidInput(_("每人限领须在 1 到 %(max)s 张之间") % {"max": MAX_PER_CUSTOMER})


def coupon_template_create(
    *,
    actor: StaffMember | None,
    name: str,
    kind: str,
    total_stock: int,
    amount_off_fen: int = 0,
    percent_off: int = 0,
    max_off_fen: int = 0,
    min_spend_fen: int = 0,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    valid_days: int | None = None,
    per_customer_limit: int = 1,
    claimable: bool = False,
) -> CouponTemplate:
    template = CouponTemplate(
        name=name.strip(),
        kind=kind,
        amount_off_fen=amount_off_fen,
        percent_off=percent_off,
        max_off_fen=max_off_fen,
        min_spend_fen=min_spend_fen,
        valid_from=valid_from,
        valid_until=valid_until,
        valid_days=valid_days,
        total_stock=total_stock,
        per_customer_limit=per_customer_limit,
        claimable=claimable,
        created_by=actor,
    )
    _check_template(template)
    template.save()
    return template


def coupon_template_update(
    *,
    template: CouponTemplate,
    name: str | None = None,
    total_stock: int | None = None,
    claimable: bool | None = None,
    is_active: bool | None = None,
) -> CouponTemplate:
    """Change what does not alter coupons already issued: the name, the stock (never below
    what was issued), whether customers may claim it, whether it is active."""
    with transaction.atomic():
        locked = CouponTemplate.objects.select_for_update().get(pk=template.pk)
        if name is not None:
            locked.name = name.strip()
        if total_stock is not None:
            locked.total_stock = total_stock
        if claimable is not None:
            locked.claimable = claimable
        if is_active is not None:
            locked.is_active = is_active
        _check_template(locked)
        locked.save(update_fields=["name", "total_stock", "claimable", "is_active"])
    return locked


def _validity(template: CouponTemplate, now: datetime) -> tuple[datetime, datetime]:
    if template.valid_days is not None:
        return now, now + timedelta(days=template.valid_days)
    if template.valid_until is None:
        raise InvalidInput(_("请设置失效时间或领取后有效天数"), code="invalid_validity")
    return template.valid_from or now, template.valid_until


def coupon_issue(
    *,
    template: CouponTemplate,
    customer: Customer,
    source: str,
    source_key: str | None = None,
    issued_by: StaffMember | None = None,
    event_source: str = "system",
) -> Coupon:
    """Give ``customer`` one coupon of ``template``.

    With a ``source_key`` (a fission grant, an SOP step) a repeat returns the first coupon.
    The stock is cut by a conditional UPDATE and the per-customer limit is the unique
    (template, customer, seq) row, so concurrent claims never exceed either.
    """
    if source not in CouponSource.values:
        raise InvalidInput(f"unknown coupon source {source!r}")
    if source_key is not None:
        known = Coupon.objects.filter(source_key=source_key).first()
        if known is not None:
            return known
    now = timezone.now()
    if not template.is_active:
        raise Conflict(_("该优惠券已停用"), code="coupon_inactive")
    if template.valid_until is not None and template.valid_until <= now:
        raise Conflict(_("该优惠券已过期"), code="coupon_expired")
    valid_from, valid_until = _validity(template, now)
    # A concurrent issue to the same customer may take the seq we counted: count again.
    for _attempt in range(3):
        held = Coupon.objects.filter(template=template, customer=customer).count()
        if held >= template.per_customer_limit:
            break
        try:
            with transaction.atomic():
                coupon = Coupon.objects.create(
                    template=template,
                    customer=customer,
                    seq=held + 1,
                    code=secrets.token_hex(8).upper(),
                    source=source,
                    source_key=source_key,
                    issued_by=issued_by,
                    valid_from=valid_from,
                    valid_until=valid_until,
                )
                taken = CouponTemplate.objects.filter(
                    pk=template.pk, is_active=True, issued__lt=F("total_stock")
                ).update(issued=F("issued") + 1)
                if taken != 1:
                    raise Conflict(_("优惠券已领完"), code="coupon_out_of_stock")
                event_record(
                    type=events.COUPON_ISSUED,
                    source=event_source,
                    customer_id=customer.pk,
                    payload={
                        "coupon_id": coupon.pk,
                        "template_id": template.pk,
                        "name": template.name,
                        "source": source,
                    },
                )
            return coupon
        except IntegrityError:
            if source_key is not None:
                known = Coupon.objects.filter(source_key=source_key).first()
                if known is not None:
                    return known
    raise Conflict(
        _("每人限领 %(n)s 张，已达上限") % {"n": template.per_customer_limit},
        code="coupon_limit",
    )


def coupon_claim(*, template: CouponTemplate, customer: Customer) -> Coupon:
    """The customer claims a coupon on the H5 claim page."""
    if not template.claimable:
        raise NotFound(_("优惠券不存在"))
    return coupon_issue(
        template=template, customer=customer, source=CouponSource.CLAIM, event_source="h5"
    )


def coupon_discount(*, template: CouponTemplate, subtotal_fen: int) -> int:
    """What ``template`` takes off an order of ``subtotal_fen``: never more than the order."""
    if subtotal_fen < template.min_spend_fen:
        raise InvalidInput(
            _("订单满 %(min)s 元才能使用此券") % {"min": f"{template.min_spend_fen / 100:.2f}"},
            code="coupon_min_spend",
        )
    if template.kind == CouponKind.AMOUNT:
        off = template.amount_off_fen
    else:
        off = subtotal_fen * template.percent_off // 100
        if template.max_off_fen:
            off = min(off, template.max_off_fen)
    return min(off, subtotal_fen)


@dataclass(frozen=True)
class CouponQuote:
    coupon: Coupon
    discount_fen: int


def _usable(code: str, customer: Customer) -> Coupon:
    code = (code or "").strip().upper()
    coupon = (
        Coupon.objects.select_related("template").filter(code=code, customer=customer).first()
        if code and len(code) <= 20
        else None
    )
    if coupon is None:
        raise NotFound(_("优惠券不存在"))
    now = timezone.now()
    if coupon.status == CouponStatus.VOID:
        raise Conflict(_("该优惠券已作废"), code="coupon_void")
    if coupon.status != CouponStatus.AVAILABLE:
        raise Conflict(_("该优惠券已使用"), code="coupon_used")
    if now < coupon.valid_from:
        raise Conflict(_("该优惠券尚未生效"), code="coupon_not_yet_valid")
    if now >= coupon.valid_until:
        raise Conflict(_("该优惠券已过期"), code="coupon_expired")
    return coupon


def coupon_quote(*, code: str, customer: Customer, subtotal_fen: int) -> CouponQuote:
    """Check that ``customer`` may use coupon ``code`` on an order of ``subtotal_fen`` now, and
    what it takes off. Changes nothing: the checkout passes the discount to ``order_create``."""
    coupon = _usable(code, customer)
    return CouponQuote(
        coupon=coupon,
        discount_fen=coupon_discount(template=coupon.template, subtotal_fen=subtotal_fen),
    )


def coupon_apply(*, code: str, customer: Customer, order: Order) -> CouponRedemption:
    """Redeem coupon ``code`` on ``order``, inside the transaction that placed the order.

    The order must belong to ``customer`` and carry exactly this coupon's discount (money is
    never taken on trust). Raises ``Conflict`` when another order got the coupon first; the
    caller's transaction then rolls the order back.
    """
    if order.customer_id != customer.pk:
        raise InvalidInput(_("订单与优惠券不属于同一客户"))
    if order.status not in (OrderStatus.CREATED, OrderStatus.PAID) or order.paid_fen:
        raise Conflict(_("只能在下单时使用优惠券"), code="coupon_order_state")
    quote = coupon_quote(code=code, customer=customer, subtotal_fen=order.total_fen)
    if quote.discount_fen != order.discount_fen:
        raise InvalidInput(
            _("订单优惠金额与优惠券不符"),
            code="coupon_discount_mismatch",
            details={"expected_fen": quote.discount_fen, "order_fen": order.discount_fen},
        )
    # An order paid at creation (the coupon covered it all) uses the coupon at once.
    paid = order.status == OrderStatus.PAID
    target = CouponStatus.USED if paid else CouponStatus.RESERVED
    try:
        with transaction.atomic():
            taken = Coupon.objects.filter(pk=quote.coupon.pk, status=CouponStatus.AVAILABLE).update(
                status=target
            )
            if taken != 1:
                raise Conflict(_("该优惠券已使用"), code="coupon_used")
            redemption = CouponRedemption.objects.create(
                coupon=quote.coupon,
                order=order,
                customer=customer,
                discount_fen=quote.discount_fen,
                status=RedemptionStatus.USED if paid else RedemptionStatus.RESERVED,
                settled_at=timezone.now() if paid else None,
            )
    except IntegrityError:
        raise Conflict(_("该订单已使用过优惠券"), code="coupon_order_taken") from None
    event_record(
        type=events.COUPON_REDEEMED,
        source="h5",
        customer_id=customer.pk,
        payload={
            "coupon_id": quote.coupon.pk,
            "order_id": order.pk,
            "discount_fen": quote.discount_fen,
        },
    )
    return redemption


def coupon_order_place(
    *, code: str, customer: Customer, subtotal_fen: int, place: Callable[[int], Order]
) -> Order:
    """The checkout's one call: ``place(discount_fen)`` creates the order (the shop's
    ``order_create`` or ``cart_checkout``); with a coupon ``code`` the discount is quoted first
    and the coupon redeemed in the same transaction, so a refused coupon leaves no order."""
    code = (code or "").strip()
    if not code:
        return place(0)
    with transaction.atomic():
        quote = coupon_quote(code=code, customer=customer, subtotal_fen=subtotal_fen)
        order = place(quote.discount_fen)
        coupon_apply(code=code, customer=customer, order=order)
    return order


def redemption_settle_paid(*, order_id: int) -> bool:
    """The order was paid: its reserved coupon is used for good."""
    redemption = CouponRedemption.objects.filter(
        order_id=order_id, status=RedemptionStatus.RESERVED
    ).first()
    if redemption is None:
        return False
    now = timezone.now()
    moved = CouponRedemption.objects.filter(
        pk=redemption.pk, status=RedemptionStatus.RESERVED
    ).update(status=RedemptionStatus.USED, settled_at=now)
    if moved:
        Coupon.objects.filter(pk=redemption.coupon_id, status=CouponStatus.RESERVED).update(
            status=CouponStatus.USED
        )
    return bool(moved)


def redemption_release(*, order_id: int) -> bool:
    """The order was cancelled before payment: the coupon goes back to its holder. The order
    is re-read, so a late or replayed event cannot release a coupon of a paid order."""
    order = Order.objects.filter(pk=order_id).only("status", "paid_at").first()
    if order is None or order.status != OrderStatus.CANCELLED or order.paid_at is not None:
        return False
    redemption = CouponRedemption.objects.filter(
        order_id=order_id, status=RedemptionStatus.RESERVED
    ).first()
    if redemption is None:
        return False
    with transaction.atomic():
        moved = CouponRedemption.objects.filter(
            pk=redemption.pk, status=RedemptionStatus.RESERVED
        ).update(status=RedemptionStatus.RELEASED, settled_at=timezone.now())
        if not moved:
            return False
        Coupon.objects.filter(pk=redemption.coupon_id, status=CouponStatus.RESERVED).update(
            status=CouponStatus.AVAILABLE
        )
        event_record(
            type=events.COUPON_RELEASED,
            source="system",
            customer_id=redemption.customer_id,
            payload={"coupon_id": redemption.coupon_id, "order_id": order_id},
        )
    return True


def coupon_void(*, coupon: Coupon) -> Coupon:
    """An operator withdraws an unused coupon (issued by mistake)."""
    voided = Coupon.objects.filter(pk=coupon.pk, status=CouponStatus.AVAILABLE).update(
        status=CouponStatus.VOID
    )
    if voided != 1:
        raise Conflict(_("只能作废未使用的优惠券"), code="coupon_used")
    coupon.status = CouponStatus.VOID
    return coupon
