"""Channel codes API (渠道活码): codes backed by WeCom contact ways, their QR images, the quota
and the default welcome message. Rules live in the services; the console shares them."""

from datetime import datetime, time
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.channels import selectors, services
from siyu.channels.models import ChannelCode, CodeKind, CodeStatus

router = Router(tags=["channels"])


class WelcomeIn(StrictIn):
    text: str = Field("", description="may use {客户昵称} and {员工姓名}; ≤4000 bytes")
    attachments: list[dict[str, Any]] = Field(
        default_factory=list,
        description='≤9 of {"type": "image", "pic_url"} | {"type": "link", "title", "url", '
        '"picurl"?, "desc"?} | {"type": "miniprogram", "title", "appid", "page", "pic_media_id"}',
    )


class WelcomeOut(Schema):
    text: str = ""
    attachments: list[dict[str, Any]] = Field(default_factory=list)


class MemberOut(Schema):
    id: int
    userid: str
    name: str
    backup: bool

    @staticmethod
    def resolve_id(obj: Any) -> int:
        return int(obj.staff_id)

    @staticmethod
    def resolve_userid(obj: Any) -> str:
        return str(obj.staff.userid)

    @staticmethod
    def resolve_name(obj: Any) -> str:
        return str(obj.staff.name)


class TagRef(Schema):
    id: int
    name: str


class CodeOut(Schema):
    id: int
    name: str
    kind: CodeKind
    status: CodeStatus
    skip_verify: bool
    state: str
    config_id: str
    qr_code: str
    members: list[MemberOut]
    tags: list[TagRef]
    welcome: WelcomeOut | None = Field(None, description="null: the default welcome message")
    daily_cap: int
    work_start: time | None
    work_end: time | None
    relation_remark: str
    relation_description: str
    wecom_users: list[str] = Field(description="the members WeCom assigns right now")
    group_chat_id: str
    join_qr_code: str = Field(description="the group's join QR, added to the welcome message")
    adds_today: int = 0
    adds_total: int
    created_at: datetime

    @staticmethod
    def resolve_members(obj: ChannelCode) -> list[object]:
        return list(obj.members.all())

    @staticmethod
    def resolve_tags(obj: ChannelCode) -> list[object]:
        return list(obj.tags.all())

    @staticmethod
    def resolve_welcome(obj: ChannelCode) -> dict[str, Any] | None:
        return obj.welcome or None


class CodePage(PageOut):
    items: list[CodeOut]


class CodeQuery(PageParams):
    q: str = Field("", max_length=30)


class CodeIn(StrictIn):
    name: str = Field(..., description="≤30 characters; the contact way's remark in WeCom")
    kind: CodeKind = CodeKind.MULTI
    staff_ids: list[int] = Field(..., max_length=services.POOL_MAX)
    backup_ids: list[int] = Field(default_factory=list, max_length=services.POOL_MAX)
    tag_ids: list[int] = Field(default_factory=list, max_length=services.TAGS_MAX)
    welcome: WelcomeIn | None = None
    skip_verify: bool = True
    daily_cap: int = Field(0, ge=0, description="adds per member per day; 0 = no cap")
    work_start: time | None = None
    work_end: time | None = None
    relation_remark: str = ""
    relation_description: str = ""
    group_chat_id: str = Field(
        "", max_length=128, description="invite customers into this group chat (its join QR)"
    )


class CodePatchIn(StrictIn):
    name: str | None = None
    staff_ids: list[int] | None = Field(None, max_length=services.POOL_MAX)
    backup_ids: list[int] | None = Field(None, max_length=services.POOL_MAX)
    tag_ids: list[int] | None = Field(None, max_length=services.TAGS_MAX)
    welcome: WelcomeIn | None = None
    skip_verify: bool | None = None
    daily_cap: int | None = Field(None, ge=0)
    work_start: time | None = None
    work_end: time | None = None
    relation_remark: str | None = None
    relation_description: str | None = None
    group_chat_id: str | None = Field(None, max_length=128, description='"" stops inviting')


