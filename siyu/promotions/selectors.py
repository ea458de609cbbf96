"""Reads of promotions: coupons, group-buy teams and the commission ledger and statements."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, can, require, restrict
from siyu.core.errors import NotFound
from siyu.promotions.models import (
    CommissionEntry,
    CommissionRule,
    Coupon,
    CouponRedemption,
    CouponStatus,
    CouponTemplate,
    EntryKind,
    GroupBuyCampaign,
    GroupBuyTeam,
)


def coupon_template_usable(*, template_id: int) -> bool:
    return CouponTemplate.objects.filter(pk=template_id, is_active=True).exists()


def coupon_template_choices() -> QuerySet[CouponTemplate]:
    """Active templates a fission coupon tier may hand out (the fission form's choices)."""
    return CouponTemplate.objects.filter(is_active=True).order_by("-pk")


def coupon_templates(*, staff: StaffMember) -> QuerySet[CouponTemplate]:
    require(staff, Action.PROMOTIONS_MANAGE)
    return CouponTemplate.objects.annotate(
        used=Count("coupons", filter=Q(coupons__status=CouponStatus.USED))
    ).order_by("-pk")


def access_coupon_template(staff: StaffMember, template_id: int) -> CouponTemplate:
    template = coupon_templates(staff=staff).filter(pk=template_id).first()
    if template is None:
        raise NotFound("coupon template not found")
    return template


def coupons(
    *,
    staff: StaffMember,
    template_id: int | None = None,
    customer_id: int | None = None,
    status: str | None = None,
) -> QuerySet[Coupon]:
    require(staff, Action.PROMOTIONS_MANAGE)
    rows = Coupon.objects.select_related("template", "customer").order_by("-pk")
    if template_id is not None:
        rows = rows.filter(template_id=template_id)
    if customer_id is not None:
        rows = rows.filter(customer_id=customer_id)
    if status:
        rows = rows.filter(status=status)
    return rows


def coupon_is_expired(coupon: Coupon) -> bool:
    return coupon.status == CouponStatus.AVAILABLE and coupon.valid_until <= timezone.now()


def redemptions(
    *, staff: StaffMember, template_id: int | None = None
) -> QuerySet[CouponRedemption]:
    require(staff, Action.PROMOTIONS_MANAGE)
    rows = CouponRedemption.objects.select_related("coupon__template", "order", "customer")
    if template_id is not None:
        rows = rows.filter(coupon__template_id=template_id)
    return rows.order_by("-pk")


def groupbuy_campaigns(*, staff: StaffMember) -> QuerySet[GroupBuyCampaign]:
    require(staff, Action.PROMOTIONS_MANAGE)
    return GroupBuyCampaign.objects.select_related("sku__product").annotate(
        team_count=Count("teams")
    )


def access_groupbuy_campaign(staff: StaffMember, campaign_id: int) -> GroupBuyCampaign:
    campaign = groupbuy_campaigns(staff=staff).filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound("group-buy campaign not found")
    return campaign


def groupbuy_teams(*, campaign: GroupBuyCampaign) -> QuerySet[GroupBuyTeam]:
    return (
        GroupBuyTeam.objects.filter(campaign=campaign)
        .select_related("leader")
        .prefetch_related("members__customer")
        .order_by("-pk")
    )


def commission_rules() -> list[CommissionRule]:
    return list(CommissionRule.objects.prefetch_related("tiers").order_by("sharer_kind"))


def commission_entries(
    *, staff: StaffMember, period: date | None = None, staff_id: int | None = None
) -> QuerySet[CommissionEntry]:
    """Ledger rows the member may see: their own (and their scope's) staff commissions;
    promotion managers also see customer agents'."""
    rows = CommissionEntry.objects.exclude(amount_fen=0).select_related(
        "staff", "agent", "commission__order"
    )
    if not can(staff, Action.PROMOTIONS_MANAGE):
        rows = restrict(
            rows.filter(staff__isnull=False), staff, Action.COMMISSIONS_VIEW, owner_field="staff_id"
        )
    else:
        require(staff, Action.COMMISSIONS_VIEW)
    if period is not None:
        rows = rows.filter(period=period)
    if staff_id is not None:
        rows = rows.filter(staff_id=staff_id)
    return rows.order_by("-at", "-pk")


def commission_statements(
    *, staff: StaffMember, period: date | None = None
) -> list[dict[str, Any]]:
    """Per sharer and month: accrued, reversed, net and the number of orders."""
    rows = (
        commission_entries(staff=staff, period=period)
        .order_by()
        .values("period", "sharer_kind", "staff_id", "staff__name", "agent_id", "agent__name")
        .annotate(
            accrued_fen=Sum("amount_fen", filter=Q(kind=EntryKind.ACCRUAL)),
            reversed_fen=Sum("amount_fen", filter=Q(kind=EntryKind.REVERSAL)),
            net_fen=Sum("amount_fen"),
            orders=Count("commission", distinct=True),
        )
        .order_by("-period", "sharer_kind", "staff_id", "agent_id")
    )
    return [
        {
            "period": row["period"],
            "sharer_kind": row["sharer_kind"],
            "staff_id": row["staff_id"],
            "agent_id": row["agent_id"],
            "name": row["staff__name"] or row["agent__name"] or "",
            "accrued_fen": row["accrued_fen"] or 0,
            "reversed_fen": row["reversed_fen"] or 0,
            "net_fen": row["net_fen"] or 0,
            "orders": row["orders"],
        }
        for row in rows
    ]
