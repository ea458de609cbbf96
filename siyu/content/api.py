"""Content library API (内容库 / 互动雷达): folders, items, tracked links and radar numbers.

Managing the library needs content.manage; every member may read it and take tracked links
for themselves (their smart briefcase). Radar numbers cover the sends of members in scope.
"""

import os
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import File, Query, Router, Schema, Status, UploadedFile
from pydantic import Field

from siyu.accounts.permissions import access_customer
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.content import selectors, services
from siyu.content.models import ContentItem, ContentKind, UrlStatus
from siyu.core.errors import InvalidInput

router = Router(tags=["content"])


class FolderIn(StrictIn):
    name: str = Field(min_length=1, max_length=64)
    parent_id: int | None = None


class FolderPatch(StrictIn):
    name: str = Field(min_length=1, max_length=64)


class FolderOut(Schema):
    id: int
    name: str
    parent_id: int | None


class ItemIn(StrictIn):
    kind: ContentKind
    title: str = Field(min_length=1, max_length=100)
    summary: str = Field("", max_length=300)
    folder_id: int | None = None
    tags: list[str] = Field(default_factory=list, max_length=20)
    body: str = Field("", description="articles: HTML; cleaned to simple formatting on save")
    url: str = Field("", max_length=500, description="links, external videos, product pages")
    price_fen: int | None = Field(None, ge=0, description="product cards, in fen (分)")
    card_staff_id: int | None = Field(None, description="name cards: whose card")


class ItemPatch(StrictIn):
    title: str | None = Field(None, min_length=1, max_length=100)
    summary: str | None = Field(None, max_length=300)
    folder_id: int | None = None
    tags: list[str] | None = Field(None, max_length=20)
    body: str | None = None
    url: str | None = Field(None, max_length=500)
    price_fen: int | None = Field(None, ge=0)
    card_staff_id: int | None = None


class ItemOut(Schema):
    id: int
    kind: ContentKind
    title: str
    summary: str
    folder_id: int | None
    tags: list[str]
    body: str
    url: str
    url_status: UrlStatus
    url_checked_at: datetime | None
    url_error: str
    price_fen: int | None
    card_staff_id: int | None
    has_cover: bool
    file_name: str = Field(description="the uploaded file's name; customers get it via the link")
    missing: str = Field(description='what the item still needs before it can be sent ("")')
    archived: bool
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_tags(obj: ContentItem) -> list[str]:
        return [tag.name for tag in obj.tags.all()]

    @staticmethod
    def resolve_has_cover(obj: ContentItem) -> bool:
        return bool(obj.cover)

    @staticmethod
    def resolve_file_name(obj: ContentItem) -> str:
        return os.path.basename(obj.file.name or "")

    @staticmethod
    def resolve_missing(obj: ContentItem) -> str:
        return services.item_missing(obj)

    @staticmethod
    def resolve_archived(obj: ContentItem) -> bool:
        return obj.archived_at is not None


class ItemPage(PageOut):
    items: list[ItemOut]


class ItemFilter(PageParams):
    folder_id: int | None = None
    tag: str = Field("", max_length=32)
    kind: ContentKind | None = None
    q: str = Field("", max_length=100)
    archived: bool = False


class LinkIn(StrictIn):
    customer_id: int | None = Field(None, description="the customer it is for, if one")
    source: str = Field("workspace", min_length=1, max_length=64)


class LinkOut(Schema):
    id: int
    url: str
    item_id: int
    sender_id: int
    customer_id: int | None
    source: str
    expires_at: datetime


class StatsOut(Schema):
    opens: int
    visitors: int
    identified: int = Field(description="distinct customers identified through WeChat OAuth")
    avg_read_seconds: float = Field(description="average over opens that were read at all")
    forwards: int = Field(description="opens that came through someone's forward")


class TreeNodeOut(Schema):
    visit_id: int
    customer_id: int | None
    customer_name: str
    staff_id: int
    opened_at: datetime
    read_seconds: int
    children: list["TreeNodeOut"]


class StaffStatsOut(Schema):
    staff_id: int
    name: str
    opens: int
    visitors: int
    avg_read_seconds: float
    forwards: int


@router.get("/folders", response=list[FolderOut])
def list_folders(request: HttpRequest) -> object:
    return selectors.folders_list(actor=actor(request))


@router.post("/folders", response={201: FolderOut})
def create_folder(request: HttpRequest, payload: FolderIn) -> Status[object]:
    return Status(201, services.folder_create(actor=actor(request), **payload.model_dump()))


@router.patch("/folders/{folder_id}", response=FolderOut)
def rename_folder(request: HttpRequest, folder_id: int, payload: FolderPatch) -> object:
    return services.folder_rename(actor=actor(request), folder_id=folder_id, name=payload.name)


