"""Promotion events on the customer's timeline: coupons received and used, group-buys."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

COUPON_ISSUED = event_type("coupon.issued", _("获得优惠券"))
COUPON_REDEEMED = event_type("coupon.redeemed", _("使用优惠券"))
COUPON_RELEASED = event_type("coupon.released", _("优惠券退回"))
GROUPBUY_JOINED = event_type("groupbuy.joined", _("参加拼团"))
GROUPBUY_SUCCEEDED = event_type("groupbuy.succeeded", _("拼团成功"))
GROUPBUY_FAILED = event_type("groupbuy.failed", _("拼团失败"))
