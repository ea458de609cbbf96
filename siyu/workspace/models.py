"""The staff workspace: a member's to-dos, real-time alerts and the team's reply scripts.

``StaffTask`` is every lane's to-do for a member (SOP steps, fission rewards, transfers …),
created through ``task_create`` and unique per tenant on its ``dedupe_key`` so a re-run lane
never doubles a task. ``StaffAlert`` is one WeCom app message to a member about a customer's
moment (opened an article, came back, paid), kept even when suppressed so the member's alert
list and the rate limit read the same rows. ``Script`` is the team's 话术库.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class TaskStatus(models.TextChoices):
    OPEN = "open", _("待办")
    DONE = "done", _("已完成")
    CANCELLED = "cancelled", _("已取消")


class StaffTask(TenantModel):
    staff = models.ForeignKey(
        "accounts.StaffMember", on_delete=models.CASCADE, related_name="workspace_tasks"
    )
    kind = models.CharField(_("类型"), max_length=32)
    title = models.CharField(_("标题"), max_length=200)
    # What the member copies and sends to the customer (may be empty for plain to-dos).
    body = models.TextField(_("内容"), blank=True, default="")
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # Which lane object made it, e.g. "fission:grant:12", "sop:3:step:2".
    source = models.CharField(_("来源"), max_length=100, blank=True, default="")
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)
    status = models.CharField(
        _("状态"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.OPEN
    )
    due_at = models.DateTimeField(_("截止时间"), null=True, blank=True)
    done_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    # The member the task was first given to, when a transfer or departure moved it.
    rerouted_from = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancel_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"],
                condition=Q(dedupe_key__isnull=False),
                name="workspace_task_dedupe",
            ),
        ]
        indexes = [models.Index(fields=["staff", "status"], name="workspace_task_staff")]

    def __str__(self) -> str:
        return self.title[:40]


class AlertStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    SENT = "sent", _("已发送")
    FAILED = "failed", _("发送失败")


class StaffAlert(TenantModel):
    staff = models.ForeignKey(
        "accounts.StaffMember", on_delete=models.CASCADE, related_name="workspace_alerts"
    )
    kind = models.CharField(_("类型"), max_length=32)
    text = models.CharField(_("内容"), max_length=500)
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    dedupe_key = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    error = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="workspace_alert_once")
        ]
        indexes = [
            models.Index(fields=["staff", "customer", "-created_at"], name="workspace_alert_rate")
        ]

    def __str__(self) -> str:
        return self.text[:40]


class ScriptCategory(TenantModel):
    """A scenario of the 话术库 (first contact, price objection, after-sale …)."""

    name = models.CharField(_("场景"), max_length=32)
    order = models.PositiveSmallIntegerField(_("排序"), default=0)

    class Meta:
        ordering = ["order", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="workspace_category_name")
        ]

    def __str__(self) -> str:
        return self.name


class Script(TenantModel):
    category = models.ForeignKey(ScriptCategory, on_delete=models.PROTECT, related_name="scripts")
    title = models.CharField(_("标题"), max_length=64)
    text = models.TextField(_("话术内容"))
    # [{"kind": "image"|"link"|"file", "url": …, "title": …}] sent alongside the text.
    attachments = models.JSONField(default=list, blank=True)
    usage_count = models.PositiveIntegerField(_("使用次数"), default=0)
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-usage_count", "pk"]

    def __str__(self) -> str:
        return self.title
