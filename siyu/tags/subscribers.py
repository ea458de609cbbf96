"""Auto-tagging hangs on the event log: every event a rule watches is evaluated once."""

from siyu.core.events import ALL_EVENTS, rules_model, subscriber, watched_event_types
from siyu.core.models import Event
from siyu.tags.models import TagRule
from siyu.tags.services import tag_rules_evaluate

rules_model(TagRule)


def _has_rules(event: Event) -> bool:
    # Asked when any event is written: only events some enabled rule watches get a delivery.
    return event.customer_id is not None and event.type in watched_event_types(
        "tags.rules",
        event,
        lambda: TagRule.unscoped.filter(tenant_id=event.tenant_id, enabled=True).values_list(
            "event_type", flat=True
        ),
    )


@subscriber(ALL_EVENTS, name="tags.auto_tag", applies=_has_rules)
def auto_tag(event: Event) -> None:
    tag_rules_evaluate(event=event)
