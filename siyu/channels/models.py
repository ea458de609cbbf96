"""Channel codes (渠道活码): WeCom contact ways that carry a channel's tags, welcome message and
staff pool, and the ledger of what each add through them set off.

A ``ChannelCode`` is backed by one contact way whose ``state`` is ``ch:<pk>``; its members are
``ChannelMember`` rows (primary or backup). Each add through it is one ``ChannelAdd``; the
welcome message for that add is one ``WelcomeSend``, unique per welcome code, so WeCom's
single-use code is spent at most once whatever is retried or redelivered.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class CodeKind(models.TextChoices):
    SINGLE = "single", _("单人")
    MULTI = "multi", _("多人")


class CodeStatus(models.TextChoices):
    ACTIVE = "active", _("使用中")
    PAUSED = "paused", _("已暂停")


class ChannelCode(TenantModel):
    name = models.CharField(_("名称"), max_length=30)
    kind = models.CharField(_("类型"), max_length=8, choices=CodeKind.choices)
    status = models.CharField(
        _("状态"), max_length=8, choices=CodeStatus.choices, default=CodeStatus.ACTIVE
    )
    skip_verify = models.BooleanField(_("免验证添加"), default=True)
    tags = models.ManyToManyField("tags.Tag", blank=True, related_name="+")
    # {"text": str, "attachments": [...]} (see services.clean_welcome); empty = the default.
    welcome = models.JSONField(_("欢迎语"), default=dict, blank=True)
    # Written on the customer relation in WeCom when they add through this code.
    relation_remark = models.CharField(_("客户备注"), max_length=20, blank=True, default="")
    relation_description = models.CharField(_("客户描述"), max_length=150, blank=True, default="")
    daily_cap = models.PositiveIntegerField(_("每人每日上限"), default=0)  # 0 = no cap
    work_start = models.TimeField(_("上班时间"), null=True, blank=True)
    work_end = models.TimeField(_("下班时间"), null=True, blank=True)
    # What WeCom holds: the contact way and the members it currently assigns.
    config_id = models.CharField(max_length=64, blank=True, default="")
    qr_code = models.URLField(max_length=500, blank=True, default="")
    state = models.CharField(max_length=30, blank=True, default="")
    wecom_users = models.JSONField(default=list, blank=True)
    # Optional: the group chat whose join QR is added to the welcome message (自动拉群).
    group_chat_id = models.CharField(_("自动拉群"), max_length=128, blank=True, default="")
    join_config_id = models.CharField(max_length=64, blank=True, default="")
    join_qr_code = models.CharField(max_length=500, blank=True, default="")
    pool_refreshed_at = models.DateTimeField(null=True, blank=True)
    adds_total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="channel_code_name"),
        ]

    def __str__(self) -> str:
        return self.name


class ChannelMember(TenantModel):
    code = models.ForeignKey(ChannelCode, on_delete=models.CASCADE, related_name="members")
    staff = models.ForeignKey("accounts.StaffMember", on_delete=models.CASCADE, related_name="+")
    # Backups receive customers only while every primary member is capped or off duty.
    backup = models.BooleanField(_("备用成员"), default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["code", "staff"], name="channel_member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.code_id}:{self.staff_id}"


class ChannelAdd(TenantModel):
    """One customer added a member through a code (one per add event)."""

    code = models.ForeignKey(ChannelCode, on_delete=models.CASCADE, related_name="adds")
    staff = models.ForeignKey("accounts.StaffMember", on_delete=models.CASCADE, related_name="+")
    customer_id = models.BigIntegerField()
    relation_id = models.BigIntegerField()
    event_id = models.BigIntegerField()
    added_at = models.DateTimeField()
    # Claimed before the member is told, so a redelivered follow-up job tells them once.
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="channel_add_once"),
        ]
        indexes = [
            models.Index(fields=["code", "staff", "added_at"], name="channel_add_member_day"),
            models.Index(fields=["code", "added_at"], name="channel_add_code_day"),
        ]

    def __str__(self) -> str:
        return f"{self.code_id}:{self.customer_id}"


class WelcomeDefault(TenantModel):
    """The company's fallback welcome message, for codes that set none."""

    welcome = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="welcome_default_once")]

    def __str__(self) -> str:
        return f"welcome-default:{self.tenant_id}"


class WelcomeStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    SENDING = "sending", _("发送中")
    SENT = "sent", _("已发送")
    FAILED = "failed", _("未发送")


class WelcomeSend(TenantModel):
    """The welcome message of one add; the unique welcome code makes the send happen once.

    Usually recorded by the welcome lane straight from the callback, before the add is
    processed (``add`` is linked when it is); recorded by the add's processing otherwise."""

    welcome_code = models.CharField(max_length=128)
    code = models.ForeignKey(ChannelCode, on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey("accounts.StaffMember", on_delete=models.CASCADE, related_name="+")
    external_userid = models.CharField(max_length=64)
    add = models.OneToOneField(
        ChannelAdd, null=True, blank=True, on_delete=models.CASCADE, related_name="welcome"
    )
    status = models.CharField(
        max_length=16, choices=WelcomeStatus.choices, default=WelcomeStatus.PENDING
    )
    reason = models.CharField(max_length=200, blank=True, default="")
    # WeCom accepts the code for 20 s after the add; no attempt starts after this.
    deadline = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "welcome_code"], name="welcome_once"),
        ]
        indexes = [models.Index(fields=["status", "deadline"], name="welcome_due")]

    def __str__(self) -> str:
        return f"{self.welcome_code}:{self.status}"
