"""Auto-tagging hangs on the event log: every event a rule watches is evaluated once."""

from siyu.core.events import ALL_EVENTS, subscriber
from siyu.core.models import Event
from siyu.tags.models import TagRule
from siyu.tags.services import tag_rules_evaluate


def _has_rules(event: Event) -> bool:
    # Asked when any event is written: only events some enabled rule watches get a delivery.
    return (
        event.customer_id is not None
        and TagRule.unscoped.filter(
            tenant_id=event.tenant_id, event_type=event.type, enabled=True
        ).exists()
    )


@subscriber(ALL_EVENTS, name="tags.auto_tag", applies=_has_rules)
def auto_tag(event: Event) -> None:
    tag_rules_evaluate(event=event)
