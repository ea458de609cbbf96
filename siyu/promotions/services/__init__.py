"""Writes of promotions, by sub-domain; the names other apps call are re-exported here."""

from siyu.promotions.services.commissions import (
    commission_on_paid,
    commission_on_refunded,
    commission_rule_set,
    sharer_link_ensure,
)
from siyu.promotions.services.coupons import (
    CouponQuote,
    coupon_apply,
    coupon_claim,
    coupon_discount,
    coupon_issue,
    coupon_order_place,
    coupon_quote,
    coupon_template_create,
    coupon_template_update,
    coupon_void,
    redemption_release,
    redemption_settle_paid,
)
from siyu.promotions.services.groupbuy import (
    groupbuy_campaign_create,
    member_cancelled,
    member_paid,
    member_refund,
    team_fail,
    team_join,
    team_open,
    teams_expire,
)

__all__ = [
    "CouponQuote",
    "commission_on_paid",
    "commission_on_refunded",
    "commission_rule_set",
    "coupon_apply",
    "coupon_claim",
    "coupon_discount",
    "coupon_issue",
    "coupon_order_place",
    "coupon_quote",
    "coupon_template_create",
    "coupon_template_update",
    "coupon_void",
    "groupbuy_campaign_create",
    "member_cancelled",
    "member_paid",
    "member_refund",
    "redemption_release",
    "redemption_settle_paid",
    "sharer_link_ensure",
    "team_fail",
    "team_join",
    "team_open",
    "teams_expire",
]
