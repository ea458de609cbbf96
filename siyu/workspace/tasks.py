"""Background jobs of the workspace: thin, they take ids and call services."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.transfers.selectors import customers_in_transfer
from siyu.workspace import services
from siyu.workspace.models import AlertStatus, StaffAlert, TaskStatus


@shared_task(name="siyu.workspace.deliver_alert")
def deliver_alert(tenant_id: int, alert_id: int) -> str:
    tenant = Tenant.objects.get(pk=tenant_id)
    with tenant_context(tenant):
        return services.alert_deliver(alert_id=alert_id)


@shared_task(name="siyu.workspace.sweep_alerts")
def sweep_alerts(grace_seconds: int = 60) -> int:
    """Re-enqueue alerts whose job was lost (broker down at commit)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    rows = list(
        StaffAlert.unscoped.filter(status=AlertStatus.PENDING, created_at__lte=cutoff)
        .order_by("pk")
        .values_list("tenant_id", "pk")[:1000]
    )
    for tenant_id, alert_id in rows:
        deliver_alert.delay(tenant_id, alert_id)
    return len(rows)


@shared_task(name="siyu.workspace.settle_departed")
def settle_departed() -> int:
    """Members who left with open tasks: move or cancel them (never left stuck)."""
    departed = (
        StaffMember.unscoped.exclude(status=StaffStatus.ACTIVE)
        .filter(workspace_tasks__status=TaskStatus.OPEN)
        .select_related("tenant")
        .distinct()
    )
    settled = 0
    for member in departed:
        with tenant_context(member.tenant):
            result = services.tasks_of_departed_settle(
                staff=member, waiting_customer_ids=customers_in_transfer(handover=member)
            )
        settled += result["moved"] + result["cancelled"]
    return settled
