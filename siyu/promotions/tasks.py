"""Background jobs of promotions: thin, they take ids and call services."""

from celery import shared_task

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.promotions import services


@shared_task(name="siyu.promotions.expire_teams")
def expire_teams() -> int:
    """Fail group-buy teams past their deadline and refund their paid members, per tenant."""
    refunded = 0
    for tenant in Tenant.objects.filter(is_active=True).order_by("pk"):
        with tenant_context(tenant):
            refunded += services.teams_expire()
    return refunded
