"""SOPs hang on the event log: trigger events enrol, goal events exit as converted."""

from siyu.core.events import ALL_EVENTS, rules_model, subscriber, watched_event_types
from siyu.core.models import Event
from siyu.sop.engine import sop_event_handle
from siyu.sop.models import Sop, SopStatus


def _watched(event: Event) -> bool:
    # Asked when any event is written (an indexed lookup): only events that a running SOP
    # triggers on, or that are some SOP's goal, get a delivery.
    # A paused SOP enrols nobody, but its travellers still reach their goal.
    return event.customer_id is not None and event.type in watched_event_types(
        "sop", event, lambda: _sop_event_types(event.tenant_id)
    )


def _sop_event_types(tenant_id: int) -> set[str]:
    sops = Sop.unscoped.filter(tenant_id=tenant_id)
    triggers = sops.filter(status=SopStatus.ACTIVE).values_list("trigger_event", flat=True)
    goals = sops.filter(status__in=[SopStatus.ACTIVE, SopStatus.PAUSED]).values_list(
        "goal_event", flat=True
    )
    return {t for t in [*triggers, *goals] if t}


rules_model(Sop, fields=["status", "trigger_event", "goal_event"])


@subscriber(ALL_EVENTS, name="sop.events", applies=_watched)
def on_event(event: Event) -> None:
    sop_event_handle(event=event)
