"""Promotions: coupons, group-buys (拼团) and distribution commissions (分销).

Every count and every fen here changes by a conditional UPDATE or under a unique constraint:
- a template's stock is cut by ``issued < total_stock``; a customer's n-th coupon of a template
  is the row (template, customer, seq=n) with n ≤ the per-customer limit, so two concurrent
  claims of the last allowed coupon collide on the constraint;
- a coupon is redeemed by ``status=available → reserved`` (one wins), and one active
  redemption per coupon and per order is a partial unique constraint;
- a team's seats are taken by ``seats_taken < size``; a member is refunded by the shop's
  conditional refund reservation, so a retry finds nothing left to refund;
- a commission moves once per event: ledger rows are unique on the event id.
"""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel

# --- coupons -------------------------------------------------------------------------------


class CouponKind(models.TextChoices):
    AMOUNT = "amount", _("满减券")
    PERCENT = "percent", _("折扣券")


class CouponTemplate(TenantModel):
    name = models.CharField(_("名称"), max_length=64)
    kind = models.CharField(_("类型"), max_length=8, choices=CouponKind.choices)
    amount_off_fen = models.PositiveIntegerField(_("减免金额（分）"), default=0)
    percent_off = models.PositiveSmallIntegerField(_("减免比例（%）"), default=0)
    # The most a percent coupon takes off; 0 means no cap.
    max_off_fen = models.PositiveIntegerField(_("最高减免（分）"), default=0)
    min_spend_fen = models.PositiveIntegerField(_("使用门槛（分）"), default=0)
    # Validity: a fixed window (valid_from … valid_until) or ``valid_days`` after the claim.
    valid_from = models.DateTimeField(_("生效时间"), null=True, blank=True)
    valid_until = models.DateTimeField(_("失效时间"), null=True, blank=True)
    valid_days = models.PositiveIntegerField(_("领取后有效天数"), null=True, blank=True)
    total_stock = models.PositiveIntegerField(_("发行总量"))
    issued = models.PositiveIntegerField(_("已发放"), default=0)
    per_customer_limit = models.PositiveSmallIntegerField(_("每人限领"), default=1)
    # Customers may claim it themselves on the H5 claim page.
    claimable = models.BooleanField(_("开放领取"), default=False)
    is_active = models.BooleanField(_("启用"), default=True)
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(issued__lte=F("total_stock")), name="promo_template_stock"
            ),
            models.CheckConstraint(
                condition=Q(percent_off__lte=100), name="promo_template_percent"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CouponSource(models.TextChoices):
    OPERATOR = "operator", _("运营发放")
    SOP = "sop", _("SOP 发放")
    FISSION = "fission", _("裂变奖励")
    CLAIM = "claim", _("客户领取")


class CouponStatus(models.TextChoices):
    AVAILABLE = "available", _("未使用")
    RESERVED = "reserved", _("下单锁定")
    USED = "used", _("已使用")
    VOID = "void", _("已作废")


class Coupon(TenantModel):
    """One coupon held by one customer (a grant of a template)."""

    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="coupons")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    # This customer's n-th coupon of the template: the per-customer limit as a constraint.
    seq = models.PositiveSmallIntegerField()
    code = models.CharField(_("券码"), max_length=20, unique=True)
    source = models.CharField(_("来源"), max_length=16, choices=CouponSource.choices)
    # Idempotency of issuing: "fission:<grant id>", "sop:<run>" …; one coupon per key.
    source_key = models.CharField(max_length=100, null=True, blank=True)
    issued_by = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        _("状态"), max_length=16, choices=CouponStatus.choices, default=CouponStatus.AVAILABLE
    )
    valid_from = models.DateTimeField(_("生效时间"))
    valid_until = models.DateTimeField(_("失效时间"))
    issued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "customer", "seq"], name="promo_coupon_per_customer"
            ),
            models.UniqueConstraint(
                fields=["tenant", "source_key"],
                condition=Q(source_key__isnull=False),
                name="promo_coupon_source_once",
            ),
        ]
        indexes = [models.Index(fields=["customer", "status"], name="promo_coupon_holder")]

    def __str__(self) -> str:
        return self.code


class RedemptionStatus(models.TextChoices):
    RESERVED = "reserved", _("待付款")
    USED = "used", _("已核销")
    RELEASED = "released", _("已释放")


