"""Every deletion, either way, becomes a churn record (and an alert)."""

from siyu.core.events import subscriber
from siyu.core.models import Event
from siyu.customers.events import CUSTOMER_DELETED_STAFF, STAFF_DELETED_CUSTOMER
from siyu.insights import services


@subscriber(CUSTOMER_DELETED_STAFF, STAFF_DELETED_CUSTOMER, name="insights.churn_record")
def churn_record(event: Event) -> None:
    services.churn_record(event=event)
