"""Background jobs of the event log. Thin: they take ids and call services."""

from celery import shared_task

from siyu.core import services


@shared_task(name="siyu.core.deliver_event", acks_late=True)
def deliver_event(delivery_id: int) -> str:
    return services.event_delivery_run(delivery_id=delivery_id)


@shared_task(name="siyu.core.sweep_event_deliveries")
def sweep_event_deliveries() -> int:
    return services.event_deliveries_sweep()
