"""The organisation, mirrored from WeCom's address book, and who may do what in Siyu."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class Role(models.TextChoices):
    BOSS = "boss", _("老板")
    ADMIN = "admin", _("管理员")
    OPERATIONS = "operations", _("运营")
    MANAGER = "manager", _("主管")
    STAFF = "staff", _("员工")


class DataScope(models.TextChoices):
    COMPANY = "company", _("全公司")
    DEPARTMENT = "department", _("本部门及下级")
    OWN = "own", _("仅自己的客户")


class StaffStatus(models.TextChoices):
    # WeCom user/get status: 1 active, 2 disabled, 4 not activated, 5 left.
    ACTIVE = "active", _("在职")
    DISABLED = "disabled", _("已禁用")
    INACTIVE = "inactive", _("未激活")
    LEFT = "left", _("已离职")


class AccountKind(models.TextChoices):
    """The functional account matrix: which job a staff account does in the customer journey."""

    GENERAL = "", _("普通号")
    IP = "ip", _("IP号")
    DEAL = "deal", _("成交号")
    MEMBER = "member", _("会员号")
    AGENT = "agent", _("代理号")


class Department(TenantModel):
    wecom_id = models.BigIntegerField(_("企业微信部门ID"))
    name = models.CharField(_("名称"), max_length=64)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    order = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "wecom_id"], name="department_wecom_id")
        ]
        ordering = ["-order", "wecom_id"]

    def __str__(self) -> str:
        return self.name


class StaffMember(TenantModel):
    """A member of the corp. ``user`` is set for those who sign in to the console."""

    userid = models.CharField(_("企业微信账号"), max_length=64)
    name = models.CharField(_("姓名"), max_length=64)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="staff_member",
    )
    departments = models.ManyToManyField(Department, blank=True, related_name="members")
    main_department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    role = models.CharField(_("角色"), max_length=16, choices=Role.choices, default=Role.STAFF)
    data_scope = models.CharField(
        _("数据范围"), max_length=16, choices=DataScope.choices, blank=True, default=""
    )
    status = models.CharField(
        _("状态"), max_length=16, choices=StaffStatus.choices, default=StaffStatus.ACTIVE
    )
    position = models.CharField(_("职务"), max_length=64, blank=True, default="")
    mobile = models.CharField(_("手机号"), max_length=32, blank=True, default="")
    email = models.CharField(_("邮箱"), max_length=128, blank=True, default="")
    avatar = models.URLField(_("头像"), max_length=500, blank=True, default="")
    customer_contact_enabled = models.BooleanField(_("客户联系权限"), default=True)
    account_kind = models.CharField(
        _("账号类型"), max_length=16, choices=AccountKind.choices, blank=True, default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "userid"], name="staff_userid"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="staff_role_valid"
            ),
        ]
        ordering = ["name", "userid"]

    def __str__(self) -> str:
        return f"{self.name} ({self.userid})"


class ApiToken(TenantModel):
    """A credential for integrations. It acts as ``staff`` with that member's permissions."""

    name = models.CharField(_("名称"), max_length=64)
    staff = models.ForeignKey(StaffMember, on_delete=models.CASCADE, related_name="api_tokens")
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
