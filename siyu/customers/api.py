"""Customers: lists, the 360 profile, timeline, stage and fields, merges and splits; and the
lifecycle configuration (stages, rules, custom fields, account kinds)."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.accounts.models import AccountKind
from siyu.accounts.permissions import (
    Action,
    access_customer,
    access_staff_member,
    require,
)
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput
from siyu.customers import attributes, lifecycle, merging, selectors
from siyu.customers.models import FieldKind, IdentityKind, LifecycleRule

router = Router(tags=["customers"])
lifecycle_router = Router(tags=["lifecycle"])


class CustomerOut(Schema):
    id: int
    name: str
    avatar: str
    stage: str
    created_at: datetime


class CustomerPage(PageOut):
    items: list[CustomerOut]


class CustomerQuery(PageParams):
    q: str = Field("", max_length=64, description="name, remark, or an exact identifier")
    stage: str = Field("", max_length=32)
    staff_id: int | None = None
    unassigned: bool = Field(False, description="only customers no active member follows")


class StageOut(Schema):
    key: str
    name: str


class IdentityOut(Schema):
    id: int
    kind: str
    value: str
    linked_at: datetime


class RelationOut(Schema):
    id: int
    staff_id: int
    staff_userid: str
    staff_name: str
    staff_account_kind: str
    external_userid: str
    status: str
    remark: str
    description: str
    add_way: int
    state: str
    added_at: datetime | None
    deleted_at: datetime | None
    delete_source: str


class AppliedTagOut(Schema):
    tag_id: int
    name: str
    group: str
    source: str
    staff_userid: str
    applied_at: datetime


class GroupOut(Schema):
    chat_id: str
    name: str
    status: str
    joined_at: datetime | None
    left_at: datetime | None


class FieldValueOut(Schema):
    key: str
    name: str
    kind: str
    value: Any


class MergeOut(Schema):
    id: int
    survivor_id: int
    absorbed_id: int
    reason: str
    created_at: datetime
    undone_at: datetime | None


class ProfileOut(Schema):
    id: int
    name: str
    avatar: str
    gender: int
    type: int
    corp_name: str
    created_at: datetime
    stage: StageOut
    identities: list[IdentityOut]
    relations: list[RelationOut]
    tags: list[AppliedTagOut]
    groups: list[GroupOut]
    fields: list[FieldValueOut]
    merges: list[MergeOut]


class EventOut(Schema):
    id: int
    type: str
    occurred_at: datetime
    source: str
    payload: dict[str, Any]


class TimelineQuery(Schema):
    type: list[str] = Field(default_factory=list, description="event types to keep")
    before: datetime | None = Field(None, description="cursor: occurred_at of the last row seen")
    limit: int = Field(50, ge=1, le=200)


class CustomerPatchIn(StrictIn):
    stage: str | None = Field(None, max_length=32)
    attributes: dict[str, Any] | None = None
    reason: str = Field("", max_length=200)


class MergeIn(StrictIn):
    absorbed_id: int = Field(..., description="the duplicate record to fold into this customer")


class SplitIn(StrictIn):
    identity_ids: list[int] = Field(..., min_length=1, max_length=100)


class IdentityIn(StrictIn):
    kind: IdentityKind
    value: str = Field(..., min_length=1, max_length=128)


@router.get("", response=CustomerPage)
def list_customers(request: HttpRequest, params: Query[CustomerQuery]) -> object:
    customers = selectors.customer_list(
        actor=actor(request),
        query=params.q.strip(),
        stage=params.stage,
        staff_id=params.staff_id,
        unassigned=params.unassigned,
    )
    return paginate(customers, params)


@router.get("/{int:customer_id}", response=ProfileOut)
def get_customer(request: HttpRequest, customer_id: int) -> object:
    return selectors.customer_profile(actor=actor(request), customer_id=customer_id)


@router.get("/{int:customer_id}/timeline", response=list[EventOut])
def get_timeline(request: HttpRequest, customer_id: int, params: Query[TimelineQuery]) -> object:
    try:
        return selectors.customer_timeline(
            actor=actor(request),
            customer_id=customer_id,
            types=params.type,
            before=params.before,
            limit=params.limit,
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


@router.patch("/{int:customer_id}", response=ProfileOut)
def patch_customer(request: HttpRequest, customer_id: int, payload: CustomerPatchIn) -> object:
    staff = actor(request)
    customer = access_customer(staff, customer_id, Action.CUSTOMERS_EDIT)
    if payload.attributes is not None:
        attributes.attributes_set(
            customer=customer, values=payload.attributes, source="api", by=staff
        )
    if payload.stage is not None:
        lifecycle.stage_set(
            customer=customer, stage=payload.stage, source="api", by=staff, reason=payload.reason
        )
    return selectors.customer_profile(actor=staff, customer_id=customer_id)


@router.post("/{int:customer_id}/merge", response=MergeOut)
def merge_customer(request: HttpRequest, customer_id: int, payload: MergeIn) -> object:
    # The service checks that the caller sees both records.
    return merging.customer_merge(
        survivor_id=customer_id, absorbed_id=payload.absorbed_id, source="api", by=actor(request)
    )


@router.post("/merges/{int:merge_id}/undo", response=MergeOut)
def undo_merge(request: HttpRequest, merge_id: int) -> object:
    return merging.merge_undo(merge_id=merge_id, source="api", by=actor(request))


@router.post("/{int:customer_id}/split", response={201: CustomerOut})
def split_customer(request: HttpRequest, customer_id: int, payload: SplitIn) -> Status[object]:
    twin = merging.customer_split(
        customer_id=customer_id, identity_ids=payload.identity_ids, source="api", by=actor(request)
    )
    return Status(201, twin)


@router.post("/{int:customer_id}/identities", response={201: IdentityOut})
def link_identity(request: HttpRequest, customer_id: int, payload: IdentityIn) -> Status[object]:
    """Link an identifier by hand (a phone the customer gave, a shop buyer id). If it already
    names another customer, the answer is a conflict naming them: merge instead."""
    staff = actor(request)
    customer = access_customer(staff, customer_id, Action.CUSTOMERS_MERGE)
    identity = merging.identity_link_manual(
        customer=customer, kind=payload.kind, value=payload.value.strip(), by=staff
    )
    return Status(
        201,
        {
            "id": identity.pk,
            "kind": identity.kind,
            "value": identity.value,
            "linked_at": identity.created_at,
        },
    )


# --- lifecycle configuration -------------------------------------------------------------


class StagesIn(StrictIn):
    stages: list[StageOut] = Field(..., min_length=1, max_length=20)


class RuleIn(StrictIn):
    event_type: str = Field(..., max_length=64)
    min_count: int = Field(1, ge=1, le=1000)
    stage: str = Field(..., max_length=32)


class RuleOut(Schema):
    id: int
    event_type: str
    min_count: int
    stage: str
    enabled: bool


class FieldIn(StrictIn):
    key: str = Field(..., min_length=1, max_length=32)
    name: str = Field(..., min_length=1, max_length=32)
    kind: FieldKind = FieldKind.TEXT
    choices: list[str] = Field(default_factory=list, max_length=50)


class FieldOut(Schema):
    id: int
    key: str
    name: str
    kind: str
    choices: list[str]


class AccountKindIn(StrictIn):
    account_kind: AccountKind


class AccountKindOut(Schema):
    id: int
    userid: str
    name: str
    account_kind: str


class MatrixKindOut(Schema):
    key: str
    name: str


class MatrixRowOut(Schema):
    key: str
    name: str
    counts: dict[str, int]


class MatrixOut(Schema):
    kinds: list[MatrixKindOut]
    stages: list[MatrixRowOut]


@lifecycle_router.get("/stages", response=list[StageOut])
def list_stages(request: HttpRequest) -> object:
    actor(request)
    return lifecycle.stages()


@lifecycle_router.put("/stages", response=list[StageOut])
def put_stages(request: HttpRequest, payload: StagesIn) -> object:
    staff = require(actor(request), Action.LIFECYCLE_MANAGE)
    return lifecycle.stages_configure(
        actor=staff, items=[{"key": s.key, "name": s.name.strip()} for s in payload.stages]
    )


@lifecycle_router.get("/rules", response=list[RuleOut])
def list_rules(request: HttpRequest) -> object:
    require(actor(request), Action.LIFECYCLE_MANAGE)
    return LifecycleRule.objects.all()


@lifecycle_router.post("/rules", response={201: RuleOut})
def create_rule(request: HttpRequest, payload: RuleIn) -> Status[object]:
    staff = require(actor(request), Action.LIFECYCLE_MANAGE)
    rule = lifecycle.rule_create(
        event_type=payload.event_type, min_count=payload.min_count, stage=payload.stage
    )
    audit_record(actor=staff, action="lifecycle.rule_create", target=rule, details=payload.dict())
    return Status(201, rule)


@lifecycle_router.delete("/rules/{int:rule_id}", response={204: None})
def delete_rule(request: HttpRequest, rule_id: int) -> Status[object]:
    lifecycle.rule_delete(actor=require(actor(request), Action.LIFECYCLE_MANAGE), rule_id=rule_id)
    return Status(204, None)


@lifecycle_router.get("/fields", response=list[FieldOut])
def list_fields(request: HttpRequest) -> object:
    actor(request)
    from siyu.customers.models import CustomField

    return CustomField.objects.all()


@lifecycle_router.post("/fields", response={201: FieldOut})
def create_field(request: HttpRequest, payload: FieldIn) -> Status[object]:
    staff = require(actor(request), Action.LIFECYCLE_MANAGE)
    field = attributes.field_create(
        key=payload.key, name=payload.name, kind=payload.kind, choices=payload.choices
    )
    audit_record(actor=staff, action="customer_field.create", target=field, details=payload.dict())
    return Status(201, field)


@lifecycle_router.get("/account-matrix", response=MatrixOut)
def get_account_matrix(request: HttpRequest) -> object:
    return selectors.account_matrix(actor=actor(request))


@lifecycle_router.put("/account-kinds/{int:member_id}", response=AccountKindOut)
def put_account_kind(request: HttpRequest, member_id: int, payload: AccountKindIn) -> object:
    staff = require(actor(request), Action.LIFECYCLE_MANAGE)
    member = access_staff_member(staff, member_id)
    return lifecycle.account_kind_set(actor=staff, member=member, kind=payload.account_kind)
