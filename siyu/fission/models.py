"""Fission campaigns (任务宝 / 群裂变): participants invite friends through personal codes.

A ``Campaign`` has reward tiers and a poster template. A customer who opens the campaign's H5
page becomes a ``Participant`` with a personal contact way whose state is
``fx:<campaign>:<participant>``; every add through it is one ``Invite`` row, counted or not and
why. Counting is a conditional ``F()`` update next to a unique (campaign, invitee) first
sighting, so concurrent scans neither lose nor double an increment. Rewards are
``RewardGrant`` rows, unique per participant × tier, cut from the tier's stock atomically; a
member's part (handing over a staff_task reward) is a workspace task, one per grant.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class CampaignKind(models.TextChoices):
    TASK = "task", _("任务宝")
    GROUP = "group", _("群裂变")


class Campaign(TenantModel):
    kind = models.CharField(_("类型"), max_length=8, choices=CampaignKind.choices)
    name = models.CharField(_("名称"), max_length=64)
    description = models.CharField(_("说明"), max_length=500, blank=True, default="")
    starts_at = models.DateTimeField(_("开始时间"))
    ends_at = models.DateTimeField(_("结束时间"))
    # The members behind every participant's personal code (WeCom rotates among them).
    staff = models.ManyToManyField("accounts.StaffMember", related_name="+")
    # Tags put on every invitee who came through the campaign (channel tags).
    tag_ids = models.JSONField(default=list, blank=True)
    # An invitee who deletes the member within this many hours of the add is subtracted.
    delete_window_hours = models.PositiveIntegerField(_("删除回收窗口（小时）"), default=72)
    # 群裂变: [{"chat_id": …, "name": …, "capacity": 200}], filled in order, the next when full.
    group_chats = models.JSONField(default=list, blank=True)
    poster_artwork = models.FileField(upload_to="fission/artwork/", blank=True, default="")
    # {"avatar": {"x","y","size"}, "nickname": {...}, "qr": {...}} in artwork pixels.
    poster_layout = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "-pk"]

    def __str__(self) -> str:
        return self.name


class RewardKind(models.TextChoices):
    COUPON = "coupon", _("优惠券")
    LINK = "link", _("领奖链接")
    STAFF_TASK = "staff_task", _("员工发放")


class RewardTier(TenantModel):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tiers")
    threshold = models.PositiveIntegerField(_("邀请人数"))
    kind = models.CharField(_("奖励类型"), max_length=16, choices=RewardKind.choices)
    # coupon: the coupon's name; link: the URL; staff_task: what the member should hand over.
    payload = models.CharField(_("奖励内容"), max_length=500)
    stock = models.PositiveIntegerField(_("库存"))  # what is left; never negative
    issued = models.PositiveIntegerField(_("已发放"), default=0)
    # coupon tiers: the template the participant gets a real coupon of (promotions issues it
    # once per grant); without one the grant's code is redeemed by hand, as before.
    coupon_template = models.ForeignKey(
        "promotions.CouponTemplate",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["threshold"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "threshold"], name="fission_tier_once"),
            models.CheckConstraint(condition=Q(stock__gte=0), name="fission_tier_stock"),
        ]

    def __str__(self) -> str:
        return f"{self.threshold}→{self.kind}"


class Participant(TenantModel):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="participants")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    # Whose code brought this participant in (None for seed participants): the referral tree.
    referrer = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    config_id = models.CharField(max_length=64, blank=True, default="")
    qr_code = models.URLField(max_length=500, blank=True, default="")
    state = models.CharField(max_length=30, blank=True, default="")
    poster = models.FileField(upload_to="fission/posters/", blank=True, default="")
    # Why the poster could not be drawn (missing artwork …); the participant still counts.
    poster_error = models.CharField(max_length=300, blank=True, default="")
    counted = models.IntegerField(_("有效邀请"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer"], name="fission_join_once"),
            models.CheckConstraint(condition=Q(counted__gte=0), name="fission_counted_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.customer_id}"


class InviteStatus(models.TextChoices):
    COUNTED = "counted", _("有效")
    NOT_NEW = "not_new", _("非新客户")
    SELF = "self", _("自己扫码")
    REPEAT = "repeat", _("重复邀请")
    DELETED = "deleted", _("已删除（扣减）")
    OUTSIDE = "outside", _("不在活动时间内")


# One first sighting per invitee and campaign; later sightings are REPEAT history rows.
FIRST_SIGHTING = [s for s in InviteStatus.values if s != InviteStatus.REPEAT]


class Invite(TenantModel):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="invites")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="invites")
    invitee = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey("accounts.StaffMember", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=InviteStatus.choices)
    event_id = models.BigIntegerField()  # the customer.added event: one invite per add
    at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "invitee"],
                condition=Q(status__in=FIRST_SIGHTING),
                name="fission_invitee_first",
            ),
            models.UniqueConstraint(fields=["event_id"], name="fission_invite_event"),
        ]
        indexes = [models.Index(fields=["participant", "status"], name="fission_invite_status")]

    def __str__(self) -> str:
        return f"{self.invitee_id}→{self.participant_id}:{self.status}"


class RewardGrant(TenantModel):
    """A reward issued to a participant for reaching a tier. Coupons do not exist yet: the
    ``code`` is what the coupon lane will redeem."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="grants")
    tier = models.ForeignKey(RewardTier, on_delete=models.CASCADE, related_name="grants")
    kind = models.CharField(max_length=16, choices=RewardKind.choices)
    payload = models.CharField(max_length=500)
    code = models.CharField(max_length=32, unique=True)
    # False: the tier was reached after its stock ran out; the row says so to operations.
    in_stock = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "tier"], name="fission_grant_once")
        ]

    def __str__(self) -> str:
        return self.code


class NoticeAudience(models.TextChoices):
    STAFF = "staff", _("员工")
    PARTICIPANT = "participant", _("参与者")


class NoticeStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    SENT = "sent", _("已发送")
    FAILED = "failed", _("发送失败")


class Notice(TenantModel):
    """One message of the campaign: to a member (a WeCom app message: who was added, through
    whom) or to a participant. WeCom cannot message a customer from a server, so a participant's
    notice goes to the member who serves them, as an app message asking them to relay it."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="notices")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="notices")
    audience = models.CharField(max_length=16, choices=NoticeAudience.choices)
    staff = models.ForeignKey("accounts.StaffMember", on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=500)
    status = models.CharField(
        max_length=16, choices=NoticeStatus.choices, default=NoticeStatus.PENDING
    )
    error = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.text[:40]
