"""Transfers of customers and group chats between staff members (在职继承 / 离职继承).

A ``TransferJob`` is one request: who hands over, who takes over, which customers and chats.
Each customer is a ``TransferItem`` followed until WeCom's answer is final (the customer has 24 h
to refuse); each chat a ``ChatTransferItem`` (WeCom moves chats at once). Failed items keep the
customer where they were, so they stay visible and can be transferred again.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class TransferKind(models.TextChoices):
    ONJOB = "onjob", _("在职继承")
    RESIGNED = "resigned", _("离职继承")


class JobStatus(models.TextChoices):
    OPEN = "open", _("进行中")
    DONE = "done", _("已完成")


class ItemStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    SENDING = "sending", _("发送中")
    WAITING = "waiting", _("等待接替")
    ACCEPTED = "accepted", _("已接替")
    REFUSED = "refused", _("客户拒绝")
    LIMIT_EXCEEDED = "limit_exceeded", _("接替成员客户数已达上限")
    FAILED = "failed", _("失败")


IN_FLIGHT = (ItemStatus.PENDING, ItemStatus.SENDING, ItemStatus.WAITING)


class ChatItemStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    DONE = "done", _("已转移")
    FAILED = "failed", _("失败")


class TransferJob(TenantModel):
    kind = models.CharField(_("类型"), max_length=16, choices=TransferKind.choices)
    handover = models.ForeignKey(
        "accounts.StaffMember",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("原跟进人"),
    )
    takeover = models.ForeignKey(
        "accounts.StaffMember",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("接替成员"),
    )
    message = models.CharField(_("转接提示语"), max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        _("状态"), max_length=16, choices=JobStatus.choices, default=JobStatus.OPEN
    )
    created_at = models.DateTimeField(auto_now_add=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status"], name="transfer_job_status")]

    def __str__(self) -> str:
        return f"{self.handover_id}→{self.takeover_id} #{self.pk}"


class TransferItem(TenantModel):
    job = models.ForeignKey(TransferJob, on_delete=models.CASCADE, related_name="items")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    external_userid = models.CharField(max_length=128)
    status = models.CharField(
        _("状态"), max_length=20, choices=ItemStatus.choices, default=ItemStatus.PENDING
    )
    errcode = models.IntegerField(default=0)
    errmsg = models.CharField(max_length=200, blank=True, default="")
    # Waiting: when WeCom will complete it; accepted: when it did.
    takeover_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Which sender claimed the item for its WeCom call (see services.transfer_job_send).
    claim = models.CharField(max_length=32, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "external_userid"], name="transfer_item_once")
        ]
        indexes = [
            models.Index(fields=["tenant", "external_userid", "status"], name="transfer_item_ext"),
        ]

    def __str__(self) -> str:
        return f"{self.external_userid}:{self.status}"


class ChatTransferItem(TenantModel):
    job = models.ForeignKey(TransferJob, on_delete=models.CASCADE, related_name="chat_items")
    chat_id = models.CharField(max_length=128)
    name = models.CharField(_("群名"), max_length=128, blank=True, default="")
    status = models.CharField(
        _("状态"), max_length=16, choices=ChatItemStatus.choices, default=ChatItemStatus.PENDING
    )
    errcode = models.IntegerField(default=0)
    errmsg = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "chat_id"], name="transfer_chat_once")
        ]

    def __str__(self) -> str:
        return f"{self.chat_id}:{self.status}"
