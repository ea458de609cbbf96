"""The content library (the salesperson's 'smart briefcase') and its radar (互动雷达).

A ``ContentItem`` lives in a ``Folder`` and carries content tags of its own. Every send goes
out as a ``TrackingLink`` (item, sender, source, optional customer, expiry) whose token is the
link's id signed with the secret key. Each open of the customer H5 page is a ``Visit``; a
visit reached through someone's share points at that ``forwarded_from`` visit, which is the
forward chain.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class Folder(TenantModel):
    name = models.CharField(_("名称"), max_length=64)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "parent", "name"], name="content_folder_unique_name"
            ),
            models.UniqueConstraint(
                fields=["tenant", "name"],
                condition=Q(parent__isnull=True),
                name="content_folder_unique_root_name",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ContentTag(TenantModel):
    """Tags of the library (产品介绍, 案例 …); not customer tags."""

    name = models.CharField(_("名称"), max_length=32)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="content_tag_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class ContentKind(models.TextChoices):
    ARTICLE = "article", _("文章")
    POSTER = "poster", _("海报")
    FILE = "file", _("文件")
    VIDEO = "video", _("视频")
    LINK = "link", _("链接")
    PRODUCT = "product", _("商品卡片")
    NAME_CARD = "name_card", _("名片")


class UrlStatus(models.TextChoices):
    UNCHECKED = "unchecked", _("未检查")
    OK = "ok", _("正常")
    DEAD = "dead", _("失效")


class ContentItem(TenantModel):
    kind = models.CharField(_("类型"), max_length=16, choices=ContentKind.choices)
    title = models.CharField(_("标题"), max_length=100)
    summary = models.CharField(_("摘要"), max_length=300, blank=True, default="")
    folder = models.ForeignKey(
        Folder, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    tags = models.ManyToManyField(ContentTag, blank=True, related_name="items")
    cover = models.ImageField(upload_to="content/covers/", blank=True, default="")
    # Articles: sanitised HTML (services.sanitize_html) — only ever rendered after cleaning.
    body = models.TextField(_("正文"), blank=True, default="")
    # Posters (image), files and uploaded videos.
    file = models.FileField(upload_to="content/files/", blank=True, default="")
    # Links, external videos and product pages: where the customer goes next.
    url = models.URLField(_("链接地址"), max_length=500, blank=True, default="")
    url_status = models.CharField(
        max_length=12, choices=UrlStatus.choices, default=UrlStatus.UNCHECKED
    )
    url_checked_at = models.DateTimeField(null=True, blank=True)
    url_error = models.CharField(max_length=200, blank=True, default="")
    price_fen = models.PositiveIntegerField(_("价格（分）"), null=True, blank=True)
    # Name cards: the member whose card this is.
    card_staff = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Archived items keep their links and radar history but can no longer be sent.
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]

    def __str__(self) -> str:
        return self.title


class TrackingLink(TenantModel):
    item = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="links")
    sender = models.ForeignKey("accounts.StaffMember", on_delete=models.CASCADE, related_name="+")
    # Who asked for the link: "masssend:12", "sop:3", "welcome:5", "workspace", "console" …
    source = models.CharField(max_length=64)
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]


class Visit(TenantModel):
    link = models.ForeignKey(TrackingLink, on_delete=models.CASCADE, related_name="visits")
    # Copied from the link so the radar's per-item / per-member counts need no join.
    item = models.ForeignKey(ContentItem, on_delete=models.CASCADE, related_name="visits")
    sender = models.ForeignKey("accounts.StaffMember", on_delete=models.CASCADE, related_name="+")
    # Set when WeChat OAuth identified the visitor.
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "c:<customer id>" or "s:<random kept in the browser session>": unique-visitor counting.
    visitor_key = models.CharField(max_length=40)
    forwarded_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forwards"
    )
    depth = models.PositiveSmallIntegerField(default=0)
    # The page's secret for its read beacons (the page has no login).
    beacon_key = models.CharField(max_length=32, unique=True)
    opened_at = models.DateTimeField()
    read_seconds = models.PositiveIntegerField(default=0)
    last_beacon_at = models.DateTimeField(null=True, blank=True)
    # When content.read was written (once per visit, by the final beacon or the sweep).
    read_reported_at = models.DateTimeField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-opened_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "item", "opened_at"]),
            models.Index(fields=["tenant", "sender", "opened_at"]),
            models.Index(fields=["read_reported_at", "last_beacon_at"]),
        ]
