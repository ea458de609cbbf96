"""Mass sends (群发) to customers, group chats and moments.

``MassSend`` is the operator's request (audience, message, schedule). Planning turns it into one
``Recipient`` row per customer (or chat) — receiving or excluded with a reason — and one
``Batch`` per (mass send, sender, ≤ WeCom's batch size): the outbox whose state machine makes
each WeCom task exist exactly once (see ``services``).
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class MassSendKind(models.TextChoices):
    CUSTOMERS = "customers", _("群发客户")
    GROUPS = "groups", _("群发客户群")
    MOMENTS = "moments", _("发朋友圈")


class AudienceKind(models.TextChoices):
    SEGMENT = "segment", _("客户分群")
    EXPRESSION = "expression", _("筛选条件")
    TAGS = "tags", _("标签")
    UPLOAD = "upload", _("上传名单")


class MassSendStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("待发送")
    SENDING = "sending", _("创建任务中")
    SENT = "sent", _("已创建任务")
    CANCELLED = "cancelled", _("已取消")
    FAILED = "failed", _("失败")


class MassSend(TenantModel):
    kind = models.CharField(_("类型"), max_length=16, choices=MassSendKind.choices)
    name = models.CharField(_("名称"), max_length=100)
    audience_kind = models.CharField(_("受众"), max_length=16, choices=AudienceKind.choices)
    # segment: {"segment_id"}; expression: {"expression"}; tags: {"tag_ids", "match"};
    # upload: {"customer_ids"}; groups may name {"staff_ids"}.
    audience = models.JSONField(default=dict)
    text = models.TextField(_("文本"), blank=True, default="")
    attachments = models.JSONField(default=list, blank=True)
    # A content-library item (siyu.content); a plain id so this app does not depend on its
    # migrations. Each sender's batch carries that sender's tracked link.
    content_item_id = models.IntegerField(null=True, blank=True)
    scheduled_at = models.DateTimeField(_("发送时间"), null=True, blank=True)
    status = models.CharField(
        _("状态"), max_length=16, choices=MassSendStatus.choices, default=MassSendStatus.SCHEDULED
    )
    error = models.CharField(max_length=300, blank=True, default="")
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "scheduled_at"], name="masssend_due")]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"


class BatchStatus(models.TextChoices):
    PENDING = "pending", _("待创建")
    CALLING = "calling", _("创建中")
    CREATED = "created", _("已创建")
    FAILED = "failed", _("失败")
    CANCELLED = "cancelled", _("已取消")


class Batch(TenantModel):
    """One WeCom task (add_msg_template / add_moment_task): the outbox row."""

    mass_send = models.ForeignKey(MassSend, on_delete=models.CASCADE, related_name="batches")
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.PROTECT, related_name="+"
    )
    seq = models.PositiveIntegerField()
    # The client-side idempotency key; travels invisibly inside the message (services.marker).
    key = models.CharField(max_length=32, unique=True)
    status = models.CharField(
        max_length=16, choices=BatchStatus.choices, default=BatchStatus.PENDING
    )
    size = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    calling_at = models.DateTimeField(null=True, blank=True)
    msgid = models.CharField(max_length=64, blank=True, default="")  # or the moment jobid
    errcode = models.IntegerField(default=0)
    errmsg = models.CharField(max_length=200, blank=True, default="")
    confirmed_at = models.DateTimeField(null=True, blank=True)  # the member sent it
    remote_cancelled = models.BooleanField(default=False)
    reminders = models.JSONField(default=list, blank=True)  # ISO times of remind calls

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mass_send", "staff", "seq"], name="masssend_batch_once"
            )
        ]
        indexes = [models.Index(fields=["status", "calling_at"], name="masssend_batch_status")]

    def __str__(self) -> str:
        return f"{self.mass_send_id}/{self.staff_id}/{self.seq}:{self.status}"


class RecipientStatus(models.TextChoices):
    EXCLUDED = "excluded", _("不发送")
    PLANNED = "planned", _("待创建任务")
    PENDING = "pending", _("待员工发送")
    DELIVERED = "delivered", _("已送达")
    NOT_FRIEND = "not_friend", _("已不是好友")
    OVER_QUOTA = "over_quota", _("超过接收上限")
    FAILED = "failed", _("失败")
    CANCELLED = "cancelled", _("已取消")


class ExcludeReason(models.TextChoices):
    DAILY_CAP = "cap", _("已达群发接收上限")
    NO_RELATION = "no_relation", _("没有跟进员工")
    DELETED = "deleted", _("已删除好友")


class Recipient(TenantModel):
    mass_send = models.ForeignKey(MassSend, on_delete=models.CASCADE, related_name="recipients")
    batch = models.ForeignKey(Batch, null=True, on_delete=models.CASCADE, related_name="recipients")
    customer = models.ForeignKey(
        "customers.Customer", null=True, on_delete=models.CASCADE, related_name="+"
    )
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    target = models.CharField(max_length=128, blank=True, default="")  # external_userid / chat_id
    status = models.CharField(max_length=16, choices=RecipientStatus.choices)
    reason = models.CharField(max_length=16, choices=ExcludeReason.choices, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mass_send", "customer"],
                condition=Q(customer__isnull=False),
                name="masssend_recipient_customer_once",
            ),
            models.UniqueConstraint(
                fields=["mass_send", "target"],
                condition=~Q(target=""),
                name="masssend_recipient_target_once",
            ),
        ]
        indexes = [
            models.Index(fields=["mass_send", "status"], name="masssend_recipient_status"),
            models.Index(fields=["customer", "delivered_at"], name="masssend_recipient_received"),
        ]

    def __str__(self) -> str:
        return f"{self.target or self.customer_id}:{self.status}"
