"""Background jobs of the shop: thin, they pick the tenants with work and call services."""

from celery import shared_task
from django.utils import timezone

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.shop import services
from siyu.shop.models import Cart, CartStatus, Order, OrderStatus, Refund, RefundStatus


@shared_task(name="siyu.shop.expire_orders")
def expire_orders() -> int:
    """Cancel unpaid orders past their deadline (stock back), abandon idle carts, and retry
    refunds whose outcome is unknown."""
    now = timezone.now()
    retry = set(
        Refund.unscoped.filter(status=RefundStatus.PROCESSING, payment__isnull=False).values_list(
            "tenant_id", flat=True
        )
    )
    tenant_ids = (
        retry
        | set(
            Order.unscoped.filter(status=OrderStatus.CREATED, expires_at__lte=now).values_list(
                "tenant_id", flat=True
            )
        )
        | set(Cart.unscoped.filter(status=CartStatus.OPEN).values_list("tenant_id", flat=True))
    )
    done = 0
    for tenant in Tenant.objects.filter(pk__in=tenant_ids, is_active=True):
        with tenant_context(tenant):
            done += services.orders_expire(now=now) + services.carts_abandon(now=now)
            if tenant.pk in retry:
                services.refunds_retry()
    return done
