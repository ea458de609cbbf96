"""Saved segments: named expressions that mass sends, SOPs and dashboards refer to."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class SavedSegment(TenantModel):
    name = models.CharField(_("名称"), max_length=64)
    # Validated (parsed and bound against the tenant's tags, fields, …) by the services on
    # every write; a tag deleted later makes it fail at use with the same clear error.
    expression = models.TextField(_("表达式"))
    description = models.CharField(_("说明"), max_length=300, blank=True, default="")
    created_by = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="segment_name_unique")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
