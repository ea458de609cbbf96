from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import StrictIn
from siyu.sop import selectors, services
from siyu.sop.models import Sop

router = Router(tags=["sop"])


class ActionIn(StrictIn):
    type: Literal["task", "masssend", "tag_add", "tag_remove", "stage", "notify", "webhook"]
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="task/masssend: title, body, due_hours, content_item_id; tag_add/tag_remove:"
        " tag_ids; stage: stage; notify: text; webhook: data",
    )


class StepIn(StrictIn):
    delay_minutes: int = Field(0, ge=0, description="after the previous step (or enrolment)")
    condition: str = Field("", max_length=2000, description="a segment expression")
    else_action: Literal["skip", "goto", "exit"] = "skip"
    else_goto: int | None = Field(None, description="the later step to jump to (goto)")
    actions: list[ActionIn] = Field(default_factory=list, max_length=5)


class SopIn(StrictIn):
    name: str = Field(..., min_length=1, max_length=64)
    kind: Literal["customer", "group"] = "customer"
    trigger_kind: Literal["event", "added_days", "date", "weekly", "silence"]
    trigger: dict[str, Any] = Field(
        ...,
        description="event: event_type, conditions; added_days/silence: days; date: at "
        "(ISO datetime); weekly: weekday (0 = Monday), time (HH:MM)",
    )
    audience: str = Field("", max_length=2000, description="a segment expression")
    goal_event: str = Field("", max_length=64)
    reentry: Literal["once", "after_completion"] = "once"
    reentry_interval_hours: int = Field(0, ge=0)
    steps: list[StepIn] = Field(..., min_length=1, max_length=20)


class ActionOut(Schema):
    type: str
    config: dict[str, Any]


class StepOut(Schema):
    order: int
    delay_minutes: int
    condition: str
    else_action: str
    else_goto: int | None
    actions: list[ActionOut]

    @staticmethod
    def resolve_actions(step: Any) -> list[Any]:
        return list(step.actions.all())


class SopOut(Schema):
    id: int
    name: str
    kind: str
    status: str
    trigger_kind: str
    trigger: dict[str, Any]
    audience: str
    goal_event: str
    reentry: str
    reentry_interval_hours: int
    activated_at: datetime | None
    created_at: datetime
    steps: list[StepOut]

    @staticmethod
    def resolve_steps(sop: Sop) -> list[Any]:
        return list(sop.steps.all())


class FunnelStepOut(Schema):
    order: int
    reached: int
    done: int


class FunnelOut(Schema):
    enrolled: int
    active: int
    completed: int
    exited: int
    failed: int
    converted: int
    conversion_rate: float
    steps: list[FunnelStepOut]


def _out(request: HttpRequest, sop_id: int) -> Sop:
    return selectors.sop_get(actor=actor(request), sop_id=sop_id)


@router.get("", response=list[SopOut])
def list_sops(request: HttpRequest) -> object:
    return selectors.sop_list(actor=actor(request)).prefetch_related("steps__actions")


@router.post("", response={201: SopOut})
def create_sop(request: HttpRequest, payload: SopIn) -> Status[object]:
    """Create a draft; start it with ``/{id}/activate``."""
    sop = services.sop_create(actor=actor(request), **payload.dict())
    return Status(201, _out(request, sop.pk))


@router.get("/{sop_id}", response=SopOut)
def get_sop(request: HttpRequest, sop_id: int) -> object:
    return _out(request, sop_id)


@router.put("/{sop_id}", response=SopOut)
def update_sop(request: HttpRequest, sop_id: int, payload: SopIn) -> object:
    """Replace the definition; 409 once someone is enrolled and the trigger or steps change."""
    services.sop_update(actor=actor(request), sop_id=sop_id, **payload.dict())
    return _out(request, sop_id)


@router.post("/{sop_id}/activate", response=SopOut)
def activate_sop(request: HttpRequest, sop_id: int) -> object:
    services.sop_activate(actor=actor(request), sop_id=sop_id)
    return _out(request, sop_id)


@router.post("/{sop_id}/pause", response=SopOut)
def pause_sop(request: HttpRequest, sop_id: int) -> object:
    services.sop_set_paused(actor=actor(request), sop_id=sop_id, paused=True)
    return _out(request, sop_id)


@router.post("/{sop_id}/resume", response=SopOut)
def resume_sop(request: HttpRequest, sop_id: int) -> object:
    services.sop_set_paused(actor=actor(request), sop_id=sop_id, paused=False)
    return _out(request, sop_id)


@router.get("/{sop_id}/funnel", response=FunnelOut)
def sop_funnel(request: HttpRequest, sop_id: int) -> object:
    return selectors.sop_funnel(sop=_out(request, sop_id))
