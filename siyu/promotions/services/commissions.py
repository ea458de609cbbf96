"""Distribution (分销): commission rules and tiers, and the commission ledger.

Who earns: an order placed through a customer agent's share link (``channel="sharer:<code>"``)
earns the agent rule; any other order with a staff member earns the staff rule. The rate is
the rule's base rate, raised by the highest tier whose threshold the sharer's sales this month
(this order included) reach; it is fixed when the payment is first seen (tiers are not
retroactive).

How much: ``commission = paid × rate`` (floored to the fen), and after refunds
``commission × (paid − refunded) / paid`` (floored). Each ``order.paid`` / ``order.refunded``
event moves the order's commission to that target and writes the difference to the ledger, in
one transaction under the order's commission row lock; ledger rows are unique per event. So a
duplicate event changes nothing, a refund seen before its payment is still counted, and a full
refund after partial ones reverses exactly what was earned.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.core.errors import InvalidInput
from siyu.customers.models import Customer
from siyu.promotions.models import (
    CommissionEntry,
    CommissionRule,
    CommissionTier,
    EntryKind,
    OrderCommission,
    SharerKind,
    SharerLink,
)
from siyu.shop.models import Order

MAX_TIERS = 10
MAX_RATE_BP = 5000  # 50 %: anything above is a typo, not a commission
SHARER_PREFIX = "sharer:"


def _period(at: datetime) -> date:
    return timezone.localtime(at).date().replace(day=1)


def _rate(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_RATE_BP:
        raise InvalidInput(
            _("%(what)s须为 0 到 %(max)s 之间的整数（万分之）")
            % {"what": what, "max": MAX_RATE_BP},
            code="invalid_rate",
        )
    return value


def commission_rule_set(
    *, sharer_kind: str, rate_bp: int, tiers: list[dict[str, int]], is_active: bool = True
) -> CommissionRule:
    """Replace the rule of one sharer kind and its tiers. Thresholds are monthly sales in fen;
    a higher threshold must not pay a lower rate."""
    if sharer_kind not in SharerKind.values:
        raise InvalidInput(_("未知的分享人类型 %(kind)s") % {"kind": sharer_kind})
    _rate(rate_bp, _("基础佣金比例"))
    if len(tiers) > MAX_TIERS:
        raise InvalidInput(_("最多设置 %(max)s 档阶梯") % {"max": MAX_TIERS})
    clean: list[tuple[int, int]] = []
    for tier in tiers:
        threshold = tier.get("min_sales_fen")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise InvalidInput(_("阶梯门槛须为正整数（分）"), code="invalid_tier")
        clean.append((threshold, _rate(tier.get("rate_bp"), _("阶梯佣金比例"))))
    clean.sort()
    if len({t for t, _r in clean}) != len(clean):
        raise InvalidInput(_("阶梯门槛不能重复"), code="invalid_tier")
    rates = [rate_bp] + [r for _t, r in clean]
    if rates != sorted(rates):
        raise InvalidInput(_("阶梯越高，佣金比例不能越低"), code="invalid_tier")
    with transaction.atomic():
        rule, _created = CommissionRule.objects.update_or_create(
            sharer_kind=sharer_kind, defaults={"rate_bp": rate_bp, "is_active": is_active}
        )
        rule.tiers.all().delete()
        CommissionTier.objects.bulk_create(
            CommissionTier(tenant=rule.tenant, rule=rule, min_sales_fen=t, rate_bp=r)
            for t, r in clean
        )
    return rule


def sharer_link_ensure(*, customer: Customer) -> SharerLink:
    """The agent's share code (created once): orders through it earn the agent commission."""
    link = SharerLink.objects.filter(customer=customer).first()
    if link is not None:
        return link
    try:
        with transaction.atomic():
            return SharerLink.objects.create(customer=customer, code=secrets.token_hex(6))
    except IntegrityError:
        return SharerLink.objects.get(customer=customer)


def _sharer(order: Order) -> tuple[str, int | None, int | None]:
    """(kind, staff id, agent customer id) of whoever the order is attributed to."""
    if order.channel.startswith(SHARER_PREFIX):
        code = order.channel.removeprefix(SHARER_PREFIX)
        link = SharerLink.objects.filter(code=code, is_active=True).first()
        # An agent buying through their own link earns nothing on it.
        if link is not None and link.customer_id != order.customer_id:
            return SharerKind.AGENT, None, link.customer_id
    if order.staff_id is not None:
        return SharerKind.STAFF, order.staff_id, None
    return "", None, None


