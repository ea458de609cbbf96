from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema
from pydantic import Field

from siyu.accounts.permissions import Action, require
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.errors import InvalidInput
from siyu.core.events import event_types
from siyu.core.models import DeliveryStatus
from siyu.core.services import event_delivery_retry
from siyu.system import selectors
from siyu.wecom.callback.inbox import inbox_replay
from siyu.wecom.models import InboxStatus

router = Router(tags=["events"])


class EventOut(Schema):
    id: int
    type: str
    customer_id: int | None
    payload: dict[str, Any]
    occurred_at: datetime
    source: str


class EventPage(PageOut):
    items: list[EventOut]


class DeliveryOut(Schema):
    id: int
    event_id: int
    event_type: str = Field(..., alias="event.type")
    subscriber: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str


class DeliveryPage(PageOut):
    items: list[DeliveryOut]


class EventTypeOut(Schema):
    name: str
    label: str
    webhook: bool


class ReconciliationOut(Schema):
    id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    healed: dict[str, int]
    error: str


class HealthOut(Schema):
    inbox_pending: int
    inbox_dead: int
    inbox_done: int
    inbox_lag_seconds: float
    callbacks_last_hour: int
    duplicates_last_hour: int
    last_reconciliation: ReconciliationOut | None
    pending: int
    done: int
    dead: int
    oldest_pending_lag_seconds: float
    events_last_hour: int


class InboxOut(Schema):
    id: int
    event: str
    change_type: str
    create_time: datetime
    received_at: datetime
    status: str
    attempts: int
    duplicates: int
    last_error: str


class InboxPage(PageOut):
    items: list[InboxOut]


class InboxQuery(PageParams):
    status: InboxStatus | None = None


class ReplayIn(StrictIn):
    first_id: int | None = Field(None, ge=1)
    last_id: int | None = Field(None, ge=1)
    dead_only: bool = False


class ReplayOut(Schema):
    replayed: int


class EventQuery(PageParams):
    type: str = Field("", max_length=64)
    customer_id: int | None = None


class DeliveryQuery(PageParams):
    status: DeliveryStatus | None = None


@router.get("/types", response=list[EventTypeOut])
def list_event_types(request: HttpRequest) -> object:
    require(actor(request), Action.EVENTS_VIEW)
    return [{"name": t.name, "label": str(t.label), "webhook": t.webhook} for t in event_types()]


@router.get("", response=EventPage)
def list_events(request: HttpRequest, params: Query[EventQuery]) -> object:
    qs = selectors.event_list(
        actor=actor(request), type=params.type, customer_id=params.customer_id
    )
    return paginate(qs, params)


@router.get("/health", response=HealthOut)
def health(request: HttpRequest) -> object:
    return selectors.event_health(actor=actor(request))


@router.get("/deliveries", response=DeliveryPage)
def list_deliveries(request: HttpRequest, params: Query[DeliveryQuery]) -> object:
    qs = selectors.delivery_list(actor=actor(request), status=params.status or "")
    return paginate(qs, params)


@router.post("/deliveries/{delivery_id}/retry", response=DeliveryOut)
def retry_delivery(request: HttpRequest, delivery_id: int) -> object:
    require(actor(request), Action.EVENTS_RETRY)
    return event_delivery_retry(delivery_id=delivery_id)


@router.get("/inbox", response=InboxPage)
def list_inbox(request: HttpRequest, params: Query[InboxQuery]) -> object:
    """WeCom callbacks as received: what is pending, done or dead."""
    return paginate(selectors.inbox_list(actor=actor(request), status=params.status or ""), params)


@router.post("/inbox/replay", response=ReplayOut)
def replay_inbox(request: HttpRequest, payload: ReplayIn) -> dict[str, int]:
    """Process a range of stored callbacks again (handlers are idempotent)."""
    staff = require(actor(request), Action.EVENTS_RETRY)
    if payload.first_id and payload.last_id and payload.first_id > payload.last_id:
        raise InvalidInput(_("first_id 不能大于 last_id"))
    ids = inbox_replay(
        tenant=staff.tenant,
        first_id=payload.first_id,
        last_id=payload.last_id,
        include_dead_only=payload.dead_only,
    )
    return {"replayed": len(ids)}


@router.get("/reconciliations", response=list[ReconciliationOut])
def list_reconciliations(request: HttpRequest) -> object:
    return selectors.reconciliation_list(actor=actor(request))[:50]
