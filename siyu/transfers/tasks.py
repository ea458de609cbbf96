"""Background jobs for transfers: thin, they take ids and call services."""

from celery import shared_task

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.transfers import services
from siyu.transfers.models import JobStatus, TransferJob
from siyu.wecom.client.errors import TransientError


@shared_task(name="siyu.transfers.poll_open")
def poll_open() -> int:
    """Periodic: one poll per open job, until every customer's answer is final."""
    rows = list(
        TransferJob.unscoped.filter(status=JobStatus.OPEN)
        .order_by("pk")
        .values_list("tenant_id", "pk")
    )
    for tenant_id, job_id in rows:
        poll_job.delay(tenant_id, job_id)
    return len(rows)


@shared_task(
    name="siyu.transfers.poll_job",
    autoretry_for=(TransientError,),
    retry_backoff=True,
    max_retries=3,
)
def poll_job(tenant_id: int, job_id: int) -> int:
    tenant = Tenant.objects.get(pk=tenant_id)
    with tenant_context(tenant):
        return services.transfer_job_poll(job_id=job_id)


@shared_task(name="siyu.transfers.sync_unassigned", autoretry_for=(TransientError,), max_retries=3)
def sync_unassigned(tenant_id: int) -> dict[str, int]:
    tenant = Tenant.objects.get(pk=tenant_id)
    with tenant_context(tenant):
        return services.unassigned_sync()
