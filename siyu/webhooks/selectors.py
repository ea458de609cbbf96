from django.db.models import QuerySet

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list(*, actor: StaffMember) -> QuerySet[WebhookEndpoint]:
    require(actor, Action.WEBHOOKS_MANAGE)
    return WebhookEndpoint.objects.order_by("-created_at")


def webhook_delivery_list(
    *, actor: StaffMember, endpoint_id: int | None = None, status: str = ""
) -> QuerySet[WebhookDelivery]:
    require(actor, Action.WEBHOOKS_MANAGE)
    qs = WebhookDelivery.objects.select_related("endpoint", "event")
    if endpoint_id is not None:
        qs = qs.filter(endpoint_id=endpoint_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")