class QuotaOut(Schema):
    used: int
    quota: int
    left: int


@router.get("", response=CodePage)
def list_codes(request: HttpRequest, params: Query[CodeQuery]) -> object:
    return paginate(selectors.channel_code_list(actor=actor(request), query=params.q), params)


@router.post("", response={201: CodeOut})
def create_code(request: HttpRequest, payload: CodeIn) -> Status[object]:
    """Create the code and its contact way in WeCom (state ``ch:<id>``), all or nothing."""
    staff = actor(request)
    data = payload.dict()
    code = services.channel_code_create(actor=staff, **data)
    return Status(201, selectors.channel_code_get(actor=staff, code_id=code.pk))


@router.get("/quota", response=QuotaOut)
def quota(request: HttpRequest) -> object:
    """Contact ways held by channel codes against WeCom's per-corp quota."""
    usage = selectors.contact_way_usage(actor=actor(request))
    return {"used": usage.used, "quota": usage.quota, "left": usage.left}


@router.get("/welcome-default", response=WelcomeOut)
def get_welcome_default(request: HttpRequest) -> object:
    return selectors.welcome_default_get(actor=actor(request))


@router.put("/welcome-default", response=WelcomeOut)
def put_welcome_default(request: HttpRequest, payload: WelcomeIn) -> object:
    """The welcome message of codes that set none (empty text and attachments: none at all)."""
    return services.welcome_default_set(actor=actor(request), welcome=payload.dict()).welcome


@router.get("/{code_id}", response=CodeOut)
def get_code(request: HttpRequest, code_id: int) -> object:
    return selectors.channel_code_get(actor=actor(request), code_id=code_id)


@router.patch("/{code_id}", response=CodeOut)
def update_code(request: HttpRequest, code_id: int, payload: CodePatchIn) -> object:
    """Change the fields given; the contact way in WeCom follows. ``welcome: null`` or an empty
    message switches to the default."""
    staff = actor(request)
    selectors.channel_code_get(actor=staff, code_id=code_id)
    changes = payload.dict(exclude_unset=True)
    services.channel_code_update(actor=staff, code_id=code_id, **changes)
    return selectors.channel_code_get(actor=staff, code_id=code_id)


@router.post("/{code_id}/pause", response=CodeOut)
def pause_code(request: HttpRequest, code_id: int) -> object:
    """Adds keep reaching the members (WeCom cannot pause a contact way) and are attributed to
    the channel, but no welcome message or tags are sent until resumed."""
    staff = actor(request)
    selectors.channel_code_get(actor=staff, code_id=code_id)
    services.channel_code_set_status(actor=staff, code_id=code_id, status=CodeStatus.PAUSED)
    return selectors.channel_code_get(actor=staff, code_id=code_id)


@router.post("/{code_id}/resume", response=CodeOut)
def resume_code(request: HttpRequest, code_id: int) -> object:
    staff = actor(request)
    selectors.channel_code_get(actor=staff, code_id=code_id)
    services.channel_code_set_status(actor=staff, code_id=code_id, status=CodeStatus.ACTIVE)
    return selectors.channel_code_get(actor=staff, code_id=code_id)


@router.delete("/{code_id}", response={204: None})
def delete_code(request: HttpRequest, code_id: int) -> Status[None]:
    """Delete the code and its contact way in WeCom (printed QR codes stop working)."""
    services.channel_code_delete(actor=actor(request), code_id=code_id)
    return Status(204, None)


@router.get("/{code_id}/qr", summary="The code's QR image (PNG)")
def qr_image(request: HttpRequest, code_id: int) -> HttpResponse:
    content, content_type = services.channel_code_qr(actor=actor(request), code_id=code_id)
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="channel-{code_id}.png"'
    return response
