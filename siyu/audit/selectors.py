from django.db.models import QuerySet

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.audit.models import AuditEntry


def audit_list(*, actor: StaffMember, action: str = "") -> QuerySet[AuditEntry]:
    require(actor, Action.AUDIT_VIEW)
    qs = AuditEntry.objects.select_related("actor")
    if action:
        qs = qs.filter(action=action)
    return qs.order_by("-created_at", "-id")
