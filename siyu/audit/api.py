from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, paginate
from siyu.audit.selectors import audit_list

router = Router(tags=["audit"])


class AuditOut(Schema):
    id: int
    actor_id: int | None
    actor_label: str
    action: str
    target_type: str
    target_id: str
    target_label: str
    details: dict[str, Any]
    ip_address: str | None
    created_at: datetime


class AuditPage(PageOut):
    items: list[AuditOut]


class AuditQuery(PageParams):
    action: str = Field("", max_length=64)


@router.get("", response=AuditPage)
def list_audit(request: HttpRequest, params: Query[AuditQuery]) -> object:
    return paginate(audit_list(actor=actor(request), action=params.action), params)
