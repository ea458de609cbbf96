from celery import shared_task

from siyu.webhooks import services


@shared_task(name="siyu.webhooks.send", acks_late=True)
def send_webhook(delivery_id: int) -> str:
    return services.webhook_delivery_send(delivery_id=delivery_id)


@shared_task(name="siyu.webhooks.sweep")
def sweep_webhooks() -> int:
    return services.webhook_deliveries_sweep()
