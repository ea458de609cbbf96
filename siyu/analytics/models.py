"""The channel rollup and the spend operators enter against it.

``SourceDay`` holds what only the event log knows and never changes once it happened (scans,
adds, deletes per local day × source × receiving member); it is kept incrementally by the
``analytics.source_rollup`` subscriber and can be rebuilt from the log. What changes as time
passes (retention, conversion, GMV) is computed when read.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class SourceDay(TenantModel):
    day = models.DateField()
    source_kind = models.CharField(max_length=4, blank=True, default="")
    source_id = models.CharField(max_length=30, blank=True, default="")
    # The member who received the customer: data scopes (a manager's department) follow them.
    # None for scans no member can be named for yet (visible company-wide only).
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.CASCADE, related_name="+"
    )
    scans = models.PositiveIntegerField(default=0)
    adds = models.PositiveIntegerField(default=0)
    deletes = models.PositiveIntegerField(default=0)

    class Meta:
        # Two partial constraints: NULLs are distinct in a plain unique index, and the
        # increment relies on exactly one row per cell.
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "source_kind", "source_id", "staff"],
                condition=models.Q(staff__isnull=False),
                name="source_day_once",
            ),
            models.UniqueConstraint(
                fields=["tenant", "day", "source_kind", "source_id"],
                condition=models.Q(staff__isnull=True),
                name="source_day_once_unattributed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.source_kind}:{self.source_id}"


class Spend(TenantModel):
    """Money spent on one source over ``start``–``end`` (inclusive, local days), in fen. Reports
    spread it evenly over its days."""

    source_kind = models.CharField(_("来源类型"), max_length=4)
    source_id = models.CharField(_("来源"), max_length=30)
    start = models.DateField(_("开始日期"))
    end = models.DateField(_("结束日期"))
    amount_fen = models.PositiveBigIntegerField(_("金额（分）"))
    note = models.CharField(_("备注"), max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "start", "end"], name="spend_period")]
        ordering = ["-start", "-pk"]

    def __str__(self) -> str:
        return f"{self.source_kind}:{self.source_id} {self.start}–{self.end}"
