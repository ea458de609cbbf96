"""/api/v1/fission: campaigns (任务宝 / 群裂变), their participants and referral tree."""

import json
from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import File, Form, Query, Router, Schema, Status, UploadedFile
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.errors import InvalidInput
from siyu.fission import selectors, services
from siyu.fission.models import Campaign

router = Router(tags=["fission"])


class TierIn(StrictIn):
    threshold: int = Field(ge=1, le=services.MAX_THRESHOLD)
    kind: Literal["coupon", "link", "staff_task"]
    payload: str = Field(min_length=1, max_length=500)
    stock: int = Field(ge=0, le=10_000_000)  # 0 is refused with a clear message by the service
    # coupon tiers: a promotions coupon template, issued to the participant once per grant.
    coupon_template_id: int | None = None


class GroupIn(StrictIn):
    chat_id: str = Field(min_length=1, max_length=128)
    name: str = Field("", max_length=64)
    capacity: int = Field(200, ge=1, le=services.GROUP_CAPACITY)


class CampaignIn(StrictIn):
    kind: Literal["task", "group"]
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=500)
    starts_at: datetime
    ends_at: datetime
    staff_ids: list[int] = Field(min_length=1, max_length=services.MAX_STAFF)
    tiers: list[TierIn] = Field(min_length=1, max_length=services.MAX_TIERS)
    tag_ids: list[int] = Field(default_factory=list, max_length=50)
    delete_window_hours: int = Field(72, ge=0, le=services.MAX_WINDOW_HOURS)
    group_chats: list[GroupIn] = Field(default_factory=list, max_length=services.MAX_GROUPS)


class CampaignPatch(StrictIn):
    name: str | None = Field(None, min_length=1, max_length=64)
    description: str | None = Field(None, max_length=500)
    ends_at: datetime | None = None
    delete_window_hours: int | None = Field(None, ge=0, le=services.MAX_WINDOW_HOURS)


class TierOut(Schema):
    id: int
    threshold: int
    kind: str
    payload: str
    stock: int
    issued: int
    coupon_template_id: int | None


class CampaignOut(Schema):
    id: int
    kind: str
    name: str
    description: str
    starts_at: datetime
    ends_at: datetime
    delete_window_hours: int
    tag_ids: list[int]
    group_chats: list[dict[str, Any]]
    has_poster: bool
    staff_ids: list[int]
    created_at: datetime

    @staticmethod
    def resolve_has_poster(obj: Campaign) -> bool:
        return bool(obj.poster_artwork)

    @staticmethod
    def resolve_staff_ids(obj: Campaign) -> list[int]:
        return sorted(obj.staff.values_list("pk", flat=True))


class CampaignDetailOut(CampaignOut):
    tiers: list[TierOut]
    funnel: dict[str, int]

    @staticmethod
    def resolve_tiers(obj: Campaign) -> object:
        return obj.tiers.all()

    @staticmethod
    def resolve_funnel(obj: Campaign) -> dict[str, int]:
        return selectors.campaign_funnel(campaign=obj)


class CampaignPage(PageOut):
    items: list[CampaignOut]


class ParticipantOut(Schema):
    id: int
    customer_id: int
    name: str
    referrer_id: int | None
    counted: int
    adds: int
    deleted: int
    has_code: bool
    poster_error: str
    created_at: datetime

    @staticmethod
    def resolve_name(obj: Any) -> str:
        return str(obj.customer)

    @staticmethod
    def resolve_has_code(obj: Any) -> bool:
        return bool(obj.config_id)


class ParticipantPage(PageOut):
    items: list[ParticipantOut]


class TreeNode(Schema):
    id: int
    customer_id: int
    name: str
    counted: int
    children: list["TreeNode"]


@router.get("/campaigns", response=CampaignPage)
def list_campaigns(request: HttpRequest, params: Query[PageParams]) -> object:
    return paginate(selectors.campaign_list(actor=actor(request)), params)


@router.post("/campaigns", response={201: CampaignDetailOut})
def create_campaign(request: HttpRequest, payload: CampaignIn) -> Status[object]:
    """Create a campaign with its reward tiers (the poster template is uploaded separately)."""
    campaign = services.campaign_create(
        actor=actor(request),
        **payload.model_dump(exclude={"tiers", "group_chats"}),
        tiers=[tier.model_dump() for tier in payload.tiers],
        group_chats=[group.model_dump() for group in payload.group_chats],
    )
    return Status(201, campaign)


@router.get("/campaigns/{campaign_id}", response=CampaignDetailOut)
def get_campaign(request: HttpRequest, campaign_id: int) -> object:
    return selectors.campaign_get(actor=actor(request), campaign_id=campaign_id)


@router.patch("/campaigns/{campaign_id}", response=CampaignDetailOut)
def update_campaign(request: HttpRequest, campaign_id: int, payload: CampaignPatch) -> object:
    campaign = selectors.campaign_get(actor=actor(request), campaign_id=campaign_id)
    return services.campaign_update(campaign=campaign, **payload.model_dump(exclude_unset=True))


@router.post("/campaigns/{campaign_id}/poster", response=CampaignDetailOut)
def set_poster(
    request: HttpRequest,
    campaign_id: int,
    artwork: File[UploadedFile | None] = None,
    layout: Form[str] = "",
) -> object:
    """Upload the poster artwork (multipart ``artwork``) and the positions of avatar, nickname
    and QR code (``layout``: JSON ``{"avatar": {"x","y","size"}, "nickname": …, "qr": …}``)."""
    campaign = selectors.campaign_get(actor=actor(request), campaign_id=campaign_id)
    if artwork is None:
        raise InvalidInput("artwork: upload the poster's artwork image", code="poster_incomplete")
    try:
        parsed = json.loads(layout) if layout else {}
    except json.JSONDecodeError as exc:
        raise InvalidInput("layout must be a JSON object") from exc
    if not isinstance(parsed, dict):
        raise InvalidInput("layout must be a JSON object")
    if artwork.size is not None and artwork.size > services.MAX_ARTWORK_BYTES:
        raise InvalidInput("the artwork may be at most 5 MB")
    return services.campaign_poster_set(
        campaign=campaign,
        artwork=artwork.read(),
        layout=parsed,
        artwork_name=artwork.name or "art.png",
    )


@router.get("/campaigns/{campaign_id}/participants", response=ParticipantPage)
def list_participants(request: HttpRequest, campaign_id: int, params: Query[PageParams]) -> object:
    campaign = selectors.campaign_get(actor=actor(request), campaign_id=campaign_id)
    return paginate(selectors.participant_list(campaign=campaign), params)


@router.get("/campaigns/{campaign_id}/tree", response=list[TreeNode])
def referral_tree(request: HttpRequest, campaign_id: int) -> object:
    """The referral tree: each participant under the participant whose code brought them in."""
    campaign = selectors.campaign_get(actor=actor(request), campaign_id=campaign_id)
    return selectors.referral_tree(campaign=campaign)
