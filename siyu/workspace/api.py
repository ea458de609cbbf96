"""/api/v1/workspace: my tasks and alerts, the scripts library (话术库), the tasks overview."""

from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.workspace import selectors, services

router = Router(tags=["workspace"])


class TaskOut(Schema):
    id: int
    kind: str
    title: str
    body: str
    customer_id: int | None
    source: str
    status: str
    due_at: datetime | None
    done_at: datetime | None
    rerouted_from_id: int | None
    cancel_reason: str
    created_at: datetime


class TaskPage(PageOut):
    items: list[TaskOut]


class TaskFilter(PageParams):
    status: Literal["", "open", "done", "cancelled"] = ""
    today: bool = False


class OverviewRow(Schema):
    staff_id: int
    name: str
    open: int
    overdue: int
    done: int
    due: int
    on_time: int
    on_time_rate: float | None


class AlertOut(Schema):
    id: int
    kind: str
    text: str
    customer_id: int | None
    status: str
    created_at: datetime
    sent_at: datetime | None


class AlertPage(PageOut):
    items: list[AlertOut]


class AttachmentIn(StrictIn):
    kind: Literal["image", "link", "file", "miniprogram"]
    url: str = Field(min_length=8, max_length=500)
    title: str = Field("", max_length=64)


class ScriptIn(StrictIn):
    category_id: int
    title: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=4000)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=9)


class ScriptOut(Schema):
    id: int
    category_id: int
    title: str
    text: str
    attachments: list[dict[str, str]]
    usage_count: int
    updated_at: datetime


class ScriptPage(PageOut):
    items: list[ScriptOut]


class ScriptFilter(PageParams):
    q: str = Field("", max_length=64)
    category_id: int | None = None


class CategoryIn(StrictIn):
    name: str = Field(min_length=1, max_length=32)
    order: int = Field(0, ge=0, le=32767)


class CategoryOut(Schema):
    id: int
    name: str
    order: int
    script_count: int = 0


@router.get("/tasks", response=TaskPage)
def list_my_tasks(request: HttpRequest, params: Query[TaskFilter]) -> object:
    tasks = selectors.my_tasks(actor=actor(request), status=params.status, today=params.today)
    return paginate(tasks, params)


@router.post("/tasks/{task_id}/done", response=TaskOut)
def mark_task_done(request: HttpRequest, task_id: int) -> object:
    return services.task_done(actor=actor(request), task_id=task_id, source="api")


@router.get("/tasks/overview", response=list[OverviewRow])
def task_overview(request: HttpRequest) -> object:
    return selectors.task_overview(actor=actor(request))


@router.get("/alerts", response=AlertPage)
def list_my_alerts(request: HttpRequest, params: Query[PageParams]) -> object:
    return paginate(selectors.my_alerts(actor=actor(request)), params)


@router.get("/scripts", response=ScriptPage)
def list_scripts(request: HttpRequest, params: Query[ScriptFilter]) -> object:
    scripts = selectors.script_list(
        actor=actor(request), query=params.q, category_id=params.category_id
    )
    return paginate(scripts, params)


@router.post("/scripts", response={201: ScriptOut})
def create_script(request: HttpRequest, payload: ScriptIn) -> Status[object]:
    script = services.script_save(actor=actor(request), **payload.model_dump())
    return Status(201, script)


@router.put("/scripts/{script_id}", response=ScriptOut)
def update_script(request: HttpRequest, script_id: int, payload: ScriptIn) -> object:
    return services.script_save(actor=actor(request), script_id=script_id, **payload.model_dump())


@router.delete("/scripts/{script_id}", response={204: None})
def delete_script(request: HttpRequest, script_id: int) -> Status[object]:
    services.script_delete(actor=actor(request), script_id=script_id)
    return Status(204, None)


@router.post("/scripts/{script_id}/use", response=ScriptOut)
def use_script(request: HttpRequest, script_id: int) -> object:
    return services.script_used(actor=actor(request), script_id=script_id)


@router.get("/script-categories", response=list[CategoryOut])
def list_categories(request: HttpRequest) -> object:
    return selectors.category_list(actor=actor(request))


@router.post("/script-categories", response={201: CategoryOut})
def create_category(request: HttpRequest, payload: CategoryIn) -> Status[object]:
    return Status(201, services.category_save(actor=actor(request), **payload.model_dump()))


@router.put("/script-categories/{category_id}", response=CategoryOut)
def update_category(request: HttpRequest, category_id: int, payload: CategoryIn) -> object:
    return services.category_save(
        actor=actor(request), category_id=category_id, **payload.model_dump()
    )


@router.delete("/script-categories/{category_id}", response={204: None})
def delete_category(request: HttpRequest, category_id: int) -> Status[object]:
    services.category_delete(actor=actor(request), category_id=category_id)
    return Status(204, None)
