"""Background jobs for mass sends: thin, they take ids and call services."""

from contextlib import suppress
from datetime import timedelta

from celery import shared_task
from django.db.models import Q

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.masssend import services
from siyu.masssend.models import Batch, BatchStatus, MassSend, MassSendStatus
from siyu.wecom.client.errors import TransientError

# A pending batch whose job was queued this long ago without being claimed is queued again.
REQUEUE_AFTER_SECONDS = 60


@shared_task(name="siyu.masssend.dispatch")
def dispatch(tenant_id: int, mass_send_id: int) -> int:
    """Plan a due send and fan its batches out, one job per batch."""
    with tenant_context(Tenant.objects.get(pk=tenant_id)):
        batch_ids = services.mass_send_dispatch(mass_send_id=mass_send_id)
    for batch_id in batch_ids:
        send_batch.delay(tenant_id, batch_id)
    return len(batch_ids)


@shared_task(name="siyu.masssend.send_batch")
def send_batch(tenant_id: int, batch_id: int) -> str:
    with tenant_context(Tenant.objects.get(pk=tenant_id)):
        return services.batch_send(batch_id=batch_id)


@shared_task(name="siyu.masssend.sync", autoretry_for=(TransientError,), max_retries=3)
def sync(tenant_id: int, mass_send_id: int) -> int:
    with tenant_context(Tenant.objects.get(pk=tenant_id)):
        return services.mass_send_sync(mass_send_id=mass_send_id)


@shared_task(name="siyu.masssend.sweep")
def sweep(requeue_after_seconds: float = REQUEUE_AFTER_SECONDS, sync_results: bool = True) -> int:
    """Periodic: start due sends, reconcile calls that never recorded an answer, queue batches
    whose job was lost, cancel created tasks of cancelled sends, and read results."""
    open_tenants = set(
        MassSend.unscoped.filter(
            Q(status__in=[MassSendStatus.SCHEDULED, MassSendStatus.SENDING, MassSendStatus.SENT])
            | Q(status=MassSendStatus.CANCELLED, batches__status=BatchStatus.CREATED)
        ).values_list("tenant_id", flat=True)
    ) | set(Batch.unscoped.filter(status=BatchStatus.CALLING).values_list("tenant_id", flat=True))
    queued = 0
    for tenant in Tenant.objects.filter(pk__in=open_tenants, is_active=True):
        with tenant_context(tenant):
            for send_id in services.due_mass_sends():
                dispatch.delay(tenant.pk, send_id)
            with suppress(TransientError):  # WeCom unavailable: the next sweep reconciles
                services.mass_send_recover()
            for batch_id in services.pending_batches(
                older_than=timedelta(seconds=requeue_after_seconds)
            ):
                send_batch.delay(tenant.pk, batch_id)
                queued += 1
            for send_id in (
                MassSend.objects.filter(
                    status=MassSendStatus.CANCELLED,
                    batches__status=BatchStatus.CREATED,
                    batches__remote_cancelled=False,
                )
                .distinct()
                .values_list("pk", flat=True)
            ):
                services.mass_send_cancel_remote(mass_send_id=send_id)
            if sync_results:
                for send_id in services.open_for_sync():
                    sync.delay(tenant.pk, send_id)
    return queued