@router.delete("/folders/{folder_id}", response={204: None})
def delete_folder(request: HttpRequest, folder_id: int) -> Status[None]:
    services.folder_delete(actor=actor(request), folder_id=folder_id)
    return Status(204, None)


@router.get("/items", response=ItemPage)
def list_items(request: HttpRequest, params: Query[ItemFilter]) -> object:
    items = selectors.items_list(
        actor=actor(request),
        folder_id=params.folder_id,
        tag=params.tag,
        kind=params.kind or "",
        query=params.q,
        archived=params.archived,
    )
    return paginate(items, params)


@router.post("/items", response={201: ItemOut})
def create_item(request: HttpRequest, payload: ItemIn) -> Status[object]:
    """Create an item; posters, files and uploaded videos get their file from ``/file``."""
    return Status(201, services.item_create(actor=actor(request), **payload.model_dump()))


@router.get("/items/{item_id}", response=ItemOut)
def get_item(request: HttpRequest, item_id: int) -> object:
    return selectors.item_get(actor=actor(request), item_id=item_id)


@router.patch("/items/{item_id}", response=ItemOut)
def update_item(request: HttpRequest, item_id: int, payload: ItemPatch) -> object:
    return services.item_update(
        actor=actor(request), item_id=item_id, **payload.model_dump(exclude_unset=True)
    )


@router.delete("/items/{item_id}", response={204: None})
def archive_item(request: HttpRequest, item_id: int) -> Status[None]:
    """Archive: links already sent keep working and the radar keeps its history."""
    services.item_archive(actor=actor(request), item_id=item_id)
    return Status(204, None)


@router.post("/items/{item_id}/file", response=ItemOut)
def upload_item_file(
    request: HttpRequest,
    item_id: int,
    file: File[UploadedFile | None] = None,
    cover: File[UploadedFile | None] = None,
) -> object:
    """Multipart upload of the item's ``file`` (poster image, document, video) and/or ``cover``."""
    return services.item_files_set(actor=actor(request), item_id=item_id, file=file, cover=cover)


@router.post("/items/{item_id}/check-url", response={202: ItemOut})
def check_item_url(request: HttpRequest, item_id: int) -> Status[object]:
    """Check the outbound URL again; ``url_status`` changes when the background check ran."""
    return Status(202, services.item_url_recheck(actor=actor(request), item_id=item_id))


@router.post("/items/{item_id}/links", response={201: LinkOut})
def create_link(request: HttpRequest, item_id: int, payload: LinkIn) -> Status[object]:
    """A tracked link sent by the caller (optionally to one of their customers)."""
    staff = actor(request)
    customer = (
        access_customer(staff, payload.customer_id) if payload.customer_id is not None else None
    )
    link = services.tracked_link_for_self(
        actor=staff, item_id=item_id, customer=customer, source=payload.source
    )
    return Status(
        201,
        {
            "id": link.pk,
            "url": services.link_url(link=link),
            "item_id": link.item_id,
            "sender_id": link.sender_id,
            "customer_id": link.customer_id,
            "source": link.source,
            "expires_at": link.expires_at,
        },
    )


@router.get("/items/{item_id}/stats", response=StatsOut)
def item_stats(request: HttpRequest, item_id: int) -> object:
    staff = actor(request)
    item = selectors.item_get(actor=staff, item_id=item_id)
    return selectors.item_stats(actor=staff, item=item)


def _tree_out(nodes: list[selectors.TreeNode]) -> list[dict[str, Any]]:
    return [
        {
            "visit_id": node.visit.pk,
            "customer_id": node.visit.customer_id,
            "customer_name": node.visit.customer.name if node.visit.customer else "",
            "staff_id": node.visit.sender_id,
            "opened_at": node.visit.opened_at,
            "read_seconds": node.visit.read_seconds,
            "children": _tree_out(node.children),
        }
        for node in nodes
    ]


@router.get("/items/{item_id}/tree", response=list[TreeNodeOut])
def item_forward_tree(request: HttpRequest, item_id: int) -> object:
    """Who opened the item through whose forward (the newest 500 opens in scope)."""
    staff = actor(request)
    item = selectors.item_get(actor=staff, item_id=item_id)
    return _tree_out(selectors.forward_tree(actor=staff, item=item))


@router.get("/stats/staff", response=list[StaffStatsOut])
def staff_stats(request: HttpRequest, days: Query[int] = 30) -> object:
    if not 1 <= days <= 366:
        raise InvalidInput("days must be between 1 and 366")
    return selectors.staff_stats(actor=actor(request), days=days)
