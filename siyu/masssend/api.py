from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import File, Query, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import Field

from siyu.accounts.permissions import Action, require
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.errors import InvalidInput, SiyuError
from siyu.masssend import selectors, services
from siyu.masssend.models import AudienceKind, MassSend, MassSendKind, MassSendStatus
from siyu.wecom.client.errors import WeComError

router = Router(tags=["masssend"])

UPLOAD_MAX_BYTES = 5 * 1024 * 1024


class WeComUnavailable(SiyuError):
    code = "wecom_error"
    status = 502


class AudienceIn(StrictIn):
    kind: MassSendKind
    audience_kind: AudienceKind
    audience: dict[str, Any] = Field(
        description="segment: {segment_id}; expression: {expression}; tags: {tag_ids}; "
        "upload: {customer_ids}; group sends may add {staff_ids}"
    )


class MassSendIn(AudienceIn):
    name: str = Field(max_length=services.NAME_MAX)
    text: str = Field(max_length=4000)
    attachments: list[dict[str, Any]] = Field(default_factory=list, max_length=9)
    content_item_id: int | None = None
    scheduled_at: datetime | None = Field(None, description="omit to send now")


class StaffShareOut(Schema):
    staff_id: int
    name: str
    recipients: int
    batches: int


class PreviewOut(Schema):
    kind: str
    matched: int
    receiving: int
    excluded: dict[str, int] = Field(description="cap / no_relation / deleted → customers")
    staff: list[StaffShareOut]
    batches: int
    cap: int
    cap_period_start: datetime
    notes: list[str]


class MassSendOut(Schema):
    id: int
    kind: str
    name: str
    status: str
    error: str
    audience_kind: str
    audience: dict[str, Any]
    text: str
    attachments: list[dict[str, Any]]
    content_item_id: int | None
    scheduled_at: datetime | None
    created_at: datetime
    planned_at: datetime | None
    cancelled_at: datetime | None
    synced_at: datetime | None


class StaffProgressOut(Schema):
    staff_id: int | None
    name: str
    userid: str
    state: str = Field(description="confirmed / pending / failed")
    batches: int
    created: int
    confirmed: int
    failed: int
    recipients: int
    delivered: int
    pending: int
    not_delivered: int


class MassSendDetailOut(MassSendOut):
    counts: dict[str, int]
    staff: list[StaffProgressOut]


class MassSendPage(PageOut):
    items: list[MassSendOut]


class MassSendQuery(PageParams):
    status: MassSendStatus | None = None


class RecipientOut(Schema):
    id: int
    customer_id: int | None
    staff_id: int | None
    target: str
    status: str
    reason: str
    delivered_at: datetime | None


class RecipientPage(PageOut):
    items: list[RecipientOut]


class RecipientQuery(PageParams):
    status: str = Field("", max_length=16)
    staff_id: int | None = None


class UploadErrorOut(Schema):
    row: int
    value: str
    message: str


class UploadOut(Schema):
    customer_ids: list[int]
    errors: list[UploadErrorOut]


class CountOut(Schema):
    count: int


def _detail(send: MassSend) -> dict[str, Any]:
    return {
        **MassSendOut.from_orm(send).model_dump(),
        "counts": selectors.mass_send_counts(send=send),
        "staff": [{**vars(p), "state": p.state} for p in selectors.mass_send_progress(send=send)],
    }


@router.get("", response=MassSendPage)
def list_mass_sends(request: HttpRequest, params: Query[MassSendQuery]) -> object:
    qs = selectors.mass_send_list(actor=actor(request), status=params.status or "")
    return paginate(qs, params)


@router.post("/preview", response=PreviewOut)
def preview(request: HttpRequest, payload: AudienceIn) -> object:
    """How many customers (or chats) would receive it, who would not and why, per sender."""
    result = services.mass_send_preview(
        actor=actor(request),
        kind=payload.kind,
        audience_kind=payload.audience_kind,
        audience=payload.audience,
    )
    return {**vars(result), "staff": [vars(s) for s in result.staff]}


@router.post("/audience/upload", response=UploadOut)
def upload_audience(request: HttpRequest, file: File[UploadedFile | None] = None) -> object:
    """A CSV of customer ids or external_userids (first column); rows that name no customer
    are listed with their row number. Use ``customer_ids`` as an ``upload`` audience."""
    require(actor(request), Action.MASS_SEND_MANAGE)
    if file is None:
        raise InvalidInput("attach the CSV as the multipart field 'file'")
    if file.size is not None and file.size > UPLOAD_MAX_BYTES:
        raise InvalidInput("the file is larger than 5 MB")
    result = services.audience_upload_parse(data=file.read())
    return vars(result)


@router.post("", response={201: MassSendDetailOut})
def create_mass_send(request: HttpRequest, payload: MassSendIn) -> Status[object]:
    """Create a mass send, now or at ``scheduled_at``; refused when nobody would receive it."""
    send = services.mass_send_create(
        actor=actor(request),
        kind=payload.kind,
        name=payload.name,
        audience_kind=payload.audience_kind,
        audience=payload.audience,
        text=payload.text,
        attachments=payload.attachments,
        content_item_id=payload.content_item_id,
        scheduled_at=payload.scheduled_at,
    )
    return Status(201, _detail(send))


@router.get("/{mass_send_id}", response=MassSendDetailOut)
def get_mass_send(request: HttpRequest, mass_send_id: int) -> object:
    """The send with recipients by status and each sender's progress."""
    return _detail(selectors.mass_send_get(actor=actor(request), mass_send_id=mass_send_id))


@router.get("/{mass_send_id}/recipients", response=RecipientPage)
def list_recipients(
    request: HttpRequest, mass_send_id: int, params: Query[RecipientQuery]
) -> object:
    send = selectors.mass_send_get(actor=actor(request), mass_send_id=mass_send_id)
    qs = selectors.mass_send_recipients(send=send, status=params.status, staff_id=params.staff_id)
    return paginate(qs, params)


@router.post("/{mass_send_id}/cancel", response=MassSendDetailOut)
def cancel(request: HttpRequest, mass_send_id: int) -> object:
    """Stop it: tasks not created are never created, created ones are cancelled in WeCom."""
    return _detail(services.mass_send_cancel(actor=actor(request), mass_send_id=mass_send_id))


@router.post("/{mass_send_id}/sync", response=MassSendDetailOut)
def sync(request: HttpRequest, mass_send_id: int) -> object:
    """Read confirmations and deliveries from WeCom now instead of waiting for the sweep."""
    staff = actor(request)
    send = selectors.mass_send_get(actor=staff, mass_send_id=mass_send_id)
    try:
        services.mass_send_sync(mass_send_id=send.pk)
    except WeComError as exc:
        raise WeComUnavailable(f"WeCom answered errcode {exc.errcode}: {exc.errmsg}") from exc
    return _detail(selectors.mass_send_get(actor=staff, mass_send_id=mass_send_id))


@router.post("/{mass_send_id}/remind", response=CountOut)
def remind(request: HttpRequest, mass_send_id: int) -> object:
    """Remind members who have not sent yet (WeCom: 3 reminders per message per 24 h)."""
    return {"count": services.mass_send_remind(actor=actor(request), mass_send_id=mass_send_id)}
