"""One customer across identifiers, and their relations to staff members.

A customer is a person. WeCom knows them as an ``external_userid`` per corp; WeChat as a
``unionid``; shops by phone or buyer id. Each identifier is a ``CustomerIdentity`` row, unique per
tenant, so "which customer is this?" is one indexed lookup whatever identifier arrives.
A customer may follow several staff members: each follow is a ``StaffRelation`` that remembers
how it began and how (and by whom) it ended.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class CustomerType(models.IntegerChoices):
    WECHAT = 1, _("微信用户")
    WECOM = 2, _("企业微信用户")


class Customer(TenantModel):
    name = models.CharField(_("昵称"), max_length=128, blank=True, default="")
    avatar = models.URLField(_("头像"), max_length=500, blank=True, default="")
    gender = models.PositiveSmallIntegerField(
        _("性别"), default=0
    )  # WeCom: 0 unknown 1 male 2 female
    type = models.PositiveSmallIntegerField(
        _("类型"), choices=CustomerType.choices, default=CustomerType.WECHAT
    )
    corp_name = models.CharField(_("企业名称"), max_length=128, blank=True, default="")
    # The key of one of the tenant's LifecycleStage rows (普通 → 意向 → 付费 → 复购 → 代理).
    stage = models.CharField(_("生命周期阶段"), max_length=32, default="normal")
    # The tenant's custom fields (CustomField keys → values), validated on write.
    attributes = models.JSONField(_("自定义字段"), default=dict, blank=True)
    # Set when this record was merged into another customer; kept so the merge can be undone.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="absorbed"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="customer_recent"),
            models.Index(fields=["tenant", "stage"], name="customer_stage"),
        ]

    def __str__(self) -> str:
        return self.name or f"#{self.pk}"


class IdentityKind(models.TextChoices):
    EXTERNAL_USERID = "external_userid", _("企业微信外部联系人ID")
    UNIONID = "unionid", _("微信 UnionID")
    OPENID = "openid", _("微信 OpenID")
    PHONE = "phone", _("手机号")
    SHOP_BUYER = "shop_buyer", _("店铺买家ID")


class CustomerIdentity(TenantModel):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=20, choices=IdentityKind.choices)
    value = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "value"], name="identity_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class RelationStatus(models.TextChoices):
    ACTIVE = "active", _("正常")
    HALF = "half", _("待通过")  # customer added a skip-verify member who has not accepted yet
    CUSTOMER_DELETED = "customer_deleted", _("客户删除了员工")
    STAFF_DELETED = "staff_deleted", _("员工删除了客户")


class StaffRelation(TenantModel):
    """Customer × staff member, as WeCom's follow_user describes it."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="relations")
    staff = models.ForeignKey(
        "accounts.StaffMember", on_delete=models.CASCADE, related_name="customer_relations"
    )
    # Denormalised from the identity so callbacks and sync find the row in one lookup.
    external_userid = models.CharField(max_length=128)
    status = models.CharField(
        max_length=20, choices=RelationStatus.choices, default=RelationStatus.ACTIVE
    )
    remark = models.CharField(_("备注"), max_length=64, blank=True, default="")
    description = models.CharField(_("描述"), max_length=300, blank=True, default="")
    remark_mobiles = models.JSONField(default=list, blank=True)
    add_way = models.IntegerField(_("添加方式"), default=0)
    state = models.CharField(_("渠道参数"), max_length=64, blank=True, default="")
    oper_userid = models.CharField(max_length=128, blank=True, default="")
    added_at = models.DateTimeField(_("添加时间"), null=True, blank=True)
    deleted_at = models.DateTimeField(_("删除时间"), null=True, blank=True)
    delete_source = models.CharField(max_length=32, blank=True, default="")
    # The WeCom time of the last change applied, so a late, older callback cannot undo a newer one.
    changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "staff", "external_userid"], name="relation_once"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "external_userid"], name="relation_ext"),
            models.Index(fields=["tenant", "staff", "status"], name="relation_staff_status"),
        ]

    def __str__(self) -> str:
        return f"{self.external_userid}↔{self.staff_id}"


class LifecycleStage(TenantModel):
    """A tenant's lifecycle stages, in order. Seeded with 普通 → 意向 → 付费 → 复购 → 代理."""

    key = models.SlugField(max_length=32)
    name = models.CharField(_("名称"), max_length=32)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="stage_key"),
        ]
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return self.name


class FieldKind(models.TextChoices):
    TEXT = "text", _("文本")
    NUMBER = "number", _("数字")
    DATE = "date", _("日期")
    CHOICE = "choice", _("单选")


class CustomField(TenantModel):
    """A tenant-defined customer attribute (生日, 城市, 会员等级 …)."""

    key = models.SlugField(max_length=32)
    name = models.CharField(_("名称"), max_length=32)
    kind = models.CharField(max_length=16, choices=FieldKind.choices, default=FieldKind.TEXT)
    choices = models.JSONField(default=list, blank=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="custom_field_key"),
        ]
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return self.name


class CustomerMerge(TenantModel):
    """One merge of ``absorbed`` into ``survivor``: what moved, so it can be undone exactly."""

    survivor = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    absorbed = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    identity_ids = models.JSONField(default=list)
    relation_ids = models.JSONField(default=list)
    tag_ids = models.JSONField(default=list)
    group_member_ids = models.JSONField(default=list)
    reason = models.CharField(max_length=64, default="manual")
    by = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.absorbed_id}→{self.survivor_id}"


class LifecycleRule(TenantModel):
    """Moves a customer forward to ``stage`` once they have ``min_count`` events of
    ``event_type`` (first order → 付费, second → 复购). Rules never move a customer back."""

    event_type = models.CharField(max_length=64)
    min_count = models.PositiveIntegerField(default=1)
    stage = models.SlugField(max_length=32)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "event_type", "min_count"], name="lifecycle_rule_once"
            ),
        ]
        ordering = ["event_type", "min_count"]

    def __str__(self) -> str:
        return f"{self.event_type}×{self.min_count}→{self.stage}"
