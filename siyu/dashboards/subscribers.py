"""Keeps the dashboard rollups current: each relation, stage, content, order, mass-send and SOP
event is applied once."""

from siyu.core.events import subscriber
from siyu.core.models import Event
from siyu.dashboards.rollup import TRACKED_TYPES
from siyu.dashboards.services import rollup_apply


@subscriber(*sorted(TRACKED_TYPES), name="dashboards.rollup")
def dashboards_rollup(event: Event) -> None:
    rollup_apply(event=event)
