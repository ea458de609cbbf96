"""Background jobs of the content library: thin, they take ids and call services."""

from datetime import timedelta

from celery import shared_task

from siyu.content import selectors, services
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context


@shared_task(name="siyu.content.check_url")
def check_url(tenant_id: int, item_id: int) -> str:
    tenant = Tenant.objects.get(pk=tenant_id)
    with tenant_context(tenant):
        return services.item_url_check(item_id=item_id).url_status


@shared_task(name="siyu.content.sweep")
def sweep() -> int:
    """Per tenant: report reads whose final beacon never came, and re-enqueue link checks
    whose job was lost, so no item stays "unchecked" for good."""
    done = 0
    for tenant in Tenant.objects.filter(is_active=True):
        with tenant_context(tenant):
            done += services.visit_reads_sweep()
            for item_id in selectors.unchecked_url_items(older_than=timedelta(minutes=5)):
                check_url.delay(tenant.pk, item_id)
                done += 1
    return done
