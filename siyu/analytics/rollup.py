"""What one event adds to the channel rollup. Shared by the incremental subscriber and the
rebuild, so the two cannot disagree."""

from dataclasses import dataclass
from datetime import date

from django.db.models import Q
from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.analytics.sources import SourceKey, scan_event_for, scan_event_types, source_of_state
from siyu.core.models import Event
from siyu.customers.events import CUSTOMER_ADDED, CUSTOMER_DELETED_STAFF, STAFF_DELETED_CUSTOMER
from siyu.customers.lifecycle import customer_record_ids
from siyu.customers.models import Customer

DELETE_TYPES = (CUSTOMER_DELETED_STAFF, STAFF_DELETED_CUSTOMER)
RELATION_TYPES = (CUSTOMER_ADDED, *DELETE_TYPES)
# WeCom's add_way for customers handed over by 在职/离职继承: the company did not win them.
TRANSFER_ADD_WAYS = frozenset({201, 202})
# Source of the handover member's automatic delete when a transfer completes.
DELETE_BY_TRANSFER = "DELETE_BY_TRANSFER"


@dataclass(frozen=True)
class Contribution:
    day: date
    source: SourceKey
    staff_id: int | None
    field: str  # "scans" | "adds" | "deletes"


def counted(event: Event) -> bool:
    """Cheap pre-check at write time (no delivery row for events that never count)."""
    return event.type in RELATION_TYPES or scan_event_for(event.type) is not None


def counted_types() -> list[str]:
    return [*RELATION_TYPES, *scan_event_types()]


def contribution(
    event: Event,
    staff: dict[str, int] | None = None,
    previous: dict[tuple[str, str], str | None] | None = None,
) -> Contribution | None:
    """+1 to which rollup cell, or None. Call with the event's tenant in context.

    A rebuild, reading the log in (occurred_at, pk) order, passes ``staff`` (userid → id) and
    ``previous`` (per relation seen so far: its last add's state, or None after a delete; kept
    up to date here) to save the per-event queries; a relation first seen through a delete is
    looked up as usual.
    """
    found = _contribution(event, staff, previous)
    if previous is not None and event.type in RELATION_TYPES:
        added = event.type == CUSTOMER_ADDED
        previous[_relation(event)] = str(event.payload.get("state", "")) if added else None
    return found


def _contribution(
    event: Event,
    staff: dict[str, int] | None,
    previous: dict[tuple[str, str], str | None] | None,
) -> Contribution | None:
    day = timezone.localdate(event.occurred_at)
    payload = event.payload

    def staff_id_of(userid: str) -> int | None:
        if staff is not None:
            return staff.get(userid)
        return StaffMember.objects.filter(userid=userid).values_list("pk", flat=True).first()

    if event.type == CUSTOMER_ADDED:
        if int(payload.get("add_way") or 0) in TRANSFER_ADD_WAYS:
            return None
        staff_id = staff_id_of(str(payload.get("staff_userid", "")))
        if staff_id is None:
            return None
        return Contribution(day, source_of_state(str(payload.get("state", ""))), staff_id, "adds")
    if event.type in DELETE_TYPES:
        if payload.get("source") == DELETE_BY_TRANSFER:
            return None
        staff_id = staff_id_of(str(payload.get("staff_userid", "")))
        if previous is not None and _relation(event) in previous:
            state = previous[_relation(event)]
        else:
            state = _ended_add_state(event)
        if staff_id is None or state is None:
            return None
        return Contribution(day, source_of_state(state), staff_id, "deletes")
    scan = scan_event_for(event.type)
    if scan is None:
        return None
    source_id = scan.resolve(event)
    if source_id is None:
        return None
    return Contribution(
        day, (scan.kind, source_id), staff_id_of(str(payload.get("staff_userid", ""))), "scans"
    )


def _relation(event: Event) -> tuple[str, str]:
    return str(event.payload.get("staff_userid")), str(event.payload.get("external_userid"))


def _ended_add_state(event: Event) -> str | None:
    """The state of the add this delete ends, or None: a delete counts only if the relation's
    previous add/delete event is an add. A second delete of an ended relation (the customer
    deleted the member, then the member deleted them too) and a delete whose add Siyu never saw
    end nothing that was counted. The add's state, not the relation's current one, names the
    source, so a later re-add through another code cannot move an old delete.
    """
    if event.customer_id is None:
        return None
    customer = Customer.objects.filter(pk=event.customer_id).first()
    record_ids = customer_record_ids(customer) if customer is not None else [event.customer_id]
    earlier = (
        Event.objects.filter(customer_id__in=record_ids, type__in=RELATION_TYPES)
        .filter(
            Q(occurred_at__lt=event.occurred_at) | Q(occurred_at=event.occurred_at, pk__lt=event.pk)
        )
        .order_by("-occurred_at", "-pk")
    )
    # A customer's relation events are few: one plain query, no server-side cursor.
    for candidate in earlier:
        if _relation(candidate) == _relation(event):
            if candidate.type != CUSTOMER_ADDED:
                return None
            return str(candidate.payload.get("state", ""))
    return None
