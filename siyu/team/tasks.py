"""Daily: each account's friend count, for its history and the next inventory."""

from celery import shared_task

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.team import services


@shared_task(name="siyu.team.record_friend_days")
def record_friend_days() -> int:
    recorded = 0
    for tenant in Tenant.objects.filter(is_active=True):
        with tenant_context(tenant):
            recorded += services.friend_days_record()
    return recorded
