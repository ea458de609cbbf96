from datetime import datetime

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.accounts.permissions import Action, require
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.errors import SiyuError
from siyu.transfers import selectors, services
from siyu.transfers.models import JobStatus, TransferJob
from siyu.wecom.client.errors import WeComError

router = Router(tags=["transfers"])


class WeComUnavailable(SiyuError):
    code = "wecom_error"
    status = 502


class MemberRef(Schema):
    id: int
    userid: str
    name: str
    status: str


class ItemOut(Schema):
    id: int
    customer_id: int
    external_userid: str
    status: str
    errcode: int
    errmsg: str
    takeover_at: datetime | None
    updated_at: datetime


class ChatItemOut(Schema):
    chat_id: str
    name: str
    status: str
    errcode: int
    errmsg: str


class JobOut(Schema):
    id: int
    kind: str
    status: str
    handover: MemberRef
    takeover: MemberRef
    message: str
    created_at: datetime
    polled_at: datetime | None
    finished_at: datetime | None


class JobDetailOut(JobOut):
    items: list[ItemOut]
    chat_items: list[ChatItemOut]

    @staticmethod
    def resolve_items(obj: TransferJob) -> object:
        return obj.items.order_by("pk")

    @staticmethod
    def resolve_chat_items(obj: TransferJob) -> object:
        return obj.chat_items.order_by("pk")


class JobPage(PageOut):
    items: list[JobOut]


class JobQuery(PageParams):
    status: JobStatus | None = None
    handover_id: int | None = None


class TransferIn(StrictIn):
    handover_id: int
    takeover_id: int
    customer_ids: list[int] = Field(default_factory=list, max_length=services.MAX_CUSTOMERS_PER_JOB)
    chat_ids: list[str] = Field(default_factory=list, max_length=services.MAX_CHATS_PER_JOB)
    message: str = Field("", max_length=services.MESSAGE_MAX)


class UnassignedOut(Schema):
    customer_id: int
    customer_name: str
    external_userid: str
    handover: MemberRef
    added_at: datetime | None

    @staticmethod
    def resolve_customer_name(obj: object) -> str:
        return obj.customer.name  # type: ignore[attr-defined]

    @staticmethod
    def resolve_handover(obj: object) -> object:
        return obj.staff  # type: ignore[attr-defined]


class UnassignedPage(PageOut):
    items: list[UnassignedOut]


class UnassignedQuery(PageParams):
    handover_id: int | None = None
    q: str = Field("", max_length=64)


class QueuedOut(Schema):
    queued_at: datetime


@router.get("", response=JobPage)
def list_jobs(request: HttpRequest, params: Query[JobQuery]) -> object:
    qs = selectors.transfer_job_list(
        actor=actor(request), status=params.status or "", handover_id=params.handover_id
    )
    return paginate(qs, params)


@router.post("", response={201: JobDetailOut})
def create_job(request: HttpRequest, payload: TransferIn) -> Status[object]:
    """Start a transfer; per-customer answers from WeCom are on the items (waiting = the
    customer has 24 h to refuse; see GET /transfers/{id} for the final outcome)."""
    job = services.transfer_customers(
        actor=actor(request),
        handover_id=payload.handover_id,
        takeover_id=payload.takeover_id,
        customer_ids=payload.customer_ids,
        chat_ids=payload.chat_ids,
        message=payload.message,
    )
    return Status(201, job)


@router.get("/unassigned", response=UnassignedPage)
def list_unassigned(request: HttpRequest, params: Query[UnassignedQuery]) -> object:
    """Departed members' customers that nobody has inherited yet."""
    qs = selectors.unassigned_list(
        actor=actor(request), handover_id=params.handover_id, query=params.q
    )
    return paginate(qs, params)


@router.post("/unassigned/sync", response={202: QueuedOut})
def sync_unassigned(request: HttpRequest) -> Status[object]:
    """Queue a read of WeCom's unassigned list (get_unassigned_list)."""
    from siyu.transfers.tasks import sync_unassigned as task

    staff = require(actor(request), Action.TRANSFER_CUSTOMERS)
    tenant_id = staff.tenant_id
    transaction.on_commit(lambda: task.delay(tenant_id))
    return Status(202, {"queued_at": timezone.now()})


@router.get("/{transfer_id}", response=JobDetailOut)
def get_job(request: HttpRequest, transfer_id: int) -> object:
    return selectors.transfer_job_get(actor=actor(request), job_id=transfer_id)


@router.post("/{transfer_id}/poll", response=JobDetailOut)
def poll_job(request: HttpRequest, transfer_id: int) -> object:
    """Ask WeCom now instead of waiting for the periodic poll."""
    staff = actor(request)
    job = selectors.transfer_job_get(actor=staff, job_id=transfer_id)
    try:
        services.transfer_job_poll(job_id=job.pk)
    except WeComError as exc:
        raise WeComUnavailable(f"WeCom answered errcode {exc.errcode}: {exc.errmsg}") from exc
    return selectors.transfer_job_get(actor=staff, job_id=transfer_id)