def _period_sales(kind: str, staff_id: int | None, agent_id: int | None, period: date) -> int:
    earlier = OrderCommission.objects.filter(sharer_kind=kind, period=period)
    earlier = earlier.filter(staff_id=staff_id) if staff_id else earlier.filter(agent_id=agent_id)
    total = earlier.aggregate(s=Sum(F("paid_fen") - F("refunded_fen")))["s"]
    return int(total or 0)


def _rate_for(kind: str, sales_fen: int) -> int:
    rule = CommissionRule.objects.filter(sharer_kind=kind, is_active=True).first()
    if rule is None:
        return 0
    tier = rule.tiers.filter(min_sales_fen__lte=sales_fen).order_by("-min_sales_fen").first()
    return tier.rate_bp if tier is not None else rule.rate_bp


def _target(row: OrderCommission) -> int:
    if not row.paid_fen or not row.rate_bp:
        return 0
    earned = row.paid_fen * row.rate_bp // 10000
    return earned * (row.paid_fen - row.refunded_fen) // row.paid_fen


def _locked_row(order: Order) -> OrderCommission:
    try:
        with transaction.atomic():
            OrderCommission.objects.get_or_create(order=order)
    except IntegrityError:
        pass  # a concurrent event created it
    return OrderCommission.objects.select_for_update().get(order=order)


def _move(row: OrderCommission, *, event_id: int, kind: str, base_fen: int, at: datetime) -> None:
    """Bring the row's commission to its target, writing the difference to the ledger."""
    target = _target(row)
    delta = target - row.commission_fen
    row.commission_fen = target
    row.save(
        update_fields=[
            "sharer_kind",
            "staff",
            "agent",
            "rate_bp",
            "paid_fen",
            "refunded_fen",
            "commission_fen",
            "period",
            "paid_event_id",
        ]
    )
    CommissionEntry.objects.create(
        commission=row,
        event_id=event_id,
        kind=kind,
        sharer_kind=row.sharer_kind,
        staff_id=row.staff_id,
        agent_id=row.agent_id,
        base_fen=base_fen,
        amount_fen=delta,
        period=_period(at),
        at=at,
    )


def commission_on_paid(*, order_id: int, event_id: int, at: datetime) -> CommissionEntry | None:
    """``order.paid``: fix the sharer and rate of the order and accrue its commission."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None or not order.paid_fen:
        return None
    with transaction.atomic():
        if CommissionEntry.objects.filter(event_id=event_id).exists():
            return None
        row = _locked_row(order)
        if row.paid_event_id is not None:
            return None  # a second payment event of the same order: accrued once already
        kind, staff_id, agent_id = _sharer(order)
        if not kind:
            return None
        period = _period(at)
        sales = _period_sales(kind, staff_id, agent_id, period) + order.paid_fen
        row.sharer_kind, row.staff_id, row.agent_id = kind, staff_id, agent_id
        row.rate_bp = _rate_for(kind, sales)
        row.paid_fen = order.paid_fen
        row.refunded_fen = min(row.refunded_fen, row.paid_fen)
        row.period = period
        row.paid_event_id = event_id
        _move(row, event_id=event_id, kind=EntryKind.ACCRUAL, base_fen=order.paid_fen, at=at)
        return CommissionEntry.objects.get(event_id=event_id)


def commission_on_refunded(
    *, order_id: int, event_id: int, amount_fen: int, at: datetime
) -> CommissionEntry | None:
    """``order.refunded`` (one refund of ``amount_fen``): lower the commission in proportion.
    A refund seen before the payment is remembered and counted when the payment arrives."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None or amount_fen <= 0 or not _sharer(order)[0]:
        return None
    with transaction.atomic():
        if CommissionEntry.objects.filter(event_id=event_id).exists():
            return None
        row = _locked_row(order)
        refunded = row.refunded_fen + amount_fen
        # The shop never refunds more than was paid; the ledger holds that line regardless.
        row.refunded_fen = min(refunded, row.paid_fen) if row.paid_fen else refunded
        _move(row, event_id=event_id, kind=EntryKind.REVERSAL, base_fen=-amount_fen, at=at)
        return CommissionEntry.objects.get(event_id=event_id)