class CouponRedemption(TenantModel):
    """A coupon applied to an order. Released (and the coupon available again) when the order
    is cancelled before payment; once paid it stays used, refunds included."""

    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="redemptions")
    order = models.ForeignKey("shop.Order", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    discount_fen = models.PositiveIntegerField(_("优惠（分）"))
    status = models.CharField(
        _("状态"),
        max_length=16,
        choices=RedemptionStatus.choices,
        default=RedemptionStatus.RESERVED,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["coupon"],
                condition=~Q(status="released"),
                name="promo_redemption_coupon_once",
            ),
            models.UniqueConstraint(
                fields=["order"],
                condition=~Q(status="released"),
                name="promo_redemption_order_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.coupon_id}→{self.order_id}"


# --- group-buy (拼团) -----------------------------------------------------------------------


class GroupBuyCampaign(TenantModel):
    name = models.CharField(_("名称"), max_length=64)
    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="+")
    group_size = models.PositiveSmallIntegerField(_("成团人数"))
    time_limit_minutes = models.PositiveIntegerField(_("成团时限（分钟）"))
    group_price_fen = models.PositiveIntegerField(_("拼团价（分）"))
    starts_at = models.DateTimeField(_("开始时间"))
    ends_at = models.DateTimeField(_("结束时间"))
    is_active = models.BooleanField(_("启用"), default=True)
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return self.name


class TeamStatus(models.TextChoices):
    FORMING = "forming", _("拼团中")
    SUCCEEDED = "succeeded", _("拼团成功")
    FAILED = "failed", _("拼团失败")


class GroupBuyTeam(TenantModel):
    campaign = models.ForeignKey(GroupBuyCampaign, on_delete=models.PROTECT, related_name="teams")
    leader = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    size = models.PositiveSmallIntegerField()
    status = models.CharField(
        _("状态"), max_length=16, choices=TeamStatus.choices, default=TeamStatus.FORMING
    )
    # Seats held by members who joined (paid or still paying); freed when an order is cancelled.
    seats_taken = models.PositiveSmallIntegerField(default=0)
    paid_count = models.PositiveSmallIntegerField(default=0)
    expires_at = models.DateTimeField(_("截止时间"))
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(seats_taken__lte=F("size")), name="promo_team_seats"
            ),
            models.CheckConstraint(condition=Q(paid_count__lte=F("size")), name="promo_team_paid"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="promo_team_due")]

    def __str__(self) -> str:
        return f"team#{self.pk}"


class MemberStatus(models.TextChoices):
    PENDING = "pending", _("待付款")
    PAID = "paid", _("已付款")
    CANCELLED = "cancelled", _("已取消")
    REFUNDED = "refunded", _("已退款")


class GroupBuyMember(TenantModel):
    team = models.ForeignKey(GroupBuyTeam, on_delete=models.CASCADE, related_name="members")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    order = models.OneToOneField("shop.Order", on_delete=models.PROTECT, related_name="+")
    is_leader = models.BooleanField(default=False)
    status = models.CharField(
        _("状态"), max_length=16, choices=MemberStatus.choices, default=MemberStatus.PENDING
    )
    refunded_fen = models.PositiveIntegerField(default=0)
    joined_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "customer"],
                condition=Q(status__in=["pending", "paid"]),
                name="promo_member_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.customer_id}"


# --- distribution (分销) --------------------------------------------------------------------


class SharerKind(models.TextChoices):
    STAFF = "staff", _("员工")
    AGENT = "agent", _("客户代理")


class CommissionRule(TenantModel):
    """The base commission rate for one kind of sharer; tiers raise it by period sales."""

    sharer_kind = models.CharField(_("分享人类型"), max_length=8, choices=SharerKind.choices)
    rate_bp = models.PositiveIntegerField(_("佣金比例（万分之）"))
    is_active = models.BooleanField(_("启用"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "sharer_kind"], name="promo_rule_kind"),
            models.CheckConstraint(condition=Q(rate_bp__lte=10000), name="promo_rule_rate"),
        ]

    def __str__(self) -> str:
        return f"{self.sharer_kind}:{self.rate_bp}"


class CommissionTier(TenantModel):
    """From ``min_sales_fen`` of the sharer's sales in the month, the rate is ``rate_bp``."""

    rule = models.ForeignKey(CommissionRule, on_delete=models.CASCADE, related_name="tiers")
    min_sales_fen = models.PositiveBigIntegerField(_("月销售额门槛（分）"))
    rate_bp = models.PositiveIntegerField(_("佣金比例（万分之）"))

    class Meta:
        ordering = ["min_sales_fen"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "min_sales_fen"], name="promo_tier_once"),
            models.CheckConstraint(condition=Q(rate_bp__lte=10000), name="promo_tier_rate"),
        ]


class SharerLink(TenantModel):
    """A customer agent's (代理) share code: orders placed through it carry
    ``channel="sharer:<code>"`` and earn the agent commission."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=16, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer"], name="promo_sharer_once")
        ]

    def __str__(self) -> str:
        return self.code


class OrderCommission(TenantModel):
    """The commission owed on one order: the sharer and rate are fixed when the payment is
    first seen; refunds seen so far lower it proportionally. The ledger holds each move."""

    order = models.OneToOneField("shop.Order", on_delete=models.CASCADE, related_name="+")
    sharer_kind = models.CharField(max_length=8, choices=SharerKind.choices, blank=True)
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rate_bp = models.PositiveIntegerField(default=0)
    paid_fen = models.PositiveIntegerField(default=0)
    refunded_fen = models.PositiveIntegerField(default=0)
    commission_fen = models.PositiveIntegerField(default=0)  # net of reversals
    period = models.DateField(null=True, blank=True)  # first day of the month it was earned
    paid_event_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"commission:{self.order_id}"


class EntryKind(models.TextChoices):
    ACCRUAL = "accrual", _("计提")
    REVERSAL = "reversal", _("冲回")


class CommissionEntry(TenantModel):
    """One move of a sharer's commission, caused by exactly one order event."""

    commission = models.ForeignKey(
        OrderCommission, on_delete=models.CASCADE, related_name="entries"
    )
    event_id = models.BigIntegerField(unique=True)
    kind = models.CharField(_("类型"), max_length=8, choices=EntryKind.choices)
    sharer_kind = models.CharField(max_length=8, choices=SharerKind.choices, blank=True)
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    base_fen = models.IntegerField(_("计算基数（分）"))  # the payment or the refund
    amount_fen = models.IntegerField(_("佣金（分）"))  # negative for reversals
    period = models.DateField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "staff", "period"], name="promo_entry_staff"),
            models.Index(fields=["tenant", "agent", "period"], name="promo_entry_agent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.amount_fen}"
