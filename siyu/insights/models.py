"""Churn records (one per deletion, either way), the tenant's fitted value models, and one score
row per customer (P(alive), engagement, CLV, RFM, expected repurchase, at-risk)."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class ChurnDirection(models.TextChoices):
    CUSTOMER = "customer", _("客户删除员工")
    STAFF = "staff", _("员工删除客户")


class KnownReason(models.TextChoices):
    """Reasons read off the customer's events at the time of the deletion."""

    NONE = "", _("未知")
    QUICK_LEAVE = "quick_leave", _("添加后 24 小时内删除")
    AFTER_MASS_SEND = "after_masssend", _("收到群发后 48 小时内删除")
    AFTER_REFUND = "after_refund", _("退款后 30 天内删除")


class Segment(models.TextChoices):
    """The classic eight RFM groups: recency, frequency and spend each above or below the
    buyers' average (R high = bought recently)."""

    NONE = "", _("未购买")
    CHAMPION = "champion", _("重要价值客户")  # R high, F high, M high
    DEVELOP = "develop", _("重要发展客户")  # R high, F low, M high
    KEEP = "keep", _("重要保持客户")  # R low, F high, M high
    WIN_BACK = "win_back", _("重要挽留客户")  # R low, F low, M high
    LOYAL = "loyal", _("一般价值客户")  # R high, F high, M low
    NEW = "new", _("一般发展客户")  # R high, F low, M low
    FADING = "fading", _("一般保持客户")  # R low, F high, M low
    LOST = "lost", _("一般挽留客户")  # R low, F low, M low


class ChurnRecord(TenantModel):
    event_id = models.BigIntegerField()
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="churn_records"
    )
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    direction = models.CharField(_("方向"), max_length=16, choices=ChurnDirection.choices)
    # Where the ended relation came from (analytics' source key, e.g. "ch" + "42"); "" = none.
    source_kind = models.CharField(max_length=8, blank=True, default="")
    source_id = models.CharField(max_length=32, blank=True, default="")
    deleted_at = models.DateTimeField(_("删除时间"))
    known_reason = models.CharField(
        _("已知原因"), max_length=32, blank=True, default="", choices=KnownReason.choices
    )
    reason = models.CharField(_("流失原因"), max_length=200, blank=True, default="")
    reason_by = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason_at = models.DateTimeField(null=True, blank=True)
    paid_fen = models.BigIntegerField(_("累计实付（分）"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-deleted_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="insights_churn_once")
        ]
        indexes = [models.Index(fields=["tenant", "-deleted_at"], name="insights_churn_time")]

    def __str__(self) -> str:
        return f"churn#{self.pk}"


class ValueModel(TenantModel):
    """The tenant's latest fit: BG/NBD and Gamma-Gamma parameters (time unit: days) and the
    engagement model's calibrated half-life."""

    r = models.FloatField(null=True)
    alpha = models.FloatField(null=True)
    a = models.FloatField(null=True)
    b = models.FloatField(null=True)
    bgnbd_log_likelihood = models.FloatField(null=True)
    p = models.FloatField(null=True)
    q = models.FloatField(null=True)
    gamma = models.FloatField(null=True)
    gamma_gamma_log_likelihood = models.FloatField(null=True)
    customers = models.PositiveIntegerField(default=0)
    buyers = models.PositiveIntegerField(default=0)
    repeat_buyers = models.PositiveIntegerField(default=0)
    half_life_days = models.FloatField()
    # The logistic calibration of the engagement score (null: the uncalibrated default).
    engagement_intercept = models.FloatField(null=True)
    engagement_slope = models.FloatField(null=True)
    engagement_log_loss = models.FloatField(null=True)
    # Why the purchase models could not be fitted ("" = fitted).
    fit_error = models.CharField(max_length=200, blank=True, default="")
    fitted_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="insights_model_once")]

    def __str__(self) -> str:
        return f"value model of tenant {self.tenant_id}"


class CustomerScore(TenantModel):
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    purchases = models.PositiveIntegerField(_("购买次数"), default=0)  # distinct purchase days
    paid_fen = models.BigIntegerField(_("累计实付（分）"), default=0)
    last_paid_at = models.DateTimeField(null=True)
    p_alive = models.FloatField(_("存活概率"), null=True)  # BG/NBD; null: never bought
    p_engaged = models.FloatField(_("互动活跃概率"))
    p_active = models.FloatField(_("活跃概率"))
    expected_purchases = models.FloatField(_("未来 30 天预期购买"), null=True)
    clv_fen = models.BigIntegerField(_("客户终身价值（分）"), null=True)
    rfm_r = models.PositiveSmallIntegerField(null=True)
    rfm_f = models.PositiveSmallIntegerField(null=True)
    rfm_m = models.PositiveSmallIntegerField(null=True)
    segment = models.CharField(
        _("RFM 分层"), max_length=32, blank=True, default="", choices=Segment.choices
    )
    expected_repurchase_at = models.DateTimeField(_("预计复购时间"), null=True)
    at_risk = models.BooleanField(_("流失风险"), default=False)
    at_risk_since = models.DateTimeField(null=True)
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer"], name="insights_score_once")
        ]
        indexes = [
            models.Index(fields=["tenant", "at_risk", "-paid_fen"], name="insights_score_risk"),
            models.Index(fields=["tenant", "-clv_fen"], name="insights_score_clv"),
        ]

    def __str__(self) -> str:
        return f"score of customer {self.customer_id}"
