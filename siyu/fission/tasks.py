"""Background jobs of fission campaigns: thin, they take ids and call services."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.fission import services
from siyu.fission.models import Notice, NoticeStatus


@shared_task(name="siyu.fission.send_notice")
def send_notice(tenant_id: int, notice_id: int) -> str:
    tenant = Tenant.objects.get(pk=tenant_id)
    with tenant_context(tenant):
        return services.notice_send(notice_id=notice_id)


@shared_task(name="siyu.fission.sweep_notices")
def sweep_notices(grace_seconds: int = 60) -> int:
    """Re-enqueue notices whose job was lost (broker down at commit)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    rows = list(
        Notice.unscoped.filter(status=NoticeStatus.PENDING, created_at__lte=cutoff)
        .order_by("pk")
        .values_list("tenant_id", "pk")[:1000]
    )
    for tenant_id, notice_id in rows:
        send_notice.delay(tenant_id, notice_id)
    return len(rows)
