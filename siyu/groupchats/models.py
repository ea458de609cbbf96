"""Customer group chats (客户群) and their members, mirrored from WeCom."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class GroupChatStatus(models.TextChoices):
    ACTIVE = "active", _("正常")
    DISMISSED = "dismissed", _("已解散")


class GroupChat(TenantModel):
    chat_id = models.CharField(max_length=128)
    name = models.CharField(_("群名"), max_length=128, blank=True, default="")
    owner = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner_userid = models.CharField(max_length=64, blank=True, default="")
    notice = models.TextField(_("群公告"), blank=True, default="")
    status = models.CharField(
        max_length=16, choices=GroupChatStatus.choices, default=GroupChatStatus.ACTIVE
    )
    member_version = models.CharField(max_length=64, blank=True, default="")
    created_at_wecom = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "chat_id"], name="groupchat_once")]

    def __str__(self) -> str:
        return self.name or self.chat_id


class GroupChatMember(TenantModel):
    chat = models.ForeignKey(GroupChat, on_delete=models.CASCADE, related_name="members")
    member_id = models.CharField(max_length=128)  # userid for staff, external_userid for customers
    member_type = models.PositiveSmallIntegerField(default=2)  # WeCom: 1 member, 2 external
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    join_time = models.DateTimeField(null=True, blank=True)
    join_scene = models.PositiveSmallIntegerField(default=0)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chat", "member_id"], name="groupchat_member_once")
        ]

    def __str__(self) -> str:
        return f"{self.chat_id}:{self.member_id}"
