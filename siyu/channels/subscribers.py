"""Every add through a contact way Siyu made goes to the handler of its state's kind."""

from siyu.channels.services import welcome_fast_lane
from siyu.channels.state import handler_for
from siyu.core.events import subscriber
from siyu.core.models import Event
from siyu.customers.events import CUSTOMER_ADDED
from siyu.customers.models import StaffRelation
from siyu.wecom.callback.fastlane import welcome_code_listener

# The welcome message starts from the callback itself, ahead of the add's processing.
welcome_code_listener(welcome_fast_lane)


def _routed(event: Event) -> bool:
    return handler_for(str(event.payload.get("state", ""))) is not None


# Tags and the add's record; the welcome lane has usually sent the welcome already.
@subscriber(CUSTOMER_ADDED, name="channels.route_add", applies=_routed, queue="channels")
def route_add(event: Event) -> None:
    routed = handler_for(str(event.payload.get("state", "")))
    relation = (
        StaffRelation.objects.select_related("staff")
        .filter(pk=event.payload.get("relation_id"))
        .first()
    )
    if routed is None or relation is None:
        return
    handler, state = routed
    handler(relation=relation, event=event, state=state)
