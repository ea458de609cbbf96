"""The team's tag taxonomy, mirrored with WeCom's corp tags, and tags applied to customers."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class TagGroup(TenantModel):
    wecom_id = models.CharField(max_length=64, null=True, blank=True)
    name = models.CharField(_("标签组"), max_length=30)
    order = models.BigIntegerField(default=0)  # WeCom sorts higher order first
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


class CustomerTag(TenantModel):
    """A tag on a customer. In WeCom corp tags hang on a customer × staff relation, so the
    member who carries it is kept; ``source`` says how it got there."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="tags"
    )
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="assignments")
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=32, default="wecom")
    applied_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "tag", "staff"], name="customer_tag_once"),
        ]
        indexes = [models.Index(fields=["tenant", "tag"], name="customertag_tag")]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.tag_id}"
