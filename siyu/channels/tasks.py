"""Background jobs of channel codes. Queues (settings.CELERY_TASK_ROUTES) keep imports, exports
and mass work from delaying them: ``welcome`` for the add's delivery (which sends the welcome
message right after its commit) and re-sends, ``channels`` for the follow-up."""

from celery import shared_task

from siyu.channels import services
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.wecom.client.errors import TransientError


@shared_task(name="siyu.channels.send_welcome", acks_late=True)
def send_welcome(tenant_id: int, send_id: int) -> str:
    with tenant_context(Tenant.objects.get(pk=tenant_id)):
        return services.welcome_send(send_id=send_id)


@shared_task(
    name="siyu.channels.follow_up_add",
    acks_late=True,
    autoretry_for=(TransientError,),
    retry_backoff=2,
    max_retries=5,
)
def follow_up_add(tenant_id: int, add_id: int) -> None:
    with tenant_context(Tenant.objects.get(pk=tenant_id)):
        services.channel_add_follow_up(add_id=add_id)


@shared_task(name="siyu.channels.refresh_pools")
def refresh_pools() -> int:
    """Every minute: pools follow the clock (working hours, a new day resets daily caps) and
    members who left; and welcome sends whose window closed unseen are recorded as failed."""
    changed = 0
    for tenant in Tenant.objects.filter(is_active=True):
        with tenant_context(tenant):
            services.welcome_sends_sweep()
            changed += services.channel_pools_refresh()
    return changed
