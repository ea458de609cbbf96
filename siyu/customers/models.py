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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="customer_recent")]

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
