from typing import Any

from django.db.models import Model

from siyu.audit.models import AuditEntry
from siyu.core.request_context import current_client_ip


def audit_record(
    *, actor: Any, action: str, target: Model | None = None, details: dict[str, Any]
) -> AuditEntry:
    """Record an audited action; call it inside the transaction of the change itself."""
    return AuditEntry.objects.create(
        actor=actor,
        actor_label=str(actor) if actor is not None else "system",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        details=details,
        ip_address=current_client_ip(),
    )
