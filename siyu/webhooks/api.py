from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.webhooks import selectors, services
from siyu.webhooks.models import WebhookStatus

router = Router(tags=["webhooks"])


class EndpointIn(StrictIn):
    url: str = Field(..., max_length=500)
    event_types: list[str] = Field(..., min_length=1, max_length=200)
    description: str = Field("", max_length=200)


class EndpointPatch(StrictIn):
    url: str | None = Field(None, max_length=500)
    event_types: list[str] | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=200)
    is_active: bool | None = None


class EndpointOut(Schema):
    id: int
    url: str
    description: str
    event_types: list[str]
    is_active: bool
    created_at: datetime


class EndpointCreatedOut(EndpointOut):
    secret: str = Field(..., description="signing secret; verify X-Siyu-Signature with it")


class DeliveryOut(Schema):
    id: int
    endpoint_id: int
    event_id: int
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str
    created_at: datetime
    finished_at: datetime | None


class DeliveryPage(PageOut):
    items: list[DeliveryOut]


class DeliveryQuery(PageParams):
    endpoint_id: int | None = None
    status: WebhookStatus | None = None


@router.get("/endpoints", response=list[EndpointOut])
def list_endpoints(request: HttpRequest) -> object:
    return selectors.webhook_endpoint_list(actor=actor(request))


@router.post("/endpoints", response={201: EndpointCreatedOut})
def create_endpoint(request: HttpRequest, payload: EndpointIn) -> Status[object]:
    endpoint = services.webhook_endpoint_create(
        actor=actor(request),
        url=payload.url,
        event_types=payload.event_types,
        description=payload.description,
    )
    return Status(201, endpoint)


@router.patch("/endpoints/{endpoint_id}", response=EndpointOut)
def update_endpoint(request: HttpRequest, endpoint_id: int, payload: EndpointPatch) -> object:
    return services.webhook_endpoint_update(
        actor=actor(request), endpoint_id=endpoint_id, **payload.model_dump(exclude_unset=True)
    )


@router.delete("/endpoints/{endpoint_id}", response={204: None})
def delete_endpoint(request: HttpRequest, endpoint_id: int) -> Status[object]:
    services.webhook_endpoint_delete(actor=actor(request), endpoint_id=endpoint_id)
    return Status(204, None)


@router.get("/deliveries", response=DeliveryPage)
def list_deliveries(request: HttpRequest, params: Query[DeliveryQuery]) -> object:
    qs = selectors.webhook_delivery_list(
        actor=actor(request), endpoint_id=params.endpoint_id, status=params.status or ""
    )
    return paginate(qs, params)


@router.post("/deliveries/{delivery_id}/redeliver", response=DeliveryOut)
def redeliver(request: HttpRequest, delivery_id: int) -> object:
    return services.webhook_delivery_redeliver(actor=actor(request), delivery_id=delivery_id)
