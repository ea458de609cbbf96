from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantModel


class AuditEntry(TenantModel):
    """Who did what: exports, transfers, permission and settings changes. Append-only."""

    actor = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(_("操作人"), max_length=128)
    action = models.CharField(_("操作"), max_length=64)
    target_type = models.CharField(_("对象类型"), max_length=64, blank=True, default="")
    target_id = models.CharField(_("对象ID"), max_length=64, blank=True, default="")
    target_label = models.CharField(_("对象"), max_length=200, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "action", "-created_at"], name="audit_action")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target_label}"
