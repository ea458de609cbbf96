from datetime import timedelta
from typing import Any

from django.db.models import Count, Min, QuerySet, Sum
from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.wecom.models import CallbackInbox, InboxStatus, ReconciliationRun


def event_list(
    *, actor: StaffMember, type: str = "", customer_id: int | None = None
) -> QuerySet[Event]:
    require(actor, Action.EVENTS_VIEW)
    qs = Event.objects.all()
    if type:
        qs = qs.filter(type=type)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return qs.order_by("-occurred_at", "-id")


def delivery_list(*, actor: StaffMember, status: str = "") -> QuerySet[EventDelivery]:
    require(actor, Action.EVENTS_VIEW)
    qs = EventDelivery.objects.select_related("event")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def event_health(*, actor: StaffMember) -> dict[str, Any]:
    """What an operator checks first: is the outbox flowing, and is anything stuck or dead."""
    require(actor, Action.EVENTS_VIEW)
    now = timezone.now()
    counts = dict(EventDelivery.objects.values_list("status").annotate(n=Count("id")).order_by())
    oldest_pending = EventDelivery.objects.filter(status=DeliveryStatus.PENDING).aggregate(
        oldest=Min("next_attempt_at")
    )["oldest"]
    inbox_counts = dict(
        CallbackInbox.objects.values_list("status").annotate(n=Count("id")).order_by()
    )
    oldest_inbox = CallbackInbox.objects.filter(status=InboxStatus.PENDING).aggregate(
        oldest=Min("received_at")
    )["oldest"]
    last_hour = CallbackInbox.objects.filter(received_at__gte=now - timedelta(hours=1))
    last_run = ReconciliationRun.objects.order_by("-started_at", "-id").first()
    return {
        "inbox_pending": inbox_counts.get(InboxStatus.PENDING, 0),
        "inbox_dead": inbox_counts.get(InboxStatus.DEAD, 0),
        "inbox_done": inbox_counts.get(InboxStatus.DONE, 0),
        "inbox_lag_seconds": (
            max((now - oldest_inbox).total_seconds(), 0.0) if oldest_inbox else 0.0
        ),
        "callbacks_last_hour": last_hour.count(),
        "duplicates_last_hour": last_hour.aggregate(n=Sum("duplicates"))["n"] or 0,
        "last_reconciliation": (
            {
                "id": last_run.pk,
                "status": last_run.status,
                "started_at": last_run.started_at,
                "finished_at": last_run.finished_at,
                "healed": last_run.healed,
                "error": last_run.error,
            }
            if last_run
            else None
        ),
        "pending": counts.get(DeliveryStatus.PENDING, 0),
        "done": counts.get(DeliveryStatus.DONE, 0),
        "dead": counts.get(DeliveryStatus.DEAD, 0),
        "oldest_pending_lag_seconds": (
            max((now - oldest_pending).total_seconds(), 0.0) if oldest_pending else 0.0
        ),
        "events_last_hour": Event.objects.filter(recorded_at__gte=now - timedelta(hours=1)).count(),
    }


def inbox_list(*, actor: StaffMember, status: str = "") -> QuerySet[CallbackInbox]:
    require(actor, Action.EVENTS_VIEW)
    qs = CallbackInbox.objects.all()
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-received_at", "-id")


def reconciliation_list(*, actor: StaffMember) -> QuerySet[ReconciliationRun]:
    require(actor, Action.EVENTS_VIEW)
    return ReconciliationRun.objects.order_by("-started_at", "-id")
