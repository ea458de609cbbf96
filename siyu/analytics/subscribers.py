"""Keeps the channel rollup current: one increment per add, delete or scan event."""

from siyu.analytics.rollup import counted
from siyu.analytics.services import rollup_apply
from siyu.core.events import ALL_EVENTS, subscriber
from siyu.core.models import Event


# ALL_EVENTS with ``applies``: scan event types are registered by other apps, possibly after
# this module is imported.
@subscriber(ALL_EVENTS, name="analytics.source_rollup", applies=counted)
def source_rollup(event: Event) -> None:
    rollup_apply(event=event)
