"""The team's tag taxonomy, mirrored with WeCom's corp tags, tags applied to customers, and the
rules that apply them automatically."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel

# The seed's rule of thumb: a tag meant for mass sends should hold at most ~200 customers, so
# each send stays small, current and quick to confirm.
MASS_SEND_TAG_SIZE = 200


class TagGroup(TenantModel):
    wecom_id = models.CharField(max_length=64, null=True, blank=True)
    name = models.CharField(_("标签组"), max_length=30)
    order = models.BigIntegerField(default=0)  # WeCom sorts higher order first
    # Siyu's own quality settings; WeCom has no such fields, so sync never touches them.
    required = models.BooleanField(_("必打标签组"), default=False)
    mass_send = models.BooleanField(_("用于群发"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "wecom_id"], name="taggroup_wecom_id"),
            models.UniqueConstraint(fields=["tenant", "name"], name="taggroup_name"),
        ]
        ordering = ["-order", "id"]

    def __str__(self) -> str:
        return self.name


class Tag(TenantModel):
    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    wecom_id = models.CharField(max_length=64, null=True, blank=True)
    name = models.CharField(_("标签"), max_length=30)
    order = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "wecom_id"], name="tag_wecom_id"),
            models.UniqueConstraint(fields=["group", "name"], name="tag_name_in_group"),
        ]
        ordering = ["-order", "id"]

    def __str__(self) -> str:
        return self.name


class TagSource(models.TextChoices):
    WECOM = "wecom", _("企业微信")
    MANUAL = "manual", _("手动")
    IMPORT = "import", _("导入")
    CHANNEL = "channel", _("渠道活码")
    RULE = "rule", _("自动规则")


class CustomerTag(TenantModel):
    """A tag on a customer. In WeCom corp tags hang on a customer × staff relation, so ``staff``
    is the member whose relation carries it (None: the customer had no active relation, the tag
    is Siyu's only). ``applied_by`` is who did it, ``source`` how, ``rule`` which rule."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="tags"
    )
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="assignments")
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=32, choices=TagSource.choices, default=TagSource.WECOM)
    applied_by = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule = models.ForeignKey(
        "tags.TagRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    applied_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "tag", "staff"], name="customer_tag_once"),
            # NULLs are distinct in the constraint above; a tag nobody carries is still once.
            models.UniqueConstraint(
                fields=["customer", "tag"],
                condition=models.Q(staff__isnull=True),
                name="customer_tag_once_uncarried",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "tag"], name="customertag_tag")]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.tag_id}"


class PushStatus(models.TextChoices):
    PENDING = "pending", _("待同步")
    DONE = "done", _("已同步")
    DEAD = "dead", _("失败")


class TagMarkPush(TenantModel):
    """Outbox row: tags Siyu changed on a relation, to be marked in WeCom after the commit.

    Written in the transaction that changes ``CustomerTag`` rows, so a change is pushed once it
    is committed and never when it rolls back; mark_tag is idempotent, so a re-run is harmless.
    """

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey("accounts.StaffMember", on_delete=models.CASCADE, related_name="+")
    external_userid = models.CharField(max_length=128)
    add = models.JSONField(default=list)  # WeCom tag ids
    remove = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=PushStatus.choices, default=PushStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="tagpush_due")]

    def __str__(self) -> str:
        return f"{self.external_userid}@{self.staff_id}"


class TagRule(TenantModel):
    """Auto-tagging: when a customer has ``threshold`` events of ``event_type`` (whose payload
    matches ``conditions``) within ``window_days``, the customer gets ``tag`` — once."""

    name = models.CharField(_("规则名称"), max_length=64)
    enabled = models.BooleanField(_("启用"), default=True)
    event_type = models.CharField(_("事件类型"), max_length=64)
    conditions = models.JSONField(_("事件条件"), default=dict, blank=True)  # {payload key: value}
    threshold = models.PositiveIntegerField(_("次数"), default=1)
    window_days = models.PositiveIntegerField(_("天数"), default=7)
    # A rule whose tag is deleted (in Siyu or in WeCom) has nothing left to do: it goes too.
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="rules")
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tagrule_name")]
        indexes = [
            models.Index(fields=["tenant", "event_type", "enabled"], name="tagrule_event"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
