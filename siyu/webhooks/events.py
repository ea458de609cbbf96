from siyu.core.events import ALL_EVENTS, rules_model, subscriber
from siyu.core.models import Event
from siyu.webhooks.models import WebhookEndpoint
from siyu.webhooks.services import tenant_wants_webhook, webhook_fan_out

rules_model(WebhookEndpoint)


@subscriber(ALL_EVENTS, name="webhooks.fan_out", applies=tenant_wants_webhook)
def fan_out(event: Event) -> None:
    webhook_fan_out(event=event)
