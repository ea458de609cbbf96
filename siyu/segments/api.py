from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.segments import selectors, services

router = Router(tags=["segments"])

EXPRESSION = Field(..., min_length=1, max_length=2000, description="see docs/segments.md")


class SegmentOut(Schema):
    id: int
    name: str
    expression: str
    description: str
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime


class SegmentIn(StrictIn):
    name: str = Field(..., min_length=1, max_length=64)
    expression: str = EXPRESSION
    description: str = Field("", max_length=300)


class SegmentPatchIn(StrictIn):
    name: str | None = Field(None, min_length=1, max_length=64)
    expression: str | None = Field(None, min_length=1, max_length=2000)
    description: str | None = Field(None, max_length=300)


class CountIn(StrictIn):
    expression: str = EXPRESSION


class CountOut(Schema):
    count: int
    took_ms: float
    engine: str = Field(..., description="bitmap, bitmap+sql or sql")


class MemberOut(Schema):
    id: int
    name: str
    stage: str
    created_at: datetime


class MemberPage(PageOut):
    items: list[MemberOut]


@router.get("", response=list[SegmentOut])
def list_segments(request: HttpRequest) -> object:
    return selectors.saved_segment_list(actor=actor(request))


@router.post("", response={201: SegmentOut})
def create_segment(request: HttpRequest, payload: SegmentIn) -> Status[object]:
    segment = services.saved_segment_create(actor=actor(request), **payload.dict())
    return Status(201, segment)


@router.post("/count", response=CountOut)
def count_segment(request: HttpRequest, payload: CountIn) -> object:
    """How many customers in the caller's data scope match; a bad expression is a 400 whose
    ``details`` carry the position and a caret line."""
    return selectors.segment_count(expression=payload.expression, actor=actor(request))


@router.get("/{segment_id}", response=SegmentOut)
def get_segment(request: HttpRequest, segment_id: int) -> object:
    return selectors.saved_segment_get(actor=actor(request), segment_id=segment_id)


@router.patch("/{segment_id}", response=SegmentOut)
def update_segment(request: HttpRequest, segment_id: int, payload: SegmentPatchIn) -> object:
    return services.saved_segment_update(
        actor=actor(request), segment_id=segment_id, **payload.dict(exclude_unset=True)
    )


@router.delete("/{segment_id}", response={204: None})
def delete_segment(request: HttpRequest, segment_id: int) -> Status[object]:
    services.saved_segment_delete(actor=actor(request), segment_id=segment_id)
    return Status(204, None)


@router.get("/{segment_id}/customers", response=MemberPage)
def segment_members(request: HttpRequest, segment_id: int, params: Query[PageParams]) -> object:
    members = selectors.saved_segment_customers(actor=actor(request), segment_id=segment_id)
    return paginate(members, params)
