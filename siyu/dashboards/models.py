"""Dashboard rollups and goals.

The rollups are kept incrementally by the ``dashboards.rollup`` subscriber and can be rebuilt
from the event log (``siyu dashboards rebuild``); page loads read only them, never the log.

- ``MetricDay``: one additive number per local day × member × source × metric (× subject, e.g.
  one content item or mass send). Deltas may be negative (a refund, a customer lost).
- ``MetricMonth``: the balance metrics of ``MetricDay`` summed per month.
- ``CustomerTrack``: per customer, the state the increments need (first adding member and
  source, funnel milestones reached, active relations, last activity). It also answers the
  staff dashboard's lists (hot leads, due repurchases, slipping customers) by index.
- ``CohortCell``: customers first added in a week or month (offset 0 ``size``) and how many of
  them were lost (net of returns) in each later period ``offset``.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


def _once(name: str, fields: list[str]) -> list[models.BaseConstraint]:
    # NULLs are distinct in a plain unique index; the increment needs exactly one row per cell.
    return [
        models.UniqueConstraint(
            fields=[*fields, "staff"], condition=models.Q(staff__isnull=False), name=name
        ),
        models.UniqueConstraint(
            fields=fields, condition=models.Q(staff__isnull=True), name=f"{name}_unattributed"
        ),
    ]


class MetricDay(TenantModel):
    day = models.DateField()
    # The member the number belongs to (department filters follow them); None: company-wide only.
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.CASCADE, related_name="+"
    )
    source_kind = models.CharField(max_length=4, blank=True, default="")
    source_id = models.CharField(max_length=30, blank=True, default="")
    metric = models.CharField(max_length=40)
    subject = models.CharField(max_length=40, blank=True, default="")
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = _once(
            "metric_day_once", ["tenant", "day", "metric", "subject", "source_kind", "source_id"]
        )
        # Panels read a few metrics over a range: covering, so PostgreSQL scans the index only.
        indexes = [
            models.Index(
                fields=["tenant", "metric", "day"],
                include=["staff", "source_kind", "source_id", "value"],
                name="metric_day_metric",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric}={self.value}"


class MetricMonth(TenantModel):
    """Balances (customers, customers per stage) per month, so "how many at the end of the range"
    reads months of history in a few rows: the months before, then the days of the last one."""

    month = models.DateField()  # its first day
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.CASCADE, related_name="+"
    )
    source_kind = models.CharField(max_length=4, blank=True, default="")
    source_id = models.CharField(max_length=30, blank=True, default="")
    metric = models.CharField(max_length=40)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = _once(
            "metric_month_once", ["tenant", "month", "metric", "source_kind", "source_id"]
        )

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.metric}={self.value}"


class CustomerTrack(TenantModel):
    customer_id = models.BigIntegerField()
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_kind = models.CharField(max_length=4, blank=True, default="")
    source_id = models.CharField(max_length=30, blank=True, default="")
    added_on = models.DateField()
    stage = models.CharField(max_length=32, default="normal")
    relations = models.IntegerField(default=0)  # counted relations still there
    engaged_on = models.DateField(null=True)
    intent_on = models.DateField(null=True)
    paid_on = models.DateField(null=True)
    repeat_on = models.DateField(null=True)
    last_active_on = models.DateField(null=True)
    last_paid_on = models.DateField(null=True)
    paid_orders = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer_id"], name="customer_track_once")
        ]
        # The staff lists: recently active (hot leads, slipping) and last paid (repurchases).
        indexes = [
            models.Index(fields=["tenant", "staff", "last_active_on"], name="track_staff_active"),
            models.Index(fields=["tenant", "staff", "last_paid_on"], name="track_staff_paid"),
        ]

    def __str__(self) -> str:
        return f"track {self.customer_id}"


class CohortGrain(models.TextChoices):
    WEEK = "week", _("按周")
    MONTH = "month", _("按月")


class CohortCell(TenantModel):
    grain = models.CharField(max_length=5, choices=CohortGrain.choices)
    period = models.DateField()  # first day of the add week (Monday) or month
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.CASCADE, related_name="+"
    )
    source_kind = models.CharField(max_length=4, blank=True, default="")
    source_id = models.CharField(max_length=30, blank=True, default="")
    offset = models.PositiveSmallIntegerField()
    size = models.IntegerField(default=0)
    lost = models.IntegerField(default=0)

    class Meta:
        constraints = _once(
            "cohort_cell_once", ["tenant", "grain", "period", "offset", "source_kind", "source_id"]
        )
        # The unique indexes above are partial, so reads by period need their own.
        indexes = [models.Index(fields=["tenant", "grain", "period"], name="cohort_cell_period")]

    def __str__(self) -> str:
        return f"{self.grain} {self.period} +{self.offset}"


class TargetKind(models.TextChoices):
    ABSOLUTE = "absolute", _("目标值")
    RELATIVE = "relative", _("相对基线提升（%）")


class Goal(TenantModel):
    """A SMART goal on one dashboard metric (``siyu.dashboards.metrics``)."""

    name = models.CharField(_("名称"), max_length=100)
    metric = models.CharField(_("指标"), max_length=40)
    department = models.ForeignKey(
        "accounts.Department", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner = models.ForeignKey(
        "accounts.StaffMember", on_delete=models.PROTECT, related_name="+", verbose_name=_("负责人")
    )
    window_days = models.PositiveSmallIntegerField(_("统计窗口（天）"), default=30)
    baseline = models.FloatField(_("基线"))
    target_kind = models.CharField(max_length=10, choices=TargetKind.choices)
    target_input = models.FloatField()
    target = models.FloatField(_("目标"))
    start = models.DateField(_("开始日期"))
    deadline = models.DateField(_("截止日期"))
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deadline", "pk"]

    def __str__(self) -> str:
        return self.name


class PdcaPhase(models.TextChoices):
    PLAN = "plan", _("计划 Plan")
    DO = "do", _("执行 Do")
    CHECK = "check", _("检查 Check")
    ACT = "act", _("改进 Act")


class GoalLog(TenantModel):
    goal = models.ForeignKey(Goal, on_delete=models.CASCADE, related_name="logs")
    phase = models.CharField(max_length=5, choices=PdcaPhase.choices)
    note = models.TextField(max_length=2000)
    author = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.goal_id} {self.phase}"
