"""The workspace listens to the customer's moments (alerts) and to transfers (task owners)."""

from siyu.accounts.models import StaffMember
from siyu.core.events import subscriber
from siyu.core.models import Event
from siyu.customers.models import Customer
from siyu.transfers.events import CUSTOMER_TRANSFERRED
from siyu.workspace.services import ALERT_TRIGGERS, customer_event_alert, customer_transferred


def _about_customer(event: Event) -> bool:
    return event.customer_id is not None


# Names only: an event type another lane has not registered yet simply never arrives.
@subscriber(*sorted(ALERT_TRIGGERS), name="workspace.alert", applies=_about_customer)
def alert_on_moment(event: Event) -> None:
    customer_event_alert(event=event)


@subscriber(CUSTOMER_TRANSFERRED, name="workspace.transferred", applies=_about_customer)
def on_transferred(event: Event) -> None:
    userids = [event.payload.get("from_userid"), event.payload.get("to_userid")]
    members = {m.userid: m for m in StaffMember.objects.filter(userid__in=userids)}
    old = members.get(str(userids[0]))
    new = members.get(str(userids[1]))
    customer = Customer.objects.filter(pk=event.customer_id or 0).first()
    if old is None or new is None or customer is None:
        return
    customer_transferred(
        customer=customer,
        from_staff=old,
        to_staff=new,
        item_id=int(event.payload.get("item_id") or event.pk),
    )
